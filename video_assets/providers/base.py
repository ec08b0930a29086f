"""Provider interfaces and the ledger helper every implementation uses.

A provider call returns its result plus a ``CallRecord`` (one ``provider_calls`` row), whether it
succeeded, failed or hit the cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from video_assets.providers.keys import redact
from video_assets.schemas import BeatGrid, CallRecord, Lyrics, Request, Scene, Script, Style

NewRow = Callable[[], CallRecord]  # opens one more ledger row (a paid provider: one per attempt)


class Provider(Protocol):
    """What every provider has: who it is (``name``, ``model``, ``version``: all in its cache keys),
    whether its calls cost money (``paid``: a paid provider opens and charges its own ledger rows
    through ``new_row``, one per attempt; an unpaid one is timed in a single row by the caller) and
    the unit its calls are counted in (``unit``: image, video_s, plan...)."""

    name: str
    model: str
    version: str
    paid: bool
    unit: str


class Planner(Provider, Protocol):
    def plan(self, request: Request, grid: BeatGrid, job_seed: int,
             lyrics: Lyrics | None = None) -> Script: ...


class ImageProvider(Provider, Protocol):
    """A scene's image from what the image key holds (``generation.image_key``): the scene's
    prompt, camera and seed, the plan's style and the size; never its caption or position."""

    def render(self, scene: Scene, style: Style, size: tuple[int, int], out_path: Path,
               new_row: NewRow) -> None: ...


class VideoProvider(Provider, Protocol):
    """A clip from a start image. ``receives_beats``: whether ``generate`` uses the beats (the
    offline animatic pulses on them; a real model is never sent them), so whether they belong in
    the clip's cache key."""

    allowed_durations_s: tuple[float, ...]
    receives_beats: bool

    def output_size(self, target_size: tuple[int, int]) -> tuple[int, int]: ...

    def generate(self, image_path: Path, scene: Scene, duration_s: float,
                 beats_s: Sequence[float], size: tuple[int, int], out_path: Path,
                 new_row: NewRow) -> None: ...


class LipsyncProvider(Provider, Protocol):
    def estimate_usd(self, durations_s: Sequence[float]) -> float: ...

    def sync(self, clip_path: Path, audio_path: Path, duration_s: float, size: tuple[int, int],
             out_path: Path, new_row: NewRow) -> None: ...


def choose_duration(need_s: float, allowed_s: Sequence[float]) -> float:
    """The shortest allowed clip length that covers ``need_s``, else the longest one.

    Composition trims a longer clip and loops a shorter one (never stretches); a loop shows as a
    jump in the middle of a scene, off the beat, so a covering length is always preferred.
    """
    if not allowed_s:
        raise ValueError("a video provider must allow at least one duration")
    covering = [d for d in allowed_s if d + 1e-6 >= need_s]
    return min(covering) if covering else max(allowed_s)


def take_fits(clip_s: float, in_s: float, need_s: float, allowed_s: Sequence[float]) -> bool:
    """Whether a clip of ``clip_s`` already made for a scene may show ``need_s`` seconds from
    ``in_s`` instead of a new generation: it covers them, or a new one would be no longer
    (``choose_duration`` gives the same or a shorter length, so composition loops either way).
    ``allowed_s`` empty: any length may be generated (a clip that does not cover is remade)."""
    if clip_s + 1e-6 >= in_s + need_s:
        return True
    return bool(allowed_s) and choose_duration(in_s + need_s, allowed_s) <= clip_s + 1e-6


@contextmanager
def ledger_call(record: CallRecord) -> Iterator[CallRecord]:
    """Time a call into ``record``; on an exception mark it failed (and re-raise)."""
    record.started_at = datetime.now(UTC)
    start = time.perf_counter()
    try:
        yield record
    except Exception as exc:
        record.status = "error"
        record.error = redact(f"{type(exc).__name__}: {exc}")[:500]
        raise
    finally:
        record.latency_s = round(time.perf_counter() - start, 4)
