"""Animatic clips: the YUV renderer shows what a plain RGB resample of the card would show, and
the encoded clip has the frames, size and motion it should."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.media_helpers import decode_frames
from video_assets.media import animatic
from video_assets.media.art import render_card
from video_assets.media.ffmpeg_bin import ffmpeg_exe

SIZE = (360, 640)
BEATS_S = [0.0, 0.5, 1.0, 1.5]


@pytest.fixture(scope="module")
def card(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("card") / "card.png"
    # larger than the clip, so the source is shrunk once first (as provider images are)
    render_card((540, 960), ["#1d2b53", "#ff77a8", "#29adff", "#ffccaa"], 11,
                "Neon city at night", "01 / 04  PUSH IN", "skyline").save(path)
    return path


def rgb_reference(src: Image.Image, size: tuple[int, int], zoom: float, dx: float, dy: float,
                  level: int) -> np.ndarray:
    """The same view by a different route: Pillow resamples the RGB image over the view's box,
    the beat pulse is applied to RGB, and ffmpeg converts the frame to yuv420p."""
    out_w, out_h = size
    scale = max(out_w / src.width, out_h / src.height) * zoom
    cx, cy = src.width / 2 + dx * src.width, src.height / 2 + dy * src.height
    x0, y0 = cx - out_w / (2 * scale), cy - out_h / (2 * scale)
    frame = src.resize(size, Image.Resampling.BILINEAR,
                       box=(x0, y0, x0 + out_w / scale, y0 + out_h / scale))
    if level:
        gain = 1.0 + animatic.PULSE_GAIN * level
        frame = frame.point([min(255, int(v * gain + animatic.PULSE_LIFT * level))
                             for v in range(256)] * 3)
    yuv = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{out_w}x{out_h}",
         "-i", "-", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        input=frame.tobytes(), capture_output=True, check=True).stdout
    return np.frombuffer(yuv, np.uint8)


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.mark.parametrize("move", animatic.CAMERA_MOVES)
def test_frames_match_an_rgb_resample_of_the_card(card: Path, move: str):
    src = animatic.source_image(card, SIZE)
    assert src.size[0] < 540  # shrunk once to what the most magnified frame needs
    rgb = np.asarray(src)
    for u, pulse in ((0.0, 1.0), (0.37, 0.0), (0.5, 0.43), (1.0, 0.0)):
        zoom, dx, dy = animatic.camera_at(move, u, animatic.ZOOM_RANGE)
        zoom *= 1.0 + animatic.PULSE_ZOOM * pulse
        level = round(pulse * 10)
        ours = animatic.render_frame(animatic.yuv420_planes(rgb, level), SIZE, zoom, dx, dy)
        reference = rgb_reference(src, SIZE, zoom, dx, dy, level)
        assert ours.shape == reference.shape
        # 40 dB: differences well under what the encoder itself adds (x264 at CRF 21, ~38 dB)
        assert psnr_db(ours, reference) > 40.0, (move, u, pulse)


def test_the_pulse_brightens_and_the_camera_moves(card: Path):
    rgb = np.asarray(animatic.source_image(card, SIZE))
    plain = animatic.render_frame(animatic.yuv420_planes(rgb, 0), SIZE, 1.1, 0.0, 0.0)
    pulsed = animatic.render_frame(animatic.yuv420_planes(rgb, 10), SIZE, 1.1, 0.0, 0.0)
    n_luma = SIZE[0] * SIZE[1]
    assert pulsed[:n_luma].mean() > plain[:n_luma].mean() + 20
    shifted = animatic.render_frame(animatic.yuv420_planes(rgb, 0), SIZE, 1.1, 0.01, 0.0)
    assert np.abs(shifted[:n_luma].astype(int) - plain[:n_luma]).mean() > 1.0


def test_render_animatic_encodes_every_frame_at_its_size(card: Path, tmp_path: Path):
    out = tmp_path / "clip.mp4"
    n = animatic.render_animatic(card, out, 2.0, SIZE, "push_in", BEATS_S)
    assert n == 60
    frames = decode_frames(out, width=SIZE[0], height=SIZE[1])
    assert frames.shape == (60, SIZE[1], SIZE[0], 3)
    # a push-in: the last frame is the first one magnified 14 %, so they differ everywhere
    assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 5
    # the beat pulse shows: a frame on a beat is brighter than the frame before it
    assert frames[15].mean() > frames[14].mean() + 5


def test_odd_sizes_and_unknown_moves_are_refused(card: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="must be even"):
        animatic.render_animatic(card, tmp_path / "x.mp4", 1.0, (361, 640), "push_in")
    with pytest.raises(ValueError, match="camera move 'zoom'"):
        animatic.render_animatic(card, tmp_path / "x.mp4", 1.0, SIZE, "zoom")
    assert not (tmp_path / "x.mp4").exists()
