"""Probe media files with the ffmpeg binary alone (imageio-ffmpeg ships no ffprobe)."""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from video_assets.media.ffmpeg_bin import run_ffmpeg


class NotOpenable(ValueError):
    """PyAV could not open the file with the demuxers allowed; the message is ffmpeg's reason."""


def open_container(path: str | Path, formats: Sequence[str]):
    """``path`` opened by PyAV with only ``formats``' demuxers and the plain-file protocol (a
    playlist or a reference file cannot make it read anything else). Use it as a context
    manager. Raises ``NotOpenable`` with ffmpeg's reason."""
    import av

    try:
        return av.open(str(path), options={"format_whitelist": ",".join(formats),
                                           "protocol_whitelist": "file"})
    except (av.error.FFmpegError, OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, av.error.FFmpegError | OSError) else ""
        raise NotOpenable(reason or type(exc).__name__) from None


@dataclass(frozen=True)
class VideoProbe:
    width: int
    height: int
    fps: float
    n_frames: int
    video_codec: str
    pix_fmt: str
    audio_codec: str | None
    video_duration_s: float  # n_frames / fps
    audio_duration_s: float | None  # decoded audio length
    faststart: bool


_VIDEO_RE = re.compile(
    r"Stream #\S+.*?: Video: (?P<codec>\w+).*?, (?P<pix>yuv\w+|rgb\w+|gray\w*|nv12)\b.*?"
    r"(?P<w>\d{2,5})x(?P<h>\d{2,5}).*?(?P<fps>[\d.]+) fps"
)
_AUDIO_RE = re.compile(r"Stream #\S+.*?: Audio: (?P<codec>\w+)")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")
_TIME_RE = re.compile(r"time=(\d+):(\d+):(\d+\.\d+)")


def top_level_boxes(path: str | Path) -> list[str]:
    """Names of the top-level MP4 boxes in file order (e.g. ftyp, moov, mdat)."""
    names = []
    with open(path, "rb") as handle:
        while True:
            header = handle.read(8)
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", handle.read(8))[0]
                handle.seek(size - 16, 1)
            elif size == 0:
                names.append(kind.decode("latin-1"))
                break
            else:
                handle.seek(size - 8, 1)
            names.append(kind.decode("latin-1"))
    return names


def _boxes(data: bytes, start: int, end: int):
    """(kind, payload start, payload end) of the MP4 boxes in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield kind.decode("latin-1"), pos + header, min(end, pos + size)
        pos += size


def _moov(path: str | Path) -> bytes | None:
    """The MP4 file's ``moov`` box payload (its header), or None."""
    with open(path, "rb") as handle:
        moov = None
        while True:
            header = handle.read(8)
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            skip = size - 8
            if size == 1:
                skip = struct.unpack(">Q", handle.read(8))[0] - 16
            elif size == 0:
                skip = -1
            if kind == b"moov":
                moov = handle.read(skip) if skip >= 0 else handle.read()
                break
            if skip < 0:
                break
            handle.seek(skip, 1)
    return moov


def mp4_duration_s(path: str | Path) -> float | None:
    """The movie's duration from the MP4 header alone (``mvhd``), or None if it cannot be read
    (not an MP4, or damaged): what an ffmpeg job over the file is given time for."""
    try:
        moov = _moov(path) or b""
        for kind, a, _ in _boxes(moov, 0, len(moov)):
            if kind == "mvhd":  # version 1: 64-bit times; timescale, then duration
                scale, duration = (struct.unpack(">IQ", moov[a + 20 : a + 32]) if moov[a] == 1
                                   else struct.unpack(">II", moov[a + 12 : a + 20]))
                return duration / scale if scale else None
    except (OSError, struct.error, IndexError):
        return None
    return None


def mp4_video_size(path: str | Path) -> tuple[int, int] | None:
    """Display width and height of the first video track, read from the MP4 header alone (the
    ``tkhd`` box, a 90/270 degree rotation matrix swaps them); ``None`` if it cannot be read."""
    try:
        moov = _moov(path)
        if moov is None:
            return None
        for kind, a, b in _boxes(moov, 0, len(moov)):
            if kind != "trak":
                continue
            for sub, c, _ in _boxes(moov, a, b):
                if sub != "tkhd":
                    continue
                version = moov[c]
                matrix_at = c + (52 if version == 1 else 40)
                a_fix = struct.unpack(">i", moov[matrix_at:matrix_at + 4])[0]
                w_fix, h_fix = struct.unpack(">II", moov[matrix_at + 36:matrix_at + 44])
                w, h = w_fix >> 16, h_fix >> 16
                if w and h:
                    return (h, w) if a_fix == 0 else (w, h)
    except (OSError, struct.error, IndexError):
        return None
    return None


def is_faststart(path: str | Path) -> bool:
    boxes = top_level_boxes(path)
    return "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")


def probe_video(path: str | Path) -> VideoProbe:
    """Container facts: video frames counted from the stream's packets (one per frame in the
    progressive H.264 we write; copying them is ~30x faster than decoding a 1080x1920 video,
    and the quality measurement decodes every frame anyway), audio length measured by decoding."""
    name = Path(path).name
    media_s = mp4_duration_s(path)  # the deadline's length (ffmpeg_bin); unknown: the longest
    log = run_ffmpeg(["-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
                     what=f"counting frames of {name}", media_s=media_s)
    m = _VIDEO_RE.search(log)
    if not m:
        raise ValueError(f"{name}: no video stream found")
    frames = _FRAME_RE.findall(log)
    n_frames = int(frames[-1]) if frames else 0
    fps = float(m["fps"])
    a = _AUDIO_RE.search(log)
    audio_s = None
    if a:
        alog = run_ffmpeg(["-i", str(path), "-map", "0:a:0", "-f", "null", "-"],
                          what=f"measuring the audio of {name}", media_s=media_s)
        times = _TIME_RE.findall(alog)
        if times:
            h, mi, s = times[-1]
            audio_s = int(h) * 3600 + int(mi) * 60 + float(s)
    return VideoProbe(
        width=int(m["w"]), height=int(m["h"]), fps=fps, n_frames=n_frames,
        video_codec=m["codec"], pix_fmt=m["pix"], audio_codec=a["codec"] if a else None,
        video_duration_s=n_frames / fps if fps else 0.0, audio_duration_s=audio_s,
        faststart=is_faststart(path),
    )
