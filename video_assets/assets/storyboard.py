"""``storyboard``: one image per scene at the target aspect, and a contact sheet."""

from contextlib import ExitStack

from dagster import AssetExecutionContext, MaterializeResult, asset

from video_assets.assets.common import image_md, ledger, load_request, load_script
from video_assets.media.art import contact_sheet
from video_assets.partitions import jobs_partitions
from video_assets.providers.base import ImageProvider, ledger_call
from video_assets.providers.offline import OfflineImages
from video_assets.resources import StoreResource, WarehouseResource
from video_assets.schemas import CallRecord
from video_assets.store import cache_key, job_key


def storyboard_key(job_id: str, index: int) -> str:
    return job_key(job_id, "storyboard", f"{index + 1:02d}.png")


@asset(partitions_def=jobs_partitions, group_name="video", deps=["script"], kinds={"python"})
def storyboard(
    context: AssetExecutionContext, store: StoreResource, warehouse: WarehouseResource
) -> MaterializeResult:
    """Render (or reuse from the cache) each scene's card; cache keys hash everything that
    determines the image, so an unchanged scene is never rendered or paid for twice."""
    job_id = context.partition_key
    media = store.get()
    stored, plan = load_request(media, job_id), load_script(media, job_id)
    size = stored.request.size
    provider: ImageProvider = OfflineImages()
    hits = 0
    with ledger(warehouse.get()) as calls, media.scratch_dir() as tmp:
        for scene in plan.scenes:
            key = cache_key("image", "png", provider=provider.name, model=provider.model,
                            version=provider.version, prompt=scene.prompt, caption=scene.caption,
                            camera=scene.camera, seed=scene.seed, style=plan.style.model_dump(),
                            n_scenes=len(plan.scenes), size=size)
            record = CallRecord(job_id=job_id, asset="storyboard", scene_index=scene.index,
                                provider=provider.name, model=provider.model, units=1,
                                unit="image")
            calls.append(record)
            with ledger_call(record):
                if media.exists(key):
                    record.cache_hit = True
                    hits += 1
                else:
                    out = tmp / f"{scene.index:02d}.png"
                    provider.render(scene, plan.style, len(plan.scenes), size, out)
                    media.put_file(key, out)
                media.copy(key, storyboard_key(job_id, scene.index))
            context.log.info(f"storyboard {scene.index + 1}/{len(plan.scenes)}"
                             f"{' (cached)' if record.cache_hit else ''}")
        with ExitStack() as stack:
            paths = [stack.enter_context(media.local_path(storyboard_key(job_id, s.index)))
                     for s in plan.scenes]
            sheet = contact_sheet(paths)
        sheet.save(tmp / "contact_sheet.jpg", quality=85)
        media.put_file(job_key(job_id, "storyboard", "contact_sheet.jpg"), tmp / "contact_sheet.jpg")
    return MaterializeResult(metadata={
        "n_images": len(plan.scenes),
        "cache_hits": hits,
        "size": f"{size[0]}x{size[1]}",
        "contact_sheet": image_md(sheet, max_px=720, alt="contact sheet"),
    })
