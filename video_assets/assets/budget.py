"""The budget cap, checked before every paid stage: what the rest of the job will cost.

Each paid stage first estimates its own calls and every later paid stage's, from what is known at
that point (the audio length before the beat grid, the boundaries after it, the plan after the
script), counting cached generations as free, and refuses a job whose spend so far plus that
estimate is over ``budget_usd`` (or ``PipelineSettings.default_budget_usd``). The refusal breaks
the estimate down and comes before the stage spends anything. Images and clips can only be
checked against the cache once the plan exists; before that they are counted in full on a job's
first run and left to the storyboard's exact check on later runs.
"""

from __future__ import annotations

import math

from video_assets.assets.common import (
    clip_cache_key,
    generation_key,
    image_cache_key,
    lipsync_cache_key,
    voice_line,
)
from video_assets.config import max_budget_usd
from video_assets.media.compose import Segment, plan_segments
from video_assets.providers import select
from video_assets.providers.base import choose_duration
from video_assets.providers.budget import refuse_if_over
from video_assets.resources import PipelineSettings
from video_assets.schemas import BeatGrid, Script, StoredRequest
from video_assets.store import MediaStore, sha256_file
from video_assets.warehouse import Warehouse

STAGES = ("music", "transcribe", "planner", "voice", "images", "video", "lipsync")
MIN_SCENE_S = 3.0  # boundaries are 3-7 s


def cap_usd(stored: StoredRequest, settings: PipelineSettings) -> float:
    """What the job may spend in all its runs together: its ``budget_usd`` (else the default),
    never more than the operator's cap (``VIDEO_ASSETS_MAX_BUDGET_USD``), which may have been
    lowered since the job was admitted."""
    budget = stored.request.budget_usd
    return min(budget if budget is not None else settings.default_budget_usd, max_budget_usd())


def segments_for(plan: Script, fps: int, half_frames: int) -> list[Segment]:
    return plan_segments([(s.start_s, s.end_s) for s in plan.scenes],
                         [s.transition for s in plan.scenes[:-1]], fps, half_frames)


def clip_beats_s(beats_s: list[float], seg: Segment, fps: int, clip_s: float) -> list[float]:
    """Beats inside the clip, in seconds from the clip's first frame."""
    t0 = seg.start_frame / fps
    return [round(b - t0, 4) for b in beats_s if t0 <= b < t0 + clip_s]


def clip_plan(plan: Script, grid: BeatGrid, settings: PipelineSettings,
              video) -> list[tuple[Segment, float, list[float]]]:
    """Per scene: its timeline segment, the clip length to ask for and the beats inside it."""
    out = []
    for seg in segments_for(plan, settings.fps, settings.transition_half_frames):
        clip_s = choose_duration(seg.n_frames / settings.fps, video.allowed_durations_s)
        out.append((seg, clip_s, clip_beats_s(grid.beats_s, seg, settings.fps, clip_s)))
    return out


def plan_items(job_id: str, stored: StoredRequest, settings: PipelineSettings, media: MediaStore,
               wh: Warehouse, stage: str, grid: BeatGrid | None = None,
               plan: Script | None = None) -> list[tuple[str, float]]:
    """``(label, usd)`` for the paid calls of ``stage`` and every later stage still to be made."""
    providers, policy, conc = stored.request.providers, settings.retry_policy(), \
        settings.provider_concurrency
    later = STAGES[STAGES.index(stage):]
    duration_s = stored.audio_duration_s
    if plan is not None:
        n = len(plan.scenes)
    elif grid is not None:
        n = len(grid.boundaries)
    else:  # before the beat grid: the most scenes the audio can hold
        n = max(1, math.floor(duration_s / MIN_SCENE_S))
    items: list[tuple[str, float]] = []

    music = select.music(providers, policy, conc) if "music" in later else None
    if music and stored.synthesized_audio:
        key = generation_key("music", "wav", music, prompt=music_prompt(stored),
                             duration_s=round(duration_s, 4))
        if not media.cached(key):
            items.append((f"music: {duration_s:.1f} s ({music.model})",
                          music.estimate_usd(duration_s)))
    transcriber = select.transcriber(providers, policy, conc) if "transcribe" in later else None
    if transcriber and not stored.synthesized_audio:
        key = generation_key("lyrics", "json", transcriber, audio_sha256=stored.audio_sha256)
        if not media.cached(key):
            items.append((f"transcription: {duration_s / 60:.2f} min ({transcriber.model})",
                          transcriber.estimate_usd(duration_s)))
    planner = select.planner(providers, policy, conc) if "planner" in later else None
    if planner and getattr(planner, "spec", None):
        items.append((f"plan, with a repair round ({planner.model})", planner.estimate_usd(n)))
    voice = select.voice(providers, policy, conc) if "voice" in later else None
    if voice and stored.request.mode == "ad":
        if plan is None:
            items.append((f"voiceover: up to {n} lines ({voice.model})",
                          voice.estimate_usd(120 * n)))
        else:
            chars = sum(len(voice_line(s)) for s in plan.scenes
                        if not media.cached(generation_key("voice", "wav", voice,
                                                           text=voice_line(s))))
            if chars:
                items.append((f"voiceover: {chars} characters ({voice.model})",
                              voice.estimate_usd(chars)))
    if "images" in later or "video" in later or "lipsync" in later:
        items += media_items(job_id, stored, settings, media, wh, later, grid, plan, n)
    return items


def media_items(job_id, stored, settings, media, wh, later, grid, plan, n) -> list:
    providers, policy, conc = stored.request.providers, settings.retry_policy(), \
        settings.provider_concurrency
    images = select.image_provider(providers.images, policy, conc)
    video = select.video_provider(providers.video, policy, conc)
    lipsync = select.lipsync(providers, policy, conc)
    paid_images = getattr(images, "paid", False) and "images" in later
    paid_video = getattr(video, "paid", False) and "video" in later
    if not (paid_images or paid_video or lipsync):
        return []
    items: list[tuple[str, float]] = []
    if plan is None or grid is None:
        if wh.has_calls(job_id, "storyboard"):
            return []  # a later run: the storyboard checks against the cache, exactly
        half_s = 2 * settings.transition_half_frames / settings.fps
        lengths = [b.length_s for b in grid.boundaries] if grid is not None \
            else [min(7.0, stored.audio_duration_s / n)] * n
        for i, length_s in enumerate(lengths):
            clip_s = choose_duration(length_s + half_s, video.allowed_durations_s)
            if paid_images:
                items.append((f"image {i + 1} ({images.model})", images.estimate_usd(1)))
            if paid_video:
                items.append((f"clip {i + 1}: {clip_s:g} s ({video.model})",
                              video.estimate_usd([clip_s])))
            if lipsync:
                items.append((f"lip-sync {i + 1}: {clip_s:g} s ({lipsync.model})",
                              lipsync.estimate_usd([clip_s])))
        return items
    size = stored.request.size
    clip_size = video.output_size(size)
    for scene, (seg, clip_s, beats) in zip(plan.scenes, clip_plan(plan, grid, settings, video),
                                           strict=True):
        image_key = image_cache_key(images, scene, plan, size)
        image_cached = media.cached(image_key)
        if paid_images and not image_cached:
            items.append((f"image {scene.index + 1} ({images.model})", images.estimate_usd(1)))
        clip_key_ = None
        if image_cached:
            with media.local_path(image_key) as image:
                clip_key_ = clip_cache_key(video, sha256_file(image), clip_s, scene, beats,
                                           clip_size)
        clip_cached = clip_key_ is not None and media.cached(clip_key_)
        if paid_video and not clip_cached:
            items.append((f"clip {scene.index + 1}: {clip_s:g} s ({video.model})",
                          video.estimate_usd([clip_s])))
        if lipsync and scene.lipsync:
            synced = clip_cached and media.cached(lipsync_cache_key(
                lipsync, clip_key_, stored.audio_sha256, seg.start_frame / settings.fps, clip_s))
            if not synced:
                items.append((f"lip-sync {scene.index + 1}: {clip_s:g} s ({lipsync.model})",
                              lipsync.estimate_usd([clip_s])))
    return items


def preflight(job_id: str, stored: StoredRequest, settings: PipelineSettings, media: MediaStore,
              wh: Warehouse, stage: str, grid: BeatGrid | None = None,
              plan: Script | None = None) -> float:
    """Refuse the job, before ``stage`` spends anything, if the rest of it would pass the cap.
    Returns the estimate (0 when nothing paid is left)."""
    items = plan_items(job_id, stored, settings, media, wh, stage, grid, plan)
    if not items:
        return 0.0
    return refuse_if_over(job_id, cap_usd(stored, settings), wh.job_cost_usd(job_id), items)


def music_prompt(stored: StoredRequest) -> str:
    request = stored.request
    parts = [f"instrumental music bed for: {request.prompt}"]
    if request.style:
        parts.append(f"style: {request.style}")
    parts.append(f"{request.flavor} energy, steady beat, no vocals")
    return ", ".join(parts)
