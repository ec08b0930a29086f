"""Audio decoding, probing and offline synthesis (numpy in, numpy out; files through ffmpeg)."""

from __future__ import annotations

import contextlib
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_assets.media.ffmpeg_bin import FfmpegError, FfmpegTimeout, ffmpeg_output, run_ffmpeg

ANALYSIS_SR = 22050


class AudioError(ValueError):
    """The file is not decodable audio (message says which file and why)."""


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # mono float32 in [-1, 1] (read-only when decoded: a view of ffmpeg's output)
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


# The container formats a song may come in (ffmpeg demuxer names). Anything else is refused
# before a byte is decoded: playlists (HLS, ffconcat) and image/video formats can make ffmpeg open
# other files than the one it was given.
AUDIO_FORMATS = ("mp3", "wav", "w64", "flac", "ogg", "mov", "mp4", "m4a", "aac", "aiff",
                 "matroska", "webm", "caf")
AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".ogg", ".opus", ".m4a", ".mp4", ".aac", ".aif",
                  ".aiff", ".webm", ".mka", ".caf")
FORMAT_FIX = "fix: use an mp3, wav, flac, ogg, m4a, aac, aiff or webm audio file"


def _whitelist() -> str:
    return ",".join(AUDIO_FORMATS)


@dataclass(frozen=True)
class AudioProbe:
    """What an audio file's container says about it, read without decoding its samples."""

    format_name: str  # ffmpeg's demuxer name, e.g. "mp3", "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str
    duration_s: float | None  # None when the container does not say (decode to learn it)
    sample_rate: int
    channels: int


def probe_audio(path: str | Path) -> AudioProbe:
    """Open the file with the audio demuxers only (PyAV) and read its first audio stream's facts
    and the container's duration; no samples are decoded. Raises ``AudioError`` naming the file
    when it is not an audio container or has no audio stream."""
    from video_assets.media.probe import NotOpenable, open_container

    name = Path(path).name
    try:
        container = open_container(path, AUDIO_FORMATS)
    except NotOpenable as exc:
        raise AudioError(f'audio "{short(name)}": cannot decode: not an audio file '
                         f"({short(str(exc), 120)}); {FORMAT_FIX}") from None
    with container:
        if not container.streams.audio:
            raise AudioError(f'audio "{short(name)}": the file has no audio stream; {FORMAT_FIX}')
        stream = container.streams.audio[0]
        duration_s = None
        if container.duration is not None and container.duration > 0:
            duration_s = container.duration / 1_000_000  # AV_TIME_BASE
        elif stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        return AudioProbe(format_name=container.format.name, codec=stream.codec_context.name,
                          duration_s=duration_s, sample_rate=int(stream.rate or 0),
                          channels=int(stream.channels or 0))


def short(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis and the full length say it was cut):
    error messages quote short values only."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _input_args(path: str | Path, max_s: float | None) -> list[str]:
    """ffmpeg input options: audio demuxers and plain files only, at most ``max_s`` seconds."""
    bound = ["-t", f"{max_s:.3f}"] if max_s is not None else []
    return ["-format_whitelist", _whitelist(), "-protocol_whitelist", "file", *bound,
            "-i", str(path)]


def transcode_clean(src: str | Path, dst: str | Path, max_s: float) -> None:
    """Re-encode the first audio stream of ``src`` into a new FLAC file ``dst`` (the source's
    rate and channels, at most ``max_s`` seconds; no other streams, metadata or pictures), within
    a timeout proportional to ``max_s``. The job works on this copy, never the upload itself."""
    args = ["-v", "error", *_input_args(src, max_s), "-map", "0:a:0", "-map_metadata", "-1",
            "-vn", "-sn", "-dn", "-c:a", "flac", "-f", "flac", "-y", str(dst)]
    with _as_audio_error(src):
        run_ffmpeg(args, what=f"re-encoding {short(Path(src).name)}", media_s=max_s,
                   outputs=[dst])


@contextlib.contextmanager
def _as_audio_error(path: str | Path) -> Iterator[None]:
    """ffmpeg's failure (or deadline, ``ffmpeg_bin.ffmpeg_timeout_s``) on a song, as an
    ``AudioError`` naming the file, the reason in one line and the fix."""
    name = short(Path(path).name)
    try:
        yield
    except FfmpegTimeout as exc:
        raise AudioError(f'audio "{name}": decoding did not finish in time ({short(str(exc), 160)}); '
                         f"{FORMAT_FIX}") from None
    except FfmpegError as exc:
        lines = str(exc).strip().splitlines()
        reason = short(lines[-1] if lines else "ffmpeg failed", 160)
        if "matches no streams" in reason or "Stream map" in reason:
            reason = "the file has no audio stream"
        raise AudioError(f'audio "{name}": cannot decode ({reason}); {FORMAT_FIX}') from None


def decode_mono(path: str | Path, sample_rate: int = ANALYSIS_SR,
                max_s: float | None = None) -> DecodedAudio:
    """Decode an audio file (audio containers only) to mono float32 at ``sample_rate`` Hz, at
    most ``max_s`` seconds of it (default: the longest song a job accepts, plus a second).

    Raises ``AudioError`` naming the file when it has no decodable audio stream or the decode
    does not finish within a timeout proportional to ``max_s``.
    """
    from video_assets.schemas import MAX_AUDIO_S

    max_s = MAX_AUDIO_S + 1.0 if max_s is None else max_s
    args = ["-v", "error", *_input_args(path, max_s), "-map", "0:a:0", "-ac", "1",
            "-ar", str(sample_rate), "-f", "f32le", "-"]
    with _as_audio_error(path):
        stdout = ffmpeg_output(args, what=f"decoding {short(Path(path).name)}", media_s=max_s)
    samples = np.frombuffer(stdout, dtype="<f4")  # read-only, over ffmpeg's output: no second copy
    name = short(Path(path).name)
    if samples.size == 0:
        raise AudioError(f'audio "{name}": decodes to 0 samples (empty or not audio); '
                         "fix: use a song file with sound in it")
    return DecodedAudio(samples=samples, sample_rate=sample_rate)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono or stereo float samples in [-1, 1] as 16-bit PCM WAV."""
    data = np.clip(samples, -1.0, 1.0)
    channels = 1 if data.ndim == 1 else data.shape[1]
    pcm = (data * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())


def synthesize_track(
    duration_s: float,
    tempo_bpm: float = 120.0,
    meter: int = 4,
    sample_rate: int = 44100,
    seed: int = 7,
    beatless: bool = False,
) -> np.ndarray:
    """A small synthesized song: kick and hat on every beat (accented downbeats), bass and a pad.

    ``beatless=True`` gives a slowly evolving drone with no percussion (an ambient recording).
    Returns stereo float32 samples of shape ``(n, 2)``.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    out = np.zeros(n, dtype=np.float64)
    roots = [55.0, 65.41, 49.0, 73.42]  # A1 C2 G1 D2
    period_s = 60.0 / tempo_bpm
    bar_s = period_s * meter
    chord = np.array([roots[int(x) % len(roots)] for x in t // (bar_s * 2)])
    pad = sum(np.sin(2 * np.pi * chord * m * t + m) / m for m in (4, 5, 6, 8))
    out += 0.08 * pad * (0.6 + 0.4 * np.sin(2 * np.pi * t / (bar_s * 4)))
    if beatless:
        out += 0.05 * rng.standard_normal(n) * np.convolve(
            np.abs(rng.standard_normal(n)), np.ones(4000) / 4000, mode="same")
        fade = np.minimum(1.0, np.minimum(t, t[-1] - t + 1e-3) / 1.5)
        return np.repeat((out * fade)[:, None].astype(np.float32), 2, axis=1)
    kick_len = int(0.18 * sample_rate)
    kt = np.arange(kick_len) / sample_rate
    kick = np.sin(2 * np.pi * (50 + 90 * np.exp(-kt * 30)) * kt) * np.exp(-kt * 18)
    hat_len = int(0.04 * sample_rate)
    hat = rng.standard_normal(hat_len) * np.exp(-np.arange(hat_len) / (0.008 * sample_rate))
    n_beats = int(duration_s / period_s) + 1
    for b in range(n_beats):
        start = int(round(b * period_s * sample_rate))
        if start >= n:
            break
        gain = 0.95 if b % meter == 0 else 0.6
        seg = kick[: n - start]
        out[start : start + len(seg)] += gain * seg
        seg = hat[: n - start]  # a hat on every beat (an off-beat hat would pull the tracker)
        out[start : start + len(seg)] += 0.05 * seg
        bass_f = chord[start] * 2
        bass_len = min(int(period_s * 0.8 * sample_rate), n - start)
        bt = np.arange(bass_len) / sample_rate
        out[start : start + bass_len] += 0.18 * np.sin(2 * np.pi * bass_f * bt) * np.exp(-bt * 4)
    out /= max(1e-9, np.max(np.abs(out))) / 0.8
    return np.repeat(out[:, None].astype(np.float32), 2, axis=1)
