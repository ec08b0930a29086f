"""Animatic clips: a camera move over a still image, with a pulse on each beat, encoded by ffmpeg.

The image is converted once to YUV 4:2:0 planes (BT.601, limited range: what ffmpeg's own RGB to
yuv420p conversion gives). Each frame is a sub-pixel bilinear resample of those planes (smooth,
unlike ``zoompan``'s whole-pixel steps) by a small numba kernel, piped raw into ``libx264``: no
per-frame RGB image and no colour conversion in the encoder, which made the old Pillow renderer
cost more CPU than the encode itself.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numba
import numpy as np
from PIL import Image

from video_assets.media.ffmpeg_bin import Deadline, FfmpegError, ffmpeg_exe, remove_outputs

ZOOM_RANGE = 0.14  # how far a push-in travels (14 % magnification)
PULSE_ZOOM = 0.025  # the zoom kick on a beat
PULSE_GAIN = 0.035  # brightness gain per tenth of a pulse (RGB: v * (1 + 0.035 k) + 4 k, k = 0..10)
PULSE_LIFT = 4.0  # brightness lift per tenth of a pulse, in RGB levels
CAMERA_MOVES = ("push_in", "pull_out", "pan_left", "pan_right", "tilt_up", "tilt_down", "static")

def camera_at(move: str, u: float, zoom_range: float = 0.14) -> tuple[float, float, float]:
    """Camera state at progress ``u`` in 0..1: ``(zoom, dx, dy)``; dx/dy as fractions of the frame.

    ``zoom`` >= 1 magnifies the source; dx, dy shift the view centre (positive = right/down).
    """
    e = 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, u)))  # ease in-out
    travel = zoom_range / 2
    if move == "push_in":
        return 1.0 + zoom_range * e, 0.0, 0.0
    if move == "pull_out":
        return 1.0 + zoom_range * (1 - e), 0.0, 0.0
    base = 1.0 + zoom_range
    if move == "pan_left":
        return base, travel * (1 - 2 * e) * 0.5, 0.0
    if move == "pan_right":
        return base, -travel * (1 - 2 * e) * 0.5, 0.0
    if move == "tilt_up":
        return base, 0.0, travel * (1 - 2 * e) * 0.5
    if move == "tilt_down":
        return base, 0.0, -travel * (1 - 2 * e) * 0.5
    if move == "static":  # a locked-off shot still breathes: a slow 3 % drift, never frozen
        return 1.0 + zoom_range / 4 + 0.03 * e, 0.0, 0.0
    raise ValueError(f"camera move {move!r} is not one of {', '.join(CAMERA_MOVES)}")


def beat_pulse(t_s: float, beats_s: Sequence[float], decay_s: float = 0.12) -> float:
    """0..1 accent: 1 on a beat, decaying exponentially over ``decay_s`` after it."""
    best = 0.0
    for b in beats_s:
        if b <= t_s + 1e-9:
            best = max(best, math.exp(-(t_s - b) / decay_s))
    return best


def pulse_lut(level: int) -> np.ndarray:
    """The brightening of a beat pulse at ``level`` (0..10) as a 256-entry table of RGB levels:
    ``v * (1 + 0.035 level) + 4 level``, clipped to 255."""
    v = np.arange(256, dtype=np.float64)
    return np.minimum(255, (v * (1.0 + PULSE_GAIN * level) + PULSE_LIFT * level).astype(np.int64)) \
        .astype(np.uint8)


def source_image(image_path: str | Path, size: tuple[int, int]) -> Image.Image:
    """The image in RGB, shrunk (Lanczos, once) to the size the most magnified frame needs, so
    that every frame is at most a mild resample of it; never enlarged."""
    out_w, out_h = size
    with Image.open(image_path) as im:
        src = im.convert("RGB")
    max_zoom = (1.0 + ZOOM_RANGE) * (1.0 + PULSE_ZOOM)
    cover = max(out_w / src.width, out_h / src.height) * max_zoom
    if cover < 1.0:
        src = src.resize((round(src.width * cover), round(src.height * cover)),
                         Image.Resampling.LANCZOS)
    return src


@numba.njit(cache=True, nogil=True)
def _yuv420(rgb, lut, y, cb, cr):  # pragma: no cover - compiled
    """``rgb`` (h, w, 3 uint8, even h and w) through ``lut``, into YUV 4:2:0 planes with the
    BT.601 limited-range matrix ffmpeg uses for RGB to yuv420p; chroma from each 2x2 block's mean."""
    h, w = y.shape
    for j in range(0, h, 2):
        for i in range(0, w, 2):
            r_sum = g_sum = b_sum = 0.0
            for dj in range(2):
                for di in range(2):
                    r = lut[rgb[j + dj, i + di, 0]]
                    g = lut[rgb[j + dj, i + di, 1]]
                    b = lut[rgb[j + dj, i + di, 2]]
                    y[j + dj, i + di] = np.uint8(min(255.0, 0.256788 * r + 0.504129 * g
                                                     + 0.097906 * b + 16.5))
                    r_sum += r
                    g_sum += g
                    b_sum += b
            r_m, g_m, b_m = r_sum / 4, g_sum / 4, b_sum / 4
            cb[j // 2, i // 2] = np.uint8(min(255.0, max(0.0, -0.148223 * r_m - 0.290993 * g_m
                                                         + 0.439216 * b_m + 128.5)))
            cr[j // 2, i // 2] = np.uint8(min(255.0, max(0.0, 0.439216 * r_m - 0.367788 * g_m
                                                         - 0.071427 * b_m + 128.5)))


def yuv420_planes(rgb: np.ndarray, level: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Y, Cb, Cr)`` uint8 planes of an RGB uint8 image brightened by a beat pulse of ``level``;
    Y has the image's size, chroma half of it rounded up (an odd last row or column counts twice)."""
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    h2, w2 = rgb.shape[:2]
    y = np.empty((h2, w2), np.uint8)
    cb, cr = np.empty((h2 // 2, w2 // 2), np.uint8), np.empty((h2 // 2, w2 // 2), np.uint8)
    _yuv420(np.ascontiguousarray(rgb), pulse_lut(level), y, cb, cr)
    return (np.ascontiguousarray(y[:h, :w]) if (h, w) != (h2, w2) else y), cb, cr


@numba.njit(cache=True, nogil=True)
def _resample_row(src_row, cols, col_f, out_row):  # pragma: no cover - compiled
    """The horizontal half of the bilinear sample: ``src_row`` at every output column, float32."""
    for x in range(out_row.shape[0]):
        i = cols[x]
        a = np.float32(src_row[i])
        out_row[x] = a + (np.float32(src_row[i + 1]) - a) * col_f[x]


@numba.njit(cache=True, nogil=True)
def _warp_plane(src, out, x0, y0, inv_scale):  # pragma: no cover - compiled
    """out[y, x] = the bilinear sample of ``src`` at ``(x0 + (x + .5) * inv_scale - .5,
    y0 + (y + .5) * inv_scale - .5)`` (pixel centres; edges clamped), rounded.

    Each source row is resampled horizontally once and kept while the next output row needs it
    (at these zooms consecutive output rows share a source row), so the per-pixel work left is
    a vertical blend of two contiguous rows."""
    src_h, src_w = src.shape
    out_h, out_w = out.shape
    cols = np.empty(out_w, np.int64)
    col_f = np.empty(out_w, np.float32)
    for x in range(out_w):
        sx = min(max(x0 + (x + 0.5) * inv_scale - 0.5, 0.0), src_w - 1.0)
        i = min(int(sx), src_w - 2)
        cols[x] = i
        col_f[x] = sx - i
    top = np.empty(out_w, np.float32)  # source row j, resampled
    bottom = np.empty(out_w, np.float32)  # source row j + 1, resampled
    top_j, bottom_j = -1, -1
    for y in range(out_h):
        sy = min(max(y0 + (y + 0.5) * inv_scale - 0.5, 0.0), src_h - 1.0)
        j = min(int(sy), src_h - 2)
        fy = np.float32(sy - j)
        if top_j != j:
            if bottom_j == j:  # moved down one source row: the bottom row becomes the top
                top, bottom = bottom, top
                top_j, bottom_j = bottom_j, top_j
            else:
                _resample_row(src[j], cols, col_f, top)
                top_j = j
        if bottom_j != j + 1:
            _resample_row(src[j + 1], cols, col_f, bottom)
            bottom_j = j + 1
        row = out[y]
        for x in range(out_w):
            a = top[x]
            row[x] = np.uint8(a + (bottom[x] - a) * fy + np.float32(0.5))


def render_frame(planes: tuple[np.ndarray, np.ndarray, np.ndarray], size: tuple[int, int],
                 zoom: float, dx: float, dy: float, out: np.ndarray | None = None) -> np.ndarray:
    """One yuv420p frame (flat uint8: Y, then Cb, then Cr) of the view of ``planes`` (the source
    in YUV 4:2:0) magnified ``zoom`` times over covering ``size``, its centre shifted by ``dx, dy``
    (fractions of the source)."""
    out_w, out_h = size
    y_src = planes[0]
    src_h, src_w = y_src.shape
    n_luma = out_w * out_h
    frame = np.empty(n_luma * 3 // 2, np.uint8) if out is None else out
    views = (frame[:n_luma].reshape(out_h, out_w),
             frame[n_luma : n_luma * 5 // 4].reshape(out_h // 2, out_w // 2),
             frame[n_luma * 5 // 4 :].reshape(out_h // 2, out_w // 2))
    scale = max(out_w / src_w, out_h / src_h) * zoom  # source px -> output px
    cx, cy = src_w / 2 + dx * src_w, src_h / 2 + dy * src_h
    x0, y0 = cx - out_w / (2 * scale), cy - out_h / (2 * scale)  # the view's corner, source px
    _warp_plane(y_src, views[0], x0, y0, 1.0 / scale)
    for src, view in zip(planes[1:], views[1:], strict=True):  # chroma: half the coordinates
        _warp_plane(src, view, x0 / 2, y0 / 2, 1.0 / scale)
    return frame


def render_animatic(
    image_path: str | Path,
    out_path: str | Path,
    duration_s: float,
    size: tuple[int, int],
    move: str,
    beats_s: Sequence[float] = (),
    fps: int = 30,
    crf: int = 21,
    preset: str = "ultrafast",
) -> int:
    """Encode ``duration_s`` of camera move over the image at ``size``; returns the frame count.

    The clip is an intermediate that composition re-encodes: x264 ``ultrafast`` at CRF 21 took
    about 30 % less CPU for rendering 45 s of clips than ``superfast`` (files twice as large, the
    same look), and composing them cost the same. The encoder has a deadline proportional to
    ``duration_s`` (``ffmpeg_bin.Deadline``); if it fails or overruns it, no file is left."""
    out_w, out_h = size
    if out_w % 2 or out_h % 2:
        raise ValueError(f"animatic size {out_w}x{out_h}: width and height must be even (yuv420p)")
    if move not in CAMERA_MOVES:
        raise ValueError(f"camera move {move!r} is not one of {', '.join(CAMERA_MOVES)}")
    n_frames = round(duration_s * fps)
    rgb = np.asarray(source_image(image_path, size))
    planes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # per pulse level
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{out_w}x{out_h}", "-r", str(fps), "-i", "-",
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", str(out_path),
    ]  # fmt: skip
    what = f"encoding animatic {Path(out_path).name}"
    with Deadline(what, duration_s) as deadline:
        proc = deadline.watch(subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE))
        assert proc.stdin is not None
        frame = np.empty(out_w * out_h * 3 // 2, np.uint8)
        try:
            for i in range(n_frames):
                if deadline.expired:
                    break
                zoom, dx, dy = camera_at(move, i / max(1, n_frames - 1), ZOOM_RANGE)
                pulse = beat_pulse(i / fps, beats_s)
                level = round(pulse * 10)
                if level not in planes:
                    planes[level] = yuv420_planes(rgb, level)
                render_frame(planes[level], size, zoom * (1.0 + PULSE_ZOOM * pulse), dx, dy, frame)
                proc.stdin.write(memoryview(frame))
            proc.stdin.close()
        except BrokenPipeError:  # ffmpeg ended early: its exit status says why
            pass
        except BaseException:  # an interrupt: no encoder left running, no partial file
            proc.kill()
            proc.wait()
            remove_outputs([out_path])
            raise
        err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        returncode = proc.wait()
    if returncode != 0:
        remove_outputs([out_path])
        if deadline.expired:
            raise deadline.error()
        raise FfmpegError(f"ffmpeg failed while {what}: {err[-800:]}")
    return n_frames
