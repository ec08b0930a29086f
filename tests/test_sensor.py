"""The local inbox sensor: good files become partitions and runs, bad ones get error reports."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dagster import DagsterInstance, build_sensor_context

from tests.conftest import make_song
from video_assets.cli import main
from video_assets.definitions import defs
from video_assets.resources import PipelineSettings, StoreResource
from video_assets.sensors import inbox_sensor, inbox_store, scan_inbox


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_sensor_admits_good_and_rejects_bad_in_one_tick(home, inbox, tmp_path):
    make_song(inbox / "tune.wav", 9.5)
    write(inbox / "good.yaml", "prompt: a red kite over green hills\naudio: tune.wav\n")
    write(inbox / "bad.yaml", "prompt: a red kite\naudio: tune.wav\naspect: 4:3\n")
    write(inbox / "broken.json", "{not json")
    write(inbox / "notes.txt", "ignored: not a request")
    instance = DagsterInstance.get()
    context = build_sensor_context(instance=instance, definitions=defs)
    result = inbox_sensor(context, store=StoreResource(), settings=PipelineSettings())
    assert len(result.run_requests) == 1
    run = result.run_requests[0]
    assert run.partition_key.startswith("good-") and run.run_key.startswith("inbox/good.yaml:")
    assert result.dynamic_partitions_requests[0].partition_keys == [run.partition_key]
    for name, field in (("bad.yaml", "aspect"), ("broken.json", "file")):
        report = json.loads((home / "rejected" / f"{name}.error.json").read_text())
        assert report["field"] == field and "fix" in report["error"]
    assert not (home / "rejected" / "good.yaml.error.json").exists()
    # the user's files are untouched, and the job is staged for its run
    assert (inbox / "bad.yaml").exists() and (inbox / "good.yaml").exists()
    assert (home / "media" / "staged" / run.partition_key / "request.json").is_file()
    # the same files again: nothing new
    again = inbox_sensor(build_sensor_context(instance=instance, definitions=defs,
                                              cursor=result.cursor), store=StoreResource(),
                          settings=PipelineSettings())
    assert again.run_requests == [] and not again.dynamic_partitions_requests


def test_changed_file_is_a_new_job(home, inbox):
    make_song(inbox / "tune.wav", 9.5)
    path = write(inbox / "kite.yaml", "prompt: a red kite\naudio: tune.wav\n")
    first = scan_inbox(inbox_store(), StoreResource().get(), {})
    time.sleep(0.01)
    write(path, "prompt: a blue kite\naudio: tune.wav\n")
    second = scan_inbox(inbox_store(), StoreResource().get(), first.cursor)
    assert len(first.admitted) == len(second.admitted) == 1
    assert first.admitted[0][0] != second.admitted[0][0]


def test_audio_arriving_late_waits_then_is_rejected(home, inbox):
    write(inbox / "early.yaml", "prompt: a red kite\naudio: later.wav\n")
    media = StoreResource().get()
    tick = scan_inbox(inbox_store(), media, {}, grace_s=60)
    assert tick.waiting == ["inbox/early.yaml"] and not tick.rejected
    make_song(inbox / "later.wav", 9.5)
    tick = scan_inbox(inbox_store(), media, tick.cursor, grace_s=60)
    assert len(tick.admitted) == 1
    write(inbox / "never.yaml", "prompt: a red kite\naudio: missing.wav\n")
    tick = scan_inbox(inbox_store(), media, tick.cursor, grace_s=60, now_s=time.time() + 120)
    assert tick.rejected and "missing.wav" in tick.rejected[0][1]


def test_submit_and_ingest_once_renders_the_job(home, inbox, tmp_path, capsys):
    song = make_song(tmp_path / "drop.wav", 9.5, tempo_bpm=128)
    req = write(tmp_path / "drop.yaml", "prompt: desert road trip at sunset\naudio: drop.wav\n"
                "aspect: '16:9'\ntransitions: crossfade\n")
    assert main(["submit", str(req)]) == 0
    assert (inbox / "drop.yaml").is_file() and (inbox / "drop.wav").is_file()
    assert song.exists()
    capsys.readouterr()
    assert main(["ingest", "--once", "--wait", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "done" and (summary["width"], summary["height"]) == (1920, 1080)
    # a second pass launches nothing
    assert main(["ingest", "--once", "--wait", "--json"]) == 0
    assert capsys.readouterr().out.strip() == ""


def test_submit_rejects_invalid_request(home, inbox, tmp_path, capsys):
    req = write(tmp_path / "bad.yaml", "prompt: hi there\naudio: x.wav\nfoo: 1\n")
    assert main(["submit", str(req)]) == 2
    assert "foo" in capsys.readouterr().err
    assert not (inbox / "bad.yaml").exists()


def test_ingest_without_wait_launches_a_background_run(home, inbox, tmp_path, capsys):
    make_song(inbox / "bg.wav", 9.2, tempo_bpm=110)
    write(inbox / "bg.yaml", "prompt: a paper boat on a river\naudio: bg.wav\naspect: '1:1'\n")
    assert main(["ingest", "--once"]) == 0
    err = capsys.readouterr().err
    assert "launched 1 run(s) in the background" in err
    log = Path(err.split("log: ")[-1].strip())
    deadline = time.monotonic() + 300
    finals = []
    while time.monotonic() < deadline:
        finals = list((home / "media" / "jobs").glob("bg-*/final.mp4"))
        if finals and "\nvideo:" in log.read_text():  # the summary, not a stage's line
            break
        time.sleep(2)
    assert finals, log.read_text()[-3000:]
    assert "checks:    duration_matches_audio ok, format ok" in log.read_text()
