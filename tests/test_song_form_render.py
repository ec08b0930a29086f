"""A render of a song with a form follows it: the sections found in the song are in its beat grid,
every section boundary is a cut, shots are shorter in the choruses than in the verses, and the
video passes every quality check (a pop song rendered from MIDI with real instrument samples)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from statistics import mean

import pytest

from tests import music_corpus
from video_assets.cli import main

needs_fluidsynth = pytest.mark.skipif(music_corpus.missing_tools() is not None,
                                      reason=f"corpus cannot render: {music_corpus.missing_tools()}")


@pytest.fixture(scope="module")
def form_job(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    piece = music_corpus.render("song_pop", tmp_path_factory.mktemp("form"))
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["render", "--audio", str(piece.wav_path), "--prompt",
                     "a paper boat on a rainy street", "--aspect", "1:1", "--json"])
    summary = json.loads(buffer.getvalue().strip().splitlines()[-1])
    assert code == 0, summary
    folder = home / "media" / "jobs" / summary["job_id"]
    return {"piece": piece, "summary": summary,
            "grid": json.loads((folder / "beat_grid.json").read_text()),
            "script": json.loads((folder / "script.json").read_text())}


@pytest.mark.slow
@needs_fluidsynth
def test_the_beat_grid_of_a_song_has_its_form(form_job: dict):
    assert [s["label"] for s in form_job["grid"]["sections"]] == \
        [s.label for s in form_job["piece"].sections]


@pytest.mark.slow
@needs_fluidsynth
def test_every_section_boundary_of_a_render_is_a_cut(form_job: dict):
    cuts = [s["start_s"] for s in form_job["script"]["scenes"][1:]]
    for section in form_job["grid"]["sections"][1:]:
        assert min(abs(c - section["start_s"]) for c in cuts) <= 0.011, section


@pytest.mark.slow
@needs_fluidsynth
def test_a_render_cuts_faster_in_the_choruses_than_in_the_verses(form_job: dict):
    def shots(label: str) -> list[float]:
        spans = [(s["start_s"], s["end_s"]) for s in form_job["grid"]["sections"]
                 if s["label"] == label]
        return [sc["end_s"] - sc["start_s"] for sc in form_job["script"]["scenes"]
                if any(a <= (sc["start_s"] + sc["end_s"]) / 2 < b for a, b in spans)]

    assert mean(shots("chorus")) < mean(shots("verse"))


@pytest.mark.slow
@needs_fluidsynth
def test_a_render_that_follows_the_song_passes_every_quality_check(form_job: dict):
    assert form_job["summary"]["status"] == "done"
    assert all(form_job["summary"]["checks"].values()), form_job["summary"]["checks"]


@pytest.fixture(scope="module")
def energetic_job(home: Path, form_job: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same song rendered with energetic pacing (its own job)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["render", "--audio", str(form_job["piece"].wav_path), "--prompt",
                     "a paper boat on a rainy street", "--aspect", "1:1", "--pacing", "energetic",
                     "--json"])
    summary = json.loads(buffer.getvalue().strip().splitlines()[-1])
    assert code == 0, summary
    folder = home / "media" / "jobs" / summary["job_id"]
    return {"summary": summary, "folder": folder,
            "quality": json.loads((folder / "quality.json").read_text())}


@pytest.mark.slow
@needs_fluidsynth
def test_energetic_pacing_cuts_on_beats_inside_chorus_scenes_and_passes_every_check(
        energetic_job: dict):
    from video_assets.scene_media import segments_for, shot_plan
    from video_assets.schemas import BeatGrid, ClipSpec, Script

    folder = energetic_job["folder"]
    script = Script.model_validate_json((folder / "script.json").read_text())
    grid = BeatGrid.model_validate_json((folder / "beat_grid.json").read_text())
    specs = [ClipSpec.model_validate(x) for x in json.loads((folder / "clips.json").read_text())]
    segments, _ = shot_plan(script, specs, grid, "energetic", 30, 8)
    scene_cuts = {s.cut_in_frame for s in segments_for(script, 30, 8)}
    beat_cuts = [s.cut_in_frame for s in segments[1:] if s.cut_in_frame not in scene_cuts]
    assert {s.zoom for s in segments} == {1.0, 1.25}  # every other shot punched in
    assert len(beat_cuts) >= 4  # the choruses are cut again on their beats
    detected = energetic_job["quality"]["cut_frames"]
    assert all(min(abs(f - d) for d in detected) <= 1 for f in beat_cuts)  # seen in the file
    assert all(energetic_job["summary"]["checks"].values()), energetic_job["summary"]["checks"]
