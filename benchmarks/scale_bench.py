"""Running at scale: jobs through Dagster's run queue against ``render`` one after another, and
the per-run orchestration overhead of the instance's storage (PostgreSQL against SQLite).

queue throughput: ``n_jobs`` offline jobs of ``song_s`` seconds each, rendered one after another
with ``videogen render`` (a fresh process each, as a user runs them), then the same songs and
prompts, in a new instance, dropped into the inbox and submitted by ``videogen ingest --once
--wait`` to a running ``dagster-daemon`` (``videogen dev --daemon``) with the QueuedRunCoordinator
(``max_concurrent_runs = concurrent``) and the default run launcher (a process per run), on the
local profile (SQLite instance, DuckDB warehouse) or, with ``profile="postgres"``, on the postgres
profile (both sides, on a server of ``tests/postgres_server.py``). The inbox sensor is stopped
first, so ingest is the only submitter. The daemon's start is not timed (a deployment has one
running). The queued side runs in a child process (``python -m benchmarks.scale_bench queued
...``) that is the subreaper of everything it starts, so no process's CPU escapes the count.

orchestration overhead: ``orchestration_bench.dagster_child`` (the render graph with trivial stage
bodies, executed in process as ``render`` runs it) on a SQLite instance and on a PostgreSQL one
(a server started by ``tests/postgres_server.py``; its row is skipped, with the reason, where no
PostgreSQL binaries exist). The bodies do nothing, so a run's wall time is its overhead.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import PYTHON, REPO, Result, Target, load_average, log, run_child

VIDEOGEN = str(Path(PYTHON).with_name("videogen"))
DAGSTER = str(Path(PYTHON).with_name("dagster"))
WORKSPACE = REPO / "workspace.yaml"
PR_SET_CHILD_SUBREAPER = 36  # prctl(2)
SECRETS = ("OPENAI_API_KEY", "REPLICATE_API_TOKEN", "DAGSTER_POSTGRES_URL")


def n_cores() -> int:
    return len(os.sched_getaffinity(0))


def offline_env(home: Path, numba_dir: Path) -> dict[str, str]:
    """``e2e_bench.bench_env`` (no product or AWS settings) without provider keys: offline."""
    from benchmarks.e2e_bench import bench_env

    env = bench_env(home, numba_dir)
    for name in SECRETS:
        env.pop(name, None)
    return env


def new_home(folder: Path, max_concurrent_runs: int, postgres: bool = False) -> Path:
    """A new instance folder with the committed dagster.yaml, its queue's run limit set; for the
    postgres profile an empty one (``profiles.prepare_home`` writes the profile's dagster.yaml,
    whose limit is 2)."""
    import yaml

    home = folder / "dagster_home"
    home.mkdir(parents=True)
    if postgres:
        if max_concurrent_runs != 2:
            raise ValueError(f"concurrent={max_concurrent_runs}: the postgres profile's run limit "
                             "is deploy/postgres/dagster.yaml's max_concurrent_runs (2); fix: "
                             "concurrent=2, or the local profile")
        return home
    config = yaml.safe_load((REPO / "dagster_home" / "dagster.yaml").read_text())
    config["run_queue"]["max_concurrent_runs"] = max_concurrent_runs
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home


def jobs(folder: Path, n_jobs: int, song_s: float) -> list[tuple[Path, str]]:
    """``n_jobs`` songs (each its own tempo) and prompts: the same work for both sides."""
    from benchmarks.e2e_bench import PROMPTS, make_song

    folder.mkdir(parents=True, exist_ok=True)
    return [(make_song(folder / f"song{i:02d}.wav", song_s, tempo_bpm=96.0 + 6 * i),
             f"{PROMPTS[i % len(PROMPTS)]}, take {i + 1}") for i in range(n_jobs)]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in edges:  # at equal times an end is counted before a start
        now += step
        most = max(most, now)
    return most


# ---------------------------------------------------------------------------------------------
# the queued side, in a child process that reaps everything it starts


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of the live processes under ``pid`` and of every process
    they have reaped."""
    import psutil

    total = 0.0
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    return total


def process_cpu_s(pid: int) -> float:
    """CPU seconds of the process ``pid`` itself, of the live processes under it and of every
    process they reaped (a PostgreSQL server: the postmaster and its backends, ended or not)."""
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system + t.children_user + t.children_system + tree_cpu_s(pid)


def listening_pid(port: int) -> int:
    """The process listening on the loopback TCP ``port`` (the PostgreSQL server's postmaster)."""
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return conn.pid
    raise RuntimeError(f"no process listens on port {port}")


def reaped_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def reap_orphans() -> None:
    """Reap every child that has ended (orphans reparented to this subreaper among them)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def cpu_now() -> float:
    """CPU seconds of everything this process started, alive or reaped (not its own)."""
    reap_orphans()
    return tree_cpu_s(os.getpid()) + reaped_cpu_s()


def wait_for_daemon(home: Path, daemon: subprocess.Popen, timeout_s: float = 180) -> None:
    from dagster import DagsterInstance

    from video_assets.run_queue import daemon_alive

    with DagsterInstance.from_config(str(home)) as instance:
        ends = time.monotonic() + timeout_s
        while not daemon_alive(instance):
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited ({daemon.returncode}) before its first "
                                   f"heartbeat; see {home.parent / 'daemon.log'}")
            if time.monotonic() > ends:
                raise RuntimeError(f"no daemon heartbeat within {timeout_s:g} s")
            time.sleep(0.5)


def run_spans(home: Path) -> list[dict]:
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        return [{"run_id": r.dagster_run.run_id, "status": r.dagster_run.status.value,
                 "start": r.start_time, "end": r.end_time}
                for r in instance.get_run_records()]


def queued_child(folder: Path, n_jobs: int, server_pid: int | None = None) -> dict:
    """Start the daemon over ``$DAGSTER_HOME`` (``folder/dagster_home``; the environment, the
    profile's among it, is the bench's), then time ``ingest --once --wait`` of the requests in
    ``folder/requests`` and count the CPU of every process involved (``server_cpu_s``: the
    PostgreSQL server's, its postmaster ``server_pid``, in the same window)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    from video_assets.profiles import prepare_home

    home = prepare_home()  # the environment is the bench's: DAGSTER_HOME, the profile
    env = dict(os.environ)
    stop = run_child([DAGSTER, "sensor", "stop", "inbox_sensor", "-w", str(WORKSPACE)], env=env,
                     cwd=folder)
    started = time.perf_counter()
    with open(folder / "daemon.log", "wb") as daemon_log:
        daemon = subprocess.Popen([VIDEOGEN, "dev", "--daemon"], env=env, cwd=folder,
                                  stdout=daemon_log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_daemon(home, daemon)
            daemon_start_s = time.perf_counter() - started
            shutil.copytree(folder / "requests", home / "inbox")
            server0 = 0.0 if server_pid is None else process_cpu_s(server_pid)
            cpu0, load0 = cpu_now(), load_average()
            t0, t0_epoch = time.perf_counter(), time.time()
            ingest = subprocess.run([VIDEOGEN, "ingest", "--once", "--wait", "--grace-s", "0",
                                     "--json"], env=env, cwd=folder, capture_output=True,
                                    text=True, stdin=subprocess.DEVNULL)
            wall_s = time.perf_counter() - t0
            cpu_s = cpu_now() - cpu0
            server_s = 0.0 if server_pid is None else process_cpu_s(server_pid) - server0
            load1 = load_average()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
    if ingest.returncode != 0:
        raise RuntimeError(f"videogen ingest exited {ingest.returncode}: {ingest.stderr[-2000:]}")
    ended = [json.loads(line) for line in ingest.stdout.splitlines() if line.startswith("{")]
    queued = sum(line.endswith(" queued") for line in ingest.stderr.splitlines())
    spans = run_spans(home)
    timed = [s for s in spans if s["start"] and s["end"]]
    return {"wall_s": round(wall_s, 2), "cpu_s": round(cpu_s + server_s, 1),
            "server_cpu_s": round(server_s, 1), "n_runs": len(spans),
            # ingest's start to the first run's start (loading the code location, staging the
            # requests, submitting, the daemon dequeuing and launching), and the last run's end
            # to ingest's return
            "to_first_run_start_s": round(min(s["start"] for s in timed) - t0_epoch, 1)
            if timed else None,
            "after_last_run_end_s": round(t0_epoch + wall_s - max(s["end"] for s in timed), 1)
            if timed else None,
            "statuses": sorted({e["status"] for e in ended}), "queued_by_ingest": queued,
            "max_runs_at_once": max_overlap([(s["start"], s["end"]) for s in timed]),
            "run_s": sorted(round(s["end"] - s["start"], 1) for s in timed),
            "daemon_start_s": round(daemon_start_s, 1), "sensor_stop_s": round(stop.wall_s, 1),
            "load_average_before": load0, "load_average_after": load1}


# ---------------------------------------------------------------------------------------------
# queue throughput


def queue_throughput(work: Path, n_jobs: int = 8, song_s: float = 20.0,
                     concurrent: int = 2, profile: str = "local") -> Result:
    """Wall time of ``n_jobs`` offline jobs rendered one after another with ``videogen render``,
    over their wall time through the run queue with ``concurrent`` runs at once (see the module
    docstring); the CPU of both. ``profile``: ``local`` (SQLite) or ``postgres`` (both sides on
    a server of ``tests/postgres_server.py``, a database each). Target: ratio >= 1.0."""
    if profile not in ("local", "postgres"):
        raise ValueError(f"profile={profile!r}; fix: local or postgres")
    if profile == "local":
        return _queue_throughput(work, n_jobs, song_s, concurrent, None)
    server, note = postgres_url()
    if server is None:
        return Result("queue_throughput_postgres", error=f"skipped: {note}")
    with server as pg:
        return _queue_throughput(work, n_jobs, song_s, concurrent, pg)


def _queue_throughput(work: Path, n_jobs: int, song_s: float, concurrent: int, pg) -> Result:
    from benchmarks.e2e_bench import render

    def instance_env(folder: Path) -> dict[str, str]:
        """A new instance in ``folder`` and the environment to run ``videogen`` in over it."""
        env = offline_env(new_home(folder, concurrent, postgres=pg is not None), numba_dir)
        if pg is not None:
            env.update(VIDEO_ASSETS_PROFILE="postgres",
                       DAGSTER_POSTGRES_URL=pg.create_database(f"scale_bench_{folder.name}"))
        return env

    name = "queue_throughput" if pg is None else "queue_throughput_postgres"
    folder = work / name
    if folder.exists():
        shutil.rmtree(folder)
    todo = jobs(folder / "songs", n_jobs, song_s)
    numba_dir = folder / "numba_cache"
    cores = n_cores()

    log(f"queue: warm-up render (numba cache) of a {min(song_s, 6.0):g} s song")
    warm = jobs(folder / "warm", 1, min(song_s, 6.0))[0]
    render(warm[0], "warm-up " + warm[1], instance_env(folder / "warm"))

    log(f"queue: {n_jobs} x {song_s:g} s jobs, `videogen render` one after another")
    env = instance_env(folder / "sequential")
    load0 = load_average()
    server_pid = None if pg is None else listening_pid(pg.port)
    server0 = 0.0 if server_pid is None else process_cpu_s(server_pid)
    per_job_s, seq_cpu_s = [], 0.0
    t0 = time.perf_counter()
    for song, prompt in todo:
        wall_s, summary = render(song, prompt, env)
        per_job_s.append(round(wall_s, 1))
        seq_cpu_s += summary["cpu_s"]
    seq_wall_s = time.perf_counter() - t0
    server_s = 0.0 if server_pid is None else process_cpu_s(server_pid) - server0
    seq_cpu_s += server_s
    seq = {"wall_s": round(seq_wall_s, 2), "cpu_s": round(seq_cpu_s, 1),
           "server_cpu_s": round(server_s, 1),
           "cpu_utilisation": round(seq_cpu_s / (seq_wall_s * cores), 3), "job_s": per_job_s,
           "load_average_before": load0, "load_average_after": load_average()}
    log(f"queue: sequential {seq_wall_s:.1f} s, CPU {seq_cpu_s:.0f} s")

    log(f"queue: the same {n_jobs} jobs through the run queue ({concurrent} runs at once)")
    qfolder = folder / "queued"
    env = instance_env(qfolder)
    requests = qfolder / "requests"
    requests.mkdir()
    for i, (song, prompt) in enumerate(todo):
        shutil.copy(song, requests / song.name)
        (requests / f"job{i:02d}.yaml").write_text(
            json.dumps({"prompt": prompt, "audio": song.name}) + "\n")  # JSON is YAML
    run = run_child([PYTHON, "-m", "benchmarks.scale_bench", "queued", str(qfolder), str(n_jobs),
                     *([] if server_pid is None else [str(server_pid)])], env=env, cwd=REPO)
    queued = json.loads(run.stdout.strip().splitlines()[-1])
    queued["cpu_utilisation"] = round(queued["cpu_s"] / (queued["wall_s"] * cores), 3)
    if queued["statuses"] != ["success"] or queued["n_runs"] != n_jobs \
            or queued["queued_by_ingest"] != n_jobs:
        raise RuntimeError(f"queued runs: {queued['n_runs']} runs, statuses {queued['statuses']} "
                           f"(wanted {n_jobs}, all success); see {qfolder / 'daemon.log'}")
    ratio = seq_wall_s / queued["wall_s"]
    log(f"queue: queued {queued['wall_s']:.1f} s, CPU {queued['cpu_s']:.0f} s; "
        f"ratio {ratio:.2f}; at most {queued['max_runs_at_once']} runs at once")
    result = Result(name, figures={
        "n_jobs": n_jobs, "song_s": song_s, "max_concurrent_runs": concurrent, "n_cores": cores,
        "profile": "local (SQLite instance, DuckDB warehouse)" if pg is None else
        "postgres (instance in PostgreSQL on loopback, Parquet warehouse in the media store)",
        "sequential": seq, "queued": queued, "ratio": round(ratio, 3),
        "cpu_ratio_queued_over_sequential": round(queued["cpu_s"] / seq_cpu_s, 3),
    }, method=(
        f"{n_jobs} offline jobs ({song_s:g} s songs, each its own tempo and prompt): sequential = "
        "`videogen render --json` one after another, each a fresh process, in a new instance; "
        "queued = the same requests in a new instance's inbox, submitted by `videogen ingest "
        "--once --wait` to a running `dagster-daemon` (videogen dev --daemon; QueuedRunCoordinator, "
        f"max_concurrent_runs={concurrent}, default launcher: a process per run; inbox sensor "
        "stopped), timed from ingest's start to its return (every run ended); the daemon's "
        "start is not timed. ratio = sequential wall / queued wall. cpu_s = user + system "
        "seconds of every process started (render and its ffmpeg; ingest, the daemon, code "
        "servers, run workers and their ffmpeg, counted through a subreaper; on postgres also "
        "the PostgreSQL server's postmaster and backends: server_cpu_s) within the timed "
        "window; cpu_utilisation = cpu_s / (wall_s x cores). A warm-up render fills the numba "
        "cache first."))
    result.targets = [Target.at_least(
        f"{name}_ratio", 1.0, ratio,
        why_missed=(f"the queued runs used {queued['cpu_s']:.0f} CPU-s against "
                    f"{seq_cpu_s:.0f} for the renders (a process per run: Python start-up, "
                    "imports, its code server) and the machine had "
                    f"{cores} cores for 2 runs whose compose already uses two"))]
    return result


# ---------------------------------------------------------------------------------------------
# orchestration overhead: SQLite against PostgreSQL


def overhead_child(storage: str, repeats: int) -> dict:
    """``orchestration_bench.dagster_child`` on a SQLite instance (as it is) or, with
    ``storage == "postgres"``, on the postgres profile's instance (``DAGSTER_POSTGRES_URL``
    given): its instance folder is then prepared by ``profiles.prepare_home``. Also says which
    storage the instance's dagster.yaml named."""
    import yaml

    from benchmarks import orchestration_bench

    sqlite_home = orchestration_bench._home
    used: list[str] = []

    def home_of(tmp: Path) -> Path:
        if storage == "postgres":
            from video_assets.profiles import prepare_home

            home = tmp / "dagster_home"
            home.mkdir()
            os.environ.update(DAGSTER_HOME=str(home), VIDEO_ASSETS_PROFILE="postgres")
            os.environ.pop("VIDEO_ASSETS_WAREHOUSE", None)
            os.environ.pop("VIDEO_ASSETS_BUCKET", None)
            prepare_home()
        else:
            home = sqlite_home(tmp)
        config = yaml.safe_load((home / "dagster.yaml").read_text())
        used.append(next(iter(config.get("storage") or {"sqlite (the default)": None})))
        return home

    orchestration_bench._home = home_of  # this process only
    data = orchestration_bench.dagster_child(repeats)
    data["storage"] = used[0]
    return data


def postgres_url() -> tuple[contextlib.AbstractContextManager | None, str]:
    """A PostgreSQL server of ``tests/postgres_server.py`` (entered by the caller), or why not."""
    from tests.postgres_server import find_bin_dir, postgres_server

    if find_bin_dir() is None:
        return None, "no PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql"
    return postgres_server(), ""


def round_trips_ms(url: str, n: int = 20) -> dict[str, float]:
    """A new connection (what dagster-postgres opens for each storage call: its engines use
    SQLAlchemy's NullPool) against a query on an open one, in milliseconds."""
    import psycopg2

    started = time.perf_counter()
    for _ in range(n):
        psycopg2.connect(url).close()
    connect_ms = (time.perf_counter() - started) * 1000 / n
    with contextlib.closing(psycopg2.connect(url)) as con, con.cursor() as cur:
        started = time.perf_counter()
        for _ in range(10 * n):
            cur.execute("SELECT 1")
            cur.fetchall()
        query_ms = (time.perf_counter() - started) * 1000 / (10 * n)
    return {"connect_ms": round(connect_ms, 2), "query_ms": round(query_ms, 3)}


def sessions(url: str, database: str) -> int:
    """How many connections ``database`` has had (``pg_stat_database.sessions``)."""
    import psycopg2

    with contextlib.closing(psycopg2.connect(url)) as con, con.cursor() as cur:
        cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [database])
        return int(cur.fetchone()[0])


def _overhead_run(storage: str, repeats: int, env: dict[str, str]) -> dict:
    run = run_child([PYTHON, "-m", "benchmarks.scale_bench", "overhead", storage, str(repeats)],
                    env=env, cwd=REPO)
    data = json.loads(run.stdout.strip().splitlines()[-1])
    later = data["run_s"][1:] or data["run_s"]
    data.update(first_run_s=data["run_s"][0], steady_run_s=min(later),
                median_run_s=sorted(later)[len(later) // 2])
    return data


def pg_why(figures: dict) -> str:
    trips = figures.get("postgres_round_trips_ms") or {}
    return ("dagster-postgres opens a new connection for every storage call (SQLAlchemy "
            f"NullPool): {trips.get('connect_ms', '?')} ms each (scram-sha-256, a server "
            f"process per connection) against {trips.get('query_ms', '?')} ms for a query on an "
            f"open one, and a run opened {figures['postgres'].get('connections_per_run', '?')} "
            "(events, run status)")


def orchestration_overhead(repeats: int = 3) -> Result:
    """Per-run orchestration overhead (a run of the render graph with trivial bodies, in
    process as ``render`` runs it) on a SQLite instance and on a PostgreSQL one."""
    import pytest

    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("VIDEO_ASSETS_", "AWS_")) and k not in SECRETS}
    load0 = load_average()
    log("overhead: trivial render graph on a SQLite instance")
    figures: dict = {"repeats": repeats, "sqlite": _overhead_run("sqlite", repeats, base)}
    note = ""
    server, note = postgres_url()
    if server is not None:
        try:
            with server as pg:
                log("overhead: trivial render graph on a PostgreSQL instance")
                url = pg.create_database("scale_bench_overhead")
                before = sessions(pg.url(), "scale_bench_overhead")
                figures["postgres"] = _overhead_run(
                    "postgres", repeats, {**base, "DAGSTER_POSTGRES_URL": url})
                time.sleep(1.0)  # a session is counted when it ends
                figures["postgres"]["connections_per_run"] = round(
                    (sessions(pg.url(), "scale_bench_overhead") - before) / repeats)
                figures["postgres_round_trips_ms"] = round_trips_ms(url)
        except pytest.skip.Exception as exc:  # e.g. root without a user to run the server as
            note = str(exc)
    figures["load_average_before"], figures["load_average_after"] = load0, load_average()
    sqlite_s = figures["sqlite"]["steady_run_s"]
    pg_s = figures["postgres"]["steady_run_s"] if "postgres" in figures else None
    ratio = None if pg_s is None else pg_s / sqlite_s
    figures["postgres_over_sqlite"] = None if ratio is None else round(ratio, 3)
    if note:
        figures["postgres_skipped"] = note
        log(f"overhead: postgres row skipped: {note}")
    log(f"overhead: sqlite {sqlite_s:.2f} s per run, postgres "
        f"{'n/a' if pg_s is None else f'{pg_s:.2f} s'} (ratio "
        f"{'n/a' if ratio is None else f'{ratio:.2f}'})")
    result = Result("orchestration_overhead", figures=figures, method=(
        "orchestration_bench.dagster_child (the render job's graph: same assets, deps, "
        "partitions and checks, bodies that only yield their results, execute_in_process as "
        "`render` runs) in a fresh process on a new SQLite instance (the committed dagster.yaml) "
        "and on a new PostgreSQL instance (the postgres profile's dagster.yaml, a database on a "
        "server started by tests/postgres_server.py on loopback, fsync off); the bodies do no "
        "work, so a run's wall time is its orchestration overhead; steady_run_s is the best "
        f"run after the first of {repeats}, first_run_s the first (imports apart); "
        "connections_per_run = the database's new sessions (pg_stat_database) over the runs, "
        "the instance's set-up included, per run"))
    result.targets = [Target.at_most("orchestration_overhead_sqlite_s", 3.0, sqlite_s, unit=" s",
                                     why_missed="Dagster's per-run event writes to sqlite")]
    if pg_s is not None:  # no row where PostgreSQL is missing: figures["postgres_skipped"] says why
        result.targets.append(Target.at_most("orchestration_overhead_postgres_s", 3.0, pg_s,
                                             unit=" s", why_missed=pg_why(figures)))
    return result


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "queued":
        print(json.dumps(queued_child(Path(sys.argv[2]), int(sys.argv[3]),
                                      *(int(a) for a in sys.argv[4:5]))))
    elif kind == "overhead":
        print(json.dumps(overhead_child(sys.argv[2], int(sys.argv[3]))))
    else:
        raise SystemExit(f"unknown benchmark {kind!r}; fix: queued or overhead")
