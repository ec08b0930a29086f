"""Every ffmpeg job has a deadline proportional to its media's length: one that overruns it is
killed and reaped, leaves no half-written output, and the error says what timed out."""

from __future__ import annotations

import time

import psutil
import pytest

from tests.conftest import make_song
from tests.media_helpers import pattern_clip
from video_assets.media import ffmpeg_bin
from video_assets.media.ffmpeg_bin import FfmpegTimeout, ffmpeg_output, ffmpeg_timeout_s, run_ffmpeg


@pytest.fixture
def tiny_deadline(monkeypatch):
    """Call to give ffmpeg jobs from then on 0.3 s plus 1 ms per second of media (the
    product's deadline: 60 s + 10 s per second)."""
    def tighten(base_s: float = 0.3, per_media_s: float = 0.001) -> None:
        monkeypatch.setattr(ffmpeg_bin, "BASE_TIMEOUT_S", base_s)
        monkeypatch.setattr(ffmpeg_bin, "TIMEOUT_S_PER_MEDIA_S", per_media_s)

    return tighten


def no_ffmpeg_left() -> bool:
    """No child process of this one remains, running or as a zombie."""
    return not psutil.Process().children(recursive=True)


def test_the_deadline_grows_with_the_media_length():
    assert ffmpeg_timeout_s(0) == 60
    assert ffmpeg_timeout_s(30) == 60 + 10 * 30
    assert ffmpeg_timeout_s(600) == 60 + 10 * 600
    assert ffmpeg_timeout_s(None) == ffmpeg_timeout_s(600)  # unknown: the longest song


def test_a_job_past_its_deadline_is_killed_and_its_output_deleted(tmp_path, tiny_deadline):
    out = tmp_path / "long.mp4"
    tiny_deadline()
    started = time.monotonic()
    with pytest.raises(FfmpegTimeout) as caught:
        run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30:d=600", "-c:v", "libx264",
                    "-preset", "veryslow", str(out)], what="encoding a 10-minute test pattern",
                   media_s=600, outputs=[out])
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "timed out while encoding a 10-minute test pattern" in message
    assert "0.9 s" in message and "media of 600 s" in message and "fix:" in message
    assert not out.exists() and no_ffmpeg_left()


def test_a_job_read_from_its_output_pipe_has_a_deadline_too(tiny_deadline):
    """``ffmpeg_output`` (a decode read from stdout): its bytes when in time, killed past it."""
    args = ["-v", "error", "-f", "lavfi", "-i", "sine=d=1:r=8000", "-f", "s16le", "-"]
    assert len(ffmpeg_output(args, what="decoding a tone", media_s=1)) == 2 * 8000
    tiny_deadline(base_s=0.0, per_media_s=1e-5)
    with pytest.raises(FfmpegTimeout, match="timed out while decoding a tone"):
        ffmpeg_output(args, what="decoding a tone", media_s=1)
    assert no_ffmpeg_left()


def test_a_windowed_composition_past_its_deadline_stops_every_process(tmp_path, tiny_deadline):
    """The encoder and the windows piping into it share one deadline: all are killed, neither
    the video nor the frames' copy is left, and the error names the composition."""
    from video_assets.media.compose import ComposeSettings, FramesTap, compose, plan_segments

    clips = [pattern_clip(tmp_path / f"p{i}.mp4", 5.0, size="180x320", look=i) for i in range(4)]
    bounds = [(0.0, 2.4), (2.4, 4.6), (4.6, 6.8), (6.8, 9.1)]
    segments = plan_segments(bounds, ["crossfade", "cut", "fade"], fps=30, half_frames=8)
    out, tap = tmp_path / "out.mp4", FramesTap(tmp_path / "frames.rgb")
    song = make_song(tmp_path / "a.wav", 9.1)
    tiny_deadline()
    with pytest.raises(FfmpegTimeout, match=r"timed out while composing 4 clips into out\.mp4 in "
                                            r"\d windows.*media of 9\.1 s"):
        compose(clips, [5.0] * 4, segments, song, out,
                ComposeSettings(width=1080, height=1920, preset="veryslow"),
                max_clips_per_window=2, frames=tap)
    assert not out.exists() and not tap.path.exists() and no_ffmpeg_left()


def test_an_animatic_past_its_deadline_leaves_no_file(tmp_path, tiny_deadline):
    from PIL import Image

    from video_assets.media.animatic import render_animatic

    card = tmp_path / "card.png"
    Image.new("RGB", (1080, 1920), (200, 80, 40)).save(card)
    out = tmp_path / "anim.mp4"
    tiny_deadline()
    with pytest.raises(FfmpegTimeout, match=r"timed out while encoding animatic anim\.mp4"):
        render_animatic(card, out, 20.0, (1080, 1920), "push_in", preset="veryslow", crf=0)
    assert not out.exists() and no_ffmpeg_left()


def test_probing_a_file_takes_its_deadline_from_the_files_header(tmp_path, tiny_deadline):
    """ffmpeg is given time for the length the MP4 header states, not for the longest song."""
    from video_assets.media.probe import mp4_duration_s, probe_video

    clip = pattern_clip(tmp_path / "p.mp4", 10.5, size="180x320")
    assert mp4_duration_s(clip) == pytest.approx(10.5, abs=0.05)
    assert mp4_duration_s(make_song(tmp_path / "a.wav", 1.0)) is None  # not an MP4: unknown
    tiny_deadline(base_s=0.0, per_media_s=1e-5)  # 0.1 ms: no probe finishes in time
    with pytest.raises(FfmpegTimeout, match=r"counting frames of p\.mp4.*media of 10\.5 s"):
        probe_video(clip)
    assert no_ffmpeg_left()
