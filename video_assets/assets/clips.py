"""``clips``: one generated clip per scene, at a length the provider allows.

The clip covers the scene's segment on the timeline (including transition overlaps); the provider
is asked for its allowed length closest to that, and composition trims or loops, never stretches.
A scene an edit carried over keeps its clip (its take) when it still fits its slot. Paid calls
reserve their price against the budget first; a real clip that still fails after its retries is
replaced by the offline animatic for that scene (flagged), and a job left with fewer than 2 real
clips fails. An interrupt (Ctrl-C, SIGTERM, ``videogen cancel``) stops every call in flight
(``retry.cancel_calls``): their predictions are cancelled, their rows say ``cancelled``, and the
workers are free within seconds, so the stage ends at once. The work is ``scene_media.make_clips``.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from video_assets.assets.budget import cap_usd
from video_assets.assets.common import load_plan
from video_assets.generation import Stage, ledger
from video_assets.layout import CLIPS_MANIFEST
from video_assets.partitions import PROVIDERS_POOL, jobs_partitions
from video_assets.providers.budget import Spend
from video_assets.providers.select import image_provider, video_provider
from video_assets.providers.select import lipsync as lipsync_provider
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.scene_media import MIN_REAL_CLIPS, ClipJob, clip_summary, make_clips, scene_numbers
from video_assets.store import job_key

__all__ = ["CLIPS_MANIFEST", "MIN_REAL_CLIPS", "clips"]


@asset(partitions_def=jobs_partitions, group_name="video", deps=["storyboard"], kinds={"python"},
       pool=PROVIDERS_POOL)
def clips(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Generate every scene's clip in parallel (bounded), reusing takes and cached generations;
    with ``continuation``, one after another, each starting from the previous clip's last frame."""
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    stored, grid, plan = load_plan(media, job_id)
    providers, policy, conc = stored.request.providers, settings.retry_policy(), \
        settings.provider_concurrency
    job = ClipJob(stored, grid, plan, video_provider(providers.video, policy, conc),
                  image_provider(providers.images, policy, conc),
                  lipsync_provider(providers, policy, conc), settings.fps,
                  settings.transition_half_frames, settings.clip_workers)
    spend = Spend(job_id, cap_usd(stored, settings), wh.job_cost_usd(job_id))
    with ledger(wh) as calls:  # every call is recorded, also on failure
        specs, hits = make_clips(Stage(media, calls, job_id, "clips", spend), job, context.log)
    media.put_json(job_key(job_id, CLIPS_MANIFEST), [s.model_dump() for s in specs])
    looped = sum(s.clip_duration_s < s.in_s + s.segment_duration_s for s in specs)
    size = job.video.output_size(stored.request.size)
    return MaterializeResult(metadata={
        "n_clips": len(specs),
        "cache_hits": hits,
        "generated": len(specs) - hits,
        "looped": looped,
        "trimmed": len(specs) - looped,
        "provider": f"{job.video.name}/{job.video.model}",
        "continuation": stored.request.continuation,
        "lipsynced_scenes": scene_numbers(specs, lambda s: s.lipsync),
        "fallback_scenes": scene_numbers(specs, lambda s: s.fallback),
        "spent_usd": round(wh.job_cost_usd(job_id), 6),
        "clip_size": f"{size[0]}x{size[1]}",
        "clips": MetadataValue.md(clip_summary(specs)),
    })
