"""Many runs on the postgres profile, through Dagster's own engines: a real PostgreSQL server
(tests/postgres_server.py), ``dagster-daemon run`` (started by ``videogen dev --daemon``) with the
queued run coordinator and the default launcher (a process per run), the inbox sensor, the
loopback Replicate server (tests/fake_replicate.py), and a run worker killed with SIGKILL.

One scenario, measured once (it takes minutes): 12 short requests dropped into the inbox all end
``done``; never more runs at once than ``max_concurrent_runs``; never more predictions of one
model in flight than its bound (the per-model run limit x the run's own thread bound); every
paid prediction has exactly one ledger row; the killed run is failed by the daemon's dead-run
sensor and ``videogen retry`` completes it without paying again for anything that was generated,
following the prediction the killed worker left running instead of creating another.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import make_song, scoped_env
from tests.fake_replicate import FakeReplicate
from tests.postgres_server import (
    PASSWORD,
    postgres,  # noqa: F401 - the session's server fixture
)

pytestmark = pytest.mark.slow

TOKEN = "r8_queue_test_token"
SLOW_VIDEO = "minimax/hailuo-02"  # the killed job's video model: its predictions take 3 s
VIDEOGEN = str(Path(sys.executable).with_name("videogen"))
N_OFFLINE, N_REPLICATE = 9, 2  # and the target: 12 requests
DEADLINE_S = 600  # a loaded 2-core machine; about 4 minutes when idle


def request_yaml(prompt: str, audio: str, providers: str) -> str:
    return f"prompt: {prompt}\naudio: {audio}\nproviders: {providers}\n"


def drop_requests(inbox: Path) -> None:
    """The target first (the oldest file: its run is queued first), then the others."""
    inbox.mkdir(parents=True)
    make_song(inbox / "target.wav", 9.5, tempo_bpm=120.0)
    (inbox / "target.yaml").write_text(request_yaml(
        "a lighthouse keeper in a storm, the target", "target.wav",
        f"{{images: replicate, video: 'replicate:{SLOW_VIDEO}'}}"))
    for i in range(N_REPLICATE):
        make_song(inbox / f"paid{i}.wav", 2.5 + 0.1 * i, tempo_bpm=110.0 + 5 * i)
        (inbox / f"paid{i}.yaml").write_text(request_yaml(
            f"paid request number {i}, a kite over hills", f"paid{i}.wav",
            "{images: replicate, video: replicate}"))
    for i in range(N_OFFLINE):
        make_song(inbox / f"free{i}.wav", 2.0 + 0.15 * i, tempo_bpm=100.0 + 4 * i)
        (inbox / f"free{i}.yaml").write_text(request_yaml(
            f"offline request number {i}, a quiet harbour", f"free{i}.wav",
            "{images: offline, video: offline}"))


def input_digest(p: dict) -> str:
    return hashlib.sha256(json.dumps([p["model"], p["input"]], sort_keys=True).encode()).hexdigest()


def fetched_ids(fake: FakeReplicate) -> set[str]:
    """Predictions whose output file a worker has fetched (the outputs are /files/<id>.<ext>)."""
    with fake.lock:
        return {r["path"].rsplit("/", 1)[1].split(".")[0] for r in fake.requests
                if r["method"] == "GET" and r["path"].startswith("/files/")}


def max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.fixture()
def daemon_env(tmp_path: Path, postgres) -> Iterator[dict[str, str]]:  # noqa: F811
    """The environment of the postgres profile in a fresh DAGSTER_HOME and database, pointing
    the product at a loopback Replicate server."""
    fake = FakeReplicate(token=TOKEN, slow_models={SLOW_VIDEO}, finish_after_s=3.0)
    base = fake.start()
    (tmp_path / "tmp").mkdir()
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "VIDEO_ASSETS_PROFILE": "postgres",
           "TMPDIR": str(tmp_path / "tmp"),  # the runs' scratch folders: downloads are seen
           "DAGSTER_POSTGRES_URL": postgres.create_database("queue_test"),
           "REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": base,
           "VIDEO_ASSETS_ALLOW_LOOPBACK_HTTP": "1", "VIDEO_ASSETS_ALLOWED_MODELS": SLOW_VIDEO,
           "OPENAI_API_KEY": None, "VIDEO_ASSETS_BUCKET": None, "VIDEO_ASSETS_WAREHOUSE": None,
           "VIDEO_ASSETS_WAREHOUSE_STORE": None}
    env["fake"] = fake  # type: ignore[assignment]
    try:
        yield env
    finally:
        fake.stop()


def test_many_runs_through_the_queue_on_postgres(daemon_env, tmp_path):
    fake: FakeReplicate = daemon_env.pop("fake")  # type: ignore[assignment]
    home = Path(daemon_env["DAGSTER_HOME"])
    drop_requests(home / "inbox")
    child_env = {**{k: v for k, v in os.environ.items() if k not in daemon_env},
                 **{k: v for k, v in daemon_env.items() if v is not None}}
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen([VIDEOGEN, "dev", "--daemon"], env=child_env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    try:
        with scoped_env(daemon_env):
            _scenario(fake, home, child_env, started, tmp_path)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        log.close()


def _scenario(fake: FakeReplicate, home: Path, child_env: dict, started: float,
              tmp_path: Path) -> None:
    from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

    from video_assets.profiles import instance as profile_instance
    from video_assets.resources import PipelineSettings, WarehouseResource

    def left_s() -> float:
        return DEADLINE_S - (time.monotonic() - started)

    def daemon_log() -> str:
        return (tmp_path / "daemon.log").read_text(errors="replace")[-3000:]

    instance = profile_instance()
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"

    # 1. the target's run reaches its clips: kill its worker while a slow prediction is in flight
    target = None
    while target is None:
        assert left_s() > 0, f"the target's run never started\n{daemon_log()}"
        records = instance.get_run_records(RunsFilter(tags={"video_assets/source":
                                                            "inbox/target.yaml"}), limit=1)
        target = records[0].dagster_run if records else None
        time.sleep(0.5)
    kill_s, settled_since = None, None
    while kill_s is None:
        assert left_s() > 0, f"the target never reached its clips\n{daemon_log()}"
        slow = [p for p in list(fake.predictions.values()) if p["model"] == SLOW_VIDEO]
        got = fetched_ids(fake)
        fetched_at = [r for r in list(fake.requests) if r["method"] == "GET"
                      and r["path"].startswith("/files/")
                      and r["path"].rsplit("/", 1)[1].split(".")[0] in {p["id"] for p in slow}]
        in_flight = [p for p in slow if p["id"] not in got]
        # a fetched clip is cached once normalised (its raw download, in a scratch folder, is
        # then gone): kill while one prediction is in flight and every fetched one is cached
        normalising = any((tmp_path / "tmp").rglob("*.download.mp4"))
        ready = fetched_at and in_flight and not normalising
        settled_since = (settled_since or time.monotonic()) if ready else None
        if ready and time.monotonic() - settled_since > 1.0 and \
                instance.get_run_by_id(target.run_id).status == DagsterRunStatus.STARTED:
            pids = [r.event_log_entry.dagster_event.engine_event_data.metadata["pid"].value
                    for r in instance.get_records_for_run(
                        target.run_id, of_type=DagsterEventType.ENGINE_EVENT).records
                    if "pid" in (r.event_log_entry.dagster_event.engine_event_data.metadata or {})]
            os.kill(int(pids[0]), signal.SIGKILL)
            kill_s = time.time()
            orphans = {p["id"] for p in slow if p["id"] not in fetched_ids(fake)}
            generated = {input_digest(p) for p in fake.predictions.values()
                         if p["id"] in fetched_ids(fake)}
        time.sleep(0.05)

    # 2. the killed run is detected and marked failed
    while (run := instance.get_run_by_id(target.run_id)).status != DagsterRunStatus.FAILURE:
        assert left_s() > 0, f"the killed run was never marked failed ({run.status})\n{daemon_log()}"
        time.sleep(1)
    # the default launcher's worker is a child of the code server, which reports its death at
    # once; a worker it cannot see (another host, an in-process run) is failed by dead_run_sensor
    said = " ".join(e.message or "" for e in instance.all_logs(target.run_id))
    assert "terminated by signal 9 (SIGKILL)" in said or "is gone: killed or crashed" in said, \
        said[-2000:]
    job_id = target.tags["dagster/partition"]

    # 3. videogen retry: through the queue (a daemon runs), from where the run stopped
    retry = subprocess.run([VIDEOGEN, "retry", job_id, "--json"], env=child_env,
                           capture_output=True, text=True, timeout=max(30, left_s()))
    assert retry.returncode == 0, retry.stderr[-3000:]
    queued = json.loads((retry.stdout.strip().splitlines() or ["{}"])[-1])
    assert queued.get("status") == "queued", (retry.stdout[-2000:], retry.stderr[-3000:])
    while (run := instance.get_run_by_id(queued["run_id"])).status != DagsterRunStatus.SUCCESS:
        if left_s() < 0 or run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            others = [(r.dagster_run.run_id[:8], r.dagster_run.status.value,
                       {k: v for k, v in r.dagster_run.tags.items() if "model" in k or "parent" in k})
                      for r in instance.get_run_records()]
            logs = "".join(f.read_text(errors="replace")[-3000:] for f in
                           (home / "storage").glob(f"{run.run_id}/compute_logs/*.err"))
            slow = [(p["id"][:6], p["status"], p["_created_s"] - kill_s) for p in
                    fake.predictions.values() if p["model"] == SLOW_VIDEO]
            raise AssertionError(f"retry run {run.status}; runs: {others}\n{slow}\n{logs}")
        time.sleep(1)
    assert run.parent_run_id == target.run_id  # Dagster's re-execution of the killed run

    # 4. every request's job ends done, each with a successful run
    while True:
        runs = [r for r in instance.get_run_records() if r.dagster_run.tags.get("dagster/partition")]
        done_jobs = {r.dagster_run.tags["dagster/partition"] for r in runs
                     if r.dagster_run.status == DagsterRunStatus.SUCCESS}
        if len(done_jobs) == 1 + N_REPLICATE + N_OFFLINE:
            break
        assert left_s() > 0, f"{len(done_jobs)} of 12 jobs done\n{daemon_log()}"
        time.sleep(2)
    warehouse = WarehouseResource().get()
    with warehouse.connect(read_only=True) as con:
        statuses = dict(con.execute("SELECT job_id, status FROM jobs").fetchall())
        paid_rows = con.execute("SELECT count(*) FROM provider_calls WHERE provider = 'replicate' "
                                "AND NOT cache_hit").fetchone()[0]
    retry_paid, _ = warehouse.calls_since(job_id, datetime.fromtimestamp(kill_s, UTC))
    assert {j: statuses.get(j) for j in done_jobs} == {j: "done" for j in done_jobs}

    # never more runs at once than the queue allows (from the runs' own start and end times)
    spans = [(r.start_time, r.end_time) for r in runs if r.start_time and r.end_time]
    limit = instance.run_coordinator.get_run_queue_config().max_concurrent_runs
    most_runs = max_overlap(spans)
    assert most_runs <= limit
    assert most_runs == limit  # the queue ran jobs side by side: the bound was what held them

    # never more predictions of a model in flight than its bound
    settings = PipelineSettings()
    per_run = min(settings.clip_workers, settings.provider_concurrency)
    in_flight = fake.max_in_flight()
    assert set(in_flight) == {"black-forest-labs/flux-schnell", "kwaivgi/kling-v2.1", SLOW_VIDEO}
    assert max(in_flight.values()) <= 1 * per_run, in_flight  # 1 run at a time per model

    # no ledger row lost or doubled: one paid row per prediction; the killed worker's prediction
    # in flight is followed by the retry (its id was kept when it was created), which writes its row
    created = len(fake.predictions)
    assert orphans and paid_rows == created, (paid_rows, created, orphans)

    # the retry paid nothing again: no prediction repeats one whose output was fetched
    after = [p for p in fake.predictions.values() if p["_created_s"] > kill_s]
    again = [(p["model"], str(p["input"].get("prompt"))[:60], round(p["_created_s"] - kill_s, 1))
             for p in after if input_digest(p) in generated]
    before = [(p["model"], str(p["input"].get("prompt"))[:60], round(p["_created_s"] - kill_s, 1),
               p["status"]) for p in fake.predictions.values()
              if input_digest(p) in {input_digest(q) for q in after} and p["_created_s"] <= kill_s]
    assert not again, (again, before)
    orphaned = {input_digest(fake.predictions[pid]) for pid in orphans}
    assert not [p for p in after if input_digest(p) in orphaned]  # followed, not created again
    assert retry_paid == len([p for p in after if p["model"] == SLOW_VIDEO]) + len(orphans) >= 1

    # the database password never reached a log or a file: not the daemon's output, not the
    # runs' logs, not the instance config, media or warehouse
    password = PASSWORD.encode()
    assert password not in (tmp_path / "daemon.log").read_bytes()
    leaked = [f for f in home.rglob("*") if f.is_file() and password in f.read_bytes()]
    assert not leaked

    print(f"\nqueue on postgres: max runs at once {most_runs} (limit {limit}); max in flight per "
          f"model {in_flight} (bound {per_run}); paid ledger rows {paid_rows} of {created} "
          f"predictions ({len(orphans)} left running by the kill, followed by the retry); "
          f"retry paid calls {retry_paid}; "
          f"{time.monotonic() - started:.0f} s")


def test_retry_without_a_daemon_runs_the_unfinished_stages_in_process(home, tmp_path, capsys):
    """No daemon: ``videogen retry`` runs, in this process, the stages the failed run did not
    finish; the storyboard's paid images are not made (or paid) again."""
    from dagster import DagsterEventType, DagsterInstance, RunsFilter

    from tests.fake_replicate import serving
    from video_assets.cli import main

    song = make_song(tmp_path / "retry song.wav", 9.5, tempo_bpm=118.0)
    with serving(FakeReplicate(token=TOKEN, failing_models={"kwaivgi/kling-v2.1"}),
                 OPENAI_API_KEY=None) as fake:
        code = main(["render", "--audio", str(song), "--prompt", "a retried render of a kite",
                     "--images", "replicate", "--video", "replicate", "--json"])
        failed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 1 and failed["failed_stage"] == "clips", failed
        images_before = len(fake.succeeded("image"))
        fake.failing_models.clear()  # the video model works again
        code = main(["retry", failed["job_id"], "--json"])
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 0 and summary["status"] == "done", summary
        assert len(fake.succeeded("image")) == images_before >= 3  # no image made again
    instance = DagsterInstance.get()
    retry_run = instance.get_run_records(RunsFilter(run_ids=[summary["run_id"]]))[0].dagster_run
    assert retry_run.tags["video_assets/retry_of"] == failed["run_id"]
    steps = {r.event_log_entry.step_key for r in instance.get_records_for_run(
        summary["run_id"], of_type=DagsterEventType.STEP_START).records}
    assert steps == {"clips", "final_video"}  # what the failed run had not finished


def test_ingest_with_a_daemon_queues_its_runs_and_the_sensor_runs_none_again(tmp_path):
    """Local profile, ``videogen dev --daemon``: ``ingest --once --wait`` submits the request's run
    to the queue (the daemon launches it) and waits for it; the daemon's inbox sensor, seeing the
    same file on its next tick, does not run it a second time."""
    from dagster import DagsterInstance

    from tests.conftest import REPO

    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    (home / "dagster.yaml").write_bytes((REPO / "dagster_home" / "dagster.yaml").read_bytes())
    env = {**os.environ, "DAGSTER_HOME": str(home), "VIDEO_ASSETS_PROFILE": "local"}
    for name in ("DAGSTER_POSTGRES_URL", "VIDEO_ASSETS_BUCKET", "REPLICATE_API_TOKEN",
                 "OPENAI_API_KEY", "VIDEO_ASSETS_WAREHOUSE", "VIDEO_ASSETS_WAREHOUSE_STORE"):
        env.pop(name, None)
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen([VIDEOGEN, "dev", "--daemon"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        tick = "Checking for new runs for sensor: inbox_sensor"
        deadline = time.monotonic() + 180
        while log_path.read_text(errors="replace").count(tick) < 1:  # after its first tick
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        make_song(home / "inbox" / "kite.wav", 2.5)
        (home / "inbox" / "kite.yaml").write_text(request_yaml(
            "an ingested kite", "kite.wav", "{images: offline, video: offline}"))
        ingest = subprocess.run([VIDEOGEN, "ingest", "--once", "--wait", "--json"], env=env,
                                capture_output=True, text=True, timeout=300)
        assert ingest.returncode == 0, ingest.stderr[-3000:]
        ended = json.loads(ingest.stdout.strip().splitlines()[-1])
        assert ended["status"] == "success" and "queued" in ingest.stderr
        seen = log_path.read_text(errors="replace").count(tick)
        while log_path.read_text(errors="replace").count(tick) < seen + 1:  # one more tick
            assert time.monotonic() < deadline + 300
            time.sleep(0.5)
        time.sleep(2)
        with scoped_env({"DAGSTER_HOME": str(home)}):
            runs = DagsterInstance.get().get_runs()
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(30)
    assert [r.run_id for r in runs] == [ended["run_id"]]  # the sensor ran nothing again
