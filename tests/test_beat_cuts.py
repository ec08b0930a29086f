"""Energetic pacing cuts on single beats inside the scenes of intense sections: where
(``boundaries.inner_beat_cuts``), how a scene becomes shots of its own clip, every other one
punched in and each jumping on within the clip's spare length (``compose.split_segment``,
``scene_media.shot_plan``)."""

from __future__ import annotations

import pytest

from video_assets.media.boundaries import inner_beat_cuts
from video_assets.media.compose import cut_frame, in_frames, plan_segments, split_segment
from video_assets.scene_media import MAX_JUMP_FRAMES, PUNCH_IN, segments_for, shot_plan
from video_assets.schemas import BeatGrid, Boundary, ClipSpec, Scene, Script, Section, Style

FPS, HALF = 30, 8
BEATS = [round(0.5 * i, 3) for i in range(1, 40)]  # 120 BPM, 20 s
SECTIONS = [Section(start_s=0.0, end_s=8.0, label="verse", energy=0.5),
            Section(start_s=8.0, end_s=20.0, label="chorus", energy=1.0)]
SLOTS = [(0.0, 4.0), (4.0, 8.0), (8.0, 11.0), (11.0, 14.0), (14.0, 17.0), (17.0, 20.0)]


def test_energetic_pacing_cuts_on_each_beat_of_a_chorus_scenes_second_half_but_its_last():
    assert inner_beat_cuts(8.0, 11.0, BEATS, SECTIONS, "energetic") == [9.5, 10.0]
    assert inner_beat_cuts(11.0, 14.0, BEATS, SECTIONS, "energetic") == [12.5, 13.0]


@pytest.mark.parametrize("start_s, end_s, pacing, sections", [
    (8.0, 11.0, "auto", SECTIONS), (8.0, 11.0, "calm", SECTIONS),  # other pacings
    (0.0, 4.0, "energetic", SECTIONS),  # a verse
    (8.0, 11.0, "energetic", [])])  # no sections known
def test_no_beat_cuts_outside_energetic_pacing_of_an_intense_section(start_s, end_s, pacing,
                                                                       sections):
    assert inner_beat_cuts(start_s, end_s, BEATS, sections, pacing) == []


def test_a_split_segment_keeps_every_frame_and_its_transitions_ends():
    seg = plan_segments([(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)], ["crossfade", "fade"], FPS, HALF)[1]
    first, second = split_segment(seg, 180)
    assert first.start_frame == seg.start_frame and second.start_frame == 180
    assert first.n_frames + second.n_frames == seg.n_frames
    assert (first.transition_in, first.half_in_frames, first.half_out_frames) == ("crossfade", HALF, 0)
    assert (second.transition_in, second.cut_in_frame, second.fade_out_frames) == \
        ("cut", 180, seg.fade_out_frames)
    with pytest.raises(ValueError, match="solo stretch"):
        split_segment(seg, seg.cut_in_frame)  # inside the crossfade


def job(clip_s: float = 5.0) -> tuple[Script, list[ClipSpec], BeatGrid]:
    grid = BeatGrid(duration_s=20.0, tempo_bpm=120.0, beats_s=BEATS, downbeats_s=BEATS[::4],
                    beat_energy=[0.5] * len(BEATS), method="beats", confidence=1.0, meter=4,
                    boundaries=[Boundary(start_s=a, end_s=b) for a, b in SLOTS], sections=SECTIONS)
    scenes = [Scene(index=i, start_s=a, end_s=b, prompt=f"picture {i + 1}", caption="",
                    camera="static", motion="drift", transition="cut", energy=0.5, seed=i)
              for i, (a, b) in enumerate(SLOTS)]
    script = Script(summary="s", archetype="journey", characters=[], scenes=scenes,
                    style=Style(palette_hex=["#000000", "#111111", "#222222"], lighting="l",
                                mood="m"))
    specs = [ClipSpec(index=i, key=f"clips/{i + 1:02d}.mp4", clip_duration_s=clip_s,
                      segment_start_s=a, segment_duration_s=b - a) for i, (a, b) in enumerate(SLOTS)]
    return script, specs, grid


def test_a_chorus_scene_becomes_shots_of_its_clip_each_jumping_on_in_it():
    script, specs, grid = job()
    segments, shots = shot_plan(script, specs, grid, "energetic", FPS, HALF)
    scenes = segments_for(script, FPS, HALF)
    assert len(segments) == len(shots) == len(scenes) + 8  # two beat cuts in each chorus scene
    assert sum(s.n_frames for s in segments) == sum(s.n_frames for s in scenes)
    assert [s.cut_in_frame for s in segments if s.cut_in_frame not in
            {x.cut_in_frame for x in scenes}] == [cut_frame(t, FPS) for t in
                                                  (9.5, 10.0, 12.5, 13.0, 15.5, 16.0, 18.5, 19.0)]
    third = [(seg, shot) for seg, shot in zip(segments, shots, strict=True) if shot.index == 2]
    assert [shot.key for _, shot in third] == ["clips/03.mp4"] * 3  # one clip, nothing made
    base = third[0][0].start_frame
    jumps = [in_frames(shot.in_s, FPS) - (seg.start_frame - base) for seg, shot in third]
    assert jumps[0] == 0 and 0 < jumps[1] <= MAX_JUMP_FRAMES and jumps[2] == 2 * jumps[1]
    assert [seg.zoom for seg, _ in third] == [1.0, PUNCH_IN, 1.0]  # every other shot tighter
    last = third[-1]
    assert in_frames(last[1].in_s, FPS) + last[0].n_frames < 5.0 * FPS  # never past the clip


def test_a_clip_with_nothing_to_spare_is_punched_in_on_the_beats_without_jumping():
    script, specs, grid = job(clip_s=3.0)  # the chorus scenes are 3 s: no frame to jump over
    segments, shots = shot_plan(script, specs, grid, "energetic", FPS, HALF)
    assert len(segments) == len(segments_for(script, FPS, HALF)) + 8
    for seg, shot in zip(segments, shots, strict=True):  # the clip goes on, never past its end
        scene = segments_for(script, FPS, HALF)[shot.index]
        assert in_frames(shot.in_s, FPS) == seg.start_frame - scene.start_frame
    assert [seg.zoom for seg, shot in zip(segments, shots, strict=True) if shot.index == 2] == \
        [1.0, PUNCH_IN, 1.0]


def test_auto_pacing_lays_a_segment_per_scene():
    script, specs, grid = job()
    assert shot_plan(script, specs, grid, "auto", FPS, HALF) == (segments_for(script, FPS, HALF),
                                                                  specs)
