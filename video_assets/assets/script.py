"""``script``: the scene plan (style, characters, one scene per clip boundary).

The offline planner follows rules; the OpenAI planner writes the plan with structured outputs
(validated, one repair round). Both see the song's words (``lyrics``); a real planner's plan is
cached by everything it was shown, so an unchanged job is not re-planned or re-paid.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from video_assets.assets.budget import preflight
from video_assets.assets.common import (
    generation_key,
    ledger,
    load_grid,
    load_request,
    row_factory,
)
from video_assets.assets.lyrics import LYRICS_FILE
from video_assets.partitions import jobs_partitions
from video_assets.providers.base import ledger_call
from video_assets.providers.offline import stable_seed
from video_assets.providers.select import lipsync, planner
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.schemas import CallRecord, Lyrics, Script
from video_assets.store import job_key


@asset(partitions_def=jobs_partitions, group_name="video", deps=["lyrics"], kinds={"python"})
def script(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Plan the video: a summary, a style (palette, lighting, mood) and a scene per boundary."""
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    stored, grid = load_request(media, job_id), load_grid(media, job_id)
    words = Lyrics.model_validate(media.get_json(job_key(job_id, LYRICS_FILE)))
    request = stored.request
    policy, conc = settings.retry_policy(), settings.provider_concurrency
    chosen = planner(request.providers, policy, conc)
    seed = stable_seed(job_id, request.prompt)
    cached = False
    with ledger(wh) as calls:
        if chosen.name == "offline":
            record = CallRecord(job_id=job_id, asset="script", provider=chosen.name,
                                model=chosen.model, units=1, unit="plan")
            calls.append(record)
            with ledger_call(record):
                plan = chosen.plan(request, grid, seed, words)
        else:
            from video_assets.providers.openai import plan_brief

            key = generation_key("plan", "json", chosen, brief=plan_brief(request, grid, words),
                                 seed=seed)
            new_row = row_factory(calls, job_id=job_id, asset="script", provider=chosen.name,
                                  model=chosen.model, unit=chosen.spec.unit)
            cached = media.cached(key)
            if cached:
                new_row().cache_hit = True
                plan = Script.model_validate(media.get_json(key))
            else:
                preflight(job_id, stored, settings, media, wh, "planner", grid=grid)
                plan = chosen.plan(request, grid, seed, words, new_row)
                media.put_json(key, plan.model_dump(mode="json"))
    if len(plan.scenes) != len(grid.boundaries):
        raise ValueError(f"planner {chosen.name} returned {len(plan.scenes)} scenes for "
                         f"{len(grid.boundaries)} clip boundaries")
    if lipsync(request.providers, policy, conc) is not None:
        # lip-sync where words are sung; with no transcript, everywhere
        plan = plan.model_copy(update={"scenes": [
            s.model_copy(update={"lipsync": not words.words
                                 or bool(words.words_between(s.start_s, s.end_s))})
            for s in plan.scenes]})
    media.put_json(job_key(job_id, "script.json"), plan.model_dump(mode="json"))
    rows = "\n".join(
        f"| {s.index + 1} | {s.start_s:.2f} | {s.end_s:.2f} | {s.camera} | {s.transition} | "
        f"{s.prompt.replace('|', '/')} |" for s in plan.scenes)
    table = "| # | start s | end s | camera | transition out | prompt |\n|---|---|---|---|---|---|\n"
    return MaterializeResult(metadata={
        "planner": f"{chosen.name}/{chosen.model}",
        "cached": cached,
        "summary": plan.summary,
        "archetype": plan.archetype,
        "palette": " ".join(plan.style.palette_hex),
        "mood": plan.style.mood,
        "n_scenes": len(plan.scenes),
        "lipsync_scenes": ", ".join(str(s.index + 1) for s in plan.scenes if s.lipsync) or "none",
        "transitions": ", ".join(s.transition for s in plan.scenes[:-1]) or "none",
        "scenes": MetadataValue.md(table + rows),
    })
