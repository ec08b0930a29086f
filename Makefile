# Set-up needs only python3 and the package registry: uv is bootstrapped into .tools/,
# the project's locked environment into .venv/. Nothing is downloaded at run time.
PY ?= python3
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install demo test test-fast lint ui notebooks clean bench caption-frames

$(UV):
	$(PY) -m venv .tools
	.tools/bin/pip install --quiet "uv>=0.5,<1"

# Bytecode is compiled at install (as pip does): with PYTHONDONTWRITEBYTECODE set, every fresh
# process would otherwise recompile its imports (about 4 s for the definitions on a 2-core machine).
$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --python $(PY)
	@touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/videogen demo

test: install
	$(VENV)/bin/python -m pytest

# The fast loop: every test not marked slow (renders and servers are slow)
test-fast: install
	$(VENV)/bin/python -m pytest -m "not slow"

lint: install
	$(VENV)/bin/ruff check .

# The webserver and the daemon on the profile's instance (videogen dev: DAGSTER_HOME is set to the
# profile's folder); `make ui PROFILE=postgres` with DAGSTER_POSTGRES_URL for the postgres profile
ui: install
	$(if $(PROFILE),VIDEO_ASSETS_PROFILE=$(PROFILE) )$(VENV)/bin/videogen dev

notebooks: install
	$(UV) run --frozen --group notebooks jupyter lab notebooks/

# Benchmarks (benchmarks/README.md): a table on stdout and benchmarks/results.json.
# BENCH_QUICK=1 for a smaller run; BENCH_ONLY=compose,captions,moviepy,e2e,beats,music,memory,fanout,dagster,
# edits,queue,queue_pg,overhead to pick.
# MoviePy lives in its own locked environment: it pins pillow below the product's.
bench: install
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/benchmarks/moviepy_env/.venv $(UV) sync --frozen --project benchmarks/moviepy_env --python $(PY)
	$(VENV)/bin/python -m benchmarks.run

# The README's caption frames (docs/images/captions-*.png), rendered offline by the product
caption-frames: install
	$(VENV)/bin/python docs/caption_frames.py

clean:
	rm -rf .tools $(VENV)
