"""Independent measurements for tests: decode frames with the ffmpeg binary, small and raw."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from video_assets.media.ffmpeg_bin import ffmpeg_exe, run_ffmpeg


def decode_frames(path: str | Path, width: int = 36, height: int = 64) -> np.ndarray:
    """All frames of the video, downscaled, as uint8 array (n, height, width, 3)."""
    cmd = [ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"scale={width}:{height}",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def decode_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """The first audio stream, mono float32 at ``sample_rate`` (ffmpeg resampling)."""
    cmd = [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
           "-ar", str(sample_rate), "-f", "f32le", "-"]
    return np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, np.float32)


def audio_lag_ms(source: np.ndarray, result: np.ndarray, sample_rate: int = 16000,
                 max_lag_ms: float = 100.0, excerpt_s: float = 4.0) -> float:
    """How late ``result`` is against ``source``: brute-force time-domain correlation over every
    whole-sample lag (no FFT, no sub-sample fit; 1/16 ms resolution at 16 kHz)."""
    n = int(excerpt_s * sample_rate)
    max_lag = int(max_lag_ms * sample_rate / 1000)
    a = source[max_lag : max_lag + n]
    scores = [float(np.dot(a, result[max_lag + lag : max_lag + lag + n]))
              for lag in range(-max_lag, max_lag + 1)]
    return (int(np.argmax(scores)) - max_lag) * 1000 / sample_rate


def solid_clip(path: Path, colour: str, duration_s: float, size: str = "360x640") -> Path:
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"color=c={colour}:s={size}:r=30:d={duration_s}",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
               what="making a test clip")
    return path


def pattern_clip(path: Path, duration_s: float, size: str = "360x640", look: int = 0) -> Path:
    """A clip whose every frame differs (moving test pattern with a frame counter).

    ``look`` 1 and 2 flip and hue-rotate the pattern, so that clips of different looks are told
    apart by a cut detector."""
    vf = ["null", "vflip,hue=h=120", "hflip,hue=h=240,negate"][look % 3]
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=30:d={duration_s}", "-vf", vf,
                "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p",
                str(path)], what="making a test clip")
    return path
