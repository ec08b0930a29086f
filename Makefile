# Set-up needs only python3 and the package registry: uv is bootstrapped into .tools/,
# the project's locked environment into .venv/. Nothing is downloaded at run time.
PY ?= python3
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install demo test lint ui notebooks clean

$(UV):
	$(PY) -m venv .tools
	.tools/bin/pip install --quiet "uv>=0.5,<1"

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PY)
	@touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/videogen demo

test: install
	$(VENV)/bin/python -m pytest

lint: install
	$(VENV)/bin/ruff check .

ui: install
	$(VENV)/bin/dagster dev -w workspace.yaml

notebooks: install
	$(UV) run --frozen --group notebooks jupyter lab notebooks/

clean:
	rm -rf .tools $(VENV)
