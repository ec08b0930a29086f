"""Final composition: timeline math in frames, and one ffmpeg pass built with ffmpeg-python.

The timeline is laid out in whole frames at ``fps``. Boundary ``b`` (seconds, a beat) sits on
``cut_frame(b)``, the first frame shown at or after the beat, so a cut never comes before the beat
it marks and is at most one frame after it. A hard cut switches clips exactly on that frame. A crossfade of
``2 * half_frames`` frames is centred on it, so the total length never changes: the outgoing clip
runs ``half_frames`` past the boundary and the incoming clip starts ``half_frames`` before it.
A fade goes to black over the ``half_frames`` before the boundary and back over the ``half_frames``
after it, so the black frame is the beat (no overlap needed).
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import ffmpeg

from video_assets.media.ffmpeg_bin import Deadline, FfmpegError, ffmpeg_exe, remove_outputs, run_ffmpeg
from video_assets.media.probe import mp4_video_size


@dataclass(frozen=True)
class Segment:
    """One clip's span on the output timeline, in frames."""

    index: int
    start_frame: int  # first output frame this clip covers (includes a transition pre-roll)
    n_frames: int  # how many frames of the clip are used
    cut_in_frame: int  # the boundary frame where this scene begins
    cut_out_frame: int  # the boundary frame where the next scene begins (or the end)
    transition_in: str  # "cut" | "crossfade" | "fade" (the first scene: "cut")
    half_in_frames: int  # crossfade overlap with the previous clip
    half_out_frames: int  # crossfade overlap with the next clip
    fade_in_frames: int = 0  # fade from black at the start
    fade_out_frames: int = 0  # fade to black at the end
    zoom: float = 1.0  # a punch-in: the clip's centre magnified this much (a beat cut's framing)


def cut_frame(t_s: float, fps: int = 30) -> int:
    """The first frame whose display starts at or after ``t_s`` (1 microsecond of tolerance)."""
    return math.ceil(t_s * fps - 1e-6 * fps)


class TimedScene(Protocol):
    """What laying scenes on frames reads of a scene (``schemas.Scene``)."""

    start_s: float
    end_s: float
    transition: str


def scene_segments(scenes: Sequence[TimedScene], fps: int, half_frames: int) -> list[Segment]:
    """``plan_segments`` of scenes: each from its start to its end, its transition into the next."""
    return plan_segments([(s.start_s, s.end_s) for s in scenes],
                         [s.transition for s in scenes[:-1]], fps, half_frames)


def plan_segments(
    boundaries_s: Sequence[tuple[float, float]],
    transitions: Sequence[str],
    fps: int = 30,
    half_frames: int = 8,
) -> list[Segment]:
    """Lay scenes on frames. ``transitions[i]`` is the transition from scene ``i`` to ``i + 1``.

    The transition half-length is shrunk where a scene is too short to hold its transitions
    (each scene keeps at least one frame of its own between them).
    """
    n = len(boundaries_s)
    if n == 0:
        raise ValueError("no scenes to compose")
    if len(transitions) < n - 1:
        raise ValueError(f"{n} scenes need {n - 1} transitions, got {len(transitions)}")
    cut_frames = [cut_frame(a, fps) for a, _ in boundaries_s] + [total_frames(boundaries_s[-1][1],
                                                                                fps)]
    cut_frames[0] = 0
    for a, b in zip(cut_frames, cut_frames[1:], strict=False):
        if b <= a:
            raise ValueError(f"boundaries {boundaries_s} give an empty scene at {fps} fps")
    halves = []
    for i in range(1, n):
        kind = transitions[i - 1]
        if kind == "cut":
            halves.append(0)
            continue
        room = min(cut_frames[i] - cut_frames[i - 1], cut_frames[i + 1] - cut_frames[i])
        halves.append(max(1, min(half_frames, (room - 1) // 4)))
    segments = []
    kinds = ["cut", *transitions[: n - 1], "cut"]
    for i in range(n):
        t_in, t_out = kinds[i], kinds[i + 1]
        h_in = halves[i - 1] if i > 0 else 0
        h_out = halves[i] if i < n - 1 else 0
        fade_in = h_in if t_in == "fade" else 0
        fade_out = h_out if t_out == "fade" else 0
        h_in = h_in if t_in == "crossfade" else 0
        h_out = h_out if t_out == "crossfade" else 0
        start = cut_frames[i] - h_in
        end = cut_frames[i + 1] + h_out
        segments.append(Segment(
            index=i,
            start_frame=start,
            n_frames=end - start,
            cut_in_frame=cut_frames[i],
            cut_out_frame=cut_frames[i + 1],
            transition_in="cut" if i == 0 else transitions[i - 1],
            half_in_frames=h_in,
            half_out_frames=h_out,
            fade_in_frames=fade_in,
            fade_out_frames=fade_out,
        ))
    return segments


def total_frames(duration_s: float, fps: int = 30) -> int:
    """Frames of a video as long as ``duration_s``: within half a frame of it."""
    return round(duration_s * fps)


@dataclass(frozen=True)
class ComposeSettings:
    width: int
    height: int
    fps: int = 30
    crf: int = 20
    preset: str = "veryfast"
    audio_bitrate: str = "192k"


@dataclass(frozen=True)
class FramesTap:
    """Where the encoder also writes the frames it encodes, for the quality measurement: every
    frame of the final graph (after the last scale, in order, none added or dropped), scaled
    bilinearly to ``size`` (width, height), raw rgb24. Measuring these costs a resize per frame
    instead of decoding the 1080x1920 output again (about 7 CPU seconds for 30 s). Burned
    captions are not in it (``chunks.chunk_args`` takes it before the burn): the measurement of
    cuts, black and frozen frames never sees text, and the captions' own measurement compares
    the file against it."""

    path: Path
    size: tuple[int, int] = (108, 192)


def work_size(out_size: tuple[int, int],
              clip_sizes: Sequence[tuple[int, int] | None]) -> tuple[int, int]:
    """The size (even, the output's aspect) at which clips are joined before one final scale.

    It is the output size shrunk to the detail of the sharpest clip, never below it: a clip
    covering the output at ``k`` of its resolution has detail ``k``; the largest ``k`` (at most 1)
    wins. Clips of 720x1280 for a 1080x1920 output are joined at 720x1280 (transitions on 2.25x
    fewer pixels, a third of the memory per buffered frame), then upscaled once, which is what
    scaling each clip up first would show. Any clip of unknown size keeps the output size.
    """
    out_w, out_h = out_size
    if not clip_sizes or any(c is None for c in clip_sizes):
        return out_size
    detail = max(min(1.0, 1.0 / max(out_w / w, out_h / h)) for w, h in clip_sizes)  # type: ignore[misc]
    w, h = 2 * round(out_w * detail / 2), 2 * round(out_h * detail / 2)
    return (w, h) if w >= 2 and h >= 2 else out_size


def in_frames(in_s: float, fps: int) -> int:
    """How many frames into its clip a scene starts (its in-point, ``ClipSpec.in_s``)."""
    return round(in_s * fps)


def edit_stream(
    clip_paths: Sequence[str | Path],
    clip_durations_s: Sequence[float],
    segments: Sequence[Segment],
    settings: ComposeSettings,
    join_size: tuple[int, int] | None = None,
    skip_frames: Sequence[int] | None = None,
    decode_threads: int | None = None,
):
    """The joined frames of the edit at ``join_size`` (default: the output size), not run: every
    clip normalised (fps, scale to cover ``join_size``, centre crop, square pixels, yuv420p),
    looped with ``-stream_loop`` when shorter than its segment (never stretched), trimmed to its
    frames, faded to/from black around fades, then joined (``join``).

    ``skip_frames`` (per clip, default 0) starts a clip that many frames in: its in-point
    (``in_frames``) and, for a window or chunk resuming a clip, the frames already shown;
    looping restarts the clip at its first frame. ``decode_threads``: per input (None: ffmpeg's
    choice)."""
    if not (len(clip_paths) == len(clip_durations_s) == len(segments)):
        raise ValueError("one clip path and duration per segment is needed")
    fps = settings.fps
    join_w, join_h = join_size or (settings.width, settings.height)
    skips = list(skip_frames) if skip_frames is not None else [0] * len(segments)
    streams = []
    seen: dict[str, int] = {}
    for path, clip_s, seg, skip in zip(clip_paths, clip_durations_s, segments, skips, strict=True):
        need_s = (skip + seg.n_frames) / fps
        input_kwargs: dict[str, object] = {}
        if clip_s + 1e-6 < need_s:
            input_kwargs["stream_loop"] = -1
        input_kwargs["t"] = f"{need_s + 0.5:.3f}"
        if decode_threads is not None:
            input_kwargs["threads"] = decode_threads
        # ffmpeg-python merges identical input nodes; a file used twice needs its own decoder
        repeat = seen[str(path)] = seen.get(str(path), -1) + 1
        if repeat:
            input_kwargs["thread_queue_size"] = 8 + repeat
        # cover the join size (magnified by a punch-in's zoom), centre crop
        cover_w, cover_h = (join_w, join_h) if seg.zoom == 1.0 else \
            (2 * math.ceil(join_w * seg.zoom / 2), 2 * math.ceil(join_h * seg.zoom / 2))
        v = (
            ffmpeg.input(str(path), **input_kwargs)
            .video.filter("fps", fps=fps)
            .filter("scale", cover_w, cover_h,
                    force_original_aspect_ratio="increase", flags="bicubic")
            .filter("crop", join_w, join_h)
            .filter("setsar", 1)
            .filter("format", "yuv420p")
            .trim(**({"start_frame": skip} if skip else {}), end_frame=skip + seg.n_frames)
            .setpts("PTS-STARTPTS")
            .filter("settb", f"1/{fps}")
        )
        if seg.fade_in_frames:
            v = v.filter("fade", type="in", start_frame=0, nb_frames=seg.fade_in_frames)
        if seg.fade_out_frames:
            v = v.filter("fade", type="out", start_frame=seg.n_frames - seg.fade_out_frames,
                         nb_frames=seg.fade_out_frames)
        streams.append(v)
    return join(streams, segments, fps)


def build_graph(
    clip_paths: Sequence[str | Path],
    clip_durations_s: Sequence[float],
    segments: Sequence[Segment],
    audio_path: str | Path,
    out_path: str | Path,
    settings: ComposeSettings,
    join_size: tuple[int, int] | None = None,
    skip_frames: Sequence[int] | None = None,
    raw_out: bool = False,
    frames: FramesTap | None = None,
):
    """Return the ffmpeg-python output node for the whole edit (not run).

    The clips are joined at ``join_size`` (``edit_stream``) and scaled once to the output size
    when ``join_size`` (default: the output size; see ``work_size``) is smaller. The original
    audio is re-encoded to AAC, never shifted.

    ``skip_frames``: see ``edit_stream``; ``raw_out`` writes the joined frames, unscaled and
    without audio, as raw yuv420p to stdout for ``encode_node`` to encode (a window of a long
    edit, see ``plan_windows``). ``frames``: see ``FramesTap``.
    """
    join_size = join_size or (settings.width, settings.height)
    # a window: one decoding thread per clip (the encoder has the cores)
    acc = edit_stream(clip_paths, clip_durations_s, segments, settings, join_size, skip_frames,
                      decode_threads=1 if raw_out else None)
    if raw_out:
        return ffmpeg.output(acc, "pipe:", format="rawvideo", pix_fmt="yuv420p").global_args(
            "-loglevel", "error")
    return encode_node(acc, join_size, audio_path, out_path, settings, frames)


def join(streams: Sequence, segments: Sequence[Segment], fps: int):
    """One stream of the edit from each segment's frames (``streams[i]``: segment ``i``'s
    ``n_frames``, fades applied): one concat of the pieces in order, where each crossfade is an
    ``xfade`` of only the frames it blends (the outgoing clip's last ``2 * half`` frames and the
    incoming clip's first), and every other frame passes untouched.

    ``xfade`` works in yuv444p, so frames sent through it are converted there and back: feeding
    it whole clips, as its ``offset`` invites, converted every frame of the edit after the first
    crossfade, once per crossfade (4.3 of 6.5 CPU seconds of joining 8 clips of 720x1280)."""
    pieces = []
    tail = None  # the previous clip's frames that blend into this one
    for seg, v in zip(segments, streams, strict=True):
        n_in = 2 * seg.half_in_frames if seg.transition_in == "crossfade" else 0
        n_out = 2 * seg.half_out_frames
        names = ["head"] * bool(n_in) + ["body"] + ["tail"] * bool(n_out)
        split = v.split() if len(names) > 1 else None
        part = {name: v if split is None else split[k] for k, name in enumerate(names)}
        if n_in:
            if tail is None:
                raise ValueError(f"segment {seg.index} crossfades in from nothing")
            pieces.append(ffmpeg.filter([tail, part["head"].trim(end_frame=n_in)], "xfade",
                                        transition="fade", duration=f"{n_in / fps:.6f}",
                                        offset=0).filter("format", "yuv420p"))
        body = part["body"]
        if split is not None:
            body = body.trim(start_frame=n_in, end_frame=seg.n_frames - n_out) \
                .setpts("PTS-STARTPTS")
        pieces.append(body)
        tail = part["tail"].trim(start_frame=seg.n_frames - n_out).setpts("PTS-STARTPTS") \
            if n_out else None
    out = pieces[0] if len(pieces) == 1 else ffmpeg.concat(*pieces, n=len(pieces), v=1, a=0)
    # frame N shown at N / fps, whatever timebase concat chose
    return out.filter("settb", f"1/{fps}").setpts("N")


def x264_options(settings: ComposeSettings, stream: str = "v") -> dict[str, object]:
    """The video encoder's options (one home: a single-pass render and every chunk of a chunked
    one encode with exactly these); ``stream``: the ffmpeg stream specifier they apply to."""
    return {f"c:{stream}": "libx264", f"preset:{stream}": settings.preset,
            f"crf:{stream}": settings.crf, f"pix_fmt:{stream}": "yuv420p"}


def to_output_size(video, video_size: tuple[int, int], settings: ComposeSettings):
    """``video`` (at ``video_size``) scaled once to the output size if it is not that size."""
    if tuple(video_size) != (settings.width, settings.height):
        video = (video.filter("scale", settings.width, settings.height, flags="bicubic")
                 .filter("setsar", 1))
    return video


def tap_stream(video, size: tuple[int, int]):
    """``FramesTap``'s copy of ``video``: every frame scaled bilinearly to ``size``, rgb24."""
    return video.filter("scale", *size, flags="bilinear").filter("format", "rgb24")


def encode_node(video, video_size: tuple[int, int], audio_path: str | Path, out_path: str | Path,
                settings: ComposeSettings, frames: FramesTap | None = None):
    """The one encode: ``video`` (at ``video_size``) scaled once to the output size if smaller,
    H.264 + the original audio in AAC, CFR, faststart; with ``frames``, a second output of the
    same frames, downscaled (``FramesTap``)."""
    fps = settings.fps
    video = to_output_size(video, video_size, settings)
    tap_out = None
    if frames is not None:
        parts = video.split()
        video = parts[0]
        tap_out = ffmpeg.output(tap_stream(parts[1], frames.size), str(frames.path),
                                format="rawvideo", fps_mode="passthrough")
    # the graph yields exactly segments[-1].cut_out_frame frames; no -frames:v, which would end
    # the file when the video ends and drop the last few interleaved audio packets
    audio = ffmpeg.input(str(audio_path)).audio
    out = ffmpeg.output(
        video, audio, str(out_path),
        **x264_options(settings), r=fps, fps_mode="cfr",
        acodec="aac", audio_bitrate=settings.audio_bitrate, ar=48000,
        movflags="+faststart", video_track_timescale=fps * 512,
    )
    if tap_out is not None:  # the encode stays output 0
        out = ffmpeg.merge_outputs(out, tap_out)
    return out.global_args("-loglevel", "error")  # run_ffmpeg adds -hide_banner -nostdin


MAX_CLIPS_PER_WINDOW = 3  # clips decoded at once; bounds composition memory for long edits


@dataclass(frozen=True)
class WindowPart:
    """One clip's share of a window: its segment on the window's own timeline, and how many
    frames into the clip it starts."""

    clip: int
    segment: Segment
    skip_frames: int = 0


@dataclass(frozen=True)
class Window:
    """A stretch of the output decoded by one ffmpeg process: ``n_frames`` from ``first_frame``."""

    first_frame: int
    n_frames: int
    parts: tuple[WindowPart, ...]


def solo_span(seg: Segment) -> tuple[int, int] | None:
    """The first and last frame boundaries of the stretch a clip shows alone (outside its
    crossfades and fades), where the edit can pass from one window to the next unseen; None if
    the stretch is shorter than 2 frames."""
    lo, hi = _solo_bounds(seg)
    return (lo, hi) if hi - lo >= 2 else None


def _solo_bounds(seg: Segment) -> tuple[int, int]:
    """Where the clip's solo stretch begins and ends (``hi < lo``: it has none)."""
    return (seg.start_frame + 2 * seg.half_in_frames + seg.fade_in_frames,
            seg.start_frame + seg.n_frames - 2 * seg.half_out_frames - seg.fade_out_frames)


def _solo_split(seg: Segment) -> int | None:
    """A frame in the middle of the clip's solo stretch (``solo_span``); None if there is none."""
    span = solo_span(seg)
    return (span[0] + span[1]) // 2 if span is not None else None


def split_segment(seg: Segment, frame: int) -> tuple[Segment, Segment]:
    """``seg`` cut in two at ``frame`` by a hard cut: the first part keeps how the clip comes in,
    the second how it goes out. ``frame`` must be inside the clip's solo stretch (``solo_span``),
    where no transition blends it; both parts are of the same clip (the second's in-point is the
    caller's: it may go on from where the first stops, or jump)."""
    span = solo_span(seg)
    if span is None or not (span[0] <= frame <= span[1]) or not (seg.cut_in_frame < frame
                                                                 < seg.cut_out_frame):
        raise ValueError(f"segment {seg.index}: frame {frame} is not inside its solo stretch "
                         f"{span}; fix: cut where the clip shows alone")
    first = replace(seg, n_frames=frame - seg.start_frame, cut_out_frame=frame, half_out_frames=0,
                    fade_out_frames=0)
    second = replace(seg, start_frame=frame, n_frames=seg.start_frame + seg.n_frames - frame,
                     cut_in_frame=frame, transition_in="cut", half_in_frames=0, fade_in_frames=0)
    return first, second


def windows_at(segments: Sequence[Segment], split_frames: Sequence[int]) -> list[Window]:
    """The timeline cut at ``split_frames`` into windows, each with the parts of the clips it
    shows on its own timeline. A split must be a hard cut's frame or inside the solo stretch of
    the one clip showing there (``_solo_split``: never in a crossfade or fade); the window after
    a split inside a clip resumes that clip at the next frame (``WindowPart.skip_frames``), so
    the windows' frames, in order, are those of one graph of the whole edit."""
    total = segments[-1].cut_out_frame
    edges = [0, *sorted(set(split_frames)), total]
    for f in edges[1:-1]:
        inside = [s for s in segments if s.start_frame < f < s.start_frame + s.n_frames]
        solo = len(inside) == 1 and _solo_bounds(inside[0])[0] <= f <= _solo_bounds(inside[0])[1]
        if not (0 < f < total and (solo or not inside)):
            raise ValueError(f"split at frame {f} is inside a transition or off the timeline "
                             f"(0..{total}); fix: split on a hard cut or in a clip's solo stretch")
    windows = []
    for start, stop in zip(edges, edges[1:], strict=False):
        parts = []
        for c, seg in enumerate(segments):
            begin = max(seg.start_frame, start)
            end = min(seg.start_frame + seg.n_frames, stop)
            if begin >= end:
                continue
            changes: dict[str, object] = {}
            cut = seg.cut_in_frame
            if begin > seg.start_frame:  # resumed: the window starts in its solo stretch
                changes.update(transition_in="cut", half_in_frames=0, fade_in_frames=0)
                cut = begin
            if end < seg.start_frame + seg.n_frames:  # the window ends in its solo stretch
                changes.update(half_out_frames=0, fade_out_frames=0)
            parts.append(WindowPart(c, Segment(**{
                **seg.__dict__, **changes, "start_frame": begin - start, "n_frames": end - begin,
                "cut_in_frame": cut - start,
                "cut_out_frame": min(seg.cut_out_frame, end) - start}), begin - seg.start_frame))
        windows.append(Window(start, stop - start, tuple(parts)))
    return windows


def plan_windows(segments: Sequence[Segment],
                 max_clips: int = MAX_CLIPS_PER_WINDOW) -> list[Window]:
    """Cut the timeline into windows of at most ``max_clips`` clips each, so that a long edit
    never has every clip's decoder open at once. A window ends inside a clip's solo stretch
    (never in a transition); the next window resumes that same clip at the next frame, so the
    frames are those one graph of the whole edit would give (``windows_at``)."""
    if max_clips < 2:
        raise ValueError("a window needs room for at least 2 clips")
    splits: list[int] = []
    first = 0  # index of the first clip of the current window
    n = len(segments)
    while n - first > max_clips:
        for c in range(first + max_clips - 1, first, -1):
            f = _solo_split(segments[c])
            if f is not None and f > segments[c].start_frame:
                splits.append(f)
                first = c
                break
        else:  # no clip of this window can end it: it takes every clip left
            break
    return windows_at(segments, splits)


def compose(
    clip_paths: Sequence[str | Path],
    clip_durations_s: Sequence[float],
    segments: Sequence[Segment],
    audio_path: str | Path,
    out_path: str | Path,
    settings: ComposeSettings,
    max_clips_per_window: int = MAX_CLIPS_PER_WINDOW,
    frames: FramesTap | None = None,
    clip_in_s: Sequence[float] | None = None,
) -> list[str]:
    """Run the edit with one encode; returns the ffmpeg arguments that were run.

    Up to ``max_clips_per_window`` clips: one ffmpeg process, one graph. Longer edits: windows
    of clips (``plan_windows``) are decoded and joined one after another, each by its own ffmpeg
    graph writing raw frames into the one encoder's input, so memory stays flat however many
    clips there are (the encoder's arguments come first in the returned list). ``frames``: the
    encoder also writes the frames it encodes there, downscaled (``FramesTap``). ``clip_in_s``
    (per clip, default 0): where in its clip each scene starts (``in_frames``).
    Every ffmpeg process has a deadline proportional to the edit's length (``ffmpeg_bin``); one
    that fails or overruns it leaves neither ``out_path`` nor the frames' copy behind.
    """
    media_s = segments[-1].cut_out_frame / settings.fps
    outputs = [out_path, *([frames.path] if frames is not None else [])]
    join_size = work_size((settings.width, settings.height),
                          [mp4_video_size(p) for p in clip_paths])
    ins = [in_frames(t, settings.fps) for t in clip_in_s or [0.0] * len(segments)]
    windows = plan_windows(segments, max_clips_per_window)
    name = Path(out_path).name
    if len(windows) == 1:
        graph = build_graph(clip_paths, clip_durations_s, segments, audio_path, out_path,
                            settings, join_size, skip_frames=ins, frames=frames)
        args = graph.overwrite_output().get_args()
        run_ffmpeg(args, what=f"composing {len(segments)} clips into {name}", media_s=media_s,
                   outputs=outputs)
        return args
    w, h = join_size
    raw = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="yuv420p", s=f"{w}x{h}",
                       framerate=settings.fps)
    enc_args = encode_node(raw, join_size, audio_path, out_path, settings, frames) \
        .overwrite_output().get_args()
    window_args = [
        build_graph([clip_paths[p.clip] for p in win.parts],
                    [clip_durations_s[p.clip] for p in win.parts],
                    [p.segment for p in win.parts], audio_path, "pipe:", settings, join_size,
                    skip_frames=[ins[p.clip] + p.skip_frames for p in win.parts],
                    raw_out=True).get_args()
        for win in windows]
    run_windows(enc_args, window_args, [win.n_frames * w * h * 3 // 2 for win in windows],
                what=f"composing {len(segments)} clips into {name} in {len(windows)} windows",
                media_s=media_s, outputs=outputs)
    return [*enc_args, *(a for args in window_args for a in args)]


def run_windows(enc_args: list[str], window_args: list[list[str]], window_bytes: list[int],
                what: str, media_s: float | None = None,
                outputs: Sequence[str | Path] = ()) -> None:
    """Start the encoder, then the windows in order, each piping exactly its frames into the
    encoder's input (the next window is started while one runs, so the encoder never waits).
    All of them share one deadline for ``media_s`` seconds (``ffmpeg_bin.Deadline``); on failure
    or timeout every process is killed and reaped and ``outputs`` are deleted."""
    with contextlib.ExitStack() as logs, Deadline(what, media_s) as deadline:
        def start(args: list[str], **kw) -> tuple[subprocess.Popen, object]:
            log = logs.enter_context(tempfile.TemporaryFile())
            proc = deadline.watch(subprocess.Popen(
                [ffmpeg_exe(), "-hide_banner", "-nostdin", *args], stderr=log, **kw))
            return proc, log

        try:
            _run_windows(start, enc_args, window_args, window_bytes, what)
        except (FfmpegError, OSError) as exc:  # a killed process: a short window, a broken pipe
            remove_outputs(outputs)
            if deadline.expired:
                raise deadline.error() from exc
            raise
        except BaseException:  # an interrupt (_run_windows has killed the processes)
            remove_outputs(outputs)
            raise


def _run_windows(start, enc_args: list[str], window_args: list[list[str]],
                 window_bytes: list[int], what: str) -> None:
    def tail(log) -> str:
        log.seek(0)
        return "\n".join(log.read().decode("utf-8", "replace").strip().splitlines()[-12:])

    encoder, enc_log = start(enc_args, stdin=subprocess.PIPE)
    assert encoder.stdin is not None
    running: list[tuple[subprocess.Popen, object]] = []
    try:
        nxt = start(window_args[0], stdout=subprocess.PIPE)
        for k, expected in enumerate(window_bytes):
            proc, log = nxt
            running = [nxt]
            if k + 1 < len(window_args):
                nxt = start(window_args[k + 1], stdout=subprocess.PIPE)
                running.append(nxt)
            moved = _pipe_through(proc.stdout, encoder.stdin)
            if proc.wait() != 0 or moved != expected:
                raise FfmpegError(f"ffmpeg failed while {what}: window {k + 1} gave {moved} of "
                                  f"{expected} bytes (exit {proc.returncode}):\n{tail(log)}")
        encoder.stdin.close()
        if encoder.wait() != 0:
            raise FfmpegError(f"ffmpeg failed while {what} (exit {encoder.returncode}):\n"
                              f"{tail(enc_log)}")
    finally:
        for proc, _ in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if encoder.poll() is None:
            encoder.kill()
            encoder.wait()


def _pipe_through(src, dst, chunk_bytes: int = 1 << 20) -> int:
    """Move everything from pipe ``src`` to pipe ``dst`` (kernel splice where available)."""
    moved = 0
    src_fd, dst_fd = src.fileno(), dst.fileno()
    splice = getattr(os, "splice", None)
    while True:
        if splice is not None:
            try:
                n = splice(src_fd, dst_fd, chunk_bytes)
            except OSError:
                splice = None
                continue
        else:
            data = os.read(src_fd, chunk_bytes)
            n = len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(dst_fd, view):]
        if n == 0:
            return moved
        moved += n


def extract_thumbnail(video_path: str | Path, out_path: str | Path, at_s: float,
                      width: int = 540) -> None:
    """Write one JPEG frame, scaled to ``width`` pixels wide: the first key frame at or after
    ``at_s`` seconds (x264 puts one on hard cuts, so often a scene's first frame), decoding only
    key frames; when there is none after ``at_s``, the frame at ``at_s`` itself (which costs
    decoding every frame since the key frame before it, up to 250)."""
    out_path = Path(out_path)
    out_path.unlink(missing_ok=True)
    common = ["-i", str(video_path), "-frames:v", "1", "-vf", f"scale={width}:-2", "-q:v", "3",
              str(out_path)]
    seek = ["-y", "-ss", f"{max(0.0, at_s):.3f}"]
    what = f"extracting a thumbnail from {Path(video_path).name}"
    kw = {"what": what, "media_s": max(0.0, at_s), "outputs": [out_path]}  # reads up to at_s
    with contextlib.suppress(FfmpegError):
        run_ffmpeg(["-skip_frame", "nokey", *seek, *common], **kw)
    if not out_path.exists() or out_path.stat().st_size == 0:
        run_ffmpeg([*seek, *common], **kw)
