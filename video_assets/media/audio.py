"""Audio decoding, probing and offline synthesis (numpy in, numpy out; files through ffmpeg)."""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_assets.media.ffmpeg_bin import ffmpeg_exe

ANALYSIS_SR = 22050


class AudioError(ValueError):
    """The file is not decodable audio (message says which file and why)."""


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # mono float32 in [-1, 1]
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def decode_mono(path: str | Path, sample_rate: int = ANALYSIS_SR) -> DecodedAudio:
    """Decode any audio ffmpeg reads to mono float32 at ``sample_rate`` Hz.

    Raises ``AudioError`` naming the file when it has no decodable audio stream.
    """
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
        "-map", "0:a:0", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True)
    name = Path(path).name
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = detail[-1] if detail else f"ffmpeg exit {proc.returncode}"
        if "matches no streams" in reason or "Stream map" in reason:
            reason = "the file has no audio stream"
        raise AudioError(f'audio "{name}": cannot decode ({reason}); fix: use an mp3, wav, '
                         "flac, ogg or m4a file")
    samples = np.frombuffer(proc.stdout, dtype="<f4").copy()
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
