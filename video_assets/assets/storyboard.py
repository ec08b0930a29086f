"""``storyboard``: one image per scene at the target aspect, and a contact sheet.

Before any paid call it estimates what the images, clips and lip-syncs still to be generated will
cost (cached ones and kept takes are free) and refuses a job over its budget
(``assets/budget.py``). A scene an edit carried over keeps its image (its take). A real image
that still fails after its retries is replaced by the offline procedural card for that scene
(flagged in ``fallback_scenes``), as a failing clip is replaced by the animatic. The work is
``scene_media.storyboard_images``.
"""

from dagster import AssetExecutionContext, MaterializeResult, asset

from video_assets.assets.budget import cap_usd, preflight
from video_assets.assets.common import image_md, load_plan
from video_assets.generation import Stage, ledger
from video_assets.partitions import PROVIDERS_POOL, jobs_partitions
from video_assets.providers.budget import Spend
from video_assets.providers.select import image_provider
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.scene_media import storyboard_images, write_contact_sheet


@asset(partitions_def=jobs_partitions, group_name="video", deps=["script"], kinds={"python"},
       pool=PROVIDERS_POOL)
def storyboard(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Render (or reuse from the take or the cache) each scene's image; cache keys hold what the
    image provider receives, so an unchanged scene is never rendered or paid for twice."""
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    stored, grid, plan = load_plan(media, job_id)
    size = stored.request.size
    provider = image_provider(stored.request.providers.images, settings.retry_policy(),
                              settings.provider_concurrency)
    estimate = preflight(job_id, stored, settings, media, wh, "images", grid, plan)
    spend = Spend(job_id, cap_usd(stored, settings), wh.job_cost_usd(job_id))
    with ledger(wh) as calls:
        images = storyboard_images(Stage(media, calls, job_id, "storyboard", spend), provider,
                                   plan, size, settings.clip_workers, context.log)
    sheet = write_contact_sheet(media, job_id, len(plan.scenes))
    return MaterializeResult(metadata={
        "n_images": len(plan.scenes),
        "cache_hits": sum(i.cache_hit for i in images),
        "provider": f"{provider.name}/{provider.model}",
        "fallback_scenes": ", ".join(str(n) for n, i in enumerate(images, 1) if i.fallback)
        or "none",
        "estimated_cost_usd": estimate,
        "size": f"{size[0]}x{size[1]}",
        "contact_sheet": image_md(sheet, max_px=720, alt="contact sheet"),
    })
