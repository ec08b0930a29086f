"""Memory does not grow with the song: measuring a video's frames holds a chunk of them at a time.

All frames of a 10-minute video at the measurement's 108x192 are 1.1 GB, and their float copies
four times that; a render of a 133 s song once peaked at 1.7 GB because of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from video_assets.media.compose import FramesTap

FPS = 30
SCENE_FRAMES = 4 * FPS
WIDTH, HEIGHT = FramesTap(Path("unused")).size

# a child process measures a FramesTap file as the quality report does, and reports its peak
# resident memory (the kernel's ru_maxrss) over what it held before measuring
MEASURE = """
import json, resource, sys
from video_assets.media import quality
path, n = sys.argv[1], int(sys.argv[2])
scene, half = int(sys.argv[3]), 8
starts = list(range(scene, n, scene))
before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
frames = quality.read_frames(path)
found = quality.measure_frames(
    quality.frame_chunks(frames), len(frames),
    crossfades=[(s, half) for s in starts[::3]], fades=[(s, 2 * half + 2) for s in starts[1::3]],
    cuts_at=starts[2::3], sharpness_at=[s + scene // 2 for s in [0, *starts] if s + scene // 2 < n],
    spans=list(zip([0, *starts], [*starts, n])))
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (peak_kb - before_kb) / 1024, "n_frames": found.n_frames,
                  "cuts": len(found.cuts)}))
"""


def write_frames(path: Path, minutes: float) -> int:
    """A FramesTap file of ``minutes`` of 4 s scenes, each a pattern of slow waves (its own
    directions and colours) drifting a pixel a frame, joined by hard cuts; returns the frame
    count."""
    n = round(minutes * 60 * FPS)
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    textures = []
    for _ in range(7):
        waves = [np.sin(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / length + phase)
                 for a, length, phase in rng.uniform((0, 120, 0), (np.pi, 240, 2 * np.pi), (3, 3))]
        textures.append((127.5 + 120 * np.stack(waves, axis=-1)).astype(np.uint8))
    with open(path, "wb") as out:
        for start in range(0, n, SCENE_FRAMES):
            texture = textures[(start // SCENE_FRAMES) % len(textures)]
            scene = np.stack([np.roll(texture, t, axis=1)
                              for t in range(min(SCENE_FRAMES, n - start))])
            out.write(scene.tobytes())
    return n


def measure_in_child(path: Path, n: int) -> dict:
    run = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(n), str(SCENE_FRAMES)],
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # ~15 CPU seconds: 11 minutes of frames measured
def test_measuring_10_minutes_of_frames_takes_no_more_memory_than_1_minute(tmp_path):
    """The same measurement of 1 and of 10 minutes of frames: peak memory within 25 MB (the
    whole 10 minutes would be 1.1 GB, 9 times the 1 minute's 112 MB)."""
    found = {}
    for minutes in (1, 10):
        path = tmp_path / f"{minutes}min.rgb"
        n = write_frames(path, minutes)
        found[minutes] = measure_in_child(path, n)
        path.unlink()
        assert found[minutes]["n_frames"] == n
        assert found[minutes]["cuts"] == (n - 1) // SCENE_FRAMES  # every scene change seen
    assert found[10]["growth_mb"] - found[1]["growth_mb"] <= 25, found
    assert found[10]["growth_mb"] <= 100, found  # a chunk and its margins, not the video


# a child process decodes a video's first frames as the quality report's check of the encoder's
# copy does, and reports its peak resident memory (ru_maxrss) over what it held before
DECODE_HEAD = """
import json, resource, sys
from video_assets.media import quality
before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
head = quality.decode_first_frames(sys.argv[1], int(sys.argv[2]))
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (peak_kb - before_kb) / 1024, "n_frames": len(head)}))
"""


def looped_video(folder: Path, seconds: int) -> Path:
    """``seconds`` of 1080x1920 video (a second of noisy test pattern, ~1 MB, repeated by stream
    copy: a 200 s file of ~190 MB is made in about a second)."""
    from video_assets.media.ffmpeg_bin import run_ffmpeg

    one = folder / "one.mp4"
    if not one.exists():
        run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=1080x1920:rate=30,noise=alls=6:allf=t",
                    "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-g", "30",
                    "-pix_fmt", "yuv420p", str(one)], what="encoding a second of test video",
                   media_s=1)
    out = folder / f"{seconds}s.mp4"
    run_ffmpeg(["-y", "-stream_loop", str(seconds - 1), "-i", str(one), "-c", "copy", str(out)],
               what="repeating the test video", media_s=seconds)
    return out


def test_decoding_the_first_frames_of_a_long_video_takes_no_more_memory_than_of_a_short_one(
        tmp_path):
    """The check of the encoder's copy decodes a render's first 60 frames: the same memory for a
    1 s and a 200 s (190 MB) 1080x1920 file. (decord read the file's packets ahead of its decoder
    without bound: 66 MB more for the 200 s file, 136 MB for a 4-minute render's 117 MB.)"""
    found = {}
    for seconds in (1, 200):
        video = looped_video(tmp_path, seconds)
        run = subprocess.run([sys.executable, "-c", DECODE_HEAD, str(video), "60"],
                             capture_output=True, text=True, check=True)
        found[seconds] = json.loads(run.stdout.strip().splitlines()[-1])
        assert found[seconds]["n_frames"] == min(60, 30 * seconds)
    assert found[200]["growth_mb"] - found[1]["growth_mb"] <= 16, found
