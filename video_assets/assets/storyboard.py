"""``storyboard``: one image per scene at the target aspect, and a contact sheet.

Before any paid call it estimates what the images, clips and lip-syncs still to be generated will
cost (cached ones are free) and refuses a job over its budget (``assets/budget.py``). A real image
that still fails after its retries is replaced by the offline procedural card for that scene
(flagged in ``fallback_scenes``), as a failing clip is replaced by the animatic.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from dagster import AssetExecutionContext, MaterializeResult, asset

from video_assets.assets.budget import preflight
from video_assets.assets.common import (
    image_cache_key,
    image_md,
    ledger,
    load_plan,
    row_factory,
    storyboard_key,
)
from video_assets.media.art import contact_sheet
from video_assets.partitions import PROVIDERS_POOL, jobs_partitions
from video_assets.providers.base import ledger_call
from video_assets.providers.offline import OfflineImages
from video_assets.providers.retry import ProviderError
from video_assets.providers.select import image_provider
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.store import job_key


@asset(partitions_def=jobs_partitions, group_name="video", deps=["script"], kinds={"python"},
       pool=PROVIDERS_POOL)
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
    keys = [image_cache_key(provider, scene, plan, size) for scene in plan.scenes]
    estimate = preflight(job_id, stored, settings, media, wh, "images", grid, plan)
    with ledger(wh) as calls, media.scratch_dir() as tmp:
        def make_image(used, scene, key: str) -> bool:
            """The scene's image from the cache, or rendered and cached; True on a cache hit."""
            new_row = row_factory(calls, job_id=job_id, asset="storyboard",
                                  scene_index=scene.index, provider=used.name,
                                  model=used.model, units=1, unit="image")
            if media.cached(key):
                new_row().cache_hit = True
                return True
            out = tmp / f"{scene.index:02d}.png"
            if getattr(used, "paid", False):
                used.render(scene, plan.style, len(plan.scenes), size, out, new_row)
            else:
                with ledger_call(new_row()):
                    used.render(scene, plan.style, len(plan.scenes), size, out)
            media.put_file(key, out)
            return False

        def one(scene, key: str) -> tuple[bool, bool]:
            """Render (or reuse) one scene's image into the job; (cache hit, fell back)."""
            try:
                cached, fallback = make_image(provider, scene, key), False
            except ProviderError as exc:  # retries exhausted: the procedural card stands in
                context.log.warning(f"image {scene.index + 1}: {exc}; using the offline "
                                    "procedural card for this scene")
                card = OfflineImages()
                key = image_cache_key(card, scene, plan, size)
                cached, fallback = make_image(card, scene, key), True
            media.copy(key, storyboard_key(job_id, scene.index))
            return cached, fallback

        # a few at once: card drawing and PNG compression release the GIL, and a real provider's
        # calls overlap (its own semaphore caps the calls in flight)
        with ThreadPoolExecutor(max_workers=max(1, settings.clip_workers)) as pool:
            futures = [pool.submit(one, scene, key) for scene, key in zip(plan.scenes, keys,
                                                                          strict=True)]
            hits, fallbacks = 0, []
            for done, (scene, fut) in enumerate(zip(plan.scenes, futures, strict=True), start=1):
                try:
                    cached, fallback = fut.result()
                except Exception:
                    for other in futures:
                        other.cancel()
                    raise
                hits += cached
                if fallback:
                    fallbacks.append(scene.index + 1)
                context.log.info(f"storyboard {done}/{len(plan.scenes)}"
                                 f"{' (cached)' if cached else ''}"
                                 f"{' (offline fallback)' if fallback else ''}")
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
        "fallback_scenes": ", ".join(map(str, fallbacks)) or "none",
        "estimated_cost_usd": estimate,
        "size": f"{size[0]}x{size[1]}",
        "contact_sheet": image_md(sheet, max_px=720, alt="contact sheet"),
    })

