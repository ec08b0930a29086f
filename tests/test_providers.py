"""Real-provider code paths through the official replicate client, against a loopback server that
speaks Replicate's predictions API (``tests/fake_replicate.py``) at ``REPLICATE_BASE_URL``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import make_song
from tests.fake_replicate import FakeReplicate, serving
from video_assets.assets.common import row_factory
from video_assets.cli import main
from video_assets.providers.registry import registry
from video_assets.providers.replicate_api import ReplicateRunner
from video_assets.providers.retry import ProviderError, RetryPolicy
from video_assets.schemas import CallRecord

CANARY = f"r8_canary_{uuid.uuid4().hex}"
IMAGE, VIDEO = "black-forest-labs/flux-schnell", "kwaivgi/kling-v2.1"


@pytest.fixture()
def fake(home: Path) -> Iterator[FakeReplicate]:
    with serving(FakeReplicate(token=CANARY)) as server:
        yield server


def render(capsys, song: Path, *extra: str) -> tuple[int, dict, str]:
    code = main(["render", "--audio", str(song), "--prompt", "lanterns drifting over a dark lake",
                 "--aspect", "1:1", "--json", *extra])
    out = capsys.readouterr()
    return code, json.loads(out.out.strip().splitlines()[-1]), out.out + out.err


def rows(home: Path, job_id: str) -> list[dict]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    cur = con.execute("SELECT * FROM provider_calls WHERE job_id = ? ORDER BY started_at", [job_id])
    names = [d[0] for d in cur.description]
    out = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    con.close()
    return out


def price(model: str) -> float:
    return next(m.unit_price_usd for n, m in registry().models.items() if n == model)


def test_render_with_replicate_costs_exactly_the_registry_prices_and_rerenders_free(
        fake: FakeReplicate, home: Path, tmp_path: Path, capsys):
    song = make_song(tmp_path / "lake.wav", 9.6, tempo_bpm=120.0)
    # no --images/--video: with REPLICATE_API_TOKEN set, the real providers are the default
    code, summary, output = render(capsys, song)
    assert code == 0, summary
    assert summary["status"] == "done" and all(summary["checks"].values())
    n = summary["clips"]
    ledger = rows(home, summary["job_id"])
    images = [r for r in ledger if r["asset"] == "storyboard"]
    clips = [r for r in ledger if r["asset"] == "clips"]
    assert [(r["provider"], r["model"], r["status"], r["units"], r["unit"]) for r in images] == \
        [("replicate", IMAGE, "ok", 1.0, "image")] * n
    assert all(r["cost_usd"] == pytest.approx(price(IMAGE)) for r in images)
    assert [(r["model"], r["status"], r["unit"]) for r in clips] == [(VIDEO, "ok", "video_s")] * n
    assert all(r["cost_usd"] == pytest.approx(r["units"] * price(VIDEO)) for r in clips)
    # exactly one ledger row per call the server saw, and the totals agree
    assert len(fake.succeeded("image")) == n and len(fake.succeeded("video")) == n
    assert fake.posts() == 2 * n
    total = sum(r["cost_usd"] for r in ledger)
    assert total == pytest.approx(n * price(IMAGE) + sum(r["units"] for r in clips) * price(VIDEO))
    assert summary["cost_usd"] == pytest.approx(total)
    # the clips came from the video model (scaled to the job's size, normalised to 30 fps)
    manifest = json.loads((home / "media" / "jobs" / summary["job_id"] / "clips.json").read_text())
    assert {c["provider"] for c in manifest} == {f"replicate:{VIDEO}"}
    assert not any(c["fallback"] for c in manifest)

    # the same job again: no paid call at all
    posts = fake.posts()
    code, again, output2 = render(capsys, song)
    assert code == 0 and again["job_id"] == summary["job_id"]
    assert fake.posts() == posts
    new = [r for r in rows(home, summary["job_id"])[len(ledger):] if r["provider"] == "replicate"]
    assert len(new) == 2 * n and all(r["cache_hit"] and r["cost_usd"] == 0 for r in new)
    assert again["cost_usd"] == pytest.approx(total)  # the job's total did not move

    # the key never reaches logs, metadata, the warehouse, the store or error reports
    assert_nowhere(CANARY, home, output + output2, summary["job_id"])


def assert_nowhere(canary: str, home: Path, printed: str, job_id: str | None = None) -> None:
    """The canary is not printed, not in any file under DAGSTER_HOME, not in any Dagster event
    and not in the job's ledger rows."""
    from dagster import DagsterInstance

    assert canary not in printed
    for path in home.rglob("*"):
        if path.is_file() and path.stat().st_size < 50 * 2**20 and path.suffix != ".mp4":
            assert canary.encode() not in path.read_bytes(), path
    instance = DagsterInstance.get()
    for record in instance.get_run_records():
        for event in instance.all_logs(record.dagster_run.run_id):
            assert canary not in str(event), event
    if job_id:
        for row in rows(home, job_id):
            assert canary not in str(row["error"] or ""), row


def test_over_budget_is_refused_before_any_paid_call(fake: FakeReplicate, home: Path,
                                                     tmp_path: Path, capsys):
    song = make_song(tmp_path / "thrifty.wav", 9.4, tempo_bpm=110.0)
    code, summary, output = render(capsys, song, "--budget-usd", "0.05")
    assert code == 1 and summary["failed_stage"] == "storyboard"
    assert "over the budget of $0.05" in summary["error"] and "clip 1:" in summary["error"]
    assert fake.posts() == 0  # nothing was spent
    assert not [r for r in rows(home, summary["job_id"]) if r["provider"] == "replicate"]
    assert CANARY not in output


def test_flaky_provider_still_completes_without_double_charges(fake: FakeReplicate, home: Path,
                                                               tmp_path: Path, capsys):
    fake.p_429, fake.p_500 = 0.15, 0.15
    song = make_song(tmp_path / "flaky.wav", 9.8, tempo_bpm=124.0)
    code, summary, output = render(capsys, song)
    assert code == 0, summary
    ledger = rows(home, summary["job_id"])
    paid = [r for r in ledger if r["status"] == "ok" and r["cost_usd"] > 0]
    errors = [r for r in ledger if r["status"] == "error"]
    assert errors, "30% injected failures produced no retry rows"
    assert all(r["cost_usd"] == 0 and r["attempt"] >= 1 for r in errors)
    assert any(r["attempt"] > 1 for r in ledger)
    # one charge per prediction that succeeded, none for the failed attempts
    assert len(paid) == len(fake.succeeded())
    assert sum(r["cost_usd"] for r in paid) == pytest.approx(
        sum(price(IMAGE) if "aspect_ratio" in p["input"] else price(VIDEO) * p["input"]["duration"]
            for p in fake.succeeded()))
    assert all("HTTP 429" in r["error"] or "HTTP 500" in r["error"] for r in errors)
    assert_nowhere(CANARY, home, output)


def test_a_failing_clip_falls_back_to_the_animatic_and_is_flagged(fake: FakeReplicate,
                                                                   home: Path, tmp_path: Path,
                                                                   capsys):
    fake.fail_first_image = True
    song = make_song(tmp_path / "fallback.wav", 9.9, tempo_bpm=118.0)
    code, summary, _ = render(capsys, song)
    assert code == 0, summary
    manifest = json.loads((home / "media" / "jobs" / summary["job_id"] / "clips.json").read_text())
    fallbacks = [c for c in manifest if c["fallback"]]
    assert len(fallbacks) == 1 and fallbacks[0]["provider"] == "offline"
    report = json.loads((home / "media" / "jobs" / summary["job_id"] / "quality.json").read_text())
    assert report["fallback_scenes"] == [fallbacks[0]["index"] + 1]  # flagged in the report
    assert sum(not c["fallback"] for c in manifest) == len(manifest) - 1
    failed = [r for r in rows(home, summary["job_id"])
              if r["asset"] == "clips" and r["status"] == "error"]
    assert len(failed) == 5 and all("failed" in r["error"] for r in failed)  # all its attempts


def test_a_job_with_fewer_than_two_real_clips_fails_clearly(fake: FakeReplicate, home: Path,
                                                           tmp_path: Path, capsys):
    fake.failing_models = {VIDEO}
    song = make_song(tmp_path / "doomed.wav", 9.7, tempo_bpm=96.0)
    code, summary, _ = render(capsys, song)
    assert code == 1 and summary["failed_stage"] == "clips"
    assert "only 0 of" in summary["error"] and "at least 2" in summary["error"]


def test_naming_replicate_without_its_key_is_bad_input(home: Path, tmp_path: Path, capsys,
                                                       monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    song = make_song(tmp_path / "nokey.wav", 4.0)
    code = main(["render", "--audio", str(song), "--prompt", "no key here", "--video",
                 "replicate:" + VIDEO])
    err = capsys.readouterr().err
    assert code == 2 and "providers.video" in err and "REPLICATE_API_TOKEN" in err
    assert not list((home / "media" / "staged").glob("nokey-*"))  # nothing staged


def runner_rows(policy: RetryPolicy) -> tuple[ReplicateRunner, list[CallRecord], Callable]:
    calls: list[CallRecord] = []
    return ReplicateRunner(policy, max_concurrency=2), calls, row_factory(
        calls, job_id="unit", asset="storyboard", provider="replicate", model=IMAGE)


def test_429_waits_for_retry_after_and_only_the_success_is_charged(fake: FakeReplicate,
                                                                    tmp_path: Path):
    fake.retry_after_s = 0.6
    fake.next_statuses = [429, 429]
    runner, calls, new_row = runner_rows(RetryPolicy(backoff_base_s=0.001, poll_s=0.05))
    spec = registry().get(IMAGE, "image")
    t0 = time.monotonic()
    runner.run(spec, {"prompt": "a lake", "aspect_ratio": "1:1", "seed": 1}, 1, tmp_path / "a.png",
               new_row)
    waited_s = time.monotonic() - t0
    assert waited_s >= 2 * 0.6  # the server's Retry-After, not our 1 ms backoff
    assert [(c.attempt, c.status, c.cost_usd) for c in calls] == \
        [(1, "error", 0.0), (2, "error", 0.0), (3, "ok", spec.cost_usd(1))]
    assert all("429" in c.error for c in calls[:2])
    assert (tmp_path / "a.png").stat().st_size > 0


def test_a_stuck_prediction_is_cancelled_at_the_deadline(fake: FakeReplicate, tmp_path: Path):
    fake.stuck_models = {VIDEO}
    runner, calls, new_row = runner_rows(RetryPolicy(deadline_s=1.5, poll_s=0.1, wait_s=1))
    spec = registry().get(VIDEO, "video")
    t0 = time.monotonic()
    with pytest.raises(ProviderError, match="deadline|after 1.5 s"):
        runner.run(spec, {"prompt": "x", "start_image": "data:,", "duration": 5}, 5,
                   tmp_path / "c.mp4", new_row)
    assert time.monotonic() - t0 < 6
    [(model, pid)] = fake.created
    assert fake.predictions[pid]["status"] == "canceled"  # we stopped paying for it
    assert any(r["path"] == f"/v1/predictions/{pid}/cancel" for r in fake.requests)
    assert [(c.status, c.cost_usd) for c in calls] == [("error", 0.0)]
    assert not (tmp_path / "c.mp4").exists()


def test_malformed_outputs_are_retried_then_fail_without_charges(fake: FakeReplicate,
                                                                 tmp_path: Path):
    fake.malformed_models = {IMAGE}
    runner, calls, new_row = runner_rows(RetryPolicy(max_attempts=3, backoff_base_s=0.01))
    with pytest.raises(ProviderError, match="without a file URL"):
        runner.run(registry().get(IMAGE, "image"), {"prompt": "x"}, 1, tmp_path / "m.png",
                   new_row)
    assert [(c.attempt, c.status, c.cost_usd) for c in calls] == \
        [(1, "error", 0.0), (2, "error", 0.0), (3, "error", 0.0)]


def test_a_run_killed_in_the_clip_stage_is_re_executed_without_paying_twice(
        fake: FakeReplicate, home: Path, tmp_path: Path, capsys):
    fake.slow_models = {VIDEO}  # each clip takes two polls (~2 s): time to kill between clips
    song = make_song(tmp_path / "killed.wav", 12.5, tempo_bpm=120.0)
    args = ["render", "--audio", str(song), "--prompt", "lanterns drifting over a dark lake",
            "--aspect", "1:1", "--continuation", "--json"]  # clips one after another
    proc = subprocess.Popen([str(Path(sys.executable).with_name("videogen")), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    cache = home / "media" / "cache" / "clip"  # the session's home: earlier tests' clips too
    earlier = set(cache.rglob("*.mp4"))
    deadline = time.monotonic() + 240
    while not set(cache.rglob("*.mp4")) - earlier:
        assert proc.poll() is None, "the render ended before any clip was cached"
        assert time.monotonic() < deadline, "no clip was cached in time"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # as a crash or a lost machine would
    proc.wait()
    killed_videos = len(fake.succeeded("video"))
    cached = len(set(cache.rglob("*.mp4")) - earlier)
    assert 1 <= cached < 4 and killed_videos >= cached
    images_before = len(fake.succeeded("image"))

    code, summary, output = render(capsys, song, "--continuation")
    assert code == 0, output
    n = summary["clips"]
    # re-execution: the cached clips and all images were not asked for (or paid) again
    assert len(fake.succeeded("image")) == images_before == n
    starts = [p["input"]["start_image"] for p in fake.succeeded("video")]
    assert len(starts) == len(set(starts)) == n  # no clip was generated twice
    paid = [r for r in rows(home, summary["job_id"]) if r["asset"] == "clips" and r["cost_usd"] > 0]
    assert len(paid) == n
    hits = [r for r in rows(home, summary["job_id"]) if r["asset"] == "clips" and r["cache_hit"]]
    assert len(hits) >= cached  # the re-execution took them from the cache
