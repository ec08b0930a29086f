"""A user's own video file, made safe to compose: probed with the video demuxers only and
re-encoded (video only, H.264) into a clean copy, within a deadline. The upload itself is never
given to composition (a playlist or a reference file could make ffmpeg read other files)."""

from __future__ import annotations

from pathlib import Path

from video_assets.media.audio import short
from video_assets.media.ffmpeg_bin import FfmpegError, run_ffmpeg
from video_assets.media.probe import NotOpenable, open_container

VIDEO_FORMATS = ("mov", "mp4", "m4v", "matroska", "webm", "avi")
MAX_CLIP_S = 60.0  # a scene lasts seconds; a longer file is cut to this
MAX_CLIP_BYTES = 500 * 1024 * 1024
CLIP_FIX = "fix: use an mp4, mov, webm, mkv or avi video file"


class ClipFileError(ValueError):
    """A replacement file that is not a readable video."""


def probe_clip_s(path: str | Path) -> float:
    """The length of the video file's first video stream in seconds (video demuxers and plain
    files only; nothing decoded). Raises ``ClipFileError`` naming the file."""
    name = short(Path(path).name)
    if not Path(path).is_file():
        raise ClipFileError(f'"{name}": file not found; fix: give the path of a video file')
    if Path(path).stat().st_size > MAX_CLIP_BYTES:
        raise ClipFileError(f'"{name}": larger than {MAX_CLIP_BYTES // 2**20} MB; fix: use a '
                            "shorter clip")
    try:
        container = open_container(path, VIDEO_FORMATS)
    except NotOpenable as exc:
        raise ClipFileError(f'"{name}": not a video file ({short(str(exc), 120)}); '
                            f"{CLIP_FIX}") from None
    with container:
        if not container.streams.video:
            raise ClipFileError(f'"{name}": the file has no video stream; {CLIP_FIX}')
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration:
            return container.duration / 1_000_000
    raise ClipFileError(f'"{name}": the file does not say how long it is; {CLIP_FIX}')


def clean_clip(src: str | Path, dst: str | Path, max_s: float = MAX_CLIP_S) -> float:
    """Re-encode the first video stream of ``src`` into ``dst`` (H.264 yuv420p, no audio,
    metadata or other streams, at most ``max_s`` seconds); returns the copy's length in seconds.
    Raises ``ClipFileError`` when the file is not a video or does not decode."""
    probe_clip_s(src)
    name = short(Path(src).name)
    args = ["-v", "error", "-format_whitelist", ",".join(VIDEO_FORMATS), "-protocol_whitelist",
            "file", "-t", f"{max_s:.3f}", "-i", str(src), "-map", "0:v:0", "-map_metadata", "-1",
            "-an", "-sn", "-dn", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-movflags", "+faststart",
            "-f", "mp4", "-y", str(dst)]
    try:
        run_ffmpeg(args, what=f"re-encoding {name}", media_s=max_s, outputs=[dst])
    except FfmpegError as exc:
        lines = str(exc).strip().splitlines()
        reason = short(lines[-1] if lines else "ffmpeg failed", 160)
        raise ClipFileError(f'"{name}": cannot decode ({reason}); {CLIP_FIX}') from None
    length_s = probe_clip_s(dst)
    if length_s <= 0:
        raise ClipFileError(f'"{name}": the video has no frames; {CLIP_FIX}')
    return length_s
