"""One run at a time per job: its runs share one folder, one staged request and one budget.

Runs the daemon launches from the queue are held to one per job by the run queue's tag limit
(``video_assets/job_id`` in ``dagster.yaml``). Runs this machine executes in process (``videogen
render``, ``ingest``) take an exclusive lock file per job for their whole run, which the operating
system releases when the process ends, however it ends, and first check that the instance has no
run of the job in progress.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from video_assets.config import dagster_home

if TYPE_CHECKING:  # Dagster is imported when a run is held, not when the CLI starts
    from dagster import DagsterInstance


class JobBusy(RuntimeError):
    """Another run of the job is in progress."""


def runs_in_progress(instance: DagsterInstance, job_id: str) -> list[str]:
    """Run ids of the job's runs that are queued, starting or running."""
    from dagster import DagsterRunStatus, RunsFilter

    in_progress = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED,
                   DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    records = instance.get_run_records(RunsFilter(tags={"dagster/partition": job_id},
                                                  statuses=in_progress), limit=5)
    return [r.dagster_run.run_id for r in records]


@contextlib.contextmanager
def hold_job(instance: DagsterInstance, job_id: str) -> Iterator[None]:
    """Hold the job for one in-process run; raises ``JobBusy`` (naming the other run and the
    fix) when another process holds it or the instance has a run of it in progress."""
    folder = dagster_home() / "locks"
    folder.mkdir(exist_ok=True)
    fd = os.open(folder / f"{job_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobBusy(f"job {job_id} is being rendered by another process on this machine; "
                          f"fix: wait for it to end, or stop it with videogen cancel {job_id}") \
                from None
        others = runs_in_progress(instance, job_id)
        if others:
            raise JobBusy(f"job {job_id} already has a run in progress ({others[0]}); fix: wait "
                          f"for it to end, or stop it with videogen cancel {job_id}")
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
