"""Composition: exact durations for awkward lengths, every transition on its beat, loop not stretch."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_song
from tests.media_helpers import decode_frames, pattern_clip, solid_clip
from video_assets.media.compose import ComposeSettings, build_graph, compose, plan_segments
from video_assets.media.probe import probe_video

SMALL = ComposeSettings(width=180, height=320, fps=30, preset="ultrafast")
COLOURS = ["red", "lime", "blue", "yellow", "magenta", "cyan", "white", "orange"]
RGB = {"red": (255, 0, 0), "lime": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
       "magenta": (255, 0, 255), "cyan": (0, 255, 255)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[tuple[str, float], Path]:
    folder = tmp_path_factory.mktemp("clips")
    out = {}
    for colour in COLOURS[:6]:
        for d in (5.0, 10.0):
            out[(colour, d)] = solid_clip(folder / f"{colour}{d:g}.mp4", colour, d)
    return out


def even_bounds(duration_s: float, n: int) -> list[tuple[float, float]]:
    edges = [round(duration_s * i / n, 4) for i in range(n)] + [duration_s]
    return list(zip(edges, edges[1:], strict=False))


def test_plan_segments_centres_transitions_and_keeps_length():
    bounds = [(0.0, 2.4), (2.4, 4.9), (4.9, 7.37)]
    segs = plan_segments(bounds, ["crossfade", "cut"], fps=30, half_frames=8)
    assert [s.cut_in_frame for s in segs] == [0, 72, 147]
    assert segs[0].n_frames == 72 + 8 and segs[1].start_frame == 72 - 8
    assert segs[2].start_frame == 147 and segs[-1].cut_out_frame == 221  # round(7.37 * 30)
    # union of the segments' own spans is exactly [0, 221)
    assert sum(s.cut_out_frame - s.cut_in_frame for s in segs) == 221


def test_plan_segments_shrinks_transitions_for_short_scenes():
    segs = plan_segments([(0, 0.5), (0.5, 1.0), (1.0, 3.0)], ["crossfade", "fade"], 30, 8)
    assert all(s.half_in_frames <= 3 for s in segs)
    assert all(s.n_frames > 0 for s in segs)


@pytest.mark.parametrize("duration_s", [7.37, 61.2])
@pytest.mark.parametrize("transition", ["cut", "crossfade", "fade", "mixed"])
def test_duration_exact_for_awkward_lengths(tmp_path, clips, duration_s, transition):
    n = 3 if duration_s < 10 else 12
    bounds = even_bounds(duration_s, n)
    kinds = (["crossfade", "cut", "fade"] * n)[: n - 1] if transition == "mixed" \
        else [transition] * (n - 1)
    segs = plan_segments(bounds, kinds, fps=30, half_frames=8)
    audio = make_song(tmp_path / "a.wav", duration_s)
    paths = [clips[(COLOURS[i % 6], 5.0)] for i in range(n)]
    out = tmp_path / "out.mp4"
    compose(paths, [5.0] * n, segs, audio, out, SMALL)
    probe = probe_video(out)
    assert probe.n_frames == round(duration_s * 30)
    assert abs(probe.video_duration_s - duration_s) <= 1 / 30
    assert abs(probe.audio_duration_s - duration_s) <= 0.015  # the whole song, not cut short
    assert (probe.width, probe.height, probe.fps) == (180, 320, 30.0)
    assert probe.video_codec == "h264" and probe.pix_fmt == "yuv420p"
    assert probe.audio_codec == "aac" and probe.faststart
    assert len(decode_frames(out)) == round(duration_s * 30)  # independent decode agrees


def mean_rgb(frame: np.ndarray) -> np.ndarray:
    return frame[8:-8, 4:-4].reshape(-1, 3).mean(axis=0)


def close(frame: np.ndarray, rgb: tuple[int, int, int], tol: float = 30) -> bool:
    return bool(np.abs(mean_rgb(frame) - np.array(rgb)).max() <= tol)


def test_cuts_switch_on_the_boundary_frame(tmp_path, clips):
    bounds = [(0.0, 3.37), (3.37, 6.81), (6.81, 10.2)]
    segs = plan_segments(bounds, ["cut", "cut"], 30, 8)
    out = tmp_path / "cut.mp4"
    compose([clips[("red", 5.0)], clips[("lime", 5.0)], clips[("blue", 5.0)]], [5.0] * 3, segs,
            make_song(tmp_path / "a.wav", 10.2), out, SMALL)
    frames = decode_frames(out)
    for seg, (before, after) in zip(segs[1:], [("red", "lime"), ("lime", "blue")], strict=True):
        f = seg.cut_in_frame
        assert f == round(seg.cut_in_frame)
        assert close(frames[f - 1], RGB[before]) and close(frames[f], RGB[after])


def test_thumbnail_is_the_next_key_frame_else_the_frame_itself(tmp_path, clips):
    import re

    from PIL import Image

    from video_assets.media.compose import extract_thumbnail
    from video_assets.media.ffmpeg_bin import run_ffmpeg

    bounds = [(0.0, 3.37), (3.37, 6.81), (6.81, 10.2)]
    out = tmp_path / "cut.mp4"
    compose([clips[("red", 5.0)], clips[("lime", 5.0)], clips[("blue", 5.0)]], [5.0] * 3,
            plan_segments(bounds, ["cut", "cut"], 30, 8), make_song(tmp_path / "a.wav", 10.2),
            out, ComposeSettings(width=180, height=320))  # veryfast, as renders: key frames on cuts
    log = run_ffmpeg(["-skip_frame", "nokey", "-i", str(out), "-vf", "showinfo", "-f", "null", "-"],
                     what="listing key frames")
    keys_s = [float(t) for t in re.findall(r"pts_time:([0-9.]+)", log)]
    later = [t for t in keys_s if t >= 1.0]
    assert later, keys_s  # x264 started a key frame on a cut after the first second
    frames = decode_frames(out)
    thumb = tmp_path / "thumb.jpg"
    extract_thumbnail(out, thumb, at_s=1.0, width=90)
    with Image.open(thumb) as im:
        assert im.size == (90, 160)
        shown = np.asarray(im.convert("RGB").resize((36, 64)))
    assert np.abs(mean_rgb(shown) - mean_rgb(frames[round(later[0] * 30)])).max() <= 30
    assert not close(shown, RGB["red"])  # not the frame at 1 s
    extract_thumbnail(out, thumb, at_s=keys_s[-1] + 1.0, width=90)  # no key frame after it
    with Image.open(thumb) as im:
        assert close(np.asarray(im.convert("RGB").resize((36, 64))), RGB["blue"])


def test_crossfade_and_fade_are_centred_on_the_beat(tmp_path, clips):
    bounds = [(0.0, 3.5), (3.5, 7.0), (7.0, 10.5)]
    segs = plan_segments(bounds, ["crossfade", "fade"], 30, 8)
    out = tmp_path / "xf.mp4"
    compose([clips[("red", 5.0)], clips[("blue", 5.0)], clips[("lime", 5.0)]], [5.0] * 3, segs,
            make_song(tmp_path / "a.wav", 10.5), out, SMALL)
    frames = decode_frames(out)
    f1, f2, h = segs[1].cut_in_frame, segs[2].cut_in_frame, 8
    assert close(frames[f1 - h - 1], RGB["red"]) and close(frames[f1 + h + 1], RGB["blue"])
    mid = mean_rgb(frames[f1])  # half red, half blue on the beat itself
    assert 90 <= mid[0] <= 165 and 90 <= mid[2] <= 165
    assert mean_rgb(frames[f2]).max() < 5  # through black: the beat frame is black ...
    assert mean_rgb(frames[f2 - h // 2]).max() > 40 and mean_rgb(frames[f2 + h // 2]).max() > 40
    assert close(frames[f2 - h - 1], RGB["blue"]) and close(frames[f2 + h + 1], RGB["lime"])


def test_long_scene_loops_the_clip_and_never_stretches(tmp_path):
    clip = pattern_clip(tmp_path / "pattern.mp4", 5.0)
    segs = plan_segments([(0.0, 7.5)], [], 30, 8)
    out = tmp_path / "loop.mp4"
    settings = ComposeSettings(width=360, height=640, fps=30, preset="ultrafast", crf=0)
    compose([clip], [5.0], segs, make_song(tmp_path / "a.wav", 7.5), out, settings)
    frames = decode_frames(out).astype(int)
    source = decode_frames(clip).astype(int)
    assert len(frames) == 225
    # frame k of the output is frame k of the clip (no time stretch) ...
    for k in (0, 37, 149):
        assert np.abs(frames[k] - source[k]).mean() < 3
    # ... and after 5 s the clip starts again from its first frame
    for k in (0, 40, 74):
        assert np.abs(frames[150 + k] - source[k]).mean() < 3
    assert np.abs(frames[149] - frames[150]).mean() > 3  # the loop point is a real jump


def test_cut_frame_is_first_frame_at_or_after_the_beat():
    from video_assets.media.compose import cut_frame

    assert cut_frame(2.4) == 72  # exactly on a frame (despite 2.4 * 30 = 72.00000000000001)
    assert cut_frame(2.41) == 73 and cut_frame(2.4333) == 73
    for t in (0.01, 1.234, 7.999, 61.2):
        assert 0 <= cut_frame(t) / 30 - t < 1 / 30


def test_work_size_keeps_the_sharpest_clips_detail():
    from video_assets.media.compose import work_size

    assert work_size((1080, 1920), [(720, 1280)] * 3) == (720, 1280)  # offline animatics
    assert work_size((1080, 1920), [(720, 1280), (1080, 1920)]) == (1080, 1920)
    assert work_size((1080, 1920), [(2160, 3840)]) == (1080, 1920)  # never above the output
    assert work_size((1080, 1080), [(720, 1280)]) == (720, 720)
    assert work_size((1080, 1920), [(720, 1280), None]) == (1080, 1920)  # unknown: output size


def test_mp4_video_size_reads_the_header(tmp_path):
    from video_assets.media.probe import mp4_video_size

    assert mp4_video_size(solid_clip(tmp_path / "c.mp4", "red", 1.0, size="180x320")) == (180, 320)
    assert mp4_video_size(make_song(tmp_path / "a.wav", 2.0)) is None


def test_small_clips_are_joined_small_then_scaled_once(tmp_path):
    """Clips smaller than the output: transitions at the clips' size, then one upscale; the cut
    and the crossfade still land on their frames and the length is exact."""
    paths = [solid_clip(tmp_path / f"{c}.mp4", c, 5.0, size="180x320") for c in ("red", "blue", "lime")]
    bounds = [(0.0, 3.37), (3.37, 6.9), (6.9, 10.2)]
    segs = plan_segments(bounds, ["cut", "crossfade"], 30, 8)
    out = tmp_path / "small.mp4"
    args = compose(paths, [5.0] * 3, segs, make_song(tmp_path / "a.wav", 10.2), out,
                   ComposeSettings(width=360, height=640, fps=30, preset="ultrafast"))
    assert "scale=180:320" in " ".join(args) and "scale=360:640" in " ".join(args)
    probe = probe_video(out)
    assert (probe.width, probe.height, probe.n_frames) == (360, 640, 306)
    frames = decode_frames(out)
    f1, f2 = segs[1].cut_in_frame, segs[2].cut_in_frame
    assert close(frames[f1 - 1], RGB["red"]) and close(frames[f1], RGB["blue"])
    assert close(frames[f2 - 9], RGB["blue"]) and close(frames[f2 + 9], RGB["lime"])
    mid = mean_rgb(frames[f2])  # half blue, half lime on the beat
    assert 90 <= mid[1] <= 165 and 90 <= mid[2] <= 165


def test_only_the_frames_a_crossfade_blends_go_through_xfade(tmp_path, clips):
    """xfade works in yuv444p: each of its inputs is just the 2 x 8 frames it blends (converted
    there and back), never a whole clip or the edit so far; the other frames are concatenated."""
    paths = [clips[(c, 5.0)] for c in ("red", "lime", "blue", "yellow")]
    segs = plan_segments(even_bounds(12.0, 4), ["crossfade", "cut", "crossfade"], 30, 8)
    args = build_graph(paths, [5.0] * 4, segs, tmp_path / "a.wav", tmp_path / "o.mp4",
                       SMALL).get_args()
    producer: dict[str, tuple[str, list[str]]] = {}  # stream label -> (filter, its inputs)
    for entry in args[args.index("-filter_complex") + 1].split(";"):
        m = re.fullmatch(r"((?:\[[^\]]+\])+)([^\[]+)((?:\[[^\]]+\])+)", entry)
        assert m, entry
        for label in re.findall(r"\[([^\]]+)\]", m[3]):
            producer[label] = (m[2], re.findall(r"\[([^\]]+)\]", m[1]))

    def n_frames(label: str) -> int | None:  # frames a stream carries (None: a whole file)
        if label not in producer:
            return None
        text, inputs = producer[label]
        if not text.startswith("trim="):
            return n_frames(inputs[0])  # fps, scale, setpts, split, fade, ...: frame for frame
        opts = dict(kv.split("=") for kv in text.removeprefix("trim=").split(":"))
        end = int(opts["end_frame"]) if "end_frame" in opts else n_frames(inputs[0])
        return end - int(opts.get("start_frame", 0))

    xfades = [(text, inputs) for text, inputs in producer.values() if text.startswith("xfade=")]
    assert len(xfades) == 2
    for text, inputs in xfades:
        assert "offset=0:" in text
        assert [n_frames(i) for i in inputs] == [16, 16]


def test_plan_windows_cover_the_timeline_in_small_groups():
    from video_assets.media.compose import plan_windows

    bounds = even_bounds(61.2, 12)
    segs = plan_segments(bounds, (["crossfade", "cut", "fade"] * 12)[:11], fps=30, half_frames=8)
    windows = plan_windows(segs, max_clips=3)
    assert len(windows) > 3
    assert windows[0].first_frame == 0
    for a, b in zip(windows, windows[1:], strict=False):
        assert a.first_frame + a.n_frames == b.first_frame  # contiguous, no frame twice
        assert b.parts[0].clip == a.parts[-1].clip  # a window resumes the clip the last one cut
        assert b.parts[0].skip_frames > 0 and b.parts[0].segment.transition_in == "cut"
    assert sum(w.n_frames for w in windows) == segs[-1].cut_out_frame
    assert all(len(w.parts) <= 3 for w in windows)
    for w in windows:  # each window's own timeline: its parts fill exactly its frames
        assert w.parts[0].segment.start_frame == 0
        assert w.parts[-1].segment.cut_out_frame == w.n_frames
    # the last window takes every clip left once they fit: no window is a lone clip's tail
    assert len(windows[-1].parts) >= 2
    assert len(plan_windows(segs[:3], max_clips=3)) == 1  # up to 3 clips: one graph
    assert [len(w.parts) for w in plan_windows(segs[:8], max_clips=3)] == [3, 3, 3, 2]


def test_windowed_composition_gives_the_same_frames_as_one_graph(tmp_path):
    """A long edit decoded in windows of 2 clips is frame for frame the one-graph edit (the same
    source frame at every output frame; pixel values equal up to the scaler's rounding)."""
    n = 7
    bounds = even_bounds(24.3, n)
    kinds = (["crossfade", "cut", "fade"] * n)[: n - 1]
    segs = plan_segments(bounds, kinds, fps=30, half_frames=8)
    paths = [pattern_clip(tmp_path / f"p{i}.mp4", 5.0, size="180x320", look=i) for i in range(n)]
    audio = make_song(tmp_path / "a.wav", 24.3)
    settings = ComposeSettings(width=180, height=320, fps=30, preset="ultrafast", crf=0)
    one, windowed = tmp_path / "one.mp4", tmp_path / "windowed.mp4"
    compose(paths, [5.0] * n, segs, audio, one, settings, max_clips_per_window=100)
    args = compose(paths, [5.0] * n, segs, audio, windowed, settings, max_clips_per_window=2)
    assert "rawvideo" in args
    a, b = decode_frames(one).astype(int), decode_frames(windowed).astype(int)
    assert len(a) == len(b) == round(24.3 * 30)
    diff = np.abs(a - b).mean(axis=(1, 2, 3))
    assert diff.max() < 0.5  # a frame one step off would differ by several levels on average
    for k in range(1, len(a) - 1):  # and no frame is nearer to its neighbour's
        assert diff[k] <= min(np.abs(b[k] - a[k - 1]).mean(), np.abs(b[k] - a[k + 1]).mean())
    probe = probe_video(windowed)
    assert abs(probe.audio_duration_s - 24.3) <= 0.015 and probe.faststart


@pytest.mark.parametrize("max_clips", [100, 2])
def test_the_encoders_copy_of_its_frames_is_the_files_frames(tmp_path, max_clips):
    """``FramesTap``: the frames the encoder writes beside the file are, frame for frame, the
    pictures a decode of the finished file gives (one graph, and windows piped into one encoder)."""
    from video_assets.media.compose import FramesTap
    from video_assets.media.quality import decode_frames as decord_frames
    from video_assets.media.quality import frames_match, read_frames

    n = 4
    bounds = even_bounds(9.1, n)
    segs = plan_segments(bounds, ["crossfade", "cut", "fade"], fps=30, half_frames=8)
    paths = [pattern_clip(tmp_path / f"p{i}.mp4", 5.0, size="180x320", look=i) for i in range(n)]
    out, tap = tmp_path / "out.mp4", FramesTap(tmp_path / "frames.rgb")
    args = compose(paths, [5.0] * n, segs, make_song(tmp_path / "a.wav", 9.1), out,
                   ComposeSettings(width=180, height=320), max_clips_per_window=max_clips,
                   frames=tap)
    assert ("pipe:" in args) == (max_clips == 2)  # windows pipe into the encoder
    ours, decoded = read_frames(tap.path), decord_frames(out)
    assert len(ours) == len(decoded) == probe_video(out).n_frames == round(9.1 * 30)
    assert frames_match(ours, decoded)
    # and each is the picture at its own index, not a neighbour's (the cuts are 1 frame apart)
    shifted = np.abs(ours[1:].astype(int) - decoded[:-1].astype(int)).mean(axis=(1, 2, 3))
    assert shifted.max() > 20
