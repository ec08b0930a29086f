"""Edits that follow the song: cuts on section boundaries, shot lengths by section energy and the
request's ``pacing``, transitions by how the music changes, the planners given the sections.

Synthetic beat grids (beats, downbeats and sections known exactly): no audio is analysed here.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from statistics import mean

import pytest
from pydantic import ValidationError

from tests.fake_openai import FakeOpenAI, serving
from video_assets.cli import EXIT_BAD_INPUT, main
from video_assets.media.boundaries import (
    SECTION_TOLERANCE_S,
    BoundaryLimits,
    plan_boundaries,
    required_clips,
)
from video_assets.providers.offline import MOTIFS, MOTION, OfflinePlanner
from video_assets.providers.openai import OpenAIPlanner, OpenAIRunner, plan_brief
from video_assets.schemas import BeatGrid, Boundary, CallRecord, Lyrics, Request, Section, Word

LIMITS = BoundaryLimits()
NO_WORDS = Lyrics(provider="offline", model="none")
PROMPT = "a fox running through a neon city at night"
# a song at 120 BPM in 4/4 (beats every 0.5 s, bars of 2 s); sections start on downbeats
SONG = [(0, 14, "intro", 0.3), (14, 30, "verse", 0.6), (30, 46, "chorus", 1.0),
        (46, 54, "break", 0.2), (54, 70, "drop", 1.0), (70, 86, "verse", 0.65),
        (86, 102, "chorus", 0.95), (102, 112, "outro", 0.3)]
SONG_S = 112.0


def song_sections(spec=SONG) -> list[Section]:
    return [Section(start_s=a, end_s=b, label=label, energy=e) for a, b, label, e in spec]


def song_beats(duration_s: float = SONG_S) -> tuple[list[float], list[float]]:
    beats = [0.5 * i for i in range(1, int(duration_s / 0.5))]
    return beats, [t for t in beats if math.isclose(t % 2.0, 0.0)]


def sectioned_grid(pacing: str = "auto", spec=SONG) -> BeatGrid:
    """The song's grid with its boundaries planned as the beat stage plans them."""
    sections = song_sections(spec)
    duration_s = sections[-1].end_s
    beats, downbeats = song_beats(duration_s)
    # the beats' energy follows their section's, so the beats alone say the same as the sections
    energy = [sections[max(k for k, s in enumerate(sections) if s.start_s <= t)].energy
              for t in beats]
    bounds = plan_boundaries(beats, duration_s, LIMITS, downbeats, sections=sections,
                             pacing=pacing)
    return BeatGrid(duration_s=duration_s, tempo_bpm=120.0, beats_s=beats, downbeats_s=downbeats,
                    beat_energy=energy, method="beats", confidence=0.9, meter=4,
                    boundaries=[Boundary(start_s=a, end_s=b) for a, b in bounds],
                    sections=sections)


def shots_in(bounds, section: Section) -> list[float]:
    return [b - a for a, b in bounds if section.start_s <= (a + b) / 2 < section.end_s]


def request(**fields) -> Request:
    return Request(prompt=PROMPT, audio="song.wav", **fields)


# --- boundaries ---------------------------------------------------------------------------------


def test_every_section_boundary_is_a_cut_and_no_shot_straddles_one():
    sections = song_sections()
    beats, downbeats = song_beats()
    bounds = plan_boundaries(beats, SONG_S, LIMITS, downbeats, sections=sections)
    cuts = {a for a, _ in bounds[1:]}
    assert {s.start_s for s in sections[1:]} <= cuts
    for a, b in bounds:
        assert not any(a < s.start_s < b for s in sections)
        assert LIMITS.min_len_s - 1e-9 <= b - a <= LIMITS.max_len_s + 1e-9
    assert cuts <= set(beats)
    assert bounds[0][0] == 0.0 and bounds[-1][1] == SONG_S
    assert len(bounds) >= required_clips(SONG_S, LIMITS)


def test_a_section_boundary_the_limits_cannot_cut_gets_the_nearest_allowed_beat():
    # the intro is 2 s long: no clip may end there (3 s at least), so the first cut is the
    # nearest beat the limits allow, at 3 s, not wherever the target length would put it
    sections = song_sections([(0, 2, "intro", 0.3), (2, 32, "verse", 0.6)])
    beats, downbeats = song_beats(32.0)
    assert plan_boundaries(beats, 32.0, LIMITS, downbeats)[0] == (0.0, 4.0)  # without sections
    bounds = plan_boundaries(beats, 32.0, LIMITS, downbeats, sections=sections)
    assert bounds[0] == (0.0, LIMITS.min_len_s)


def test_a_section_boundary_off_the_beats_is_cut_at_the_nearest_beat():
    # a section that starts 4 ms after an off-bar beat (another analysis' rounding) gets its cut
    sections = song_sections([(0, 17.004, "verse", 0.6), (17.004, 32, "chorus", 1.0)])
    beats, downbeats = song_beats(32.0)
    bounds = plan_boundaries(beats, 32.0, LIMITS, downbeats, sections=sections)
    assert any(abs(a - 17.004) <= SECTION_TOLERANCE_S for a, _ in bounds[1:])
    assert not any(a < 17.004 - SECTION_TOLERANCE_S < 17.004 + SECTION_TOLERANCE_S < b
                   for a, b in bounds)


def test_shots_in_a_chorus_are_shorter_than_in_a_verse():
    grid = sectioned_grid()
    bounds = [(b.start_s, b.end_s) for b in grid.boundaries]
    chorus = [x for s in grid.sections if s.label == "chorus" for x in shots_in(bounds, s)]
    verse = [x for s in grid.sections if s.label == "verse" for x in shots_in(bounds, s)]
    drop = [x for s in grid.sections if s.label == "drop" for x in shots_in(bounds, s)]
    calm = [x for s in grid.sections if s.label in ("intro", "outro", "break")
            for x in shots_in(bounds, s)]
    assert mean(chorus) < mean(verse)
    assert mean(drop) < mean(verse)
    assert mean(calm) > mean(chorus)


def test_calm_pacing_cuts_less_often_than_energetic():
    calm, auto, energetic = (sectioned_grid(p) for p in ("calm", "auto", "energetic"))
    assert len(calm.boundaries) < len(auto.boundaries) <= len(energetic.boundaries)
    for grid in (calm, energetic):  # still within the limits, still on every section boundary
        assert all(LIMITS.min_len_s - 1e-9 <= b.length_s <= LIMITS.max_len_s + 1e-9
                   for b in grid.boundaries)
        assert {s.start_s for s in grid.sections[1:]} <= {b.start_s for b in grid.boundaries}


def test_pacing_scales_shot_length_without_sections_too():
    beats, downbeats = song_beats(120.0)

    def mean_shot_s(pacing: str) -> float:
        return mean(b - a for a, b in plan_boundaries(beats, 120.0, LIMITS, downbeats,
                                                      pacing=pacing))

    assert mean_shot_s("calm") > mean_shot_s("auto") > mean_shot_s("energetic")


def test_an_unknown_pacing_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="pacing: 'fast'.*calm, auto, energetic"):
        plan_boundaries([1.0, 2.0], 3.0, LIMITS, pacing="fast")


# --- transitions ---------------------------------------------------------------------------------


def transitions_into(script, grid: BeatGrid, label: str) -> list[str]:
    """The transition out of each scene whose end is the start of a section labelled ``label``."""
    starts = {s.start_s for s in grid.sections if s.label == label}
    return [s.transition for s in script.scenes if s.end_s in starts]


def test_auto_transitions_cut_into_a_drop_and_crossfade_into_a_break():
    grid = sectioned_grid()
    script = OfflinePlanner().plan(request(), grid, 7, NO_WORDS)
    assert transitions_into(script, grid, "drop") == ["cut"]
    assert transitions_into(script, grid, "chorus") == ["cut", "cut"]
    assert transitions_into(script, grid, "break") == ["crossfade"]
    assert transitions_into(script, grid, "outro") == ["fade"]


def test_a_fixed_transitions_choice_overrides_the_music():
    grid = sectioned_grid()
    script = OfflinePlanner().plan(request(transitions="crossfade"), grid, 7, NO_WORDS)
    assert {s.transition for s in script.scenes[:-1]} == {"crossfade"}


def test_the_flavor_bias_still_moves_section_transitions():
    grid = sectioned_grid()
    cinematic = OfflinePlanner().plan(request(flavor="cinematic"), grid, 7, NO_WORDS)
    energetic = OfflinePlanner().plan(request(flavor="energetic"), grid, 7, NO_WORDS)
    # cinematic softens the crossfade into the break to a fade; a drop is a cut in every flavour
    assert transitions_into(cinematic, grid, "break") == ["fade"]
    assert transitions_into(cinematic, grid, "drop") == ["cut"]
    # energetic turns the fade into the outro into a crossfade
    assert transitions_into(energetic, grid, "outro") == ["crossfade"]


# --- the planners are given the sections ---------------------------------------------------------


def scene_section(grid: BeatGrid, scene) -> Section:
    mid = (scene.start_s + scene.end_s) / 2
    return next(s for s in grid.sections if s.start_s <= mid < s.end_s)


def motif_of(prompt: str) -> str | None:
    known = [m.split("{")[0] for m in MOTIFS]
    return next((prompt[prompt.index("recurring motif"):] for k in known if k in prompt), None)


def test_offline_scenes_of_repeated_sections_share_a_motif():
    grid = sectioned_grid()
    script = OfflinePlanner().plan(request(), grid, 7, NO_WORDS)
    by_label: dict[str, set[str | None]] = {}
    for scene in script.scenes:
        by_label.setdefault(scene_section(grid, scene).label, set()).add(motif_of(scene.prompt))
    assert len(by_label["chorus"]) == 1 and None not in by_label["chorus"]
    assert len(by_label["verse"]) == 1 and None not in by_label["verse"]
    assert by_label["chorus"] != by_label["verse"]
    assert by_label["intro"] == by_label["drop"] == {None}  # heard once: no motif to repeat


def test_offline_shots_move_with_the_section_not_only_the_beats():
    # the beats say nothing (the same energy everywhere): the sections alone set the motion
    grid = sectioned_grid()
    grid = grid.model_copy(update={"beat_energy": [0.5] * len(grid.beats_s)})
    script = OfflinePlanner().plan(request(), grid, 7, NO_WORDS)
    motion = {}
    for scene in script.scenes:
        motion.setdefault(scene_section(grid, scene).label, set()).add(scene.motion)
    assert motion["chorus"] == motion["drop"] == {MOTION["high"]}
    assert MOTION["high"] not in motion["intro"] | motion["break"] | motion["outro"]


def test_the_llm_brief_lists_the_sections_and_asks_for_motifs():
    grid = sectioned_grid()
    lyrics = Lyrics(provider="openai", model="whisper-1",
                    words=[Word(word="run", start_s=31.0, end_s=31.4)])
    with serving(FakeOpenAI(key=f"sk-test-{uuid.uuid4().hex}")) as fake:
        planner = OpenAIPlanner("gpt-4o-mini", OpenAIRunner())
        script = planner.plan(request(pacing="energetic"), grid, 7, lyrics,
                              lambda: CallRecord(job_id="j", asset="script", provider="openai",
                                                 model="gpt-4o-mini"))
    body = json.loads(next(r["body"] for r in fake.requests
                           if r["path"] == "/v1/chat/completions"))
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    brief = json.loads(user)
    assert brief["sections"] == [
        {"index": k, "label": s.label, "start_s": s.start_s, "end_s": s.end_s,
         "energy": s.energy} for k, s in enumerate(grid.sections)]
    for seg in brief["segments"]:
        section = grid.sections[seg["section"]]
        assert section.start_s <= (seg["start_s"] + seg["end_s"]) / 2 < section.end_s
    assert brief["pacing"] == "energetic"
    assert "shares one visual motif" in system and "cut into a chorus, a drop" in system
    # the fake model answers "cut" everywhere; the cut into the break is the music's crossfade
    ends = {s.end_s: s.transition for s in script.scenes}
    assert [ends[s.start_s] for s in grid.sections if s.label == "break"] == ["crossfade"]


# --- grids without sections, requests without pacing: as before --------------------------------

# Recorded from the code before sections and pacing existed (commit c3271f8), for the grid below:
# the boundaries, and the SHA-256 of the offline plan per flavour and of the LLM's brief.
BEFORE_BOUNDS = [
    (0.0, 3.309004), (3.309004, 6.966741), (6.966741, 11.10271), (11.10271, 15.26533),
    (15.26533, 19.452043), (19.452043, 23.63676), (23.63676, 27.795344),
    (27.795344, 31.929177), (31.929177, 36.063814), (36.063814, 40.224024),
    (40.224024, 44.409602), (44.409602, 48.595569), (48.595569, 52.756565),
    (52.756565, 56.891618), (56.891618, 61.3)]
BEFORE_PLANS = {
    "default": "a930c9cae70cbf451435db2034ec6f4765ae0b009458428d1c402746778c762f",
    "cinematic": "5303a7bade6dacbd6cb188ec9b40c7100319dcaba8dfa528f458f0d30441b58e",
    "energetic": "ca07fc2b2add96eb297ad97d0ec44ccca7ef1621f6d6279c000272375895fed0",
    "minimal": "116fc1132f7e22468f5ac193e5fe5232acf286459c8aaa2a2d17a8e313d9477a",
}
BEFORE_BRIEF = "ef31c5420373aab6baa3ece4a0429de55f41b9b2cbe129d3f50a56317f7008ef"


def unsectioned_grid() -> BeatGrid:
    """A jittery 115 BPM grid of 61.3 s with downbeats, four filled beats and varying energy."""
    beats = [b for b in (round(0.21 + i * 0.52 + 0.03 * math.sin(i * 1.7), 6) for i in range(120))
             if b < 61.3]
    down, weak = beats[1::4], beats[40:44]
    bounds = plan_boundaries(beats, 61.3, LIMITS, down, weak)
    return BeatGrid(duration_s=61.3, tempo_bpm=115.4, beats_s=beats, downbeats_s=down,
                    beat_energy=[round(0.5 + 0.45 * math.sin(i / 9.0), 4)
                                 for i in range(len(beats))],
                    method="beats", confidence=0.9, meter=4,
                    boundaries=[Boundary(start_s=a, end_s=b) for a, b in bounds])


def test_a_grid_without_sections_gets_the_boundaries_it_got_before():
    grid = unsectioned_grid()
    assert [(round(b.start_s, 6), round(b.end_s, 6)) for b in grid.boundaries] == BEFORE_BOUNDS


@pytest.mark.parametrize("flavor", sorted(BEFORE_PLANS))
def test_a_grid_without_sections_gets_the_offline_plan_it_got_before(flavor):
    script = OfflinePlanner().plan(request(flavor=flavor), unsectioned_grid(), 12345, NO_WORDS)
    dump = json.dumps(script.model_dump(mode="json"), sort_keys=True)
    assert hashlib.sha256(dump.encode()).hexdigest() == BEFORE_PLANS[flavor]


def test_a_grid_without_sections_gets_the_llm_brief_it_got_before():
    # the plan's cache key is the brief: an unchanged job is not planned (and paid) again
    words = Lyrics(provider="x", model="y", words=[Word(word="hey", start_s=3.0, end_s=3.4)])
    brief = plan_brief(request(), unsectioned_grid(), words)
    assert "sections" not in brief and "pacing" not in brief
    assert hashlib.sha256(json.dumps(brief, sort_keys=True).encode()).hexdigest() == BEFORE_BRIEF


def test_request_pacing_defaults_to_auto_and_names_the_allowed_values():
    assert request().pacing == "auto"
    assert request(pacing="calm").pacing == "calm"
    with pytest.raises(ValidationError, match="pacing"):
        request(pacing="fast")


def test_render_pacing_flag_is_checked_as_a_request_field(capsys, tmp_path):
    code = main(["render", "--prompt", PROMPT, "--audio", str(tmp_path / "song.wav"),
                 "--pacing", "fast"])
    assert code == EXIT_BAD_INPUT
    assert "pacing" in capsys.readouterr().err
