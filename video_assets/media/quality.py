"""Measuring a finished video independently of what the planner intended (ffmpeg + numpy).

Frames are decoded downscaled by an ffmpeg process into a pipe (``decoded_chunks``), or read from
the copy the encoder wrote of the frames it encoded (``compose.FramesTap``); audio is decoded with
ffmpeg and compared with the source by cross-correlation. Times are seconds, frame indices are
ints at the video's frame rate.

A whole video is measured in one pass over its frames, ``CHUNK_FRAMES`` at a time, each chunk
seen with the frames around it that its measurements look at (``overlapping_windows``,
``measure_frames``): memory stays flat in the video's length (all frames of a 10-minute video
at 108x192 are 1.1 GB, and their float copies four times that), and every result is the one the
functions below give on the whole array.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from video_assets.media.audio import decode_mono

CHUNK_FRAMES = 128  # frames measured at a time: 8 MB at 108x192, 32 MB as floats


def decode_frames(path: str | Path, width: int = 108, height: int = 192) -> np.ndarray:
    """Every frame, downscaled, as uint8 ``(n, height, width, 3)`` (``decoded_chunks``)."""
    return decode_first_frames(path, sys.maxsize, width, height)


def decode_first_frames(path: str | Path, n_frames: int, width: int = 108,
                        height: int = 192) -> np.ndarray:
    """The first ``n_frames`` frames (or all, if fewer), downscaled, as uint8
    ``(n, height, width, 3)``; only those are decoded."""
    chunks = list(_decoded(path, width, height, CHUNK_FRAMES, n_frames))
    return np.concatenate(chunks) if chunks else np.empty((0, height, width, 3), np.uint8)


def decoded_chunks(path: str | Path, width: int = 108, height: int = 192,
                   chunk_frames: int = CHUNK_FRAMES,
                   limit: int = sys.maxsize) -> tuple[int, Iterator[np.ndarray]]:
    """How many frames the video has (up to ``limit``: its first video stream's packets), and
    its frames decoded in order, downscaled, ``chunk_frames`` at a time as uint8
    ``(k, height, width, 3)``.

    ffmpeg decodes them in its own process (bilinear scaling to rgb24: decord's frames byte for
    byte) into a pipe that is read a chunk at a time, so this process holds a chunk whatever the
    video's length. (decord, used before, reads packets ahead of its decoder without bound: after
    60 frames of a 4-minute 1080x1920 render it held 136 MB, most of the file's 117 MB.)"""
    return min(limit, _video_packets(path)), _decoded(path, width, height, chunk_frames, limit)


def _video_packets(path: str | Path) -> int:
    """The number of packets (frames) of the first video stream: the container's count if it
    has one (MP4), else counted by reading the packets (PyAV; nothing decoded)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.frames or sum(1 for p in container.demux(stream) if p.size)


def _decoded(path: str | Path, width: int, height: int, chunk_frames: int,
             limit: int) -> Iterator[np.ndarray]:
    """The first ``limit`` frames of ``path`` (or all), downscaled, ``chunk_frames`` at a time
    (``decoded_chunks``): an ffmpeg process writes them into a pipe, with a deadline for the
    file's length; closing the iterator early stops it."""
    import subprocess
    import tempfile

    from video_assets.media.ffmpeg_bin import Deadline, FfmpegError, ffmpeg_exe
    from video_assets.media.probe import mp4_duration_s

    frame_bytes = width * height * 3
    frames = [] if limit == sys.maxsize else ["-frames:v", str(limit)]
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
           "-map", "0:v:0", *frames, "-vf", f"scale={width}:{height}:flags=bilinear",
           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    what = f"decoding the frames of {Path(path).name}"
    with tempfile.TemporaryFile() as log, Deadline(what, mp4_duration_s(path)) as deadline:
        proc = deadline.watch(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log))
        assert proc.stdout is not None
        at_end = False
        try:
            while not at_end:
                data = proc.stdout.read(chunk_frames * frame_bytes)
                at_end = len(data) < chunk_frames * frame_bytes
                if k := len(data) // frame_bytes:
                    yield np.frombuffer(data, np.uint8, k * frame_bytes).reshape(k, height, width, 3)
        finally:
            if not at_end:  # the caller stopped early (or failed): ffmpeg is not left running
                proc.kill()
            proc.stdout.close()
            proc.wait()
        if deadline.expired:
            raise deadline.error()
        if proc.returncode != 0:
            log.seek(0)
            tail = "\n".join(log.read().decode("utf-8", "replace").strip().splitlines()[-12:])
            raise FfmpegError(f"ffmpeg failed while {what} (exit {proc.returncode}):\n{tail}")


def frames_match(copy: np.ndarray, decoded: np.ndarray, max_mean_diff: float = 8.0,
                 max_shift: int = 2) -> bool:
    """Whether ``copy`` holds the pictures of ``decoded``, frame for frame: as many, each pair
    within ``max_mean_diff`` levels on average (an H.264 encode at CRF 20 differs from its input
    by 1-4 levels at 108x192; another picture by tens), and the copy lined up with the decode no
    worse (by half a level) than shifted by up to ``max_shift`` frames either way."""
    if copy.shape != decoded.shape or not len(copy):
        return False
    a, b = copy.astype(np.int16), decoded.astype(np.int16)

    def mean_diff(shift: int) -> float:
        x, y = (a[shift:], b[: len(b) - shift]) if shift >= 0 else (a[:shift], b[-shift:])
        return float(np.abs(x - y).mean()) if len(x) else np.inf

    aligned = mean_diff(0)
    per_frame = np.abs(a - b).mean(axis=(1, 2, 3))
    shifted = min(mean_diff(k) for k in range(-max_shift, max_shift + 1) if k)
    return bool(per_frame.max() <= max_mean_diff and aligned <= shifted + 0.5)


def read_frames(path: str | Path, width: int = 108, height: int = 192) -> np.ndarray:
    """Raw rgb24 frames of ``width`` x ``height`` from a file (``compose.FramesTap``), as uint8
    ``(n, height, width, 3)``, mapped read-only (``np.memmap``), not loaded: ``frame_chunks``
    reads them from the file a chunk at a time. An incomplete last frame is an error."""
    size_bytes = os.path.getsize(path)
    frame_bytes = width * height * 3
    if size_bytes % frame_bytes:
        raise ValueError(f"{path}: {size_bytes} bytes is not a whole number of {width}x{height} "
                         f"rgb24 frames")
    if not size_bytes:
        return np.empty((0, height, width, 3), np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r",
                     shape=(size_bytes // frame_bytes, height, width, 3))


def frame_chunks(frames: np.ndarray, chunk_frames: int = CHUNK_FRAMES) -> Iterator[np.ndarray]:
    """``frames`` in order, ``chunk_frames`` at a time. A file mapped by ``read_frames`` is read
    from the file instead of through its mapping, whose pages would stay resident (and count in
    the process's memory) once touched."""
    if isinstance(frames, np.memmap) and isinstance(frames.base, mmap.mmap):
        shape = frames.shape[1:]
        frame_bytes = int(np.prod(shape))
        with open(frames.filename, "rb") as handle:  # type: ignore[arg-type]
            handle.seek(frames.offset)
            for start in range(0, len(frames), chunk_frames):
                k = min(chunk_frames, len(frames) - start)
                yield np.fromfile(handle, np.uint8, k * frame_bytes).reshape(k, *shape)
        return
    for start in range(0, len(frames), chunk_frames):
        yield frames[start : start + chunk_frames]


def overlapping_windows(chunks: Iterable[np.ndarray],
                        margin: int) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """For each chunk of a stream of frames, ``(start, end, window_start, window)``: the chunk
    is frames ``[start, end)`` and ``window`` holds frames ``window_start = max(0, start -
    margin)`` up to ``end + margin`` (or the stream's end), so that anything measured on a frame
    of the chunk sees every frame within ``margin`` of it. Only about one chunk and two margins
    of frames are held at a time."""
    buf: np.ndarray | None = None
    buf_start, total = 0, 0
    pending: deque[tuple[int, int]] = deque()

    def ready(final: bool) -> Iterator[tuple[int, int, int, np.ndarray]]:
        nonlocal buf, buf_start
        while pending and (final or pending[0][1] + margin <= total):
            start, end = pending.popleft()
            lo, hi = max(0, start - margin), min(total, end + margin)
            assert buf is not None
            yield start, end, lo, buf[lo - buf_start : hi - buf_start]
            keep_from = max(0, (pending[0][0] if pending else end) - margin)
            buf, buf_start = buf[keep_from - buf_start :], keep_from

    for chunk in chunks:
        if not len(chunk):
            continue
        buf = chunk if buf is None else np.concatenate([buf, chunk])
        pending.append((total, total + len(chunk)))
        total += len(chunk)
        yield from ready(final=False)
    yield from ready(final=True)


def _normalised(frames: np.ndarray, chunk: int = 32) -> np.ndarray:
    """Each frame as float32 with zero mean and unit contrast (``/ (std + 1)``), worked out
    ``chunk`` frames at a time so that the float copies stay in cache (3x faster than the whole
    array at once for 900 frames of 108x192)."""
    out = np.empty(frames.shape, np.float32)
    for start in range(0, len(frames), chunk):
        x = frames[start : start + chunk].astype(np.float32)
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        x -= mean
        std = np.sqrt((x * x).mean(axis=(1, 2, 3), keepdims=True))
        np.divide(x, std + 1, out=out[start : start + chunk])
    return out


def detect_cuts(frames: np.ndarray, threshold: float = 0.15, settle_frames: int = 8) -> list[int]:
    """Indices of frames that start a new shot (hard cuts).

    Frames are normalised to zero mean and unit contrast. Frame ``t`` is a cut when it differs
    from frame ``t - 1`` by more than ``threshold`` and frame ``t - 2`` also differs from every
    one of the ``settle_frames`` after ``t``: a flash or a beat pulse changes a frame and fades
    back, a cut stays. (Only the last of them was compared once: a beat pulse 12 frames before a
    crossfade, at 150 BPM, then counted as a cut, the crossfade having begun by that frame.)
    """
    return measure_frames(frame_chunks(frames), len(frames), cut_threshold=threshold,
                          settle_frames=settle_frames).cuts


def _cut_candidates(x: np.ndarray, x_start: int, start: int, end: int, n: int,
                    threshold: float, settle_frames: int) -> list[int]:
    """The frames of ``[start, end)`` (of ``n``) that ``detect_cuts`` takes for a cut's start,
    before one cut's neighbour frames are dropped; ``x``: the normalised frames from
    ``x_start``, at least 2 before ``start`` and ``settle_frames`` after ``end``."""
    def d(i: int, j: int) -> float:
        return float(np.abs(x[i - x_start] - x[j - x_start]).mean())

    # within the last ``settle_frames`` a flash cannot be told from a cut: no cut is reported
    # there (a scene is at least 3 s, so no planned cut falls in them)
    return [t for t in range(max(1, start), min(end, n - settle_frames))
            if d(t - 1, t) > threshold and all(d(max(0, t - 2), min(n - 1, t + s)) > threshold
                                               for s in range(1, settle_frames + 1))]


def same_picture_across(frames: np.ndarray, at: int, threshold: float = 0.15,
                        settle_frames: int = 8) -> bool:
    """Whether frame ``at`` starts no new picture: every frame from ``settle_frames + 1``
    before it to ``settle_frames`` after it is within ``threshold`` of the frame just before it
    (``detect_cuts``' measure). A cut between two shots of the same picture (one clip used for
    two scenes) cannot be seen there; a cut between different shots that is missing, a few
    frames off, or a crossfade instead changes the picture within that span."""
    if not 1 <= at < len(frames):
        return False
    lo, hi = max(0, at - settle_frames - 1), min(len(frames), at + settle_frames + 1)
    x = _normalised(frames[lo:hi])
    before = x[at - 1 - lo]
    return all(float(np.abs(f - before).mean()) <= threshold for f in x)


@dataclass
class FrameMeasures:
    """What ``measure_frames`` found, in the order things were asked for."""

    n_frames: int
    cuts: list[int] = field(default_factory=list)  # ``detect_cuts``
    crossfade_centres: list[int | None] = field(default_factory=list)  # ``crossfade_centre``
    darkest: list[float] = field(default_factory=list)  # ``darkest_frame``
    same_picture: list[bool] = field(default_factory=list)  # ``same_picture_across``
    black: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # ``black_frames``
    frozen: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # ``frozen_frames``
    sharpness: list[float] = field(default_factory=list)  # ``sharpness`` of the frames asked
    brightness: list[float] = field(default_factory=list)  # mean level of each span asked


MEASURE_FORMAT = 1  # of ``WindowMemo`` entries: bump when a window's measurements change


@dataclass
class _Window:
    """What ``measure_frames`` measured on one window, frames relative to its chunk's first:
    the frames where a hard cut starts (before one cut's neighbour frames are dropped), and the
    window's answers to the requests homed in its chunk, in the order asked."""

    cut_candidates: list[int]
    crossfade_centres: list[int | None]
    darkest: list[float]
    same_picture: list[bool]
    black: list[int]
    frozen: list[int]
    sharpness: list[float]
    levels: list[list[int]]  # [sum, count] of each span's part in the chunk


class WindowMemo:
    """Measurements of windows of frames seen before (a render of the same job), by the digest
    of the window's frames and what was asked of them: an edit's video measures again only the
    windows whose frames changed. ``kept`` are the entries of this measurement (hits and new
    ones), to keep for the next."""

    def __init__(self, previous: dict | None = None) -> None:
        self.previous = previous if isinstance(previous, dict) else {}
        self.kept: dict[str, dict] = {}
        self.hits = self.misses = 0

    def get(self, key: str) -> _Window | None:
        entry = self.previous.get(key)
        try:
            window = _Window(**entry) if isinstance(entry, dict) else None
        except TypeError:  # another format's entry: measured again
            window = None
        if window is not None:
            self.kept[key], self.hits = entry, self.hits + 1
        return window

    def put(self, key: str, window: _Window) -> None:
        self.kept[key], self.misses = asdict(window), self.misses + 1


def measure_frames(chunks: Iterable[np.ndarray], n_frames: int, *,
                   crossfades: Sequence[tuple[int, int]] = (),
                   fades: Sequence[tuple[int, int]] = (), cuts_at: Sequence[int] = (),
                   sharpness_at: Sequence[int] = (), spans: Sequence[tuple[int, int]] = (),
                   cut_threshold: float = 0.15, settle_frames: int = 8,
                   frozen_span: int = 15, memo: WindowMemo | None = None) -> FrameMeasures:
    """Everything the quality report measures on frames, in one pass over ``chunks`` (the
    video's ``n_frames`` frames in order, any chunking), holding a chunk and the frames around
    it at a time: the hard cuts (``detect_cuts``), each crossfade's centre for ``crossfades``
    ``(around, half_frames)`` (``crossfade_centre``), each fade's black frame for ``fades``
    ``(around, reach)`` (``darkest_frame``), whether each of ``cuts_at`` shows the same
    picture on both sides (``same_picture_across``), black and frozen frames, the
    ``sharpness`` of the frames ``sharpness_at`` and the mean level of each ``[start, end)`` of
    ``spans``. The results are those of the functions named, on the whole array.
    ``memo``: windows measured before, reused where their frames (by SHA-256, about 1 GB/s) and
    the requests in them are the same; this measurement's windows are added to it."""
    n = n_frames
    margin = max([frozen_span, settle_frames + 2]
                 + [3 * h + 4 for _, h in crossfades] + [r + 1 for _, r in fades])
    out = FrameMeasures(n, crossfade_centres=[None] * len(crossfades),
                        darkest=[float("nan")] * len(fades), same_picture=[False] * len(cuts_at),
                        black=np.zeros(n, bool), frozen=np.zeros(n, bool),
                        sharpness=[float("nan")] * len(sharpness_at))
    level_sums, level_counts = [0] * len(spans), [0] * len(spans)
    params = [MEASURE_FORMAT, n, margin, cut_threshold, settle_frames, frozen_span]

    def home(frame: int) -> int:  # the chunk that measures a request: the one holding its frame
        return min(max(frame, 0), n - 1)

    def homed(frames: Iterable[int], start: int, end: int) -> list[int]:
        return [k for k, f in enumerate(frames) if start <= home(f) < end]

    candidates: list[int] = []
    digests: deque[bytes] = deque()  # of each frame from ``digest_start``, when memoised
    digest_start, seen = 0, 0
    for start, end, lo, window in overlapping_windows(_digested(chunks, digests, memo), margin):
        seen = end
        ask = {"crossfades": homed([a for a, _ in crossfades], start, end),
               "fades": homed([a for a, _ in fades], start, end),
               "cuts_at": homed(cuts_at, start, end),
               "sharpness_at": [k for k, i in enumerate(sharpness_at) if start <= i < end],
               "spans": [k for k, (a, b) in enumerate(spans) if max(a, start) < min(b, end)]}
        key, found = None, None
        if memo is not None:
            while digest_start < lo:
                digests.popleft()
                digest_start += 1
            asked = [[crossfades[k][0] - start, crossfades[k][1]] for k in ask["crossfades"]] \
                + [[fades[k][0] - start, fades[k][1]] for k in ask["fades"]] \
                + [[cuts_at[k] - start] for k in ask["cuts_at"]] \
                + [[sharpness_at[k] - start] for k in ask["sharpness_at"]] \
                + [[max(spans[k][0], start) - start, min(spans[k][1], end) - start]
                   for k in ask["spans"]]
            h = hashlib.sha256(json.dumps([params, start, end, lo, [len(v) for v in ask.values()],
                                           asked]).encode())
            for d in list(digests)[: len(window)]:
                h.update(d)
            key = h.hexdigest()
            found = memo.get(key)
        if found is None:
            found = _measure_window(window, start, end, lo, n, ask, crossfades, fades, cuts_at,
                                    sharpness_at, spans, cut_threshold, settle_frames,
                                    frozen_span)
            if memo is not None and key is not None:
                memo.put(key, found)
        candidates += [start + t for t in found.cut_candidates]
        for k, c in zip(ask["crossfades"], found.crossfade_centres, strict=True):
            out.crossfade_centres[k] = None if c is None else c + start
        for k, d in zip(ask["fades"], found.darkest, strict=True):
            out.darkest[k] = d + start
        for k, same in zip(ask["cuts_at"], found.same_picture, strict=True):
            out.same_picture[k] = same
        out.black[[start + i for i in found.black]] = True
        out.frozen[[start + i for i in found.frozen]] = True
        for k, value in zip(ask["sharpness_at"], found.sharpness, strict=True):
            out.sharpness[k] = value
        for k, (total, count) in zip(ask["spans"], found.levels, strict=True):
            level_sums[k] += total
            level_counts[k] += count
    if seen != n:
        raise ValueError(f"the video's frames: {seen} read, {n} expected; fix: the file or the "
                         "frames' copy is damaged, render again")
    for t in candidates:  # one cut, not its neighbour frames too
        if not out.cuts or t - out.cuts[-1] > 2:
            out.cuts.append(t)
    out.brightness = [s / c if c else float("nan") for s, c in zip(level_sums, level_counts,
                                                                       strict=True)]
    return out


def _digested(chunks: Iterable[np.ndarray], digests: deque[bytes],
              memo: WindowMemo | None) -> Iterator[np.ndarray]:
    """``chunks`` as they come, each frame's SHA-256 appended to ``digests`` (with a memo)."""
    for chunk in chunks:
        if memo is not None:
            digests.extend(hashlib.sha256(np.ascontiguousarray(f)).digest() for f in chunk)
        yield chunk


def _measure_window(window: np.ndarray, start: int, end: int, lo: int, n: int,
                    ask: dict[str, list[int]], crossfades: Sequence[tuple[int, int]],
                    fades: Sequence[tuple[int, int]], cuts_at: Sequence[int],
                    sharpness_at: Sequence[int], spans: Sequence[tuple[int, int]],
                    cut_threshold: float, settle_frames: int, frozen_span: int) -> _Window:
    """``measure_frames`` on one window: frames ``[lo, ...)``, measuring the chunk
    ``[start, end)`` and the requests ``ask`` homed in it (indices into the request lists)."""
    own = window[start - lo : end - lo]
    cuts = _cut_candidates(_normalised(window), lo, start, end, n, cut_threshold, settle_frames)
    centres = []
    for k in ask["crossfades"]:
        around, h = crossfades[k]
        c = crossfade_centre(window, around - lo, h)
        centres.append(None if c is None else c + lo - start)
    frozen: np.ndarray = np.zeros(end - start, bool)
    first = max(start, frozen_span)
    if first < end:
        frozen[first - start :] = _unchanged(window[first - lo : end - lo],
                                             window[first - frozen_span - lo : end - frozen_span - lo])
    levels = []
    for k in ask["spans"]:
        a, b = max(spans[k][0], start), min(spans[k][1], end)
        levels.append([int(own[a - start : b - start].sum(dtype=np.uint64)),
                       int(own[a - start : b - start].size)])
    return _Window(
        cut_candidates=[t - start for t in cuts],
        crossfade_centres=centres,
        darkest=[darkest_frame(window, fades[k][0] - lo, fades[k][1]) + lo - start
                 for k in ask["fades"]],
        same_picture=[same_picture_across(window, cuts_at[k] - lo, cut_threshold, settle_frames)
                      for k in ask["cuts_at"]],
        black=np.flatnonzero(black_frames(own)).tolist(),
        frozen=np.flatnonzero(frozen).tolist(),
        sharpness=[sharpness(own[sharpness_at[k] - start]) for k in ask["sharpness_at"]],
        levels=levels)


def audio_offset_s(source: np.ndarray, result: np.ndarray, sample_rate: int,
                   max_lag_s: float = 0.25, window_s: float = 20.0) -> float:
    """Delay of ``result`` against ``source`` (seconds, positive = result is late).

    Cross-correlation of the first ``window_s`` seconds via FFT; sub-sample by a parabolic fit.
    """
    n = int(min(len(source), len(result), window_s * sample_rate))
    a = source[:n] - source[:n].mean()
    b = result[:n] - result[:n].mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    max_lag = int(max_lag_s * sample_rate)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([corr[: max_lag + 1], corr[-max_lag:]])
    i = int(np.argmax(values))
    lag = float(lags[i])
    left, right = values[i - 1] if i > 0 else values[i], values[(i + 1) % len(values)]
    denom = left - 2 * values[i] + right
    if denom != 0:
        lag += 0.5 * (left - right) / denom
    return lag / sample_rate


def transition_mask(n_frames: int, windows: Sequence[tuple[int, int]]) -> np.ndarray:
    """True for frames inside any ``[start, end)`` transition window."""
    mask = np.zeros(n_frames, dtype=bool)
    for start, end in windows:
        mask[max(0, start) : min(n_frames, end)] = True
    return mask


def black_frames(frames: np.ndarray, luma_max: float = 16.0) -> np.ndarray:
    """True where a frame's mean luma is at most ``luma_max`` (of 255)."""
    n, pixels = len(frames), frames.shape[1] * frames.shape[2]
    # luma is linear in R, G, B: weigh each channel's mean (summed one channel at a time,
    # 8x faster than a mean over two axes of the interleaved array)
    rgb_means = np.stack([frames[..., c].reshape(n, -1).sum(axis=1, dtype=np.uint64)
                          for c in range(3)], axis=1) / pixels
    return rgb_means @ np.array([0.299, 0.587, 0.114]) <= luma_max


def frozen_frames(frames: np.ndarray, span: int = 15, diff_max: float = 0.5) -> np.ndarray:
    """True where a frame has not changed over the last ``span`` frames (half a second at 30
    fps): mean |difference| at most ``diff_max`` of 255. Slow camera moves still change that much
    in half a second; a stalled or still picture does not."""
    out = np.zeros(len(frames), dtype=bool)
    if len(frames) > span:
        out[span:] = _unchanged(frames[span:], frames[:-span], diff_max)
    return out


def _unchanged(frames: np.ndarray, earlier: np.ndarray, diff_max: float = 0.5) -> np.ndarray:
    """True where a frame differs from its ``earlier`` one by at most ``diff_max`` on average."""
    return np.abs(frames.astype(np.int16) - earlier).mean(axis=(1, 2, 3)) <= diff_max


def sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: low for blurred or empty frames."""
    g = frame.astype(np.float32).mean(axis=2)
    lap = g[1:-1, 1:-1] * -4 + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


def nearest_distance_s(times_s: Sequence[float], targets_s: Sequence[float]) -> list[float]:
    """For each time, the signed distance to the nearest target (time - target, seconds)."""
    if not len(targets_s):
        return [float("inf")] * len(times_s)
    arr = np.asarray(targets_s, dtype=float)
    return [float(t - arr[np.argmin(np.abs(arr - t))]) for t in times_s]


def audio_offset_of(video_path: str | Path, source_path: str | Path, sample_rate: int = 48000,
                    max_lag_s: float = 0.25, window_s: float = 20.0) -> float:
    """Audio offset of the video's track against the source file, seconds (positive = late),
    from the first ``window_s`` seconds of each (``audio_offset_s``; only those are decoded: a
    whole 10-minute song at 48 kHz is 115 MB, twice over while it is read)."""
    head_s = window_s + 2 * max_lag_s
    src, out = (decode_mono(p, sample_rate, max_s=head_s).samples for p in (source_path, video_path))
    return audio_offset_s(src, out, sample_rate, max_lag_s, window_s)


def _mixes(x: np.ndarray, a_frame: np.ndarray, b_frame: np.ndarray) -> np.ndarray | None:
    """Each row of ``x`` projected on the line from ``a_frame`` (0) to ``b_frame`` (1); None if
    the two are the same picture."""
    line = b_frame - a_frame
    length2 = float(line @ line)
    if length2 < 1e-6 * line.size:
        return None
    return (x - a_frame) @ line / length2


def _ramp_misfit(mix: np.ndarray, ramp: np.ndarray) -> np.ndarray:
    """How far mixes are from a crossfade's ramp: the absolute error in level plus, 8 times, in
    frame-to-frame step (a beat pulse or a flash in one shot is then a few outlying steps, not a
    shifted ramp). Broadcasts over rows of ``ramp``."""
    return (np.abs(mix - ramp).sum(axis=-1)
            + 8.0 * np.abs(np.diff(mix) - np.diff(ramp, axis=-1)).sum(axis=-1))


def crossfade_centre(frames: np.ndarray, around: int, half_frames: int) -> int | None:
    """The frame half-way through a crossfade near frame ``around``, or None when the crossfade
    cannot be seen.

    A crossfade of ``2 * half_frames`` frames from frame ``s`` shows ``(1 - a) * A + a * B``,
    the mix ``a`` rising by ``1 / (2 * half_frames)`` a frame from frame ``s`` (all A) to
    ``s + 2 * half_frames`` (all B); its centre is ``s + half_frames``. Frames are normalised
    (zero mean, unit contrast) and projected on the line from the outgoing shot to the incoming
    one, which gives each frame's mix; the start is the whole frame whose ramp fits the mixes
    best (``_ramp_misfit``). First the shots are the mean frames before and after the crossfade,
    its centre searched up to a crossfade length and 3 frames either side of ``around`` (so one
    placed early or late is found where it is; repeated with the shots taken clear of the found
    ramp), which beat pulses do not fool;
    then, within a frame of that, the shots are the 4 frames next to each end of the ramp, which
    the shots' own motion does not bias. Of 204 test crossfades (140 between animatic clips with
    beat pulses, 64 between moving test patterns) 200 were found on their frame, 4 a frame off.
    Shots too alike to tell apart (the same picture, or mixes that do not follow a ramp) make
    the crossfade not measurable.
    """
    h, near = half_frames, 4
    reach = 3 * h + 3
    lo, hi = max(0, around - reach), min(len(frames), around + reach + 1)
    if h < 1 or hi - lo < 2 * h + 6:
        return None
    x = _normalised(frames[lo:hi]).reshape(hi - lo, -1)
    t = np.arange(lo, hi)
    starts = np.arange(lo, hi - 2 * h)
    ramps = np.clip((t[None, :] - starts[:, None]) / (2 * h), 0.0, 1.0)  # row: mixes if start s
    start = around - h
    for _ in range(3):  # whole shots
        before, after = t < start - 1, t > start + 2 * h + 1
        if before.sum() < 2 or after.sum() < 2:
            return None
        mix = _mixes(x, x[before].mean(axis=0), x[after].mean(axis=0))
        if mix is None:
            return None
        best = int(np.argmin(_ramp_misfit(mix, ramps)))
        start = int(starts[best])
    misfit = np.abs(mix - ramps[best])
    if np.median(misfit) > 0.1 or np.percentile(misfit, 75) > 0.2:
        return None
    ramp = np.concatenate([np.zeros(near), np.arange(2 * h + 1) / (2 * h), np.ones(near)])
    fits = {}
    for s in (start - 1, start, start + 1):  # the shots next to the ramp's ends
        i = s - lo
        if i - near < 0 or i + 2 * h + near + 1 > len(x):
            continue
        mix = _mixes(x[i - near : i + 2 * h + near + 1], x[i - near + 1 : i + 1].mean(axis=0),
                     x[i + 2 * h : i + 2 * h + near].mean(axis=0))
        if mix is not None:
            fits[s] = float(_ramp_misfit(mix, ramp))
    return (min(fits, key=fits.__getitem__) if fits else start) + h


def darkest_frame(frames: np.ndarray, around: int, reach: int) -> float:
    """Centre of the darkest frames within ``reach`` of ``around`` (where a fade reaches black)."""
    lo, hi = max(0, around - reach), min(len(frames), around + reach + 1)
    luma = frames[lo:hi].astype(np.float32).mean(axis=(1, 2, 3))
    darkest = np.flatnonzero(luma <= luma.min() + 1.0)
    return float(lo + darkest.mean())


def loudness_lufs(path: str | Path, media_s: float | None = None) -> float:
    """Integrated loudness (EBU R128, LUFS) of the file's first audio stream (ffmpeg ``ebur128``;
    ``media_s``: the file's length, for ffmpeg's deadline)."""
    import re

    from video_assets.media.ffmpeg_bin import run_ffmpeg

    log = run_ffmpeg(["-nostats", "-i", str(path), "-map", "0:a:0", "-filter:a", "ebur128",
                      "-f", "null", "-"], what=f"measuring the loudness of {path}", media_s=media_s)
    found = re.findall(r"I:\s+(-?[\d.]+|-inf)\s+LUFS", log)
    if not found:
        raise ValueError(f"ffmpeg's ebur128 summary has no integrated loudness for {path}")
    return float(found[-1]) if found[-1] != "-inf" else float("-inf")
