"""``clips``: one generated clip per scene, at a length the provider allows.

The clip covers the scene's segment on the timeline (including transition overlaps); the provider
is asked for its allowed length closest to that, and composition trims or loops, never stretches.
"""

from concurrent.futures import ThreadPoolExecutor

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from video_assets.assets.common import ledger, load_plan
from video_assets.assets.storyboard import storyboard_key
from video_assets.media.compose import Segment, plan_segments
from video_assets.partitions import jobs_partitions
from video_assets.providers.base import VideoProvider, choose_duration, ledger_call
from video_assets.providers.offline import OfflineVideo
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.schemas import CallRecord, ClipSpec, Script
from video_assets.store import cache_key, job_key, sha256_file

CLIPS_MANIFEST = "clips.json"


def clip_key(job_id: str, index: int) -> str:
    return job_key(job_id, "clips", f"{index + 1:02d}.mp4")


def segments_for(plan: Script, fps: int, half_frames: int) -> list[Segment]:
    return plan_segments([(s.start_s, s.end_s) for s in plan.scenes],
                         [s.transition for s in plan.scenes[:-1]], fps, half_frames)


def clip_beats_s(beats_s: list[float], seg: Segment, fps: int, clip_s: float) -> list[float]:
    """Beats inside the clip, in seconds from the clip's first frame."""
    t0 = seg.start_frame / fps
    return [round(b - t0, 4) for b in beats_s if t0 <= b < t0 + clip_s]


@asset(partitions_def=jobs_partitions, group_name="video", deps=["storyboard"], kinds={"python"})
def clips(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Generate every scene's clip in parallel (bounded), reusing cached generations."""
    job_id = context.partition_key
    media = store.get()
    stored, grid, plan = load_plan(media, job_id)
    provider: VideoProvider = OfflineVideo()
    size = provider.output_size(stored.request.size)
    segments = segments_for(plan, settings.fps, settings.transition_half_frames)

    with ledger(warehouse.get()) as calls:  # every call is recorded, also on failure
        def one(scene_index: int) -> tuple[ClipSpec, CallRecord]:
            scene, seg = plan.scenes[scene_index], segments[scene_index]
            need_s = seg.n_frames / settings.fps
            clip_s = choose_duration(need_s, provider.allowed_durations_s)
            beats = clip_beats_s(grid.beats_s, seg, settings.fps, clip_s)
            record = CallRecord(job_id=job_id, asset="clips", scene_index=scene.index,
                                provider=provider.name, model=provider.model, units=clip_s,
                                unit="video_s")
            calls.append(record)
            with ledger_call(record), media.local_path(
                    storyboard_key(job_id, scene.index)) as image:
                key = cache_key("clip", "mp4", provider=provider.name, model=provider.model,
                                version=provider.version, image_sha256=sha256_file(image),
                                duration_s=clip_s, camera=scene.camera, beats_s=beats, size=size)
                record.cache_hit = media.exists(key)
                if not record.cache_hit:
                    with media.scratch_dir() as tmp:
                        out = tmp / f"clip-{scene.index:02d}.mp4"
                        provider.generate(image, scene, clip_s, beats, size, out)
                        media.put_file(key, out)
                media.copy(key, clip_key(job_id, scene.index))
            spec = ClipSpec(index=scene.index, key=clip_key(job_id, scene.index),
                            clip_duration_s=clip_s, segment_start_s=seg.start_frame / settings.fps,
                            segment_duration_s=need_s)
            return spec, record

        specs: list[ClipSpec] = []
        with ThreadPoolExecutor(max_workers=max(1, settings.clip_workers)) as pool:
            futures = [pool.submit(one, i) for i in range(len(plan.scenes))]
            for done, fut in enumerate(futures, start=1):
                try:
                    spec, record = fut.result()
                except Exception:
                    for other in futures:
                        other.cancel()
                    raise
                specs.append(spec)
                context.log.info(f"clip {done}/{len(futures)}: {spec.clip_duration_s:g} s for a "
                                 f"{spec.segment_duration_s:.2f} s segment"
                                 f"{' (cached)' if record.cache_hit else ''}")
    media.put_json(job_key(job_id, CLIPS_MANIFEST), [s.model_dump() for s in specs])
    hits = sum(c.cache_hit for c in calls)
    looped = sum(s.clip_duration_s < s.segment_duration_s for s in specs)
    return MaterializeResult(metadata={
        "n_clips": len(specs),
        "cache_hits": hits,
        "generated": len(specs) - hits,
        "looped": looped,
        "trimmed": len(specs) - looped,
        "provider": f"{provider.name}/{provider.model}",
        "clip_size": f"{size[0]}x{size[1]}",
        "clips": MetadataValue.md("\n".join(
            f"- {s.index + 1:02d}: {s.clip_duration_s:g} s clip -> {s.segment_duration_s:.3f} s "
            f"from {s.segment_start_s:.3f} s" for s in specs)),
    })

