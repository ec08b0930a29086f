"""Dead runs leave nothing behind: a render killed with SIGKILL is marked failed and its slot in the
``providers`` pool is freed; a step waiting for a pool slot sleeps and obeys SIGTERM.

Every render here is a real ``videogen render`` process against its own DAGSTER_HOME (a pool limit
must not leak into other tests' instance)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO, make_song
from tests.fake_replicate import FakeReplicate

POOL = "providers"
VIDEO = "kwaivgi/kling-v2.1"
TOKEN = "r8_dead_run_test_token"
VIDEOGEN = str(Path(sys.executable).with_name("videogen"))


@pytest.fixture()
def own_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME of this test's own, with the committed instance config."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    return home


@pytest.fixture()
def stuck_replicate() -> Iterator[FakeReplicate]:
    """A Replicate whose video predictions never finish: a render sits in its clip stage."""
    server = FakeReplicate(token=TOKEN, stuck_models={VIDEO})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def instance_at(home: Path):
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(home))


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "REPLICATE_API_TOKEN", "VIDEO_ASSETS_BUCKET",
                        "VIDEO_ASSETS_WAREHOUSE")}
    return {**env, "DAGSTER_HOME": str(home), **extra}


def start_render(home: Path, song: Path, *extra: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [VIDEOGEN, "render", "--audio", str(song), "--prompt", "lanterns drifting over a dark lake",
         "--aspect", "1:1", "--json", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)


def latest_run(instance):
    runs = instance.get_runs(limit=1)
    return runs[0] if runs else None


def wait_for_event(instance, proc: subprocess.Popen, event_type, step_key: str,
                   timeout_s: float) -> object:
    """Poll the event log until the newest run has ``event_type`` for ``step_key``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
        run = latest_run(instance)
        if run is not None:
            records = instance.get_records_for_run(run.run_id, of_type=event_type).records
            if any(r.event_log_entry.step_key == step_key for r in records):
                return run
        time.sleep(0.2)
    raise AssertionError(f"no {event_type} for {step_key} within {timeout_s} s")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def job_row(home: Path, job_id: str) -> tuple:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("SELECT status, failed_stage FROM jobs WHERE job_id = ?",
                           [job_id]).fetchone()
    finally:
        con.close()


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_a_render_killed_in_its_clip_stage_is_failed_and_frees_the_pool_for_the_next(
        own_home: Path, stuck_replicate: FakeReplicate, tmp_path: Path):
    from dagster import DagsterEventType, DagsterRunStatus

    instance = instance_at(own_home)
    instance.event_log_storage.set_concurrency_slots(POOL, 1)  # dagster instance concurrency set
    first = start_render(
        own_home, make_song(tmp_path / "first.wav", 10.0, tempo_bpm=120.0),
        "--images", "offline", "--video", f"replicate:{VIDEO}",
        env=env_for(own_home, REPLICATE_API_TOKEN=TOKEN,
                    REPLICATE_BASE_URL=stuck_replicate.base_url))
    second = None
    try:
        killed = wait_for_event(instance, first, DagsterEventType.STEP_START, "clips", 120)
        deadline = time.monotonic() + 60
        while not stuck_replicate.created:  # a paid prediction is in flight
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.1)
        os.killpg(first.pid, signal.SIGKILL)  # as a crash, the OOM killer or a lost machine would
        first.wait()
        assert instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.STARTED
        assert instance.event_log_storage.get_concurrency_info(POOL).claimed_slots  # jammed

        second = start_render(own_home, make_song(tmp_path / "second.wav", 9.0, tempo_bpm=100.0),
                              "--images", "offline", "--video", "offline", env=env_for(own_home))
        try:
            output, _ = second.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            pytest.fail("the next render hung: the killed run's slot in the providers pool was "
                        "never freed")
        assert second.returncode == 0, output.decode(errors="replace")[-3000:]
        assert f"run {killed.run_id} (job " in output.decode()  # the sweep before it said so

        dead = instance.get_run_by_id(killed.run_id)
        assert dead.status == DagsterRunStatus.FAILURE
        assert job_row(own_home, dead.tags["dagster/partition"]) == ("failed", "clips")
        info = instance.event_log_storage.get_concurrency_info(POOL)
        assert not info.claimed_slots and not info.pending_steps
    finally:
        kill_group(first)
        if second is not None:
            kill_group(second)


@pytest.mark.slow
def test_a_step_blocked_on_the_pool_sleeps_and_stops_on_sigterm(own_home: Path, tmp_path: Path):
    from dagster import DagsterEventType, DagsterRunStatus

    instance = instance_at(own_home)
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    # the pool's one slot is held by a live run elsewhere (a claim the sweep must leave alone)
    assert instance.event_log_storage.claim_concurrency_slot(POOL, "holder-run", "clips").is_claimed
    proc = start_render(own_home, make_song(tmp_path / "blocked.wav", 9.0, tempo_bpm=110.0),
                        "--images", "offline", "--video", "offline", env=env_for(own_home))
    try:
        run = wait_for_event(instance, proc, DagsterEventType.ENGINE_EVENT, "storyboard", 120)
        assert instance.event_log_storage.get_concurrency_info(POOL).pending_run_ids == {run.run_id}
        time.sleep(1.0)
        before_s, t0 = cpu_s(proc.pid), time.monotonic()
        time.sleep(4.0)
        used_s, waited_s = cpu_s(proc.pid) - before_s, time.monotonic() - t0
        assert used_s < 0.25 * waited_s, f"the wait burnt {used_s:.2f} CPU s in {waited_s:.1f} s"

        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM did not stop a render waiting for a pool slot within 10 s")
        assert proc.returncode != 0
        assert instance.get_run_by_id(run.run_id).status in (DagsterRunStatus.FAILURE,
                                                             DagsterRunStatus.CANCELED)
        info = instance.event_log_storage.get_concurrency_info(POOL)
        assert {s.run_id for s in info.claimed_slots} == {"holder-run"}
        assert {s.run_id for s in info.pending_steps} == {"holder-run"}  # its wait was withdrawn
    finally:
        kill_group(proc)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def started_run(instance, job_id: str, tags: dict[str, str], step_key: str = "clips"):
    """A STARTED render run of ``job_id`` in a real instance, in ``step_key``, holding a slot."""
    from dagster import DagsterEvent, DagsterEventType, DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    run = create_run_for_test(instance, job_name="render_job", status=DagsterRunStatus.STARTED,
                              tags={"dagster/partition": job_id, **tags})
    instance.report_dagster_event(DagsterEvent(DagsterEventType.STEP_START.value, "render_job",
                                               step_key=step_key), run.run_id)
    assert instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, step_key).is_claimed
    return run


def evaluate_sensor(home: Path, instance) -> None:
    from dagster import build_sensor_context

    from tests.conftest import scoped_env
    from video_assets.monitor import dead_run_sensor
    from video_assets.resources import WarehouseResource

    with scoped_env({"DAGSTER_HOME": str(home), "VIDEO_ASSETS_WAREHOUSE": None}):
        warehouse = WarehouseResource()
        warehouse.get().upsert_job("a-job", status="running")
        with build_sensor_context(instance=instance, resources={"warehouse": warehouse}) as ctx:
            dead_run_sensor(ctx)


def test_the_sensor_fails_a_run_whose_worker_is_gone_names_the_stage_and_frees_its_slot(
        own_home: Path):
    from dagster import DagsterRunStatus

    from video_assets.monitor import worker_tags

    instance = instance_at(own_home)
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    run = started_run(instance, "a-job", {**worker_tags(), "video_assets/worker_pid": str(dead_pid())})
    evaluate_sensor(own_home, instance)
    failed = instance.get_run_by_id(run.run_id)
    assert failed.status == DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info(POOL).claimed_slots
    assert job_row(own_home, "a-job") == ("failed", "clips")


def test_the_sensor_leaves_a_live_worker_and_a_beating_remote_one_alone(own_home: Path):
    from dagster import DagsterRunStatus

    from video_assets.monitor import worker_tags

    instance = instance_at(own_home)
    instance.event_log_storage.set_concurrency_slots(POOL, 2)
    here = started_run(instance, "a-job", worker_tags())  # this very process: alive
    remote = started_run(instance, "b-job", {**worker_tags(), "video_assets/worker_host": "other",
                                             "video_assets/worker_pid": str(dead_pid())})
    evaluate_sensor(own_home, instance)
    for run in (here, remote):
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
    assert len(instance.event_log_storage.get_concurrency_info(POOL).claimed_slots) == 2
    assert job_row(own_home, "a-job") == ("running", None)


def test_a_remote_worker_silent_for_longer_than_the_heartbeat_limit_is_gone():
    from video_assets.monitor import HEARTBEAT_STALE_S, Worker, worker_gone

    now_s = time.time()
    beating = Worker("other-host", 4242, now_s - HEARTBEAT_STALE_S + 5)
    silent = Worker("other-host", 4242, now_s - HEARTBEAT_STALE_S - 5)
    assert worker_gone(beating, now_s - 600, now_s, "this-host") is None
    assert "no heartbeat" in worker_gone(silent, now_s - 600, now_s, "this-host")


def test_a_pid_taken_by_a_process_started_after_the_run_is_not_its_worker():
    from video_assets.monitor import Worker, worker_gone

    now_s, host = time.time(), "this-host"
    me = Worker(host, os.getpid(), None)
    assert worker_gone(me, now_s, now_s, host) is None  # started before the run: the worker
    assert "is gone" in worker_gone(me, now_s - 10 * 24 * 3600, now_s, host)  # a reused pid


def test_the_sensor_fails_a_daemon_launched_run_whose_worker_is_gone(own_home: Path):
    """Runs the daemon launches (default launcher, a local code server) carry no worker tags; the
    pid their worker logged when it started is checked instead."""
    import json

    from dagster import DagsterRunStatus
    from dagster._core.events import EngineEventData
    from dagster._core.storage.tags import GRPC_INFO_TAG

    instance = instance_at(own_home)
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    pid = dead_pid()
    run = started_run(instance, "a-job", {GRPC_INFO_TAG: json.dumps({"host": "localhost",
                                                                     "port": 4266})})
    instance.report_engine_event(f"Started process for run (pid: {pid}).", run,
                                 EngineEventData.in_process(pid))
    evaluate_sensor(own_home, instance)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info(POOL).claimed_slots


def test_the_sensor_leaves_a_live_daemon_launched_worker_alone(own_home: Path):
    """A launched worker starts after its run was created (queued, then started): it is judged
    by when it logged its pid, not by the run's creation."""
    import json
    import subprocess

    from dagster import DagsterRunStatus
    from dagster._core.events import EngineEventData
    from dagster._core.storage.tags import GRPC_INFO_TAG

    instance = instance_at(own_home)
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    run = started_run(instance, "a-job", {GRPC_INFO_TAG: json.dumps({"host": "localhost",
                                                                     "port": 4266})})
    time.sleep(2.5)  # the run waited in the queue
    worker = subprocess.Popen(["sleep", "60"])
    try:
        instance.report_engine_event(f"Started process for run (pid: {worker.pid}).", run,
                                     EngineEventData.in_process(worker.pid))
        evaluate_sensor(own_home, instance)
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
    finally:
        worker.kill()
        worker.wait()


def test_the_sweep_frees_slots_still_held_by_finished_runs(own_home: Path):
    from dagster import DagsterRunStatus

    instance = instance_at(own_home)
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    run = started_run(instance, "a-job", {})  # no worker to judge: left running
    evaluate_sensor(own_home, instance)
    assert instance.event_log_storage.get_concurrency_info(POOL).claimed_slots
    instance.report_run_failed(run, "failed from the UI")  # finished, but its slot is still taken
    record = instance.get_run_record_by_id(run.run_id)
    assert record.dagster_run.status == DagsterRunStatus.FAILURE
    from video_assets.monitor import free_slots_of_finished_runs

    assert free_slots_of_finished_runs(instance, record.end_time + 60) == 1
    assert not instance.event_log_storage.get_concurrency_info(POOL).claimed_slots


def test_a_running_worker_rewrites_its_heartbeat(own_home: Path):
    from dagster._core.test_utils import create_run_for_test

    from video_assets.monitor import TAG_HEARTBEAT, heartbeat, worker_tags

    instance = instance_at(own_home)
    run = create_run_for_test(instance, job_name="render_job", tags=worker_tags(now_s=1000.0))
    with heartbeat(instance, run.run_id, every_s=0.1):
        deadline = time.monotonic() + 10
        while instance.get_run_by_id(run.run_id).tags[TAG_HEARTBEAT] == "1000":
            assert time.monotonic() < deadline, "no heartbeat in 10 s"
            time.sleep(0.1)
    assert float(instance.get_run_by_id(run.run_id).tags[TAG_HEARTBEAT]) > time.time() - 60


def test_a_run_failed_from_outside_names_the_stage_it_was_in(own_home: Path):
    """A run failed with no STEP_FAILURE (its code server saw the worker die) is marked failed
    in the stage that started and never ended, not ``unknown``."""
    from dagster import DagsterEventType, DagsterRunStatus, build_run_status_sensor_context

    from tests.conftest import scoped_env
    from video_assets.resources import StoreResource, WarehouseResource
    from video_assets.sensors import job_failure_sensor

    instance = instance_at(own_home)
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    run = started_run(instance, "a-job", {}, step_key="final_video")
    instance.report_run_failed(run, "the run worker died")  # as the code server reports it
    failed = instance.get_run_by_id(run.run_id)
    assert failed.status == DagsterRunStatus.FAILURE
    event = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.RUN_FAILURE).records[0].event_log_entry.dagster_event
    with scoped_env({"DAGSTER_HOME": str(own_home), "VIDEO_ASSETS_WAREHOUSE": None}):
        WarehouseResource().get().upsert_job("a-job", status="running")
        context = build_run_status_sensor_context(
            sensor_name="job_failure_sensor", dagster_event=event, dagster_instance=instance,
            dagster_run=failed, resources={"warehouse": WarehouseResource(),
                                           "store": StoreResource()},
        ).for_run_failure()
        job_failure_sensor(context)
    assert job_row(own_home, "a-job") == ("failed", "final_video")
