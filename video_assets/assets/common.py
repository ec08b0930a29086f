"""Helpers the stage assets share: loading earlier stages' files, ledger writes, image metadata."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dagster import MetadataValue
from PIL import Image

from video_assets.schemas import BeatGrid, CallRecord, Scene, Script, StoredRequest
from video_assets.store import MediaStore, cache_key, job_key
from video_assets.warehouse import Warehouse


def load_request(store: MediaStore, job_id: str) -> StoredRequest:
    return StoredRequest.model_validate(store.get_json(job_key(job_id, "request.json")))


def load_grid(store: MediaStore, job_id: str) -> BeatGrid:
    return BeatGrid.model_validate(store.get_json(job_key(job_id, "beat_grid.json")))


def load_script(store: MediaStore, job_id: str) -> Script:
    return Script.model_validate(store.get_json(job_key(job_id, "script.json")))


def load_plan(store: MediaStore, job_id: str) -> tuple[StoredRequest, BeatGrid, Script]:
    """The request, beat grid and script of a job: what the later stages start from."""
    return load_request(store, job_id), load_grid(store, job_id), load_script(store, job_id)


class CallLog(list):
    """A stage's ledger rows. A paid attempt's row is written the moment it finishes
    (``finish``), so a run killed mid-stage still leaves every charge in ``provider_calls``; the
    rest (cache hits, offline calls) are written when the stage ends, also on failure."""

    def __init__(self, warehouse: Warehouse) -> None:
        super().__init__()
        self.warehouse = warehouse
        self.lock = threading.Lock()
        self.written: set[int] = set()

    def finish(self, row: CallRecord) -> None:
        with self.lock:
            if id(row) not in self.written:
                self.written.add(id(row))
                self.warehouse.record_calls([row])

    def flush(self) -> None:
        with self.lock:
            rest = [r for r in self if id(r) not in self.written]
            self.written.update(id(r) for r in rest)
            if rest:
                self.warehouse.record_calls(rest)


@contextmanager
def ledger(warehouse: Warehouse) -> Iterator[list[CallRecord]]:
    """Collect call records; they reach ``provider_calls`` even when the stage fails."""
    calls = CallLog(warehouse)
    try:
        yield calls
    finally:
        calls.flush()


def image_md(img: Image.Image, max_px: int = 360, alt: str = "preview") -> MetadataValue:
    """A small JPEG inlined as base64 markdown, which the Dagster UI renders as an image."""
    im = img.convert("RGB")
    im.thumbnail((max_px, max_px))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=80)
    b64 = base64.b64encode(buf.getvalue()).decode()
    return MetadataValue.md(f"![{alt}](data:image/jpeg;base64,{b64})")


def file_image_md(store: MediaStore, key: str, max_px: int = 360) -> MetadataValue:
    with store.local_path(key) as path, Image.open(path) as im:
        return image_md(im, max_px, alt=key.rsplit("/", 1)[-1])


def storyboard_key(job_id: str, index: int) -> str:
    return job_key(job_id, "storyboard", f"{index + 1:02d}.png")


def clip_key(job_id: str, index: int) -> str:
    return job_key(job_id, "clips", f"{index + 1:02d}.mp4")


def image_cache_key(provider, scene: Scene, plan: Script, size: tuple[int, int]) -> str:
    """Everything that determines a scene's image: an unchanged scene is never paid twice."""
    return cache_key("image", "png", provider=provider.name, model=provider.model,
                     version=provider.version, prompt=scene.prompt, caption=scene.caption,
                     camera=scene.camera, seed=scene.seed, style=plan.style.model_dump(),
                     n_scenes=len(plan.scenes), size=size)


def clip_cache_key(provider, image_sha256: str, clip_s: float, scene: Scene,
                   beats_s: list[float], size: tuple[int, int]) -> str:
    return cache_key("clip", "mp4", provider=provider.name, model=provider.model,
                     version=provider.version, image_sha256=image_sha256, duration_s=clip_s,
                     prompt=scene.prompt, motion=scene.motion, camera=scene.camera,
                     beats_s=beats_s, size=size)


def row_factory(calls: list[CallRecord], **base: object) -> Callable[[], CallRecord]:
    """A function that opens one more ledger row (thread-safe), for providers that make several
    attempts per call."""
    lock = threading.Lock()

    def new_row() -> CallRecord:
        row = CallRecord(**base)
        with lock:
            calls.append(row)
        return row

    new_row.finish = getattr(calls, "finish", lambda row: None)  # type: ignore[attr-defined]
    return new_row


def generation_key(kind: str, ext: str, provider, **inputs: object) -> str:
    """The cache key of any other generation (music, lyrics, plan, voice, lip-sync)."""
    return cache_key(kind, ext, provider=provider.name, model=provider.model,
                     version=provider.version, **inputs)


def lipsync_cache_key(provider, clip_cache: str, audio_sha256: str, offset_s: float,
                      duration_s: float) -> str:
    return generation_key("lipsync", "mp4", provider, clip=clip_cache, audio_sha256=audio_sha256,
                          offset_s=round(offset_s, 4), duration_s=duration_s)


def voice_line(scene: Scene, max_chars: int = 120) -> str:
    """What the voiceover says over a scene: its caption, without the archetype's role label."""
    text = scene.caption.split(":", 1)[1] if ":" in scene.caption[:24] else scene.caption
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1].rsplit(" ", 1)[0] + "…"
