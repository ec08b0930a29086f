"""The quality report measures the file itself: a correct edit passes, a broken one fails by the
measured amount."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_song
from tests.media_helpers import pattern_clip
from video_assets.assets.quality import BARS, check_results, measure
from video_assets.media import quality
from video_assets.media.compose import ComposeSettings, compose, plan_segments
from video_assets.media.ffmpeg_bin import run_ffmpeg

FPS = 30
SIZE = (180, 320)
SETTINGS = ComposeSettings(width=SIZE[0], height=SIZE[1], fps=FPS, preset="ultrafast")


@pytest.fixture(scope="module")
def edit(tmp_path_factory) -> dict:
    """A 10.5 s edit of three moving clips with hard cuts on beats at 3.5 s and 7.0 s."""
    folder = tmp_path_factory.mktemp("quality")
    clips = [pattern_clip(folder / f"p{i}.mp4", 5.0 + i, look=i) for i in range(3)]
    song = make_song(folder / "song.wav", 10.5, tempo_bpm=120.0)
    beats = [0.5 * k for k in range(1, 21)]
    bounds = [(0.0, 3.5), (3.5, 7.0), (7.0, 10.5)]
    segments = plan_segments(bounds, ["cut", "cut"], FPS, 8)
    out = folder / "good.mp4"
    compose(clips, [5.0, 6.0, 7.0], segments, song, out, SETTINGS)
    return {"folder": folder, "clips": clips, "song": song, "beats": beats, "segments": segments,
            "good": out}


def by_name(report) -> dict:
    return {m.metric: m for m in report.metrics}


def test_correct_edit_passes_every_bar(edit):
    report = measure(edit["good"], edit["song"], 10.5, edit["beats"], edit["segments"], FPS, SIZE)
    failed = [m for m in report.metrics if not m.passed]
    assert not failed, failed
    assert report.cut_frames == [105, 210]  # 3.5 s and 7.0 s, measured from the pixels
    assert abs(report.audio_offset_ms) < 1.0
    assert report.container == {"width": 180, "height": 320, "fps": 30.0, "n_frames": 315,
                                "video_codec": "h264", "pix_fmt": "yuv420p", "audio_codec": "aac",
                                "faststart": True}
    assert abs(report.loudness_lufs - report.source_loudness_lufs) < 1.0
    assert all(r.passed for r in check_results(report))


def soft_edit(edit, first_s: float, second_s: float, name: str):
    """Crossfade into scene 2 at ``first_s``, fade through black into scene 3 at ``second_s``."""
    bounds = [(0.0, first_s), (first_s, second_s), (second_s, 10.5)]
    segments = plan_segments(bounds, ["crossfade", "fade"], FPS, 8)
    out = edit["folder"] / f"{name}.mp4"
    compose(edit["clips"], [5.0, 6.0, 7.0], segments, edit["song"], out, SETTINGS)
    return measure(out, edit["song"], 10.5, edit["beats"], segments, FPS, SIZE)


def test_crossfade_and_fade_on_their_beats_pass(edit):
    report = soft_edit(edit, 3.5, 7.0, "soft_ok")
    assert not [m for m in report.metrics if not m.passed]
    assert report.crossfade_centre_ms == [pytest.approx(0.0, abs=1000 / FPS / 2)]
    assert report.crossfades_unmeasurable == 0
    assert report.fade_black_ms == [pytest.approx(0.0, abs=1000 / FPS / 2)]


def test_crossfade_and_fade_off_their_beats_fail_by_the_measured_amount(edit):
    metrics = by_name(soft_edit(edit, 3.6, 6.9, "soft_off"))  # 100 ms late, 100 ms early
    for name in ("crossfade_centre_max_ms", "fade_black_max_ms"):
        assert not metrics[name].passed
        assert metrics[name].value == pytest.approx(100.0, abs=1000 / FPS / 2), name


@pytest.mark.parametrize("half_frames", [2, 3, 4, 5])
def test_short_fades_on_their_beats_pass_and_are_not_taken_for_cuts(edit, half_frames):
    """Fades through black of 2-5 frames a side: the cut detector fires on frames near black
    other than the black one (a CI render failed with one counted a frame early). A fade is
    measured by its black frame; only planned hard cuts are measured as cuts."""
    bounds = [(0.0, 3.5), (3.5, 7.0), (7.0, 10.5)]
    segments = plan_segments(bounds, ["cut", "fade"], FPS, half_frames)
    out = edit["folder"] / f"short_fade{half_frames}.mp4"
    compose(edit["clips"], [5.0, 6.0, 7.0], segments, edit["song"], out, SETTINGS)
    # the detector alone fires on frames of the fade other than its black one (frame 210)
    fired = quality.detect_cuts(quality.decode_frames(out))
    assert [c for c in fired if abs(c - 210) <= half_frames + 1 and c != 210], fired
    report = measure(out, edit["song"], 10.5, edit["beats"], segments, FPS, SIZE)
    failed = [m for m in report.metrics if not m.passed]
    assert not failed, failed
    assert report.cut_frames == [105]  # the hard cut, found on its frame
    assert report.fade_black_ms == [pytest.approx(0.0, abs=1000 / FPS / 2)]


def test_a_crossfade_that_cannot_be_seen_is_not_guessed():
    """Beat flashes every 14 frames over a crossfade between two identical shots: the flash edges
    are not taken for the crossfade's."""
    frames = np.full((120, 8, 8, 3), 90, dtype=np.uint8)
    for beat in range(8, 120, 14):
        for k, level in enumerate((150, 135, 120, 110, 100)):
            if beat + k < 120:
                frames[beat + k] = level
    assert quality.crossfade_centre(frames, 50, 8) is None


@pytest.mark.parametrize("tempo_bpm", [120.0, 150.0])
def test_crossfades_between_alike_animatics_with_beat_pulses_are_found_on_their_frame(
        tmp_path, tempo_bpm):
    """Animatic clips, two of one card (the same prompt twice, as a plan can give), pulsing on
    the song's beats, crossfaded on beats: each beat pulse changes the picture far more than a
    crossfade between alike shots does. Renders once failed their checks here: the pulses'
    edges were taken for the crossfade's (measured 237 ms off its beat) or no crossfade was
    seen; and at 150 BPM the pulse a beat before a crossfade was counted as a cut (the crossfade
    had begun by the time the detector looked whether the change stayed)."""
    from video_assets.media.animatic import render_animatic
    from video_assets.media.art import render_card

    beat_s = 60.0 / tempo_bpm
    beats = [beat_s * k for k in range(1, 36)]
    scene_s = 7 * beat_s
    bounds = [(k * scene_s, (k + 1) * scene_s) for k in range(4)]
    segments = plan_segments(bounds, ["crossfade"] * 3, FPS, 8)
    cards = []  # scenes 1 and 2 share a card; 3 and 4 have their own, in the same palette
    for seed, caption in ((7, "a fox in the clearing"), (8, "the fox runs"), (9, "dawn")):
        cards.append(tmp_path / f"card{seed}.png")
        render_card((270, 480), ["#1b1f3b", "#f25f5c", "#ffe066"], seed, caption).save(cards[-1])
    clips = []
    for seg, move, card in zip(segments, ("pan_left", "tilt_down", "push_in", "static"),
                               (cards[0], *cards), strict=True):
        t0 = seg.start_frame / FPS
        clips.append(tmp_path / f"{move}.mp4")
        render_animatic(card, clips[-1], 5.0, SIZE, move, [b - t0 for b in beats if b >= t0])
    song = make_song(tmp_path / "song.wav", 4 * scene_s, tempo_bpm=tempo_bpm)
    out = tmp_path / "alike.mp4"
    compose(clips, [5.0] * 4, segments, song, out, SETTINGS)
    frames = quality.decode_frames(out)
    found = [quality.crossfade_centre(frames, s.cut_in_frame, s.half_in_frames)
             for s in segments[1:]]
    # to the frame, give or take one (as documented); a crossfade a pulse hides is not
    # measurable, rather than guessed
    measured = [(c, s.cut_in_frame) for c, s in zip(found, segments[1:], strict=True) if c]
    assert len(measured) >= 2 and all(abs(c - plan) <= 1 for c, plan in measured), found
    report = measure(out, song, 4 * scene_s, beats, segments, FPS, SIZE)
    assert report.crossfades_unmeasurable == found.count(None)
    assert report.cut_frames == []  # no beat pulse counted as a cut
    failed = [m for m in report.metrics if not m.passed and m.metric != "min_clip_sharpness"]
    assert not failed, failed


def test_each_failing_check_names_its_measured_value(edit):
    bounds = [(0.0, 3.6), (3.6, 7.0), (7.0, 10.5)]
    segments = plan_segments(bounds, ["cut", "cut"], FPS, 8)
    out = edit["folder"] / "late_cut_checks.mp4"
    compose(edit["clips"], [5.0, 6.0, 7.0], segments, edit["song"], out, SETTINGS)
    report = measure(out, edit["song"], 10.5, edit["beats"], segments, FPS, SIZE)
    results = {r.check_name: r for r in check_results(report)}
    assert set(results) == {b.name for b in BARS}
    failing = [name for name, r in results.items() if not r.passed]
    assert failing == ["cuts_on_beats"]
    bad = results["cuts_on_beats"]
    measured = bad.metadata["cut_to_beat_max_ms"].value
    assert measured == pytest.approx(100.0, abs=1000 / FPS)
    assert f"cut_to_beat_max_ms = {measured:g}" in bad.description
    assert bad.metadata["cut_to_beat_max_ms_limit"].value == pytest.approx(1000 / FPS, abs=0.01)


def test_cut_100_ms_off_the_beat_fails_with_its_distance(edit):
    bounds = [(0.0, 3.6), (3.6, 7.0), (7.0, 10.5)]  # the first cut 100 ms after its beat
    segments = plan_segments(bounds, ["cut", "cut"], FPS, 8)
    out = edit["folder"] / "late_cut.mp4"
    compose(edit["clips"], [5.0, 6.0, 7.0], segments, edit["song"], out, SETTINGS)
    metrics = by_name(measure(out, edit["song"], 10.5, edit["beats"], segments, FPS, SIZE))
    assert not metrics["cut_to_beat_max_ms"].passed
    assert metrics["cut_to_beat_max_ms"].value == pytest.approx(100.0, abs=1000 / FPS)
    assert metrics["cut_to_boundary_max_ms"].passed  # it is where the (bad) plan put it


def test_audio_shifted_80_ms_fails_with_the_measured_offset(edit):
    out = edit["folder"] / "late_audio.mp4"
    run_ffmpeg(["-y", "-i", str(edit["good"]), "-af", "adelay=80:all=1,atrim=0:10.5",
                "-c:v", "copy", "-c:a", "aac", str(out)], what="shifting the audio")
    metrics = by_name(measure(out, edit["song"], 10.5, edit["beats"], edit["segments"], FPS, SIZE))
    assert not metrics["audio_offset_ms"].passed
    assert metrics["audio_offset_ms"].value == pytest.approx(80.0, abs=2.0)


def test_frozen_and_black_stretches_are_measured():
    rng = np.random.default_rng(0)
    moving = rng.integers(0, 255, size=(60, 8, 8, 3), dtype=np.uint8)
    frozen = np.repeat(moving[:1], 60, axis=0)
    black = np.zeros((30, 8, 8, 3), dtype=np.uint8)
    frames = np.concatenate([moving, frozen, black])
    assert quality.frozen_frames(frames)[60:120].mean() > 0.7
    assert not quality.frozen_frames(moving).any()
    assert quality.black_frames(frames)[120:].all() and not quality.black_frames(moving).any()


def test_audio_offset_estimate_is_sub_millisecond():
    sr = 48000
    rng = np.random.default_rng(3)
    src = rng.standard_normal(sr * 3).astype(np.float32)
    late = np.concatenate([np.zeros(96), src])[: len(src)]  # 2.0 ms late
    assert quality.audio_offset_s(src, late, sr) * 1000 == pytest.approx(2.0, abs=0.05)


def test_quality_rows_reach_the_warehouse(tmp_path: Path):
    from datetime import UTC, datetime

    from video_assets.schemas import QualityMetric
    from video_assets.warehouse import Warehouse

    wh = Warehouse(tmp_path / "w.duckdb")
    rows = [QualityMetric(metric="a", value=1.0, threshold=2.0, passed=True)]
    wh.replace_quality("j", rows, datetime.now(UTC))
    wh.replace_quality("j", rows * 1, datetime.now(UTC))  # re-measuring replaces, never doubles
    with wh.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM quality_metrics").fetchone()[0] == 1


def test_the_encoders_copy_of_the_frames_measures_like_the_file(edit):
    """With composition's copy of the frames it encoded (``FramesTap``), the measurement skips
    decoding the file and finds the same cuts, transitions and pictures; a copy that does not
    describe the file (its frames shifted by 2, or another picture) is not used: the file is
    decoded."""
    from video_assets.media.compose import FramesTap

    segments = plan_segments([(0.0, 3.5), (3.5, 7.0), (7.0, 10.5)], ["crossfade", "fade"], FPS, 8)
    out, tap = edit["folder"] / "tapped.mp4", FramesTap(edit["folder"] / "tapped.rgb")
    compose(edit["clips"], [5.0, 6.0, 7.0], segments, edit["song"], out, SETTINGS, frames=tap)
    copy = quality.read_frames(tap.path)
    from_copy = measure(out, edit["song"], 10.5, edit["beats"], segments, FPS, SIZE, frames=copy)
    from_file = measure(out, edit["song"], 10.5, edit["beats"], segments, FPS, SIZE)
    assert (from_copy.frames_source, from_file.frames_source) == ("encoder", "file")
    assert from_copy.n_frames == from_file.n_frames == 315
    assert from_copy.cut_frames == from_file.cut_frames
    assert from_copy.crossfade_centre_ms == from_file.crossfade_centre_ms
    assert from_copy.fade_black_ms == from_file.fade_black_ms
    assert from_copy.clip_brightness == pytest.approx(from_file.clip_brightness, abs=1.0)
    # fine detail is what an encode (here ultrafast, of a 180x320 test pattern) changes most
    assert from_copy.clip_sharpness == pytest.approx(from_file.clip_sharpness, rel=0.5)
    assert [m.passed for m in from_copy.metrics] == [m.passed for m in from_file.metrics]

    for wrong in (np.roll(copy, 2, axis=0), 255 - copy):
        report = measure(out, edit["song"], 10.5, edit["beats"], segments, FPS, SIZE, frames=wrong)
        assert report.frames_source == "file" and report.cut_frames == from_file.cut_frames


@pytest.fixture(scope="module")
def one_clip_twice(tmp_path_factory) -> dict:
    """Three scenes cut on beats, the first two from one clip file (a still shot pulsing on the
    beats, as a provider returning the same clip twice gives), the third from another card."""
    from video_assets.media.animatic import render_animatic
    from video_assets.media.art import render_card

    folder = tmp_path_factory.mktemp("one_clip_twice")
    beats = [0.5 * k for k in range(1, 21)]
    clips = []
    for seed, caption in ((7, "a fox in the clearing"), (9, "dawn over the ridge")):
        card = folder / f"card{seed}.png"
        render_card((270, 480), ["#1b1f3b", "#f25f5c", "#ffe066"], seed, caption).save(card)
        clips.append(folder / f"clip{seed}.mp4")
        render_animatic(card, clips[-1], 5.0, SIZE, "static", beats)
    song = make_song(folder / "song.wav", 10.5, tempo_bpm=120.0)
    segments = plan_segments([(0.0, 3.5), (3.5, 7.0), (7.0, 10.5)], ["cut", "cut"], FPS, 8)
    out = folder / "one_clip_twice.mp4"
    compose([clips[0], clips[0], clips[1]], [5.0] * 3, segments, song, out, SETTINGS)
    return {"out": out, "song": song, "beats": beats, "segments": segments, "clips": clips,
            "folder": folder}


def test_a_cut_between_two_shots_of_one_clip_is_unmeasurable_not_missed(one_clip_twice):
    """The same clip before and after a planned cut: nothing changes on screen there, so the cut
    cannot be seen; it is counted as unmeasurable and `cuts_on_beats` passes (a render whose
    provider returned one clip for several scenes failed it with the cuts 'missed')."""
    e = one_clip_twice
    report = measure(e["out"], e["song"], 10.5, e["beats"], e["segments"], FPS, SIZE)
    metrics = by_name(report)
    assert report.cut_frames == [210]  # the cut between different cards is seen, on its frame
    assert metrics["missed_cuts"].value == 0 and metrics["cuts_unmeasurable"].value == 1
    cuts_check = next(r for r in check_results(report) if r.check_name == "cuts_on_beats")
    assert cuts_check.passed, cuts_check.description
    assert cuts_check.metadata["cuts_unmeasurable"].value == 1


def test_a_cut_off_its_plan_next_to_alike_shots_is_still_missed(one_clip_twice):
    """Planned 15 frames after where the render cut between different cards: the picture at the
    planned frame does not change (the same shot goes on), but the cut found in the scenes
    around it shows the cut was misplaced, not invisible."""
    e = one_clip_twice
    late = plan_segments([(0.0, 3.5), (3.5, 7.5), (7.5, 10.5)], ["cut", "cut"], FPS, 8)
    metrics = by_name(measure(e["out"], e["song"], 10.5, e["beats"], late, FPS, SIZE))
    assert metrics["missed_cuts"].value == 1 and not metrics["missed_cuts"].passed
    assert metrics["extra_cuts"].value == 1
    assert metrics["cuts_unmeasurable"].value == 1  # the cut between the clip's two uses


def test_a_missed_cut_between_different_shots_still_fails(one_clip_twice):
    """The plan asks for a hard cut between two different cards and the render crossfaded
    there: the picture changes across the planned frame, so the cut is missed, not
    unmeasurable."""
    e = one_clip_twice
    rendered = plan_segments([(0.0, 3.5), (3.5, 7.0), (7.0, 10.5)], ["crossfade", "cut"], FPS, 8)
    out = e["folder"] / "crossfaded_instead.mp4"
    compose([e["clips"][0], e["clips"][1], e["clips"][0]], [5.0] * 3, rendered, e["song"], out,
            SETTINGS)
    report = measure(out, e["song"], 10.5, e["beats"], e["segments"], FPS, SIZE)
    metrics = by_name(report)
    assert report.cut_frames == [210]
    assert metrics["missed_cuts"].value == 1 and metrics["cuts_unmeasurable"].value == 0
    assert not next(r for r in check_results(report) if r.check_name == "cuts_on_beats").passed


def test_decoding_stopped_early_leaves_no_ffmpeg_running(edit):
    """The frames are decoded by an ffmpeg process into a pipe: a reader that stops after its
    first chunk (an error, or only the head wanted) does not leave that process running."""
    import psutil

    n, chunks = quality.decoded_chunks(edit["good"], chunk_frames=16)
    first = next(chunks)
    decoders = [p for p in psutil.Process().children() if "ffmpeg" in p.name()]
    assert n == 315 and first.shape == (16, 192, 108, 3) and len(decoders) == 1
    chunks.close()
    assert not decoders[0].is_running()  # ended and reaped
