"""``script``: the scene plan (style, characters, one scene per clip boundary).

The offline planner follows rules; the OpenAI planner writes the plan with structured outputs
(validated, one repair round). Both see the song's words (``lyrics``); a real planner's plan is
cached by everything it was shown, so an unchanged job is not re-planned or re-paid.
"""

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from video_assets.assets.budget import preflight
from video_assets.assets.common import load_grid, load_request
from video_assets.assets.lyrics import LYRICS_FILE
from video_assets.editor import next_script
from video_assets.edits import parse_ops
from video_assets.generation import Stage, generate_plan, ledger
from video_assets.layout import SCRIPT
from video_assets.partitions import jobs_partitions
from video_assets.providers.base import ledger_call
from video_assets.providers.offline import stable_seed
from video_assets.providers.select import lipsync, planner
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.schemas import CallRecord, Lyrics, Script
from video_assets.store import job_key
from video_assets.versions import PENDING_EDIT, PendingEdit, load_history, write_pending


class EditOpConfig(Config):
    """One scene edit, as the Dagster UI's launchpad shows it: ``op`` and ``scene`` always, the
    other fields as the operation needs (``edits.py`` says which)."""

    op: str = Field(description="prompt | reroll | move-cut | slip | reorder | delete | split | "
                    "replace")
    scene: int = Field(description="the scene, numbered from 1 as in the job's files")
    prompt: str | None = None
    camera: str | None = None
    motion: str | None = None
    caption: str | None = None
    transition: str | None = None
    beats: int | None = Field(default=None, description="move-cut: + later, - earlier")
    in_s: float | None = Field(default=None, description="slip: the clip's in-point")
    to: int | None = Field(default=None, description="reorder: the new position")
    at_beat: int | None = Field(default=None, description="split: the N-th beat inside the scene")
    file: str | None = Field(default=None, description="replace: a staged clip's key or a path "
                             "the run can read")


class ScriptConfig(Config):
    """Run config of ``script``: edits to make a new version of the job's current one (the
    ``edit_job``), or ``replan`` to plan it afresh. With neither, a job that has a version keeps
    it (its edits) and a new job is planned."""

    edits: list[EditOpConfig] = Field(default_factory=list)
    replan: bool = False


@asset(partitions_def=jobs_partitions, group_name="video", deps=["lyrics"], kinds={"python"})
def script(
    context: AssetExecutionContext,
    config: ScriptConfig,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Plan the video (a summary, a style and a scene per boundary), or edit its current
    version (``ScriptConfig``): scenes that keep their picture keep their take."""
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    stored, grid = load_request(media, job_id), load_grid(media, job_id)
    words = Lyrics.model_validate(media.get_json(job_key(job_id, LYRICS_FILE)))
    ops = parse_ops([e.model_dump() for e in config.edits]) if config.edits else []
    media.delete(job_key(job_id, PENDING_EDIT))  # what an earlier, failed run meant to make
    made = None if config.replan else next_script(
        media, job_id, ops, settings.limits(), settings.fps, settings.transition_half_frames)
    if made is None:
        plan, cached, chosen = plan_job(job_id, media, wh, settings, stored, grid, words)
        pending = PendingEdit(operation="replan", summary="planned afresh") \
            if load_history(media, job_id) else None
    else:
        (plan, pending), cached, chosen = made, True, None
    if lipsync(stored.request.providers, settings.retry_policy(),
               settings.provider_concurrency) is not None:
        # lip-sync where words are sung; with no transcript, everywhere
        plan = plan.model_copy(update={"scenes": [
            s.model_copy(update={"lipsync": not words.words
                                 or bool(words.words_between(s.start_s, s.end_s))})
            for s in plan.scenes]})
    media.put_json(job_key(job_id, SCRIPT), plan.model_dump(mode="json"))
    if pending is not None:
        write_pending(media, job_id, pending)
    rows = "\n".join(
        f"| {s.index + 1} | {s.start_s:.2f} | {s.end_s:.2f} | {s.camera} | {s.transition} | "
        f"{'kept' if s.take else 'new'} | {s.prompt.replace('|', '/')} |" for s in plan.scenes)
    table = ("| # | start s | end s | camera | transition out | picture | prompt |\n"
             "|---|---|---|---|---|---|---|\n")
    return MaterializeResult(metadata={
        "planner": f"{chosen.name}/{chosen.model}" if chosen else "kept (the current version)",
        "cached": cached,
        "edit": pending.summary if pending else "none",
        "changed_scenes": ", ".join(map(str, pending.changed_scenes)) or "none"
        if pending else "none",
        "summary": plan.summary,
        "archetype": plan.archetype,
        "palette": " ".join(plan.style.palette_hex),
        "mood": plan.style.mood,
        "n_scenes": len(plan.scenes),
        "lipsync_scenes": ", ".join(str(s.index + 1) for s in plan.scenes if s.lipsync) or "none",
        "transitions": ", ".join(s.transition for s in plan.scenes[:-1]) or "none",
        "scenes": MetadataValue.md(table + rows),
    })


def plan_job(job_id: str, media, wh, settings: PipelineSettings, stored, grid,
             words: Lyrics) -> tuple[Script, bool, object]:
    """A new plan from the planner (a real one's is cached by all it was shown); returns the
    plan, whether it came from the cache, and the planner."""
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

            plan, cached = generate_plan(
                Stage(media, calls, job_id, "script"), chosen, request, grid, seed, words,
                plan_brief(request, grid, words),
                before=lambda: preflight(job_id, stored, settings, media, wh, "planner", grid=grid))
    if len(plan.scenes) != len(grid.boundaries):
        raise ValueError(f"planner {chosen.name} returned {len(plan.scenes)} scenes for "
                         f"{len(grid.boundaries)} clip boundaries")
    return plan, cached, chosen
