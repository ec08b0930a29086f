"""The model registry: per model its input field names, allowed durations/aspects and its price.

Prices are data (``prices.json`` beside this module, dated ``as_of``), not code: updating a price
is a one-line change there, and every ledger row says which unit and unit price it was charged at.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PRICES_FILE = Path(__file__).with_name("prices.json")


class ModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str  # owner/model
    provider: Literal["replicate", "openai"]
    capability: Literal["image", "video", "plan", "transcribe", "voice", "music", "lipsync"]
    unit: str  # image | video_s | audio_s | 1k_tokens ...
    unit_price_usd: float = Field(ge=0)
    inputs: dict[str, str]  # our name -> the model's input field
    fixed_inputs: dict[str, object] = {}
    aspects: tuple[str, ...] = ()
    durations_s: tuple[float, ...] = ()
    resolution: str = ""

    def cost_usd(self, units: float) -> float:
        return round(units * self.unit_price_usd, 6)


class Registry(BaseModel):
    as_of: str
    source: str = ""
    models: dict[str, ModelSpec]

    def get(self, name: str, capability: str) -> ModelSpec:
        spec = self.models.get(name)
        if spec is None:
            known = ", ".join(n for n, m in self.models.items() if m.capability == capability)
            raise KeyError(f"model {name!r} is not in the registry ({PRICES_FILE.name}); fix: use "
                           f"one of {known} or add it there with its inputs and price")
        if spec.capability != capability:
            raise KeyError(f"model {name!r} makes {spec.capability}, not {capability}")
        return spec


@functools.cache
def registry(path: str | None = None) -> Registry:
    raw = json.loads(Path(path or PRICES_FILE).read_text())
    models = {name: ModelSpec(name=name, **spec) for name, spec in raw["models"].items()}
    return Registry(as_of=raw["as_of"], source=raw.get("source", ""), models=models)


DEFAULT_MODELS = {"images": "black-forest-labs/flux-schnell", "video": "kwaivgi/kling-v2.1"}
