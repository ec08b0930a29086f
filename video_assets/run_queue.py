"""Runs through Dagster's run queue: submitting a job's run from outside a code server, as
``dagster job launch`` does, and waiting for runs to end.

A run is submitted when the instance has a ``QueuedRunCoordinator`` and its daemon is alive
(``uses_queue``): the run is created QUEUED from the code location's ``RemoteJob`` (the product's
``workspace.yaml``, so the daemon, which loads the same workspace, finds its code), and the daemon
launches it when ``max_concurrent_runs`` and the ``tag_concurrency_limits`` allow, with the
default launcher (a process per run). Without a daemon a queued run would never start, so the
callers run in process instead (``videogen ingest``) or say so (``render --queue``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, QueuedRunCoordinator

from video_assets.profiles import WORKSPACE

QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
LOCATION = "video_assets.definitions"  # workspace.yaml's code location (its module's name)
ENDED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def has_queue(instance: DagsterInstance) -> bool:
    return isinstance(instance.run_coordinator, QueuedRunCoordinator)


def daemon_alive(instance: DagsterInstance) -> bool:
    """Whether the daemon that dequeues runs has sent a heartbeat lately."""
    status = instance.get_daemon_statuses([QUEUE_DAEMON]).get(QUEUE_DAEMON)
    return bool(status and status.healthy)


def uses_queue(instance: DagsterInstance) -> bool:
    """Runs go through the queue: a queued coordinator, and a daemon alive to launch them."""
    return has_queue(instance) and daemon_alive(instance)


class QueueError(RuntimeError):
    """The code location could not be loaded, or the run could not be submitted."""


@contextlib.contextmanager
def workspace(instance: DagsterInstance) -> Iterator[Any]:
    """The product's workspace (``workspace.yaml``: its code location in a server process of its
    own, as the daemon and the webserver load it); yields a request context."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    # the code server shares our stdout: only its warnings, so a --json line stays the last one
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)]),
                                 code_server_log_level="WARNING") as ctx:
        request = ctx.create_request_context()
        error = request.get_code_location_error(LOCATION)
        if error is not None:
            raise QueueError(f"code location {LOCATION} failed to load: {error.message.strip()}; "
                             "fix: run `dagster definitions validate -w workspace.yaml`")
        yield request


def _remote_job(request, job_name: str):
    location = request.get_code_location(LOCATION)
    (repo,) = location.get_repositories().values()
    return location, repo, repo.get_full_job(job_name)


def submit(instance: DagsterInstance, request, job_name: str, job_id: str,
           tags: Mapping[str, str], run_config: Mapping[str, Any] | None = None) -> str:
    """Create the job's run of ``job_name`` on partition ``job_id`` (as ``dagster job launch``
    creates a run) and submit it to the instance's run coordinator; returns the run id."""
    from video_assets.partitions import JOBS_PARTITION_NAME

    if not instance.has_dynamic_partition(JOBS_PARTITION_NAME, job_id):
        instance.add_dynamic_partitions(JOBS_PARTITION_NAME, [job_id])
    location, repo, remote_job = _remote_job(request, job_name)
    run_config = dict(run_config or {})
    plan = location.get_execution_plan(remote_job, run_config, step_keys_to_execute=None,
                                       known_state=None, instance=instance)
    snapshot = plan.execution_plan_snapshot
    run = instance.create_run(
        job_name=job_name, run_id=None, run_config=run_config,
        resolved_op_selection=remote_job.resolved_op_selection,
        step_keys_to_execute=snapshot.step_keys_to_execute, op_selection=None, status=None,
        root_run_id=None, parent_run_id=None,
        tags={**remote_job.tags, **tags, "dagster/partition": job_id},
        job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(), asset_selection=None,
        asset_check_selection=None, asset_graph=repo.asset_graph)
    return instance.submit_run(run.run_id, request).run_id


def submit_retry(instance: DagsterInstance, request, parent: DagsterRun) -> str:
    """Submit a re-execution of ``parent`` from its failure (Dagster's ``FROM_FAILURE``: the
    steps that did not succeed, and those after them), with its tags; returns the run id."""
    from dagster._core.execution.plan.resume_retry import ReexecutionStrategy

    location, _, remote_job = _remote_job(request, parent.job_name)
    run = instance.create_reexecuted_run(
        request_context=request, parent_run=parent, code_location=location,
        remote_job=remote_job, strategy=ReexecutionStrategy.FROM_FAILURE,
        use_parent_run_tags=True)
    return instance.submit_run(run.run_id, request).run_id


def wait_for_runs(instance: DagsterInstance, run_ids: list[str], poll_s: float = 1.0,
                  timeout_s: float | None = None) -> dict[str, DagsterRun]:
    """Wait until every run has ended (or ``timeout_s``); returns the runs as they are then."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        runs = {run_id: instance.get_run_by_id(run_id) for run_id in run_ids}
        if all(r is not None and r.status in ENDED for r in runs.values()):
            return runs
        if deadline is not None and time.monotonic() > deadline:
            return runs
        time.sleep(poll_s)
