"""Ctrl-C, SIGTERM and ``videogen cancel`` stop a render in its clip stage within seconds, cancel
every prediction in flight at the provider (the ledger says ``cancelled``) and exit 130 / 143. A
real ``videogen render`` subprocess, real signals, the loopback Replicate server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_song
from tests.fake_replicate import FakeReplicate, serving
from tests.test_providers import rows

TOKEN = f"r8_cancel_{uuid.uuid4().hex}"
VIDEO = "kwaivgi/kling-v2.1"
VIDEOGEN = str(Path(sys.executable).with_name("videogen"))


@pytest.fixture()
def stuck() -> Iterator[FakeReplicate]:
    # clips never finish by themselves
    with serving(FakeReplicate(token=TOKEN, stuck_models={VIDEO}), OPENAI_API_KEY=None) as server:
        yield server


def start_render(tmp_path: Path, job_id: str, *extra: str) -> subprocess.Popen:
    song = make_song(tmp_path / f"{job_id}.wav", 12.5, tempo_bpm=120.0)
    return subprocess.Popen(
        [VIDEOGEN, "render", "--audio", str(song), "--prompt", "lanterns over a dark lake",
         "--aspect", "1:1", "--images", "offline", "--video", f"replicate:{VIDEO}",
         "--job-id", job_id, "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def in_flight(fake: FakeReplicate, proc: subprocess.Popen, n: int = 2) -> list[str]:
    """Wait until ``n`` clip predictions are running at the provider; their ids."""
    deadline = time.monotonic() + 180
    while len(fake.created) < n:
        if proc.poll() is not None:
            raise AssertionError(f"the render ended first: {proc.communicate()}")
        assert time.monotonic() < deadline, "no clip prediction started in time"
        time.sleep(0.1)
    time.sleep(1.5)  # a poll or two: the workers are inside their wait
    return [pid for _, pid in fake.created]


def stopped_within(proc: subprocess.Popen, limit_s: float) -> tuple[int, str, float]:
    t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"still running {limit_s} s after the signal:\n{err[-3000:]}") from None
    return proc.returncode, err, time.monotonic() - t0


def assert_all_cancelled(fake: FakeReplicate, home: Path, job_id: str) -> None:
    """Every prediction was cancelled at the provider, every clip row says so, and the job's
    Dagster run has ended (not left in progress)."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    with fake.lock:
        states = {pid: p["status"] for pid, p in fake.predictions.items()}
    assert states and set(states.values()) == {"canceled"}, states
    cancels = {r["path"].split("/")[3] for r in fake.requests if r["path"].endswith("/cancel")}
    assert cancels == set(states)
    clip_rows = [r for r in rows(home, job_id) if r["asset"] == "clips"]
    assert len(clip_rows) == len(states), clip_rows
    assert {r["status"] for r in clip_rows} == {"cancelled"}, clip_rows
    assert all(r["cost_usd"] == 0 for r in clip_rows)
    [run] = DagsterInstance.get().get_runs(RunsFilter(tags={"dagster/partition": job_id}))
    assert run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED), run.status


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_in_the_clip_stage_cancels_every_prediction_and_exits(
        stuck: FakeReplicate, home: Path, tmp_path: Path, signum: int, code: int):
    job_id = f"cancel-{signum}-{uuid.uuid4().hex[:6]}"
    proc = start_render(tmp_path, job_id)
    try:
        started = in_flight(stuck, proc)
        proc.send_signal(signum)
        returncode, err, took_s = stopped_within(proc, 10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert returncode == code, err[-3000:]
    assert took_s < 10
    assert len(started) >= 2
    assert_all_cancelled(stuck, home, job_id)
    assert "stopped by" in err and signal.Signals(signum).name in err


@pytest.mark.slow
def test_sigint_stops_a_continuation_render_waiting_on_its_one_clip(
        stuck: FakeReplicate, home: Path, tmp_path: Path):
    """Clips one after another: the interrupt lands in the stage's own thread, mid-poll."""
    job_id = f"cancel-chain-{uuid.uuid4().hex[:6]}"
    proc = start_render(tmp_path, job_id, "--continuation")
    try:
        in_flight(stuck, proc, n=1)
        proc.send_signal(signal.SIGINT)
        returncode, err, _ = stopped_within(proc, 10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert returncode == 130, err[-3000:]
    assert len(stuck.created) == 1
    assert_all_cancelled(stuck, home, job_id)


@pytest.mark.slow
def test_videogen_cancel_stops_the_jobs_run_like_sigterm(stuck: FakeReplicate, home: Path,
                                                         tmp_path: Path):
    job_id = f"cancel-cmd-{uuid.uuid4().hex[:6]}"
    proc = start_render(tmp_path, job_id)
    try:
        in_flight(stuck, proc)
        cancel = subprocess.run([VIDEOGEN, "cancel", job_id], capture_output=True, text=True,
                                timeout=60)
        returncode, err, took_s = stopped_within(proc, 10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert cancel.returncode == 0, cancel.stderr
    assert job_id in cancel.stdout + cancel.stderr
    assert returncode == 143, err[-3000:]
    assert_all_cancelled(stuck, home, job_id)


def test_cancelling_a_job_without_a_run_in_progress_is_bad_input(home: Path):
    cancel = subprocess.run([VIDEOGEN, "cancel", "no-such-job"], capture_output=True, text=True,
                            timeout=60)
    assert cancel.returncode == 2
    assert "no-such-job" in cancel.stderr and "fix:" in cancel.stderr
