"""Scene edits as pure functions (``video_assets/edits.py``): what each operation keeps, what it
makes again, and how it refuses an edit that would break the beat grid or the clip limits."""

from __future__ import annotations

import pytest

from video_assets.edits import EditContext, EditError, apply_edits, parse_ops
from video_assets.media.boundaries import BoundaryLimits
from video_assets.schemas import BeatGrid, Boundary, ClipSpec, Scene, Script, Style, Take

BEATS = [round(0.5 * i, 3) for i in range(1, 60)]  # 120 BPM, 30 s
SLOTS = [(0.0, 4.0), (4.0, 8.0), (8.0, 12.5), (12.5, 17.0), (17.0, 21.0), (21.0, 25.0),
         (25.0, 30.0)]


@pytest.fixture()
def job() -> tuple[Script, EditContext]:
    grid = BeatGrid(duration_s=30.0, tempo_bpm=120.0, beats_s=BEATS, downbeats_s=BEATS[::4],
                    beat_energy=[0.5] * len(BEATS), method="beats", confidence=1.0, meter=4,
                    boundaries=[Boundary(start_s=a, end_s=b) for a, b in SLOTS])
    scenes = [Scene(index=i, start_s=a, end_s=b, prompt=f"picture {i + 1}", caption=f"words {i}",
                    camera="static", motion="drift", transition="cut", energy=0.1 * i, seed=100 + i)
              for i, (a, b) in enumerate(SLOTS)]
    script = Script(summary="s", archetype="journey", characters=[], scenes=scenes,
                    style=Style(palette_hex=["#000000", "#111111", "#222222"], lighting="l",
                                mood="m"))
    clips = [ClipSpec(index=i, key=f"jobs/j/clips/{i + 1:02d}.mp4", clip_duration_s=5.0,
                      segment_start_s=a, segment_duration_s=b - a, source_key=f"cache/clip/{i}.mp4",
                      image_key=f"cache/image/{i}.png") for i, (a, b) in enumerate(SLOTS)]
    return script, EditContext(grid=grid, clips=clips, limits=BoundaryLimits())


def edit(job, *ops: dict):
    script, ctx = job
    return apply_edits(script, parse_ops(list(ops)), ctx)


def refused(job, op: dict) -> EditError:
    with pytest.raises(EditError) as info:
        edit(job, op)
    return info.value


def clip_of(scene: Scene) -> str | None:
    return scene.take.clip_key if scene.take else None


def test_prompt_change_remakes_only_that_scene(job):
    result = edit(job, {"op": "prompt", "scene": 3, "prompt": "a red kite at dawn"})
    assert result.changed == [3]
    scenes = result.script.scenes
    assert scenes[2].prompt == "a red kite at dawn" and scenes[2].take is None
    assert [clip_of(s) for i, s in enumerate(scenes) if i != 2] == \
        [f"cache/clip/{i}.mp4" for i in range(7) if i != 2]


def test_caption_or_transition_change_keeps_the_picture(job):
    result = edit(job, {"op": "prompt", "scene": 2, "caption": "new words",
                        "transition": "crossfade"})
    assert result.changed == []
    assert result.script.scenes[1].caption == "new words"
    assert result.script.scenes[1].transition == "crossfade"
    assert clip_of(result.script.scenes[1]) == "cache/clip/1.mp4"


def test_prompt_edit_that_changes_nothing_is_refused(job):
    assert "nothing to do" in str(refused(job, {"op": "prompt", "scene": 1,
                                                "prompt": "picture 1"}))


def test_reroll_gives_a_new_seed_and_remakes_the_scene(job):
    result = edit(job, {"op": "reroll", "scene": 4})
    assert result.changed == [4]
    assert result.script.scenes[3].seed != 103 and result.script.scenes[3].take is None
    # stable: the same reroll of the same version gives the same seed (the cache serves it)
    assert edit(job, {"op": "reroll", "scene": 4}).script.scenes[3].seed == \
        result.script.scenes[3].seed


def test_move_cut_lands_on_the_beat_and_keeps_both_clips(job):
    result = edit(job, {"op": "move-cut", "scene": 2, "beats": 2})
    scenes = result.script.scenes
    assert (scenes[1].end_s, scenes[2].start_s) == (9.0, 9.0)
    assert 9.0 in BEATS and result.changed == []
    assert [clip_of(s) for s in scenes] == [f"cache/clip/{i}.mp4" for i in range(7)]


def test_move_cut_past_the_limits_names_the_allowed_beats(job):
    err = refused(job, {"op": "move-cut", "scene": 2, "beats": 9})
    assert err.field == "beats" and "--beats -2..+3" in str(err)


def test_move_cut_after_the_last_scene_is_refused(job):
    assert refused(job, {"op": "move-cut", "scene": 7, "beats": 1}).field == "scene"


def test_slip_sets_the_in_point_within_the_clip(job):
    result = edit(job, {"op": "slip", "scene": 1, "in_s": 0.75})
    assert result.script.scenes[0].in_s == 0.75 and result.changed == []


def test_slip_past_the_clip_names_the_largest_in_point(job):
    err = refused(job, {"op": "slip", "scene": 1, "in_s": 3})
    assert err.field == "in_s" and "0..1.00 s" in str(err)


def test_reorder_moves_pictures_between_slots_and_keeps_the_cuts(job):
    result = edit(job, {"op": "reorder", "scene": 1, "to": 4})
    scenes = result.script.scenes
    assert [(s.start_s, s.end_s) for s in scenes] == SLOTS  # the music's cuts stay
    assert [s.prompt for s in scenes][:4] == ["picture 2", "picture 3", "picture 4", "picture 1"]
    assert clip_of(scenes[3]) == "cache/clip/0.mp4"  # its clip moved with it: nothing to make
    assert result.changed == [] and [s.index for s in scenes] == list(range(7))


def test_delete_gives_the_time_to_the_neighbours_on_a_beat(job):
    result = edit(job, {"op": "delete", "scene": 4})
    scenes = result.script.scenes
    assert len(scenes) == 6 and "picture 4" not in [s.prompt for s in scenes]
    assert scenes[2].end_s == scenes[3].start_s and scenes[2].end_s in BEATS
    assert scenes[2].start_s == 8.0 and scenes[3].end_s == 21.0
    assert result.changed == []


def test_delete_that_would_leave_a_too_long_scene_is_refused(job):
    err = refused(job, {"op": "delete", "scene": 1})
    assert "at most 7.00 s" in str(err)


def test_split_makes_two_scenes_on_a_beat_the_second_going_on_with_the_clip(job):
    long_job = edit(job, {"op": "delete", "scene": 4}).script  # scene 3: 8.0 - 14.5 s
    script, ctx = job
    result = apply_edits(long_job, parse_ops([{"op": "split", "scene": 3, "at_beat": 6}]),
                         EditContext(**{**ctx.__dict__, "clips": []}))
    first, second = result.script.scenes[2:4]
    assert (first.start_s, first.end_s, second.start_s, second.end_s) == (8.0, 11.0, 11.0, 14.5)
    assert first.transition == "cut" and clip_of(first) == clip_of(second)
    assert second.in_s == pytest.approx(3.0) and result.changed == []


def test_split_with_too_short_parts_is_refused(job):
    assert refused(job, {"op": "split", "scene": 3, "at_beat": 2}).field == "at_beat"


def test_replace_takes_the_staged_file_as_the_scene_clip(job):
    script, ctx = job
    staged = EditContext(**{**ctx.__dict__, "stage_file": lambda key: Take(
        clip_key=key, clip_s=2.5, provider="user")})
    result = apply_edits(script, parse_ops([{"op": "replace", "scene": 2,
                                             "file": "jobs/j/uploads/x.mp4"}]), staged)
    take = result.script.scenes[1].take
    assert (take.clip_key, take.provider, take.image_key) == ("jobs/j/uploads/x.mp4", "user",
                                                             "cache/image/1.png")


def test_unknown_scene_and_operation_are_refused_naming_the_field(job):
    assert "1..7" in str(refused(job, {"op": "reroll", "scene": 9}))
    with pytest.raises(EditError) as info:
        parse_ops([{"op": "bogus", "scene": 1}])
    assert info.value.field.startswith("operations")
    with pytest.raises(EditError):
        parse_ops([{"op": "slip", "scene": 1}])  # in_s missing


def test_several_edits_make_one_version(job):
    result = edit(job, {"op": "prompt", "scene": 2, "prompt": "first change"},
                  {"op": "reorder", "scene": 2, "to": 5})
    assert result.script.scenes[4].prompt == "first change"
    assert result.changed == [5]  # the re-made scene, where it now is


def test_a_split_cut_is_known_to_be_seamless_and_other_cuts_are_not(job):
    from video_assets.assets.quality import seamless_cuts
    from video_assets.media.compose import cut_frame, plan_segments

    script, ctx = job
    long_job = edit(job, {"op": "delete", "scene": 4}).script
    result = apply_edits(long_job, parse_ops([{"op": "split", "scene": 3, "at_beat": 6}]),
                         EditContext(**{**ctx.__dict__, "clips": []}))
    scenes = result.script.scenes
    segments = plan_segments([(s.start_s, s.end_s) for s in scenes],
                             [s.transition for s in scenes[:-1]], 30, 8)
    specs = [ClipSpec(index=s.index, key=f"k{s.index}", clip_duration_s=s.take.clip_s,
                      segment_start_s=seg.start_frame / 30, segment_duration_s=seg.n_frames / 30,
                      source_key=s.take.clip_key, in_s=s.in_s)
             for s, seg in zip(scenes, segments, strict=True)]
    assert seamless_cuts(specs, segments, 30) == [cut_frame(11.0)]
