"""Every generation goes through here: its cache key, the cache, the budget, the call, the ledger.

``cached_generation`` is the one cache-or-generate step of the stages: the key is looked up in the
media store's cache (``MediaStore.cached``: size and sha256 checked); a hit costs nothing and is
recorded as a ``cache_hit`` row; a miss reserves its price against the job's budget when the
provider is paid (``Spend``), makes the call (a paid provider writes a ledger row per attempt, an
unpaid one is timed in one row that costs 0) and puts the result into the cache. A paid call keeps
its raw download in the cache before processing it (``store.keeping_downloads``): a worker killed
while normalising a clip costs no second call on retry. ``with_fallback``
is the hook a stage uses to let a failed real image or clip be replaced by the offline one.

Cache keys are defined here once, and the budget estimate computes keys only through them. A key
holds what the provider receives and nothing else (not a scene's caption, its position or the
number of scenes; the beats only for a provider that is given them), so an edit that leaves a
generation's inputs as they were finds it in the cache and pays nothing for it.

No Dagster here: the assets call these functions, the tests call them directly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

from video_assets.media.ffmpeg_bin import FfmpegTimeout, run_ffmpeg
from video_assets.providers.base import (
    ImageProvider,
    LipsyncProvider,
    NewRow,
    VideoProvider,
    ledger_call,
)
from video_assets.providers.budget import Spend
from video_assets.providers.retry import Cancelled, ProviderError
from video_assets.schemas import BeatGrid, CallRecord, Lyrics, Request, Scene, Script, Style
from video_assets.store import MediaStore, cache_key, keeping_downloads
from video_assets.warehouse import Warehouse

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# the ledger


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
def ledger(warehouse: Warehouse) -> Iterator[CallLog]:
    """Collect call records; they reach ``provider_calls`` even when the stage fails."""
    calls = CallLog(warehouse)
    try:
        yield calls
    finally:
        calls.flush()


def row_factory(calls: list[CallRecord], **base: object) -> NewRow:
    """A function that opens one more ledger row (thread-safe), for providers that make several
    attempts per call. The rows it opened are in its ``rows``."""
    lock = threading.Lock()
    rows: list[CallRecord] = []

    def new_row() -> CallRecord:
        row = CallRecord(**base)
        with lock:
            calls.append(row)
            rows.append(row)
        return row

    new_row.rows = rows  # type: ignore[attr-defined]
    new_row.finish = calls.finish if isinstance(calls, CallLog) else (lambda row: None)  # type: ignore[attr-defined]
    return new_row


# ---------------------------------------------------------------------------------------------
# cache keys: what each provider receives, defined once


def generation_key(kind: str, ext: str, provider, **inputs: object) -> str:
    """The cache key of a generation of ``kind`` by ``provider`` from ``inputs``."""
    return cache_key(kind, ext, provider=provider.name, model=provider.model,
                     version=provider.version, **inputs)


def image_cache_key(provider: ImageProvider, scene: Scene, style: Style,
                    size: tuple[int, int]) -> str:
    """A scene's image: its prompt, camera and seed, the plan's style and the size. Not its
    caption, index or the number of scenes (no image provider is given them)."""
    return generation_key("image", "png", provider, prompt=scene.prompt, camera=scene.camera,
                          seed=scene.seed, style=style.model_dump(), size=list(size))


def clip_cache_key(provider: VideoProvider, image_sha256: str, clip_s: float, scene: Scene,
                   beats_s: list[float], size: tuple[int, int]) -> str:
    """A clip: its start image, length, prompt, motion, camera and size, and the beats (in the
    clip's time) only for a provider that receives them (``VideoProvider.receives_beats``)."""
    inputs: dict[str, object] = {"image_sha256": image_sha256, "duration_s": clip_s,
                                 "prompt": scene.prompt, "motion": scene.motion,
                                 "camera": scene.camera, "size": list(size)}
    if provider.receives_beats:
        inputs["beats_s"] = list(beats_s)
    return generation_key("clip", "mp4", provider, **inputs)


def lipsync_cache_key(provider: LipsyncProvider, clip_cache: str, audio_sha256: str,
                      offset_s: float, duration_s: float) -> str:
    """A lip-synced clip: the clip (by its cache key) and the song from ``offset_s`` on."""
    return generation_key("lipsync", "mp4", provider, clip=clip_cache, audio_sha256=audio_sha256,
                          offset_s=round(offset_s, 4), duration_s=duration_s)


def plan_key(planner, brief: dict, seed: int) -> str:
    """A plan: the brief the planner is sent (request, segments, words) and the seed."""
    return generation_key("plan", "json", planner, brief=brief, seed=seed)


def lyrics_key(transcriber, audio_sha256: str) -> str:
    return generation_key("lyrics", "json", transcriber, audio_sha256=audio_sha256)


def voice_key(speaker, text: str) -> str:
    return generation_key("voice", "wav", speaker, text=text)


def music_key(composer, prompt: str, duration_s: float) -> str:
    return generation_key("music", "wav", composer, prompt=prompt, duration_s=round(duration_s, 4))


# ---------------------------------------------------------------------------------------------
# the one cache-or-generate step


@dataclass
class Stage:
    """One stage's generations: the store they are cached in, the stage's ledger, whose job and
    which asset the rows name, and the budget each paid call reserves its price against first
    (None: the stage's preflight estimate is the only check, as for the plan and the lyrics)."""

    media: MediaStore
    calls: list[CallRecord]
    job_id: str
    asset: str
    spend: Spend | None = None

    def rows(self, provider: str, model: str, unit: str, units: float = 0.0,
             scene_index: int | None = None) -> NewRow:
        return row_factory(self.calls, job_id=self.job_id, asset=self.asset,
                           scene_index=scene_index, provider=provider, model=model, units=units,
                           unit=unit)

    def reused(self, provider: str, model: str, unit: str, units: float = 0.0,
               scene_index: int | None = None) -> None:
        """A ledger row for media reused without a call (a take kept across an edit)."""
        self.rows(provider, model, unit, units, scene_index)().cache_hit = True


def cached_generation(stage: Stage, key: str, provider, make: Callable[[Path, NewRow], None], *,
                      paid: bool, unit: str, units: float = 0.0, scene_index: int | None = None,
                      label: str = "", price_usd: Callable[[], float] | None = None,
                      before: Callable[[], object] | None = None) -> bool:
    """The entry ``key`` from the cache, or made by ``make(out_path, new_row)`` and put there.
    Returns True on a cache hit (one ``cache_hit`` row, no call).

    On a miss: ``before()`` first (a stage's budget preflight), then, for a ``paid`` provider with
    a ``stage.spend``, ``price_usd()`` is reserved and given back if the call fails without
    charging; a paid provider records its own rows (one per attempt, through ``new_row``), an
    unpaid one is timed in a single row that costs 0. A paid provider's downloads are kept in the
    cache while ``make`` processes them, until the result is cached, and dropped when ``make``
    fails on them (an ffmpeg timeout or a cancel keeps them: those are not the file's fault)."""
    new_row = stage.rows(provider.name, provider.model, unit, units, scene_index)
    if stage.media.cached(key):
        new_row().cache_hit = True
        return True
    if before is not None:
        before()

    def work() -> None:
        with stage.media.scratch_dir() as tmp:
            out = tmp / PurePosixPath(key).name
            if paid:
                with keeping_downloads(stage.media) as downloads:
                    try:
                        make(out, new_row)
                    except (FfmpegTimeout, Cancelled):
                        raise  # the machine or the run, not the output: a retry reuses it
                    except Exception:
                        downloads.forget()  # the output may be what failed: ask again next time
                        raise
                    stage.media.put_file(key, out)
                    downloads.forget()  # the generation is cached: its download is not needed
            else:
                with ledger_call(new_row()):
                    make(out, new_row)
                stage.media.put_file(key, out)

    if paid and stage.spend is not None and price_usd is not None:
        charged = new_row.rows  # type: ignore[attr-defined]
        stage.spend.pay(label, price_usd(), work, lambda: sum(r.cost_usd for r in list(charged)))
    else:
        work()
    return False


def with_fallback(first: Callable[[], T], fallback: Callable[[], T], warn: Callable[[str], None],
                  what: str, stand_in: str) -> tuple[T, bool]:
    """``first()``; if it fails for good (``ProviderError``: retries exhausted), ``fallback()``
    instead, with a warning. Returns the result and whether it is the fallback's. A cancel
    (``retry.Cancelled``) is not a provider failure: it propagates."""
    try:
        return first(), False
    except ProviderError as exc:
        warn(f"{what}: {exc}; using the {stand_in} for this scene")
        return fallback(), True


# ---------------------------------------------------------------------------------------------
# each kind of generation


def generate_image(stage: Stage, provider: ImageProvider, scene: Scene, style: Style,
                   size: tuple[int, int]) -> tuple[str, bool]:
    """A scene's image (cache key, cache hit)."""
    key = image_cache_key(provider, scene, style, size)
    hit = cached_generation(
        stage, key, provider,
        lambda out, new_row: provider.render(scene, style, size, out, new_row),
        paid=provider.paid, unit=provider.unit, units=1, scene_index=scene.index,
        label=f"image {scene.index + 1} ({provider.model})",
        price_usd=lambda: provider.estimate_usd(1))  # type: ignore[attr-defined]
    return key, hit


def generate_clip(stage: Stage, provider: VideoProvider, image: Path, image_sha256: str,
                  scene: Scene, clip_s: float, beats_s: list[float],
                  size: tuple[int, int]) -> tuple[str, bool]:
    """A scene's clip from its start image (cache key, cache hit)."""
    key = clip_cache_key(provider, image_sha256, clip_s, scene, beats_s, size)
    hit = cached_generation(
        stage, key, provider,
        lambda out, new_row: provider.generate(image, scene, clip_s, beats_s, size, out, new_row),
        paid=provider.paid, unit=provider.unit, units=clip_s, scene_index=scene.index,
        label=f"clip {scene.index + 1}: {clip_s:g} s ({provider.model})",
        price_usd=lambda: provider.estimate_usd([clip_s]))  # type: ignore[attr-defined]
    return key, hit


def cut_song(audio: Path, offset_s: float, duration_s: float, out_path: Path) -> None:
    """Exactly ``duration_s`` of the song from ``offset_s`` (silence before its start and after
    its end): lip-sync models cut the video to the audio's length."""
    lead_ms = int(round(max(0.0, -offset_s) * 1000))
    delay = f"adelay={lead_ms}:all=1," if lead_ms else ""
    run_ffmpeg(["-y", "-ss", f"{max(0.0, offset_s):.6f}", "-i", str(audio), "-vn",
                "-af", f"{delay}apad", "-t", f"{duration_s:.6f}", "-ac", "2", "-ar", "44100",
                "-c:a", "pcm_s16le", str(out_path)],
               what=f"cutting the song at {offset_s:.2f} s for lip-sync")


def generate_lipsync(stage: Stage, provider: LipsyncProvider, clip_cache: str, audio: Path,
                     audio_sha256: str, offset_s: float, clip_s: float, size: tuple[int, int],
                     scene_index: int) -> tuple[str, bool]:
    """The clip ``clip_cache`` with its mouths synced to the song from ``offset_s`` (the song's
    time of the clip's first frame)."""
    key = lipsync_cache_key(provider, clip_cache, audio_sha256, offset_s, clip_s)

    def make(out: Path, new_row: NewRow) -> None:
        part = out.with_name("audio.wav")
        cut_song(audio, offset_s, clip_s, part)
        with stage.media.local_path(clip_cache) as clip:
            provider.sync(clip, part, clip_s, size, out, new_row)

    hit = cached_generation(stage, key, provider, make, paid=provider.paid, unit=provider.unit,
                            units=clip_s, scene_index=scene_index,
                            label=f"lip-sync {scene_index + 1}: {clip_s:g} s ({provider.model})",
                            price_usd=lambda: provider.estimate_usd([clip_s]))
    return key, hit


# The OpenAI providers (planner, transcription, voice) exist only when real (offline there is
# no transcription or voice, and the offline planner is not cached): paid, in their registry
# model's unit, as they say (``paid``, ``unit``).


def generate_plan(stage: Stage, planner, request: Request, grid: BeatGrid, seed: int,
                  words: Lyrics, brief: dict, before: Callable[[], object]) -> tuple[Script, bool]:
    """A real planner's plan, cached by the brief it is sent and the seed."""
    key = plan_key(planner, brief, seed)
    hit = cached_generation(
        stage, key, planner,
        lambda out, new_row: out.write_text(json.dumps(
            planner.plan(request, grid, seed, words, new_row).model_dump(mode="json"))),
        paid=planner.paid, unit=planner.unit, before=before)
    return Script.model_validate(stage.media.get_json(key)), hit


def generate_lyrics(stage: Stage, transcriber, audio_key: str, audio_sha256: str,
                    duration_s: float, before: Callable[[], object]) -> tuple[Lyrics, bool]:
    """The song's words with their times, cached by the audio's hash."""
    key = lyrics_key(transcriber, audio_sha256)

    def make(out: Path, new_row: NewRow) -> None:
        with stage.media.local_path(audio_key) as audio:
            words = transcriber.transcribe(audio, duration_s, out.parent, new_row)
        out.write_text(json.dumps(words.model_dump(mode="json")))

    hit = cached_generation(stage, key, transcriber, make, paid=transcriber.paid,
                            unit=transcriber.unit, before=before)
    return Lyrics.model_validate(stage.media.get_json(key)), hit


def generate_voice(stage: Stage, speaker, text: str, scene_index: int) -> tuple[str, bool]:
    """One spoken line (cache key, cache hit)."""
    key = voice_key(speaker, text)
    hit = cached_generation(stage, key, speaker,
                            lambda out, new_row: speaker.speak(text, out, new_row),
                            paid=speaker.paid, unit=speaker.unit, scene_index=scene_index)
    return key, hit
