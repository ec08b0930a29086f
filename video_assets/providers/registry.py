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
    unit: str  # image | video_s | audio_s | audio_min | char | token
    unit_price_usd: float = Field(ge=0)
    output_unit_price_usd: float | None = Field(default=None, ge=0)  # tokens out, when priced apart
    inputs: dict[str, str]  # our name -> the model's input field
    fixed_inputs: dict[str, object] = {}
    aspects: tuple[str, ...] = ()
    durations_s: tuple[float, ...] = ()
    resolution: str = ""
    note: str = ""  # how the provider bills, where the unit is our approximation

    def cost_usd(self, units: float, output_units: float = 0.0) -> float:
        """``units`` x unit price (+ ``output_units`` x the output price, for token models)."""
        out_price = self.unit_price_usd if self.output_unit_price_usd is None \
            else self.output_unit_price_usd
        return round(units * self.unit_price_usd + output_units * out_price, 9)


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


# the model a capability uses when a request names only the provider ("replicate", "openai")
DEFAULT_MODELS = {
    "planner": "gpt-4o-mini",
    "transcribe": "whisper-1",
    "voice": "tts-1",
    "images": "black-forest-labs/flux-schnell",
    "video": "kwaivgi/kling-v2.1",
    "music": "meta/musicgen",
    "lipsync": "sync/lipsync-2-pro",
}
# request field -> the registry's capability name
CAPABILITY = {"planner": "plan", "transcribe": "transcribe", "voice": "voice", "images": "image",
              "video": "video", "music": "music", "lipsync": "lipsync"}
