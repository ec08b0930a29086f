"""The inbox sensor (local folder now, S3 later: both go through the store interface) and the
run-failure hook that keeps the ``jobs`` table honest."""

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath

from dagster import (
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    run_failure_sensor,
    sensor,
)

from video_assets.admission import (
    REQUEST_SUFFIXES,
    AudioNotFound,
    RequestError,
    check_audio,
    job_id_for,
    parse_request,
    resolve_audio_path,
    stage,
    validate_request,
)
from video_assets.partitions import jobs_partitions
from video_assets.resources import StoreResource, WarehouseResource
from video_assets.store import LocalStore, MediaStore

INBOX = "inbox/"
REJECTED = "rejected/"
RUN_JOB_NAME = "render_job"


@dataclass
class TickResult:
    """What one inbox scan decided (pure data, so the CLI and tests can use it directly)."""

    admitted: list[tuple[str, str, str]] = field(default_factory=list)  # (job_id, run_key, key)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (key, message)
    waiting: list[str] = field(default_factory=list)  # audio not arrived yet
    cursor: dict[str, str] = field(default_factory=dict)


def error_report_key(request_key: str) -> str:
    return f"{REJECTED}{PurePosixPath(request_key).name}.error.json"


def scan_inbox(
    inbox: LocalStore,
    media: MediaStore,
    cursor: dict[str, str],
    grace_s: float = 120.0,
    max_per_tick: int = 50,
    now_s: float | None = None,
) -> TickResult:
    """Admit or reject every request file in ``inbox/`` not yet seen with its current etag.

    ``cursor`` maps object key -> etag of requests already decided. A request whose audio is
    missing is left undecided for ``grace_s`` seconds after it arrived, then rejected.
    """
    now_s = time.time() if now_s is None else now_s
    result = TickResult(cursor=dict(cursor))
    for obj in inbox.list(INBOX):
        if len(result.admitted) + len(result.rejected) >= max_per_tick:
            break
        if not obj.key.lower().endswith(REQUEST_SUFFIXES) or cursor.get(obj.key) == obj.etag:
            continue
        name = PurePosixPath(obj.key).name
        try:
            content = inbox.get_bytes(obj.key)
            request = validate_request(parse_request(content, name), name)
            with inbox.local_path(obj.key) as local:
                audio_path = resolve_audio_path(request, local.parent, name)
                try:
                    duration_s = check_audio(audio_path, name) if audio_path else None
                except AudioNotFound:
                    if now_s - obj.modified_ns / 1e9 < grace_s:
                        result.waiting.append(obj.key)
                        continue
                    raise
                job_id = job_id_for(name, content)
                stage(media, job_id, request, name, audio_path, duration_s)
        except RequestError as exc:
            report = {**exc.to_report(), "key": obj.key,
                      "rejected_at": datetime.now(UTC).isoformat()}
            inbox.put_bytes(error_report_key(obj.key), json.dumps(report, indent=2).encode())
            result.rejected.append((obj.key, str(exc)))
        else:
            inbox.delete(error_report_key(obj.key))  # an earlier version may have been rejected
            result.admitted.append((job_id, f"{name}:{job_id.rsplit('-', 1)[-1]}", obj.key))
        result.cursor[obj.key] = obj.etag
    return result


def inbox_store() -> LocalStore:
    from video_assets.config import dagster_home

    return LocalStore(dagster_home())


def run_requests(tick: TickResult) -> list[RunRequest]:
    return [
        RunRequest(run_key=run_key, partition_key=job_id,
                   tags={"video_assets/source": key, "video_assets/job_id": job_id})
        for job_id, run_key, key in tick.admitted
    ]


@sensor(job_name=RUN_JOB_NAME, minimum_interval_seconds=15,
        default_status=DefaultSensorStatus.RUNNING)
def inbox_sensor(context: SensorEvaluationContext, store: StoreResource) -> SensorResult:
    """New request files in ``$DAGSTER_HOME/inbox/`` become job partitions and runs."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    tick = scan_inbox(inbox_store(), store.get(), cursor)
    for key, message in tick.rejected:
        context.log.warning(f"rejected {key}: {message}")
    return SensorResult(
        run_requests=run_requests(tick),
        dynamic_partitions_requests=[
            jobs_partitions.build_add_request([job_id for job_id, _, _ in tick.admitted])
        ] if tick.admitted else [],
        cursor=json.dumps(tick.cursor, sort_keys=True),
    )


def run_failure(step_failures: list) -> tuple[str, str, str]:
    """``(status, stage, error)`` of a failed run from its STEP_FAILURE events.

    A blocking quality check that fails leaves a finished but wrong video: ``checks_failed``;
    anything else is ``failed``. ``error`` is the stage's own message, not Dagster's wrapper.
    """
    if not step_failures:
        return "failed", "unknown", ""
    event = step_failures[0]
    err = event.step_failure_data.error if event.step_failure_data else None
    status = "failed"
    if err is not None and err.cls_name == "DagsterAssetCheckFailedError":
        status = "checks_failed"
    while err is not None and err.cause is not None:  # Dagster wraps the stage's own exception
        err = err.cause
    return status, event.step_key, err.message.strip() if err is not None else ""


@run_failure_sensor(monitored_jobs=None, default_status=DefaultSensorStatus.RUNNING)
def job_failure_sensor(context: RunFailureSensorContext, warehouse: WarehouseResource) -> None:
    """Mark the job ``failed`` (or ``checks_failed``) with the failing stage when a run fails."""
    job_id = context.dagster_run.tags.get("dagster/partition")
    if job_id:
        status, stage, _ = run_failure(context.get_step_failure_events())
        warehouse.get().upsert_job(job_id, status=status, failed_stage=stage)
