"""What each job is doing, from the Dagster instance and the warehouse of the profile in use.

``list_jobs`` (``videogen jobs``) and ``job_status`` (``videogen status JOB_ID``) return plain
dataclasses; ``format_jobs_table`` and ``format_status`` turn them into text. No printing here.

A job's status comes from its latest run (the runs of its partition, newest first):
``queued`` (waiting in the run queue), ``running`` (starting, running, or being cancelled),
``done`` (the run succeeded), ``failed`` or ``checks_failed`` (the run failed: ``checks_failed``
when its final video was made but a blocking quality check failed, ``sensors.run_failure``),
``cancelled``. A job without any run in this instance (e.g. the instance was reset) has the
status its ``jobs`` row in the warehouse holds. The same reading decides what a webhook says
(``webhook_sensor.py``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)

from video_assets.jobs import EDIT_JOB_NAME, RUN_JOB_NAME, STAGE_KEYS
from video_assets.layout import FINAL, QUALITY, THUMBNAIL
from video_assets.monitor import STEP_ENDS, open_steps
from video_assets.store import MediaStore, job_key
from video_assets.warehouse import Warehouse

JOB_STATUSES = ("done", "failed", "checks_failed", "cancelled", "running", "queued")
ENDED_STATUSES = ("done", "failed", "checks_failed", "cancelled")
PARTITION_TAG = "dagster/partition"
RETRY_TAG = "video_assets/retry_of"  # an in-process retry names the run it retries (cli.retry)
MAX_RETRY_CHAIN = 20
_QUEUED = {DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED}
_RUNNING = {DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING,
            DagsterRunStatus.MANAGED, DagsterRunStatus.SUSPENDED}
_WAREHOUSE_COLUMNS = ("job_id", "created_at", "status", "final_uri", "final_url", "cost_usd",
                      "failed_stage")


class UnknownJob(LookupError):
    """No run in the instance and no row in the warehouse has this job id."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"JOB_ID {job_id[:80]!r} is not a job here (no run in the Dagster "
                         "instance, no row in the warehouse); fix: check the job id (`videogen "
                         "jobs` lists them) and that VIDEO_ASSETS_PROFILE / DAGSTER_HOME name the "
                         "instance that ran it")


@dataclass(frozen=True)
class JobRow:
    """One line of ``videogen jobs``."""

    job_id: str
    status: str
    created_at: str | None  # ISO 8601, UTC
    duration_s: float | None  # the final video's length
    elapsed_s: float | None  # the latest run's wall time (so far, while it runs)
    cost_usd: float
    final_video: str | None  # a link to open, or `videogen link JOB_ID` where links expire
    failed_stage: str | None
    run_id: str | None  # the latest run

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class JobStatus:
    """``videogen status JOB_ID``."""

    job_id: str
    status: str
    run_id: str | None
    run_status: str | None  # Dagster's status of the latest run (SUCCESS, STARTED, ...)
    stage_running: str | None  # the stage the latest run is in now
    stages_done: list[str]  # the stages the latest run (and the runs it retries) finished
    failed_stage: str | None
    error: str | None  # the failed stage's own message
    cost_usd: float  # every provider call of the job so far (the ledger)
    checks: dict[str, bool] = field(default_factory=dict)  # the current version's quality checks
    version: int | None = None  # the current version (history.json)
    final_video: str | None = None
    thumbnail: str | None = None
    created_at: str | None = None
    elapsed_s: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# --- reading the instance ------------------------------------------------------------------------
def latest_runs(instance: DagsterInstance) -> dict[str, object]:
    """The newest run record of each job (partition) among the render and edit runs."""
    latest: dict[str, object] = {}
    for name in (RUN_JOB_NAME, EDIT_JOB_NAME):
        for record in instance.get_run_records(RunsFilter(job_name=name)):
            job_id = record.dagster_run.tags.get(PARTITION_TAG)
            if job_id and (job_id not in latest
                           or record.create_timestamp > latest[job_id].create_timestamp):
                latest[job_id] = record
    return latest


def latest_run(instance: DagsterInstance, job_id: str):
    """The newest run record of the job's partition, or None."""
    records = instance.get_run_records(RunsFilter(tags={PARTITION_TAG: job_id}), limit=1)
    return records[0] if records else None


def _step_failures(instance: DagsterInstance, run_id: str) -> list:
    return [r.event_log_entry.dagster_event for r in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.STEP_FAILURE).records]


def run_outcome(instance: DagsterInstance, run) -> tuple[str, str | None, str | None]:
    """``(job status, failed stage, error)`` the run means (see the module docstring)."""
    from video_assets.sensors import run_failure

    if run.status in _QUEUED:
        return "queued", None, None
    if run.status in _RUNNING:
        return "running", None, None
    if run.status == DagsterRunStatus.SUCCESS:
        return "done", None, None
    failures = _step_failures(instance, run.run_id)
    if run.status == DagsterRunStatus.CANCELED:
        return "cancelled", (failures[0].step_key if failures else None), None
    status, stage, error = run_failure(failures, [e.step_key for e in open_steps(instance, run.run_id)])
    return status, (None if stage == "unknown" else stage), error or None


def _steps(instance: DagsterInstance, run_id: str) -> tuple[list[str], list[str]]:
    """``(stages finished, stages started and not ended)`` of one run, from its event log."""
    last: dict[str, DagsterEventType] = {}
    for record in instance.get_records_for_run(
            run_id, of_type={DagsterEventType.STEP_START, *STEP_ENDS}).records:
        last[record.event_log_entry.step_key] = record.event_log_entry.dagster_event.event_type
    done = [k for k, t in last.items() if t == DagsterEventType.STEP_SUCCESS]
    running = [k for k, t in last.items() if t == DagsterEventType.STEP_START]
    return done, running


def _in_stage_order(stages: set[str]) -> list[str]:
    order = {name: i for i, name in enumerate(STAGE_KEYS)}
    return sorted(stages, key=lambda s: (order.get(s, len(order)), s))


def stages_done(instance: DagsterInstance, run) -> list[str]:
    """The stages ``run`` finished, with those of the runs it retries (a retry runs only what its
    parent did not finish), in pipeline order."""
    done: set[str] = set()
    seen = 0
    while run is not None and seen < MAX_RETRY_CHAIN:
        done |= set(_steps(instance, run.run_id)[0])
        parent_id = run.parent_run_id or run.tags.get(RETRY_TAG)
        run = instance.get_run_by_id(parent_id) if parent_id else None
        seen += 1
    return _in_stage_order(done)


def run_checks(instance: DagsterInstance, run_id: str) -> dict[str, bool]:
    """The asset checks the run evaluated: ``{check name: passed}``."""
    checks = {}
    for record in instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        checks[evaluation.check_name] = bool(evaluation.passed)
    return dict(sorted(checks.items()))


def final_video_metadata(instance: DagsterInstance, job_id: str) -> dict:
    """The metadata of the job's latest ``final_video`` materialization (values), or {}."""
    records = instance.fetch_materializations(AssetRecordsFilter(
        asset_key=AssetKey("final_video"), asset_partitions=[job_id]), limit=1).records
    if not records or records[0].asset_materialization is None:
        return {}
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def _elapsed_s(record) -> float | None:
    if record is None or record.start_time is None:
        return None
    end = record.end_time if record.end_time is not None else time.time()
    return round(end - record.start_time, 2)


def _iso(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, float | int):
        value = datetime.fromtimestamp(value, UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


# --- reading the warehouse -----------------------------------------------------------------------
def _warehouse_rows(warehouse: Warehouse, job_id: str | None = None) -> dict[str, dict]:
    """``jobs`` rows by job id (all, or one job's); none in a warehouse never written."""
    import duckdb

    sql = f"SELECT {', '.join(_WAREHOUSE_COLUMNS)} FROM jobs"
    params: list = []
    if job_id is not None:
        sql += " WHERE job_id = ?"
        params.append(job_id)
    with warehouse.connect(read_only=True) as con:
        try:
            rows = con.execute(sql, params).fetchall()
        except duckdb.CatalogException:  # a warehouse nothing was written to yet
            return {}
    return {row[0]: dict(zip(_WAREHOUSE_COLUMNS, row, strict=True)) for row in rows}


def final_link(job_id: str, final_uri: str | None, final_url: str | None) -> str | None:
    """A link to the job's final video: the lasting one the warehouse keeps (``file://``
    locally), or where links expire (S3) the command that makes a fresh one."""
    if not final_uri:
        return None
    return final_url or f"videogen link {job_id}"


# --- the two views -------------------------------------------------------------------------------
def list_jobs(instance: DagsterInstance, warehouse: Warehouse,
              status: str | None = None) -> list[JobRow]:
    """Every job the instance ran or the warehouse holds, newest first; only those in
    ``status`` when given (one of ``JOB_STATUSES``; ``ValueError`` otherwise)."""
    if status is not None and status not in JOB_STATUSES:
        raise ValueError(f"--status: {status[:40]!r} is not a job status; fix: one of "
                         f"{', '.join(JOB_STATUSES)}")
    runs = latest_runs(instance)
    rows = _warehouse_rows(warehouse)
    out = []
    for job_id in set(runs) | set(rows):
        record, row = runs.get(job_id), rows.get(job_id, {})
        if record is not None:
            state, stage, _ = run_outcome(instance, record.dagster_run)
        else:
            state, stage = row.get("status") or "queued", row.get("failed_stage")
        if status is not None and state != status:
            continue
        has_final = bool(row.get("final_uri"))
        meta = final_video_metadata(instance, job_id) if has_final else {}
        created = row.get("created_at") or (record.create_timestamp if record else None)
        out.append(JobRow(
            job_id=job_id, status=state, created_at=_iso(created),
            duration_s=meta.get("duration_s"), elapsed_s=_elapsed_s(record),
            cost_usd=round(float(row.get("cost_usd") or 0.0), 6),
            final_video=final_link(job_id, row.get("final_uri"), row.get("final_url")),
            failed_stage=stage, run_id=record.dagster_run.run_id if record else None))
    return sorted(out, key=lambda r: (r.created_at or "", r.job_id), reverse=True)


def job_status(instance: DagsterInstance, warehouse: Warehouse, media: MediaStore,
               job_id: str) -> JobStatus:
    """One job now: its latest run's stage in progress and stages done, what it cost so far, its
    current version and that version's quality checks. ``UnknownJob`` for an id neither the
    instance nor the warehouse knows."""
    from video_assets.assets.quality import check_results
    from video_assets.schemas import QualityReport
    from video_assets.versions import load_history

    record = latest_run(instance, job_id)
    row = _warehouse_rows(warehouse, job_id).get(job_id)
    if record is None and row is None:
        raise UnknownJob(job_id)
    run = record.dagster_run if record is not None else None
    if run is not None:
        state, stage, error = run_outcome(instance, run)
        running = _steps(instance, run.run_id)[1] if state == "running" else []
        done = stages_done(instance, run)
    else:
        state, stage, error, running, done = row["status"] or "queued", row["failed_stage"], None, \
            [], []
    history = load_history(media, job_id)
    checks: dict[str, bool] = {}
    if media.exists(job_key(job_id, QUALITY)):
        report = QualityReport.model_validate(media.get_json(job_key(job_id, QUALITY)))
        checks = {c.check_name: bool(c.passed) for c in check_results(report)}
    has_final = media.exists(job_key(job_id, FINAL))
    expire = media.links_expire
    return JobStatus(
        job_id=job_id, status=state, run_id=run.run_id if run else None,
        run_status=run.status.value if run else None,
        stage_running=_in_stage_order(set(running))[0] if running else None,
        stages_done=done, failed_stage=stage, error=error,
        cost_usd=round(warehouse.job_cost_usd(job_id), 6), checks=dict(sorted(checks.items())),
        version=history.current if history else None,
        final_video=(f"videogen link {job_id}" if expire else media.url(job_key(job_id, FINAL)))
        if has_final else None,
        thumbnail=(None if expire else media.url(job_key(job_id, THUMBNAIL)))
        if has_final and media.exists(job_key(job_id, THUMBNAIL)) else None,
        created_at=_iso((row or {}).get("created_at") or (record.create_timestamp if record
                                                          else None)),
        elapsed_s=_elapsed_s(record))


# --- text ----------------------------------------------------------------------------------------
def _money(value: float) -> str:
    return f"${value:.2f}"


def format_jobs_table(rows: list[JobRow]) -> str:
    """A fixed-width table, one job per line (no trailing newline); a note when there are none."""
    if not rows:
        return "no jobs"
    header = ("JOB", "STATUS", "CREATED (UTC)", "LENGTH", "RAN", "COST", "FINAL VIDEO")
    lines = [header]
    for r in rows:
        status = r.status + (f" at {r.failed_stage}" if r.failed_stage
                             and r.status in ("failed", "checks_failed", "cancelled") else "")
        lines.append((
            r.job_id, status, (r.created_at or "-")[:19].replace("T", " "),
            f"{r.duration_s:.1f} s" if r.duration_s is not None else "-",
            f"{r.elapsed_s:.0f} s" if r.elapsed_s is not None else "-",
            _money(r.cost_usd), r.final_video or "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False))
                     + "  " + line[-1] for line in lines)


def format_status(status: JobStatus) -> str:
    """``videogen status`` for a person: a few labelled lines."""
    s = status
    state = s.status
    if s.failed_stage and state in ("failed", "checks_failed", "cancelled"):
        state += f" at {s.failed_stage}"
    lines = [f"job:       {s.job_id}", f"status:    {state}"
             + (f" (run {s.run_id}, {s.run_status.lower()})" if s.run_id and s.run_status else "")]
    if s.error:
        lines.append(f"error:     {' '.join(s.error.split())[:300]}")
    if s.stage_running:
        lines.append(f"running:   {s.stage_running}")
    lines.append(f"done:      {', '.join(s.stages_done) or '-'}")
    lines.append(f"cost:      {_money(s.cost_usd)} so far")
    if s.version is not None:
        lines.append(f"version:   {s.version}")
    if s.checks:
        lines.append("checks:    " + ", ".join(f"{k} {'ok' if v else 'FAILED'}"
                                               for k, v in s.checks.items())
                     + (f" (version {s.version})" if s.version is not None else ""))
    if s.final_video:
        lines.append(f"video:     {s.final_video}")
    if s.elapsed_s is not None:
        lines.append(f"ran:       {s.elapsed_s:.0f} s")
    return "\n".join(lines)
