"""``storyboard``: one image per scene at the target aspect, and a contact sheet.

This is a job's first paid stage: before any paid call it estimates what the images and the
clips still to be generated will cost (cached ones are free) and refuses a job over its budget.
"""

from contextlib import ExitStack

from dagster import AssetExecutionContext, MaterializeResult, asset

from video_assets.assets.clips import clip_beats_s, segments_for
from video_assets.assets.common import (
    clip_cache_key,
    image_cache_key,
    image_md,
    ledger,
    load_plan,
    row_factory,
    storyboard_key,
)
from video_assets.media.art import contact_sheet
from video_assets.media.compose import Segment
from video_assets.partitions import jobs_partitions
from video_assets.providers.base import choose_duration, ledger_call
from video_assets.providers.budget import refuse_if_over
from video_assets.providers.select import image_provider, video_provider
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.store import job_key, sha256_file


def clip_plan(plan, grid, settings: PipelineSettings, video) -> list[tuple[Segment, float, list]]:
    """Per scene: its timeline segment, the clip length to ask for and the beats inside it."""
    out = []
    for seg in segments_for(plan, settings.fps, settings.transition_half_frames):
        clip_s = choose_duration(seg.n_frames / settings.fps, video.allowed_durations_s)
        out.append((seg, clip_s, clip_beats_s(grid.beats_s, seg, settings.fps, clip_s)))
    return out


@asset(partitions_def=jobs_partitions, group_name="video", deps=["script"], kinds={"python"})
def storyboard(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Render (or reuse from the cache) each scene's image; cache keys hash everything that
    determines the image, so an unchanged scene is never rendered or paid for twice."""
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    stored, grid, plan = load_plan(media, job_id)
    size = stored.request.size
    policy, conc = settings.retry_policy(), settings.provider_concurrency
    provider = image_provider(stored.request.providers.images, policy, conc)
    video = video_provider(stored.request.providers.video, policy, conc)
    keys = [image_cache_key(provider, scene, plan, size) for scene in plan.scenes]
    estimate = budget_check(job_id, stored, grid, plan, keys, provider, video, media, wh, settings)
    hits = 0
    with ledger(wh) as calls, media.scratch_dir() as tmp:
        for scene, key in zip(plan.scenes, keys, strict=True):
            new_row = row_factory(calls, job_id=job_id, asset="storyboard",
                                  scene_index=scene.index, provider=provider.name,
                                  model=provider.model, units=1, unit="image")
            cached = media.exists(key)
            if cached:
                hits += 1
                new_row().cache_hit = True
            else:
                out = tmp / f"{scene.index:02d}.png"
                if getattr(provider, "paid", False):
                    provider.render(scene, plan.style, len(plan.scenes), size, out, new_row)
                else:
                    with ledger_call(new_row()):
                        provider.render(scene, plan.style, len(plan.scenes), size, out)
                media.put_file(key, out)
            media.copy(key, storyboard_key(job_id, scene.index))
            context.log.info(f"storyboard {scene.index + 1}/{len(plan.scenes)}"
                             f"{' (cached)' if cached else ''}")
        with ExitStack() as stack:
            paths = [stack.enter_context(media.local_path(storyboard_key(job_id, s.index)))
                     for s in plan.scenes]
            sheet = contact_sheet(paths)
        sheet.save(tmp / "contact_sheet.jpg", quality=85)
        media.put_file(job_key(job_id, "storyboard", "contact_sheet.jpg"), tmp / "contact_sheet.jpg")
    return MaterializeResult(metadata={
        "n_images": len(plan.scenes),
        "cache_hits": hits,
        "provider": f"{provider.name}/{provider.model}",
        "estimated_cost_usd": estimate,
        "size": f"{size[0]}x{size[1]}",
        "contact_sheet": image_md(sheet, max_px=720, alt="contact sheet"),
    })


def budget_check(job_id, stored, grid, plan, keys, provider, video, media, wh, settings) -> float:
    """What the images and clips still to be made will cost; refuse the job if over its cap."""
    paid_images = getattr(provider, "paid", False)
    paid_video = getattr(video, "paid", False)
    if not (paid_images or paid_video):
        return 0.0
    items: list[tuple[str, float]] = []
    clip_size = video.output_size(stored.request.size)
    for scene, key, (_seg, clip_s, beats) in zip(plan.scenes, keys,
                                                clip_plan(plan, grid, settings, video), strict=True):
        image_cached = media.exists(key)
        if paid_images and not image_cached:
            items.append((f"image {scene.index + 1} ({provider.model})", provider.estimate_usd(1)))
        if paid_video:
            clip_cached = False
            if image_cached:
                with media.local_path(key) as image:
                    clip_cached = media.exists(clip_cache_key(video, sha256_file(image), clip_s,
                                                              scene, beats, clip_size))
            if not clip_cached:
                items.append((f"clip {scene.index + 1}: {clip_s:g} s ({video.model})",
                              video.estimate_usd([clip_s])))
    cap = stored.request.budget_usd if stored.request.budget_usd is not None \
        else settings.default_budget_usd
    return refuse_if_over(job_id, cap, wh.job_cost_usd(job_id), items)

