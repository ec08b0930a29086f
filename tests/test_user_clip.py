"""A user's replacement clip (``media/user_clip.py``): only video containers are read, and the job
keeps a clean re-encoded copy, never the upload."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from video_assets.media.ffmpeg_bin import ffmpeg_exe
from video_assets.media.probe import probe_video
from video_assets.media.user_clip import ClipFileError, clean_clip, probe_clip_s


def test_a_video_is_re_encoded_clean_with_its_length(tmp_path: Path):
    src = tmp_path / "mine.mov"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=321x241:rate=25:duration=1.6", "-f", "lavfi", "-i",
                    "sine=duration=1.6", "-shortest", "-pix_fmt", "yuv444p", str(src)], check=True)
    length_s = clean_clip(src, tmp_path / "clean.mp4")
    assert length_s == pytest.approx(1.6, abs=0.05)
    probe = probe_video(tmp_path / "clean.mp4")
    assert (probe.video_codec, probe.pix_fmt, probe.audio_codec) == ("h264", "yuv420p", None)
    assert (probe.width, probe.height) == (320, 240)  # even, for yuv420p


def test_a_playlist_named_like_a_video_is_refused_before_anything_is_read(tmp_path: Path):
    other = tmp_path / "someone_elses.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=64x64:rate=25:duration=1", str(other)], check=True)
    playlist = tmp_path / "clip.mp4"
    playlist.write_text(f"#EXTM3U\n#EXTINF:1,\n{other}\n#EXT-X-ENDLIST\n")
    with pytest.raises(ClipFileError, match="not a video file"):
        clean_clip(playlist, tmp_path / "clean.mp4")
    assert not (tmp_path / "clean.mp4").exists()


def test_a_file_without_video_names_the_fix(tmp_path: Path):
    song = tmp_path / "song.m4a"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=1",
                    str(song)], check=True)
    with pytest.raises(ClipFileError, match="no video stream.*fix"):
        probe_clip_s(song)
    with pytest.raises(ClipFileError, match="file not found"):
        probe_clip_s(tmp_path / "missing.mp4")
