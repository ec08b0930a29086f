"""``script``: the scene plan (style, characters, one scene per clip boundary)."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from video_assets.assets.common import ledger, load_grid, load_request
from video_assets.partitions import jobs_partitions
from video_assets.providers.base import Planner, ledger_call
from video_assets.providers.offline import OfflinePlanner, stable_seed
from video_assets.resources import StoreResource, WarehouseResource
from video_assets.schemas import CallRecord
from video_assets.store import job_key


@asset(partitions_def=jobs_partitions, group_name="video", deps=["beat_grid"], kinds={"python"})
def script(
    context: AssetExecutionContext, store: StoreResource, warehouse: WarehouseResource
) -> MaterializeResult:
    """Plan the video: a summary, a style (palette, lighting, mood) and a scene per boundary."""
    job_id = context.partition_key
    media = store.get()
    stored, grid = load_request(media, job_id), load_grid(media, job_id)
    planner: Planner = OfflinePlanner()
    with ledger(warehouse.get()) as calls:
        record = CallRecord(job_id=job_id, asset="script", provider=planner.name,
                            model=planner.model, units=1, unit="plan")
        calls.append(record)
        with ledger_call(record):
            plan = planner.plan(stored.request, grid, stable_seed(job_id, stored.request.prompt))
    if len(plan.scenes) != len(grid.boundaries):
        raise ValueError(f"planner {planner.name} returned {len(plan.scenes)} scenes for "
                         f"{len(grid.boundaries)} clip boundaries")
    media.put_json(job_key(job_id, "script.json"), plan.model_dump(mode="json"))
    rows = "\n".join(
        f"| {s.index + 1} | {s.start_s:.2f} | {s.end_s:.2f} | {s.camera} | {s.transition} | "
        f"{s.prompt.replace('|', '/')} |" for s in plan.scenes)
    table = "| # | start s | end s | camera | transition out | prompt |\n|---|---|---|---|---|---|\n"
    return MaterializeResult(metadata={
        "summary": plan.summary,
        "archetype": plan.archetype,
        "palette": " ".join(plan.style.palette_hex),
        "mood": plan.style.mood,
        "n_scenes": len(plan.scenes),
        "transitions": ", ".join(s.transition for s in plan.scenes[:-1]) or "none",
        "scenes": MetadataValue.md(table + rows),
    })
