"""Dead runs leave nothing behind: runs whose worker process died are failed, their pool slots freed.

A run's worker can die without a word (SIGKILL, the OOM killer, a lost machine). Dagster's run
monitoring (on in ``dagster_home/dagster.yaml``) asks the run launcher whether a worker is healthy,
but the default launcher cannot tell, and ``videogen render`` / the ingest worker run jobs with
``execute_in_process``, with no launcher at all. Such a run stayed STARTED, its job ``running``,
and its slot in the ``providers`` pool taken: every later run waited for it forever.

- Each in-process run is tagged with its worker (host and pid, ``worker_tags``) and beats a
  heartbeat tag while it runs (``heartbeat``). Runs launched by the daemon's default launcher are
  found through the pid Dagster logs when a worker starts executing steps.
- ``sweep_dead_runs`` fails every unfinished run whose worker is gone (on this host: the process
  no longer exists, or a later process took its pid; elsewhere: no heartbeat for
  ``HEARTBEAT_STALE_S``) through the instance: the step that was running fails with the reason
  (so the failure names the stage, as any failure does), the run fails (``report_run_failed``;
  a run being cancelled is marked cancelled), its concurrency slots are freed and its job reads
  ``failed`` in the warehouse. It also frees slots still held by finished runs.
- ``dead_run_sensor`` runs the sweep in the daemon every 30 s; ``videogen`` runs it before every run.
- ``install_pool_wait_fix``: Dagster 1.13's in-process executor never sleeps while a step waits for
  a pool slot (``interval_to_next_pending_claim_check`` returns ``min(0, ...)``, never positive),
  so the wait spun a core, and as no step was executing, the SIGINT/SIGTERM Dagster captured was
  never acted on. The fix makes the wait sleep until the next claim check and lets a signal
  interrupt that sleep (the run then fails as interrupted and withdraws its claim).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    raise_execution_interrupts,
    sensor,
)
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.objects import ErrorSource, StepFailureData
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._utils.error import SerializableErrorInfo

from video_assets.resources import WarehouseResource

TAG_HOST = "video_assets/worker_host"
TAG_PID = "video_assets/worker_pid"
TAG_HEARTBEAT = "video_assets/heartbeat_at"  # epoch seconds, rewritten every HEARTBEAT_EVERY_S
HEARTBEAT_EVERY_S = 15.0
HEARTBEAT_STALE_S = 90.0
SWEEP_INTERVAL_S = 30  # the sensor's interval: a dead run reads failed within about 30 s
WATCHED = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
           DagsterRunStatus.CANCELING]
STEP_ENDS = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE,
             DagsterEventType.STEP_SKIPPED, DagsterEventType.STEP_UP_FOR_RETRY}
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


# --- who runs a run, and is it still there (plain Python) --------------------------------------
def this_host() -> str:
    return socket.gethostname()


def worker_tags(now_s: float | None = None) -> dict[str, str]:
    """Tags naming this process as the run's worker, with a first heartbeat."""
    return {TAG_HOST: this_host(), TAG_PID: str(os.getpid()),
            TAG_HEARTBEAT: f"{time.time() if now_s is None else now_s:.0f}"}


def _proc_stat(pid: int) -> tuple[str, float] | None:
    """``(state, start time in epoch seconds)`` of a process from /proc; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot_s = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                      if line.startswith("btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    return fields[0], boot_s + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int, known_since_s: float) -> bool:
    """Whether process ``pid`` on this host still exists and is the one the run recorded: not a
    zombie, and started before the pid was recorded (else its pid was reused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, started_s = stat
    return state not in ("Z", "X") and started_s <= known_since_s + 1.0


@dataclass(frozen=True)
class Worker:
    host: str
    pid: int | None
    heartbeat_s: float | None  # None: the worker does not beat (launched runs)
    since_s: float | None = None  # when the pid was recorded (None: when the run was created)


def worker_gone(worker: Worker, run_created_s: float, now_s: float, host: str) -> str | None:
    """Why the run's worker is gone, or None while it may be alive (or cannot be judged)."""
    if worker.pid is not None and worker.host == host:
        if process_alive(worker.pid, worker.since_s or run_created_s):
            return None
        return f"its worker process (pid {worker.pid} on {host}) is gone: killed or crashed"
    if worker.heartbeat_s is not None and now_s - worker.heartbeat_s > HEARTBEAT_STALE_S:
        return (f"its worker (pid {worker.pid} on {worker.host}) has sent no heartbeat for "
                f"{now_s - worker.heartbeat_s:.0f} s (limit {HEARTBEAT_STALE_S:.0f} s)")
    return None


@contextlib.contextmanager
def heartbeat(instance: DagsterInstance, run_id: str,
              every_s: float = HEARTBEAT_EVERY_S) -> Iterator[None]:
    """Rewrite the run's heartbeat tag every ``every_s`` while the block runs (a daemon thread:
    it dies with the process, which is the point)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            with contextlib.suppress(Exception):  # the run may not exist yet; next beat then
                instance.add_run_tags(run_id, {TAG_HEARTBEAT: f"{time.time():.0f}"})

    thread = threading.Thread(target=beat, name="video_assets-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


# --- the sweep (through the Dagster instance) --------------------------------------------------
@dataclass(frozen=True)
class DeadRun:
    run_id: str
    job_id: str | None
    stage: str
    reason: str
    outcome: str = "failed"  # or "cancelled": a run being cancelled when its worker died

    def describe(self) -> str:
        return (f"run {self.run_id} (job {self.job_id or '?'}) was still marked running but "
                f"{self.reason}; marked {self.outcome} at {self.stage} and its pool slots freed")


def _worker_of(instance: DagsterInstance, run) -> Worker | None:
    tags = run.tags
    try:
        if TAG_PID in tags:
            beat = tags.get(TAG_HEARTBEAT)
            return Worker(tags.get(TAG_HOST, ""), int(tags[TAG_PID]), float(beat) if beat else None)
        info = json.loads(tags[GRPC_INFO_TAG]) if GRPC_INFO_TAG in tags else None
    except ValueError:  # tags edited by hand: such a run cannot be judged
        return None
    if not isinstance(info, dict):  # not launched by the default run launcher: cannot judge
        return None
    if not (info.get("socket") or info.get("host") in LOCAL_NAMES | {this_host()}):
        return None  # a code server elsewhere: its workers are not ours to look at
    for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT,
                                               limit=20).records:  # the worker logs its pid early
        data = record.event_log_entry.dagster_event.engine_event_data
        pid = data.metadata.get("pid") if data and data.metadata else None
        if pid is not None:  # a launched worker starts after its run was created: judge by then
            return Worker(this_host(), int(pid.value), None, record.event_log_entry.timestamp)
    return None


def open_steps(instance: DagsterInstance, run_id: str) -> list:
    """The STEP_START events of steps that never ended (what the worker was doing when it died)."""
    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.STEP_START, *STEP_ENDS}).records
    last: dict[str, object] = {}
    for record in records:
        last[record.event_log_entry.step_key] = record.event_log_entry.dagster_event
    return [e for e in last.values() if e.event_type == DagsterEventType.STEP_START]


def fail_dead_run(instance: DagsterInstance, run, reason: str) -> str:
    """Fail the run whose worker is gone and free its slots; returns the stage it died in."""
    message = (f"{reason}; fix: run the job again (videogen render, or re-execute the run): its "
               "finished stages and cached generations are reused")
    error = SerializableErrorInfo(message=message, stack=[], cls_name="DeadRunWorker")
    started = open_steps(instance, run.run_id)
    for start in started:  # the step fails like any failing step, naming the stage
        instance.report_dagster_event(start._replace(
            event_type_value=DagsterEventType.STEP_FAILURE.value,
            message=f'Execution of step "{start.step_key}" failed: {message}',
            event_specific_data=StepFailureData(error=error, user_failure_data=None,
                                                error_source=ErrorSource.UNEXPECTED_ERROR)),
            run.run_id)
    if run.status == DagsterRunStatus.CANCELING:
        instance.report_run_canceled(run, message)
    else:
        instance.report_run_failed(run, message)
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return started[0].step_key if started else "unknown"


def free_slots_of_finished_runs(instance: DagsterInstance, now_s: float) -> int:
    """Free slots still held by finished runs (the daemon does this too, when run monitoring's
    ``free_slots_after_run_end_seconds`` is set; its grace is honoured here); returns how many
    runs' slots were freed."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return 0
    grace_s = instance.run_monitoring_settings.get("free_slots_after_run_end_seconds") or 0
    freed = 0
    run_ids = list(storage.get_concurrency_run_ids())
    if not run_ids:
        return 0
    for record in instance.get_run_records(RunsFilter(run_ids=run_ids)):
        end_s = record.end_time or record.update_timestamp.timestamp()
        if record.dagster_run.is_finished and now_s - end_s >= grace_s:
            storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
            freed += 1
    return freed


def sweep_dead_runs(instance: DagsterInstance, warehouse=None,
                    now_s: float | None = None) -> list[DeadRun]:
    """Fail every unfinished run whose worker is gone (see the module docstring); mark its job
    ``failed`` in the warehouse unless another run of the job is under way; free slots of
    finished runs. Returns the runs it failed."""
    from video_assets.sensors import run_failure

    now_s = time.time() if now_s is None else now_s
    host = this_host()
    dead: list[DeadRun] = []
    for record in instance.get_run_records(RunsFilter(statuses=WATCHED)):
        run = record.dagster_run
        worker = _worker_of(instance, run)
        if worker is None:
            continue
        reason = worker_gone(worker, record.create_timestamp.timestamp(), now_s, host)
        if reason is None:
            continue
        run = instance.get_run_by_id(run.run_id)  # another sweep (daemon, CLI) may have been first
        if run is None or run.is_finished:
            continue
        stage = fail_dead_run(instance, run, reason)
        job_id = run.tags.get("dagster/partition")
        dead.append(DeadRun(run.run_id, job_id, stage, reason, "cancelled"
                            if run.status == DagsterRunStatus.CANCELING else "failed"))
        if warehouse is None or not job_id:
            continue
        others = instance.get_run_records(
            RunsFilter(tags={"dagster/partition": job_id}, statuses=WATCHED), limit=2)
        if any(r.dagster_run.run_id != run.run_id for r in others):
            continue  # a newer run of the job is under way: the job is not failed
        failures = [r.event_log_entry.dagster_event for r in instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.STEP_FAILURE).records]
        status, failed_stage, _ = run_failure(failures)
        warehouse.upsert_job(job_id, status=status, failed_stage=failed_stage)
    free_slots_of_finished_runs(instance, now_s)
    return dead


@sensor(minimum_interval_seconds=SWEEP_INTERVAL_S, default_status=DefaultSensorStatus.RUNNING)
def dead_run_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource) -> SkipReason:
    """Fail runs whose worker process died (killed, crashed, lost) and free their pool slots."""
    dead = sweep_dead_runs(context.instance, warehouse.get())
    for run in dead:
        context.log.warning(run.describe())
    return SkipReason(f"{len(dead)} dead run(s) failed" if dead else "no dead runs")


# --- waiting for a pool slot: sleep, and obey signals ------------------------------------------
def _interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    """Seconds until a blocked step's claim is due again (never negative)."""
    due = [self._pending_timeouts[key] for key in self._pending_claims
           if key in self._pending_timeouts]
    return max(0.0, min(due) - time.time()) if due else 0.0


def _sleep_til_ready(self: ActiveExecution) -> None:
    """Sleep until a step may be ready; a SIGINT/SIGTERM interrupts the sleep (and the run)."""
    sleep_s = self.sleep_interval()
    if sleep_s > 0:
        with raise_execution_interrupts():
            time.sleep(sleep_s)


def install_pool_wait_fix() -> None:
    """Make Dagster's in-process executor sleep, interruptibly, while a step waits for a pool
    slot (idempotent; applied when this module is imported, i.e. by the code location)."""
    InstanceConcurrencyContext.interval_to_next_pending_claim_check = (  # type: ignore[method-assign]
        _interval_to_next_pending_claim_check)
    ActiveExecution.sleep_til_ready = _sleep_til_ready  # type: ignore[method-assign]


install_pool_wait_fix()
