"""A plan is not thrown away (nor paid for twice) for a cosmetic detail: the OpenAI planner coerces
palettes and over-long captions, keeps the repair round for structural problems, and the schema
it sends says what the instructions ask. Against the loopback OpenAI server (``fake_openai.py``)
through the official client: one job end to end, the rest through the planner itself."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_song
from tests.fake_openai import FakeOpenAI
from tests.fake_openai import serving as serving_openai
from tests.test_providers import rows
from video_assets.assets.common import row_factory
from video_assets.cli import main
from video_assets.providers.openai import CAPTION_MAX_CHARS, OpenAIPlanner, OpenAIRunner, PlanInvalid
from video_assets.providers.retry import RetryPolicy
from video_assets.schemas import BeatGrid, Boundary, CallRecord, Request, Script

KEY = f"sk-coercion-{uuid.uuid4().hex}"
SEVEN = ["#101820", "#f2aa4c", "#e8e8e8", "#223344", "#abcdef", "#FF0000", "#00ff00"]
GRID = BeatGrid(duration_s=8.0, tempo_bpm=120.0, beats_s=[0.5 * i for i in range(16)],
                downbeats_s=[2.0 * i for i in range(4)], beat_energy=[0.2, 0.9] * 8,
                method="beats", confidence=0.9, meter=4,
                boundaries=[Boundary(start_s=2.0 * i, end_s=2.0 * i + 2.0) for i in range(4)])


@pytest.fixture()
def planner_fake(home: Path) -> Iterator[FakeOpenAI]:
    with serving_openai(FakeOpenAI(key=KEY)) as server:
        yield server


def chats(fake: FakeOpenAI) -> list[dict]:
    return [json.loads(r["body"]) for r in fake.requests if r["path"] == "/v1/chat/completions"]


def plan(calls: list[CallRecord]) -> Script:
    planner = OpenAIPlanner("gpt-4o-mini", OpenAIRunner(RetryPolicy(backoff_base_s=0.001)))
    new_row = row_factory(calls, job_id="unit", asset="script", provider="openai",
                          model="gpt-4o-mini")
    return planner.plan(Request(prompt="lanterns drifting over a dark lake", audio="lake.wav"),
                        GRID, 7, None, new_row)


@pytest.mark.slow
def test_a_job_whose_plan_has_seven_colours_succeeds_after_one_paid_call(
        planner_fake: FakeOpenAI, home: Path, tmp_path: Path, capsys):
    planner_fake.palette = SEVEN
    song = make_song(tmp_path / "seven.wav", 6.6, tempo_bpm=120.0)
    code = main(["render", "--audio", str(song), "--prompt", "lanterns drifting over a dark lake",
                 "--aspect", "1:1", "--transcribe", "offline", "--json"])
    out = capsys.readouterr()
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert code == 0, out.out + out.err
    assert len(chats(planner_fake)) == 1
    paid = [r for r in rows(home, summary["job_id"]) if r["asset"] == "script" and r["cost_usd"] > 0]
    assert len(paid) == 1
    written = json.loads((home / "media" / "jobs" / summary["job_id"] / "script.json").read_text())
    assert written["style"]["palette_hex"] == SEVEN[:6]


@pytest.mark.parametrize("palette, kept", [
    (["#AABBCC", "ff8800", "#fff", "teal", "#123456"], ["#AABBCC", "#ff8800", "#ffffff", "#123456"]),
    (["#112233", "#112233"], ["#112233", "#1b1f3b", "#f2aa4c"]),  # too few: padded to 3
    ([], ["#1b1f3b", "#f2aa4c", "#e8e8e8"]),
], ids=["malformed", "one", "none"])
def test_malformed_and_short_palettes_are_coerced_without_a_repair_round(
        planner_fake: FakeOpenAI, palette: list[str], kept: list[str]):
    planner_fake.palette = palette
    calls: list[CallRecord] = []
    assert plan(calls).style.palette_hex == kept
    assert len(chats(planner_fake)) == 1 and [c.status for c in calls] == ["ok"]


def test_over_long_captions_are_clipped_at_a_word_without_a_repair_round(
        planner_fake: FakeOpenAI):
    planner_fake.caption_chars = 400
    calls: list[CallRecord] = []
    captions = [s.caption for s in plan(calls).scenes]
    assert len(chats(planner_fake)) == 1
    assert all(len(c) <= CAPTION_MAX_CHARS and c.endswith("la…") for c in captions), captions
    assert [c.split(" la")[0] for c in captions] == [f"line {i}" for i in range(1, 5)]


def test_an_unknown_camera_move_still_gets_the_repair_round(planner_fake: FakeOpenAI):
    planner_fake.bad_cameras = 1
    calls: list[CallRecord] = []
    assert [s.camera for s in plan(calls).scenes][0] == "push_in"
    sent = chats(planner_fake)
    assert len(sent) == 2 and [c.status for c in calls] == ["ok", "ok"]  # both were paid
    assert "camera" in sent[1]["messages"][-1]["content"]


def test_a_wrong_scene_count_twice_fails_with_the_problem_and_a_fix(planner_fake: FakeOpenAI):
    planner_fake.bad_plans = 2
    with pytest.raises(PlanInvalid, match=r"invalid plan twice \(scenes: 3 scenes for 4.*fix:"):
        plan([])
    assert len(chats(planner_fake)) == 2


def test_the_schema_sent_says_what_the_instructions_ask(planner_fake: FakeOpenAI):
    plan([])
    [body] = chats(planner_fake)
    schema = body["response_format"]["json_schema"]["schema"]
    palette = schema["$defs"]["DraftStyle"]["properties"]["palette_hex"]
    assert (palette["minItems"], palette["maxItems"]) == (3, 6)
    assert palette["items"]["pattern"] == "^#[0-9a-fA-F]{6}$"
    scenes = schema["properties"]["scenes"]
    assert scenes["minItems"] == scenes["maxItems"] == len(GRID.boundaries)
