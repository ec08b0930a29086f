"""``version_job``: undo or redo a job's last edit from the Dagster UI (or ``videogen undo``).

An edit is a run of ``edit_job`` (the ``script`` asset's run config carries the edits); going
back is no render at all: the version's own files are made current again (``versions.py``), and
the job's ``final_video`` partition records the version now current, with its metadata.
"""

from dagster import AssetMaterialization, Config, OpExecutionContext, in_process_executor, job, op
from pydantic import Field

from video_assets.layout import FINAL
from video_assets.resources import StoreResource, WarehouseResource
from video_assets.store import job_key
from video_assets.versions import redo, undo

VERSION_JOB_NAME = "version_job"


class VersionConfig(Config):
    job_id: str = Field(description="the job (its partition key)")
    action: str = Field(default="undo", description="undo | redo")


@op
def change_version(context: OpExecutionContext, config: VersionConfig, store: StoreResource,
                   warehouse: WarehouseResource) -> dict:
    """Make the version before (undo) or after (redo) the current one current again."""
    if config.action not in ("undo", "redo"):
        raise ValueError(f"action: {config.action!r} is not undo or redo; fix: use one of them")
    media, wh = store.get(), warehouse.get()
    history = (undo if config.action == "undo" else redo)(media, config.job_id, wh)
    version = history.get(history.current)
    context.log.info(f"job {config.job_id}: {config.action}: version {version.version} is "
                     f"current ({version.operation}: {version.summary or 'first render'})")
    context.log_event(AssetMaterialization(
        asset_key="final_video", partition=config.job_id,
        description=f"{config.action}: version {version.version} is current again",
        metadata={"version": version.version, "made_by": f"{config.action} to version "
                  f"{version.version} ({version.operation})", "paid_calls": 0,
                  "path": media.uri(job_key(config.job_id, FINAL))}))
    return {"version": version.version, "operation": version.operation}


@job(name=VERSION_JOB_NAME, executor_def=in_process_executor,
     description="Undo or redo a job's last edit: its versions' files, no render, nothing paid.")
def version_job() -> None:
    change_version()
