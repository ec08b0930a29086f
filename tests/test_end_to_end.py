"""An offline render of a synthesized track through the real Dagster asset graph, via the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from tests.conftest import make_song
from tests.media_helpers import audio_lag_ms, decode_audio, decode_frames
from video_assets.cli import main
from video_assets.media.audio import decode_mono, probe_audio
from video_assets.media.probe import probe_video

JSON_KEYS = {"job_id", "status", "final_video", "duration_s", "audio_duration_s", "width",
             "height", "fps", "clips", "cost_usd", "checks"}


def render_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["render", *argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def hard_cuts(frames: np.ndarray, threshold: float = 0.15) -> list[int]:
    """Frames where the picture changes and stays changed.

    Frames are normalised to zero mean and unit contrast, and a cut at ``t`` must differ from
    frame ``t - 1`` and also separate frame ``t - 2`` from frame ``t + 8``: the animatics' beat
    flashes change one frame's brightness and fade back, a cut does not come back.
    """
    x = frames.astype(np.float32)
    x = (x - x.mean(axis=(1, 2, 3), keepdims=True)) / (x.std(axis=(1, 2, 3), keepdims=True) + 1)

    def d(i: int, j: int) -> float:
        return float(np.abs(x[i] - x[j]).mean())

    n = len(x)
    # the last 8 frames cannot show whether a change stays: nothing is called a cut there
    scores = [min(d(t - 1, t), d(max(0, t - 2), t + 8)) for t in range(1, n - 8)]
    return [t for t, score in enumerate(scores, start=1) if score > threshold]


def quality_rows_values(home: Path, job_id: str) -> list[tuple[str, float]]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("SELECT metric, value FROM quality_metrics WHERE job_id = ?",
                           [job_id]).fetchall()
    finally:
        con.close()


def test_render_end_to_end(home: Path, song_10s: Path, capsys):
    code, summary = render_json(capsys, "--audio", str(song_10s), "--prompt",
                                "Neon city at night, a lone skater chasing the sunrise",
                                "--transitions", "cut")
    assert code == 0, summary
    assert summary.keys() >= JSON_KEYS
    assert summary["status"] == "done" and all(summary["checks"].values())
    assert (summary["width"], summary["height"], summary["fps"]) == (1080, 1920, 30.0)
    assert abs(summary["duration_s"] - summary["audio_duration_s"]) <= 1 / 30
    assert summary["clips"] >= 3
    job = home / "media" / "jobs" / summary["job_id"]
    n = summary["clips"]
    for rel in ["request.json", "audio.flac", "beat_grid.json", "beat_grid.png", "script.json",
                "storyboard/contact_sheet.jpg", "final.mp4", "thumbnail.jpg",
                *[f"storyboard/{i:02d}.png" for i in range(1, n + 1)],
                *[f"clips/{i:02d}.mp4" for i in range(1, n + 1)]]:
        assert (job / rel).is_file(), rel
    # the job's song is a clean FLAC re-encoding of the upload: the same samples
    assert probe_audio(job / "audio.flac").format_name == "flac"
    np.testing.assert_allclose(decode_mono(job / "audio.flac").samples,
                               decode_mono(song_10s).samples, atol=1e-4)
    grid = json.loads((job / "beat_grid.json").read_text())
    assert {"tempo_bpm", "beats_s", "downbeats_s", "method", "confidence", "boundaries"} <= \
        grid.keys()
    assert grid["boundaries"][0]["start_s"] == 0.0
    assert grid["boundaries"][-1]["end_s"] == pytest.approx(summary["audio_duration_s"], abs=1e-3)
    plan = json.loads((job / "script.json").read_text())
    assert {"summary", "style", "scenes"} <= plan.keys()
    assert {"index", "start_s", "end_s", "prompt", "camera", "transition"} <= \
        plan["scenes"][0].keys()

    # independent measurement: every hard cut of the file is within one frame of a beat
    final = Path(summary["final_video"])
    probe = probe_video(final)
    assert probe.n_frames == round(summary["audio_duration_s"] * 30)
    cuts = hard_cuts(decode_frames(final))
    beats = np.array(grid["beats_s"])
    assert len(cuts) == n - 1
    for f in cuts:
        assert np.min(np.abs(beats - f / 30)) <= 1 / 30 + 1e-6

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    status, uri, cost = con.execute(
        "SELECT status, final_uri, cost_usd FROM jobs WHERE job_id = ?",
        [summary["job_id"]]).fetchone()
    assert (status, uri, cost) == ("done", str(final), 0.0)
    rows = con.execute("SELECT asset, count(*) FROM provider_calls WHERE job_id = ? "
                       "GROUP BY asset ORDER BY asset", [summary["job_id"]]).fetchall()
    con.close()
    assert dict(rows) == {"clips": n, "script": 1, "storyboard": n}
    # the product's own quality report agrees: every bar met, rows in quality_metrics
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    quality_rows = con.execute("SELECT metric, passed FROM quality_metrics WHERE job_id = ?",
                               [summary["job_id"]]).fetchall()
    con.close()
    assert len(quality_rows) >= 10 and all(passed for _, passed in quality_rows), quality_rows
    report = json.loads((job / "quality.json").read_text())
    assert report["cut_frames"] == cuts
    # ... and its figures agree with these independent measurements: durations and cut times
    # within one frame, the audio offset within 2 ms
    metrics = dict(quality_rows_values(home, summary["job_id"]))
    independent_duration_ms = abs(probe.n_frames / 30 - summary["audio_duration_s"]) * 1000
    assert metrics["duration_error_ms"] == pytest.approx(independent_duration_ms, abs=1000 / 30)
    lag_ms = audio_lag_ms(decode_audio(song_10s), decode_audio(final))
    assert metrics["audio_offset_ms"] == pytest.approx(abs(lag_ms), abs=2.0)

    # a second render of the same job regenerates nothing: every image and clip is a cache hit
    code, again = render_json(capsys, "--audio", str(song_10s), "--prompt",
                              "Neon city at night, a lone skater chasing the sunrise",
                              "--transitions", "cut")
    assert code == 0 and again["job_id"] == summary["job_id"]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    hits = con.execute("SELECT count(*) FROM provider_calls WHERE job_id = ? AND cache_hit",
                       [summary["job_id"]]).fetchone()[0]
    con.close()
    assert hits == 2 * n


def test_two_renders_at_once_lose_no_rows(home: Path, tmp_path: Path):
    songs = [make_song(tmp_path / f"pair{i}.wav", 9.5, tempo_bpm=100 + 20 * i) for i in range(2)]
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "video_assets.cli", "render", "--audio", str(s), "--prompt",
         f"ocean waves number {i}", "--aspect", "1:1", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i, s in enumerate(songs)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    for s in summaries:
        n_calls = con.execute("SELECT count(*) FROM provider_calls WHERE job_id = ?",
                              [s["job_id"]]).fetchone()[0]
        assert n_calls == 1 + 2 * s["clips"]
        assert con.execute("SELECT status FROM jobs WHERE job_id = ?",
                           [s["job_id"]]).fetchone()[0] == "done"
    con.close()


def test_ad_without_audio_gets_a_synthesized_bed(home: Path, capsys):
    code, summary = render_json(capsys, "--mode", "ad", "--duration-s", "9.5", "--prompt",
                                "Fresh coffee for busy mornings", "--aspect", "16:9")
    assert code == 0, summary
    assert summary["audio_duration_s"] == pytest.approx(9.5, abs=1e-3)
    assert abs(summary["duration_s"] - 9.5) <= 1 / 30
    assert (summary["width"], summary["height"]) == (1920, 1080)
    plan = json.loads((home / "media" / "jobs" / summary["job_id"] / "script.json").read_text())
    assert plan["archetype"] == "problem_solution"


def test_failed_stage_is_named_and_recorded(home: Path, tmp_path: Path, capsys):
    from video_assets.admission import check_audio, stage, validate_request
    from video_assets.cli import execute_job
    from video_assets.resources import StoreResource

    song = make_song(tmp_path / "gone.wav", 9.0)
    request = validate_request({"prompt": "a vanishing song", "audio": str(song)}, "t")
    media = StoreResource().get()
    staged = stage(media, "gone-00000000", request, "gone.wav", song, check_audio(song, "t"))
    media.delete(staged.audio_key)  # the staged song disappears before the run
    summary = execute_job("gone-00000000")
    assert summary["status"] == "failed" and summary["failed_stage"] == "job_request"
    assert summary.keys() >= JSON_KEYS and summary["final_video"] is None
    assert "audio.wav" in summary["error"]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    row = con.execute("SELECT status, failed_stage FROM jobs WHERE job_id = 'gone-00000000'")
    assert row.fetchone() == ("failed", "job_request")
    con.close()


def test_a_video_that_fails_a_blocking_check_fails_its_run(home: Path, tmp_path: Path, capsys,
                                                            monkeypatch):
    """The composition is sabotaged (its audio 80 ms late) inside a real Dagster run: the blocking
    check fails with the measured offset, the job is ``checks_failed`` at ``final_video``, and the
    measurements still reach quality.json and the warehouse."""
    from dagster import AssetCheckKey, AssetKey, DagsterInstance

    import video_assets.assets.final as final_module
    from video_assets.media.ffmpeg_bin import run_ffmpeg

    real_compose = final_module.compose_chunked

    def late_audio_compose(clips, durations, segments, audio, out, settings, **kwargs):
        render = real_compose(clips, durations, segments, audio, out, settings, **kwargs)
        shifted = out.with_name("shifted.mp4")
        run_ffmpeg(["-y", "-i", str(out), "-af", "adelay=80:all=1", "-shortest", "-c:v", "copy",
                    "-c:a", "aac", "-movflags", "+faststart", str(shifted)], what="sabotage")
        shifted.replace(out)
        return render

    monkeypatch.setattr(final_module, "compose_chunked", late_audio_compose)
    song = make_song(tmp_path / "late.wav", 9.6, tempo_bpm=110.0)
    code, summary = render_json(capsys, "--audio", str(song), "--prompt", "late audio on purpose",
                                "--aspect", "1:1")
    assert code == 1
    assert summary["status"] == "checks_failed" and summary["failed_stage"] == "final_video"
    assert summary["checks"]["audio_in_sync"] is False
    assert [k for k, ok in summary["checks"].items() if not ok] == ["audio_in_sync"]
    assert Path(summary["final_video"]).is_file()

    record = DagsterInstance.get().event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("final_video"), "audio_in_sync"), limit=1)[0]
    evaluation = record.event.dagster_event.event_specific_data
    measured = evaluation.metadata["audio_offset_ms"].value
    assert measured == pytest.approx(80.0, abs=2.0)
    assert f"audio_offset_ms = {measured:g} (limit 5)" in evaluation.description

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    status, stage = con.execute("SELECT status, failed_stage FROM jobs WHERE job_id = ?",
                                [summary["job_id"]]).fetchone()
    value, passed = con.execute("SELECT value, passed FROM quality_metrics WHERE job_id = ? "
                                "AND metric = 'audio_offset_ms'", [summary["job_id"]]).fetchone()
    con.close()
    assert (status, stage) == ("checks_failed", "final_video")
    assert value == pytest.approx(80.0, abs=2.0) and passed is False
    report = json.loads((home / "media" / "jobs" / summary["job_id"] / "quality.json").read_text())
    assert report["audio_offset_ms"] == pytest.approx(80.0, abs=2.0)
