"""OpenAI (planner, transcription, voice) and the rest of Replicate (music, lip-sync) through the
official clients, against loopback servers at ``OPENAI_BASE_URL`` / ``REPLICATE_BASE_URL``."""

from __future__ import annotations

import base64
import io
import json
import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_song
from tests.fake_openai import FakeOpenAI
from tests.fake_openai import serving as serving_openai
from tests.fake_replicate import FakeReplicate, serving
from tests.test_providers import rows
from video_assets.cli import main
from video_assets.media.audio import decode_mono
from video_assets.providers.registry import registry

OPENAI_CANARY = f"sk-canary-{uuid.uuid4().hex}"
REPLICATE_CANARY = f"r8_canary_{uuid.uuid4().hex}"
WORDS = [("lanterns", 0.6, 1.1), ("drift", 1.2, 1.7), ("over", 4.3, 4.6), ("the", 4.6, 4.7),
         ("water", 4.7, 5.3), ("tonight", 7.9, 8.6)]


@pytest.fixture()
def openai_fake(home: Path) -> Iterator[FakeOpenAI]:
    with serving_openai(FakeOpenAI(key=OPENAI_CANARY, words=list(WORDS))) as server:
        yield server


@pytest.fixture()
def both(openai_fake: FakeOpenAI) -> Iterator[tuple[FakeOpenAI, FakeReplicate]]:
    with serving(FakeReplicate(token=REPLICATE_CANARY)) as server:
        yield openai_fake, server


def render(capsys, *args: str) -> tuple[int, dict, str]:
    code = main(["render", "--prompt", "lanterns drifting over a dark lake", "--aspect", "1:1",
                 "--json", *args])
    out = capsys.readouterr()
    return code, json.loads(out.out.strip().splitlines()[-1]), out.out + out.err


def spec(model: str):
    return registry().models[model]


def job_dir(home: Path, job_id: str) -> Path:
    return home / "media" / "jobs" / job_id


def test_openai_plans_from_the_lyrics_and_a_rerender_costs_nothing(
        openai_fake: FakeOpenAI, home: Path, tmp_path: Path, capsys):
    song = make_song(tmp_path / "lake.wav", 9.6, tempo_bpm=120.0)
    code, summary, output = render(capsys, "--audio", str(song))
    assert code == 0, output
    job = summary["job_id"]
    # lyrics.json: the words with their times, as transcribed
    lyrics = json.loads((job_dir(home, job) / "lyrics.json").read_text())
    assert [(w["word"], w["start_s"], w["end_s"]) for w in lyrics["words"]] == WORDS
    # the planner saw them, per segment, and each scene's caption is its sung words
    brief = json.loads(json.loads(next(r["body"] for r in openai_fake.requests
                                       if r["path"] == "/v1/chat/completions"))["messages"][1]
                       ["content"])
    plan = json.loads((job_dir(home, job) / "script.json").read_text())
    assert len(brief["segments"]) == len(plan["scenes"]) == summary["clips"]
    for seg, scene in zip(brief["segments"], plan["scenes"], strict=True):
        sung = [w for w, s, e in WORDS if seg["start_s"] <= (s + e) / 2 < seg["end_s"]]
        assert seg.get("words", "") == " ".join(sung)
        assert scene["caption"] == (" ".join(sung) or f"line {seg['index'] + 1}")
        assert scene["prompt"].startswith(f"shot {seg['index'] + 1}")
    # the ledger: tokens in and out at the registry's prices; audio minutes for whisper
    ledger = rows(home, job)
    [plan_row] = [r for r in ledger if r["asset"] == "script"]
    usage = openai_fake.usage[0]
    gpt = spec("gpt-4o-mini")
    assert (plan_row["provider"], plan_row["model"], plan_row["unit"]) == \
        ("openai", "gpt-4o-mini", "token")
    assert (plan_row["input_units"], plan_row["output_units"]) == \
        (usage["prompt_tokens"], usage["completion_tokens"])
    assert plan_row["units"] == usage["total_tokens"]
    assert plan_row["cost_usd"] == pytest.approx(
        usage["prompt_tokens"] * gpt.unit_price_usd
        + usage["completion_tokens"] * gpt.output_unit_price_usd, abs=1e-12)
    [lyric_row] = [r for r in ledger if r["asset"] == "lyrics"]
    assert (lyric_row["model"], lyric_row["unit"]) == ("whisper-1", "audio_min")
    assert lyric_row["units"] == pytest.approx(summary["audio_duration_s"] / 60, abs=1e-6)
    assert lyric_row["cost_usd"] == pytest.approx(lyric_row["units"] * 0.006, abs=1e-9)
    assert summary["cost_usd"] == pytest.approx(plan_row["cost_usd"] + lyric_row["cost_usd"])
    # a second render of the same job: no paid call, $0.00 more
    calls_before = len(openai_fake.requests)
    code, again, output = render(capsys, "--audio", str(song))
    assert code == 0 and again["job_id"] == job, output
    assert len(openai_fake.requests) == calls_before
    second = rows(home, job)[len(ledger):]
    # the transcript from the cache; the plan is the job's current version, kept as it is (its
    # edits with it): the planner is not asked at all
    assert {(r["asset"], r["cache_hit"], r["cost_usd"]) for r in second
            if r["provider"] == "openai"} == {("lyrics", True, 0.0)}
    assert again["cost_usd"] == pytest.approx(summary["cost_usd"])
    # the key is nowhere: output, warehouse, files, the instance's event log
    assert OPENAI_CANARY not in output
    for path in home.rglob("*"):
        if path.is_file():
            assert OPENAI_CANARY.encode() not in path.read_bytes(), path


def test_an_invalid_plan_gets_one_repair_round_then_a_clear_error(
        openai_fake: FakeOpenAI, home: Path, tmp_path: Path, capsys):
    song = make_song(tmp_path / "repair.wav", 9.6, tempo_bpm=120.0)
    openai_fake.bad_plans = 1
    code, summary, output = render(capsys, "--audio", str(song))
    assert code == 0, output
    plan_rows = [r for r in rows(home, summary["job_id"]) if r["asset"] == "script"]
    assert len(plan_rows) == 2 and all(r["cost_usd"] > 0 for r in plan_rows)  # both were paid
    repair = json.loads(openai_fake.requests[-1]["body"])["messages"]
    assert len(repair) == 4 and "scenes" in repair[-1]["content"]
    assert f"exactly {summary['clips']} scenes" in repair[-1]["content"]

    other = make_song(tmp_path / "broken.wav", 9.6, tempo_bpm=110.0)
    openai_fake.bad_plans = 2
    code, summary, output = render(capsys, "--audio", str(other))
    assert code == 1 and summary["status"] == "failed"
    assert summary["failed_stage"] == "script"
    assert "invalid plan twice" in output and "fix:" in output and "scenes" in output
    assert len([r for r in rows(home, summary["job_id"]) if r["asset"] == "script"]) == 2


def test_ad_with_generated_music_and_a_voiceover(both, home: Path, capsys):
    openai_fake, replicate_fake = both
    code, summary, output = render(capsys, "--mode", "ad", "--duration-s", "12",
                                   "--images", "offline", "--video", "offline")
    assert code == 0 and all(summary["checks"].values()), output
    job = summary["job_id"]
    ledger = rows(home, job)
    [music_row] = [r for r in ledger if r["asset"] == "job_request"]
    musicgen = spec("meta/musicgen")
    assert (music_row["model"], music_row["unit"], music_row["units"]) == \
        ("meta/musicgen", "audio_s", 12.0)
    assert music_row["cost_usd"] == pytest.approx(12 * musicgen.unit_price_usd)
    [prediction] = replicate_fake.succeeded("music")
    assert prediction["input"]["duration"] == 12 and "no vocals" in prediction["input"]["prompt"]
    # no words in a generated bed: no transcription call
    assert "/v1/audio/transcriptions" not in openai_fake.paths()
    voiceover = json.loads((job_dir(home, job) / "voiceover.json").read_text())
    plan = json.loads((job_dir(home, job) / "script.json").read_text())
    assert [x["index"] for x in voiceover["lines"]] == [s["index"] for s in plan["scenes"]]
    voice_rows = [r for r in ledger if r["asset"] == "voiceover"]
    assert [r["units"] for r in voice_rows] == [len(x["text"]) for x in voiceover["lines"]]
    assert all(r["cost_usd"] == pytest.approx(r["units"] * spec("tts-1").unit_price_usd)
               for r in voice_rows)
    speech = [json.loads(r["body"]) for r in openai_fake.requests
              if r["path"] == "/v1/audio/speech"]
    assert [s["input"] for s in speech] == [x["text"] for x in voiceover["lines"]]
    # the video's audio is the mix: the voice's 220 Hz tone is in it at each line, not in the bed
    final = decode_mono(job_dir(home, job) / "final.mp4", 16000).samples
    bed = decode_mono(job_dir(home, job) / "audio.wav", 16000).samples
    line = voiceover["lines"][1]
    a = int((line["start_s"] + 0.05) * 16000)
    window = slice(a, a + 4000)

    def tone(x: np.ndarray) -> float:
        t = np.arange(len(x)) / 16000
        return abs(np.dot(x, np.exp(-2j * np.pi * 220 * t))) / len(x)

    assert tone(final[window]) > 5 * tone(bed[window])
    assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in ledger))


def test_lipsync_uses_the_song_from_each_clip_and_continuation_chains_frames(
        both, home: Path, tmp_path: Path, capsys):
    openai_fake, replicate_fake = both
    song = make_song(tmp_path / "sung.wav", 9.6, tempo_bpm=120.0)
    code, summary, output = render(capsys, "--audio", str(song), "--planner", "offline",
                                   "--lipsync", "--continuation")
    assert code == 0 and all(summary["checks"].values()), output
    job = summary["job_id"]
    plan = json.loads((job_dir(home, job) / "script.json").read_text())
    manifest = json.loads((job_dir(home, job) / "clips.json").read_text())
    # lip-sync where words are sung (every scene of this song has some)
    sung = [s["index"] for s in plan["scenes"]
            if any(s["start_s"] <= (a + b) / 2 < s["end_s"] for _, a, b in WORDS)]
    assert [c["index"] for c in manifest if c["lipsync"]] == sung == [s["index"] for s in
                                                                     plan["scenes"]]
    assert len(replicate_fake.succeeded("lipsync")) == len(sung)
    source = decode_mono(song, 16000).samples
    offsets = sorted(c["segment_start_s"] for c in manifest)
    for pred in replicate_fake.succeeded("lipsync"):
        wav = base64.b64decode(pred["input"]["audio"].split(",", 1)[1])
        tmp = tmp_path / f"{pred['id']}.wav"
        tmp.write_bytes(wav)
        sent = decode_mono(tmp, 16000).samples
        # which offset is it? the one where the song matches, sample for sample
        errors = [float(np.mean(np.abs(sent[:8000] - source[int(o * 16000):int(o * 16000) + 8000])))
                  for o in offsets]
        assert min(errors) < 2e-3, errors
    # the offsets are the sums of the earlier scenes' lengths, at the clip's first frame (the
    # first frame at or after the cut, or earlier by a transition's lead-in)
    for clip, scene in zip(sorted(manifest, key=lambda c: c["index"]), plan["scenes"],
                           strict=True):
        assert scene["start_s"] - 0.3 <= clip["segment_start_s"] <= scene["start_s"] + 1 / 30
    ledger = rows(home, job)
    lip_rows = [r for r in ledger if r["model"] == "sync/lipsync-2-pro"]
    assert len(lip_rows) == len(sung) and all(r["status"] == "ok" for r in lip_rows)
    assert all(r["cost_usd"] == pytest.approx(r["units"] * spec("sync/lipsync-2-pro")
                                              .unit_price_usd) for r in lip_rows)
    # continuation: every scene after the first starts from the previous clip's last frame
    videos = replicate_fake.succeeded("video")
    assert len(videos) == len(plan["scenes"])
    from PIL import Image
    starts = [np.asarray(Image.open(io.BytesIO(base64.b64decode(
        p["input"]["start_image"].split(",", 1)[1]))).convert("L").resize((64, 64)), float)
        for p in videos]
    board = [np.asarray(Image.open(job_dir(home, job) / "storyboard" / f"{i + 1:02d}.png")
                        .convert("L").resize((64, 64)), float) for i in range(len(videos))]
    assert any(np.abs(s - board[0]).mean() < 1 for s in starts)  # scene 1 from its image
    from_board = sum(any(np.abs(s - b).mean() < 1 for b in board) for s in starts)
    assert from_board == 1, "later scenes must start from a clip's last frame, not the storyboard"
    assert math.isclose(summary["duration_s"], summary["audio_duration_s"], abs_tol=1 / 30)
