"""Helpers the stage assets share: loading earlier stages' files, image metadata, the voice line.

The ledger (``ledger``, ``row_factory``) and the cache keys live in ``video_assets.generation``
(re-exported here for the modules that import them from this one), the job's file names in
``video_assets.layout``.
"""

from __future__ import annotations

import base64
import io

from dagster import MetadataValue
from PIL import Image

from video_assets.generation import generation_key, ledger, row_factory
from video_assets.layout import BEAT_GRID, REQUEST, SCRIPT
from video_assets.schemas import BeatGrid, Scene, Script, StoredRequest
from video_assets.store import MediaStore, job_key

__all__ = ["generation_key", "ledger", "row_factory"]  # imported from here by request.py, tests


def load_request(store: MediaStore, job_id: str) -> StoredRequest:
    return StoredRequest.model_validate(store.get_json(job_key(job_id, REQUEST)))


def load_grid(store: MediaStore, job_id: str) -> BeatGrid:
    return BeatGrid.model_validate(store.get_json(job_key(job_id, BEAT_GRID)))


def load_script(store: MediaStore, job_id: str) -> Script:
    return Script.model_validate(store.get_json(job_key(job_id, SCRIPT)))


def load_plan(store: MediaStore, job_id: str) -> tuple[StoredRequest, BeatGrid, Script]:
    """The request, beat grid and script of a job: what the later stages start from."""
    return load_request(store, job_id), load_grid(store, job_id), load_script(store, job_id)


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


def voice_line(scene: Scene, max_chars: int = 120) -> str:
    """What the voiceover says over a scene: its caption, without the archetype's role label."""
    text = scene.caption.split(":", 1)[1] if ":" in scene.caption[:24] else scene.caption
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1].rsplit(" ", 1)[0] + "…"
