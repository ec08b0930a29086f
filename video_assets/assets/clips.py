"""``clips``: one generated clip per scene, at a length the provider allows.

The clip covers the scene's segment on the timeline (including transition overlaps); the provider
is asked for its allowed length closest to that, and composition trims or loops, never stretches.
Paid calls reserve their price against the budget first; a real clip that still fails after its
retries is replaced by the offline animatic for that scene (flagged), and a job left with fewer
than 2 real clips fails.
"""

from concurrent.futures import ThreadPoolExecutor

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from video_assets.assets.common import (
    clip_cache_key,
    clip_key,
    ledger,
    load_plan,
    row_factory,
    storyboard_key,
)
from video_assets.media.compose import Segment, plan_segments
from video_assets.partitions import jobs_partitions
from video_assets.providers.base import choose_duration, ledger_call
from video_assets.providers.budget import Spend
from video_assets.providers.offline import OfflineVideo
from video_assets.providers.replicate_api import ProviderError
from video_assets.providers.select import video_provider
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.schemas import ClipSpec, Script
from video_assets.store import job_key, sha256_file

CLIPS_MANIFEST = "clips.json"
MIN_REAL_CLIPS = 2


def segments_for(plan: Script, fps: int, half_frames: int) -> list[Segment]:
    return plan_segments([(s.start_s, s.end_s) for s in plan.scenes],
                         [s.transition for s in plan.scenes[:-1]], fps, half_frames)


def clip_beats_s(beats_s: list[float], seg: Segment, fps: int, clip_s: float) -> list[float]:
    """Beats inside the clip, in seconds from the clip's first frame."""
    t0 = seg.start_frame / fps
    return [round(b - t0, 4) for b in beats_s if t0 <= b < t0 + clip_s]


def make_clip(provider, media, image, image_sha, scene, clip_s, beats, size, calls,
              base: dict) -> tuple:
    """The clip from the cache, or generated and cached; returns (cache key, cache hit)."""
    key = clip_cache_key(provider, image_sha, clip_s, scene, beats, size)
    new_row = row_factory(calls, **base, provider=provider.name, model=provider.model,
                          units=clip_s, unit=getattr(provider, "unit", "video_s"))
    if media.exists(key):
        new_row().cache_hit = True
        return key, True
    with media.scratch_dir() as tmp:
        out = tmp / f"clip-{scene.index:02d}.mp4"
        if getattr(provider, "paid", False):
            provider.generate(image, scene, clip_s, beats, size, out, new_row)
        else:
            with ledger_call(new_row()):
                provider.generate(image, scene, clip_s, beats, size, out)
        media.put_file(key, out)
    return key, False


@asset(partitions_def=jobs_partitions, group_name="video", deps=["storyboard"], kinds={"python"})
def clips(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Generate every scene's clip in parallel (bounded), reusing cached generations."""
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    stored, grid, plan = load_plan(media, job_id)
    provider = video_provider(stored.request.providers.video, settings.retry_policy(),
                              settings.provider_concurrency)
    paid = getattr(provider, "paid", False)
    size = provider.output_size(stored.request.size)
    segments = segments_for(plan, settings.fps, settings.transition_half_frames)
    cap = stored.request.budget_usd if stored.request.budget_usd is not None \
        else settings.default_budget_usd
    spend = Spend(job_id, cap, wh.job_cost_usd(job_id))

    with ledger(wh) as calls:  # every call is recorded, also on failure
        def one(scene_index: int) -> tuple[ClipSpec, bool]:
            scene, seg = plan.scenes[scene_index], segments[scene_index]
            need_s = seg.n_frames / settings.fps
            clip_s = choose_duration(need_s, provider.allowed_durations_s)
            beats = clip_beats_s(grid.beats_s, seg, settings.fps, clip_s)
            base = {"job_id": job_id, "asset": "clips", "scene_index": scene.index}
            used, fallback = provider, False
            with media.local_path(storyboard_key(job_id, scene.index)) as image:
                image_sha = sha256_file(image)
                try:
                    if paid:
                        key = clip_cache_key(provider, image_sha, clip_s, scene, beats, size)
                        price = 0.0 if media.exists(key) else provider.estimate_usd([clip_s])
                        spend.reserve(f"clip {scene.index + 1}: {clip_s:g} s ({provider.model})",
                                      price)
                    key, hit = make_clip(provider, media, image, image_sha, scene, clip_s, beats,
                                         size, calls, base)
                except ProviderError as exc:  # retries exhausted: the animatic stands in
                    if paid:
                        spend.release(price)
                    context.log.warning(f"clip {scene.index + 1}: {exc}; using the offline "
                                        "animatic for this scene")
                    used, fallback = OfflineVideo(), True
                    clip_s = choose_duration(need_s, used.allowed_durations_s)
                    beats = clip_beats_s(grid.beats_s, seg, settings.fps, clip_s)
                    key, hit = make_clip(used, media, image, image_sha, scene, clip_s, beats,
                                         used.output_size(stored.request.size), calls, base)
            media.copy(key, clip_key(job_id, scene.index))
            spec = ClipSpec(index=scene.index, key=clip_key(job_id, scene.index),
                            clip_duration_s=clip_s, segment_start_s=seg.start_frame / settings.fps,
                            segment_duration_s=need_s, fallback=fallback,
                            provider="offline" if used.name == "offline"
                            else f"{used.name}:{used.model}")
            return spec, hit

        specs: list[ClipSpec] = []
        hits = 0
        with ThreadPoolExecutor(max_workers=max(1, settings.clip_workers)) as pool:
            futures = [pool.submit(one, i) for i in range(len(plan.scenes))]
            for done, fut in enumerate(futures, start=1):
                try:
                    spec, hit = fut.result()
                except Exception:
                    for other in futures:
                        other.cancel()
                    raise
                specs.append(spec)
                hits += hit
                context.log.info(f"clip {done}/{len(futures)}: {spec.clip_duration_s:g} s for a "
                                 f"{spec.segment_duration_s:.2f} s segment"
                                 f"{' (cached)' if hit else ''}"
                                 f"{' (offline fallback)' if spec.fallback else ''}")
    real = [s for s in specs if not s.fallback]
    if paid and len(real) < min(MIN_REAL_CLIPS, len(specs)):
        raise ProviderError(f"only {len(real)} of {len(specs)} clips came from {provider.model} "
                            f"(the rest fell back to animatics); a job needs at least "
                            f"{MIN_REAL_CLIPS}; fix: retry later or choose another video model")
    media.put_json(job_key(job_id, CLIPS_MANIFEST), [s.model_dump() for s in specs])
    looped = sum(s.clip_duration_s < s.segment_duration_s for s in specs)
    fallbacks = [s.index + 1 for s in specs if s.fallback]
    return MaterializeResult(metadata={
        "n_clips": len(specs),
        "cache_hits": hits,
        "generated": len(specs) - hits,
        "looped": looped,
        "trimmed": len(specs) - looped,
        "provider": f"{provider.name}/{provider.model}",
        "fallback_scenes": ", ".join(map(str, fallbacks)) or "none",
        "spent_usd": round(wh.job_cost_usd(job_id), 6),
        "clip_size": f"{size[0]}x{size[1]}",
        "clips": MetadataValue.md("\n".join(
            f"- {s.index + 1:02d}: {s.clip_duration_s:g} s clip -> {s.segment_duration_s:.3f} s "
            f"from {s.segment_start_s:.3f} s ({s.provider}{', fallback' if s.fallback else ''})"
            for s in specs)),
    })
