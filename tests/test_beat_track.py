"""The ported beat tracker agrees exactly with librosa.beat.beat_track, and analyze never imports it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from video_assets.media.audio import synthesize_track
from video_assets.media.beat_track import beat_track

SR = 22050
HOP = 512


def _song(duration_s: float, tempo_bpm: float) -> np.ndarray:
    return synthesize_track(duration_s, tempo_bpm=tempo_bpm, sample_rate=SR).mean(axis=1)


def _noise(duration_s: float, amplitude: float) -> np.ndarray:
    rng = np.random.default_rng(3)
    return (amplitude * rng.standard_normal(int(duration_s * SR))).astype(np.float32)


def _click_once(duration_s: float) -> np.ndarray:
    """Near-silence: a single click in 10 s of zeros."""
    y = np.zeros(int(duration_s * SR), dtype=np.float32)
    y[SR * 4 : SR * 4 + 64] = 0.5
    return y


def _tempo_change() -> np.ndarray:
    """12 s at 96 BPM, then 12 s at 140 BPM."""
    return np.concatenate([_song(12.0, 96.0), _song(12.0, 140.0)]).astype(np.float32)


SIGNALS = {
    "song_72": lambda: _song(20.0, 72.0),
    "song_98": lambda: _song(20.0, 98.0),
    "song_120": lambda: _song(20.0, 120.0),
    "song_150": lambda: _song(20.0, 150.0),
    "noise": lambda: _noise(15.0, 0.1),
    "near_silence": lambda: _noise(8.0, 1e-6),  # -120 dBFS hiss
    "digital_silence": lambda: np.zeros(5 * SR, dtype=np.float32),
    "one_click": lambda: _click_once(10.0),
    "short_clip": lambda: _song(1.6, 120.0),
    "tempo_change": _tempo_change,
}


def _librosa_beat_track(onset_env: np.ndarray) -> tuple[float, np.ndarray]:
    import librosa.beat

    tempo, frames = librosa.beat.beat_track(onset_envelope=onset_env, sr=SR, hop_length=HOP)
    return float(np.atleast_1d(tempo)[0]), frames


def _assert_same(onset_env: np.ndarray) -> tuple[float, np.ndarray]:
    ref_tempo_bpm, ref_frames = _librosa_beat_track(onset_env)
    tempo_bpm, frames = beat_track(onset_env, sr=SR, hop_length=HOP)
    assert tempo_bpm == pytest.approx(ref_tempo_bpm, abs=1e-9)
    assert frames.dtype == ref_frames.dtype
    np.testing.assert_array_equal(frames, ref_frames)
    return tempo_bpm, frames


@pytest.mark.parametrize("name", SIGNALS)
def test_same_beats_as_librosa(name):
    import librosa

    y = SIGNALS[name]()
    onset_env = librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP)
    _, frames = _assert_same(onset_env)
    if name.startswith("song"):
        assert len(frames) >= 20


def test_silence_has_no_beats():
    tempo_bpm, frames = _assert_same(np.zeros(400, dtype=np.float32))
    assert tempo_bpm == 0.0
    assert frames.size == 0


@pytest.mark.parametrize("seed", range(6))
def test_same_beats_on_random_envelopes(seed):
    """Odd and even beat periods, float32 and float64, quiet starts and ends, jittered pulses."""
    rng = np.random.default_rng(seed)
    n_frames = int(rng.integers(50, 3000))
    period_frames = rng.uniform(9.0, 70.0)
    pulse = (np.arange(n_frames) % period_frames < 1.5).astype(np.float64)
    onset_env = np.abs(rng.standard_normal(n_frames)) ** (1 + seed % 3) * 0.3 + pulse
    onset_env[: n_frames // 5] *= seed % 2
    dtype = np.float64 if seed == 5 else np.float32
    _assert_same(onset_env.astype(dtype))


def test_analyze_does_not_import_librosa_beat():
    code = (
        "import sys\n"
        "from video_assets.media.audio import DecodedAudio, synthesize_track\n"
        "from video_assets.media.beats import analyze\n"
        "y = synthesize_track(8.0, tempo_bpm=120.0, sample_rate=22050).mean(axis=1)\n"
        "grid = analyze(DecodedAudio(samples=y.astype('float32'), sample_rate=22050))\n"
        "assert grid.method == 'beats', grid.method\n"
        "print('librosa.beat' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("seed", "frames_per_beat"), [(0, 22.0), (1, 43.0), (2, 87.0)])
def test_intermediate_arrays_are_bit_identical(seed, frames_per_beat):
    """Local score and DP (cumulative score, backlinks) equal librosa's private gufuncs bit for bit.

    Beat frames hide most rounding differences; this catches them (at 87 frames per beat, squaring
    the log ratio with Python's ``x ** 2``, i.e. libm pow, instead of numba's ``x * x`` changes a score).
    """
    import librosa.beat

    from video_assets.media import beat_track as port

    def private(name: str):  # module-level dunder names are not mangled
        return getattr(librosa.beat, name)

    rng = np.random.default_rng(seed)
    onset_env = np.abs(rng.standard_normal(2000)).astype(np.float32) ** 2
    onset_norm = private("__normalize_onsets")(onset_env)
    np.testing.assert_array_equal(port.normalize_onsets(onset_env), onset_norm)
    local = private("__beat_local_score")(onset_norm, np.array([frames_per_beat]))
    np.testing.assert_array_equal(port.local_score(onset_norm, frames_per_beat), local)
    backlink, cumscore = private("__beat_track_dp")(local, np.array([frames_per_beat]), 100.0)
    port_backlink, port_cumscore = port.beat_track_dp(local, frames_per_beat, 100.0)
    np.testing.assert_array_equal(port_backlink, backlink)
    np.testing.assert_array_equal(port_cumscore, cumscore)
