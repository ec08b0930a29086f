"""The budget cap, checked before every paid stage: what the rest of the job will cost.

Each paid stage first estimates its own calls and every later paid stage's, from what is known at
that point (the audio length before the beat grid, the boundaries after it, the plan after the
script), counting cached generations as free, and refuses a job whose spend so far plus that
estimate is over ``budget_usd`` (or ``PipelineSettings.default_budget_usd``). The refusal breaks
the estimate down and comes before the stage spends anything. Images and clips can only be
checked against the cache once the plan exists; before that they are counted in full on a job's
first run and left to the storyboard's exact check on later runs. Every key is computed by the
functions the generations themselves use (``video_assets.generation``), and a scene's kept take
(``scene_media.reusable_take``) is free, as the stages reuse it.
"""

from __future__ import annotations

import math

from video_assets.assets.common import voice_line
from video_assets.config import max_budget_usd
from video_assets.generation import (
    clip_cache_key,
    image_cache_key,
    lipsync_cache_key,
    lyrics_key,
    music_key,
    voice_key,
)
from video_assets.providers import select
from video_assets.providers.base import choose_duration
from video_assets.providers.budget import refuse_if_over
from video_assets.resources import PipelineSettings
from video_assets.scene_media import (
    clip_beats_s,
    kept_image,
    planned_clip,
    reusable_take,
    segments_for,
)
from video_assets.schemas import BeatGrid, Script, StoredRequest
from video_assets.store import MediaStore, sha256_file
from video_assets.warehouse import Warehouse

__all__ = ["cap_usd", "clip_beats_s", "preflight", "segments_for"]  # segments_for: final.py

STAGES = ("music", "transcribe", "planner", "voice", "images", "video", "lipsync")
MIN_SCENE_S = 3.0  # boundaries are 3-7 s


def cap_usd(stored: StoredRequest, settings: PipelineSettings) -> float:
    """What the job may spend in all its runs together: its ``budget_usd`` (else the default),
    never more than the operator's cap (``VIDEO_ASSETS_MAX_BUDGET_USD``), which may have been
    lowered since the job was admitted."""
    budget = stored.request.budget_usd
    return min(budget if budget is not None else settings.default_budget_usd, max_budget_usd())


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
    if music and stored.synthesized_audio and \
            not media.cached(music_key(music, music_prompt(stored), duration_s)):
        items.append((f"music: {duration_s:.1f} s ({music.model})", music.estimate_usd(duration_s)))
    transcriber = select.transcriber(providers, policy, conc) if "transcribe" in later else None
    if transcriber and not stored.synthesized_audio and \
            not media.cached(lyrics_key(transcriber, stored.audio_sha256)):
        items.append((f"transcription: {duration_s / 60:.2f} min ({transcriber.model})",
                      transcriber.estimate_usd(duration_s)))
    # a real planner when a model is named (the offline one is free)
    planner = select.planner(providers, policy, conc) \
        if "planner" in later and providers.model_for("planner") else None
    if planner:
        items.append((f"plan, with a repair round ({planner.model})", planner.estimate_usd(n)))
    voice = select.voice(providers, policy, conc) if "voice" in later else None
    if voice and stored.request.mode == "ad":
        if plan is None:
            items.append((f"voiceover: up to {n} lines ({voice.model})",
                          voice.estimate_usd(120 * n)))
        else:
            chars = sum(len(voice_line(s)) for s in plan.scenes
                        if not media.cached(voice_key(voice, voice_line(s))))
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
    paid_images = images.paid and "images" in later
    paid_video = video.paid and "video" in later
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
    for scene, seg in zip(plan.scenes, segments_for(plan, settings.fps,
                                                    settings.transition_half_frames), strict=True):
        image_key = kept_image(media, scene) or image_cache_key(images, scene, plan.style, size)
        image_cached = media.cached(image_key)
        if paid_images and not image_cached:
            items.append((f"image {scene.index + 1} ({images.model})", images.estimate_usd(1)))
        fallback_take = scene.take is not None and scene.take.fallback  # remade by the animatic
        take = reusable_take(media, scene, seg.n_frames / settings.fps)
        if take is not None:  # kept: no call
            clip_key_, clip_s, clip_cached = take.clip_key, take.clip_s, True
        else:
            clip_s, beats = planned_clip(video, scene, seg, grid.beats_s, settings.fps)
            clip_key_ = None
            if image_cached:
                with media.local_path(image_key) as image:
                    clip_key_ = clip_cache_key(video, sha256_file(image), clip_s, scene, beats,
                                               clip_size)
            clip_cached = clip_key_ is not None and media.cached(clip_key_)
            if paid_video and not clip_cached and not fallback_take:
                items.append((f"clip {scene.index + 1}: {clip_s:g} s ({video.model})",
                              video.estimate_usd([clip_s])))
        if lipsync and scene.lipsync and not fallback_take:
            offset_s = seg.start_frame / settings.fps - scene.in_s
            synced = clip_cached and media.cached(lipsync_cache_key(
                lipsync, clip_key_, stored.audio_sha256, offset_s, clip_s))
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
