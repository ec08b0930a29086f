"""``media.spectral`` is librosa's spectral features without librosa's import: each function is
pinned to the librosa function it ports, on music, noise and silence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest

from tests.conftest import make_song
from video_assets.media import spectral
from video_assets.media.audio import decode_mono

SR = 22050


@pytest.fixture(scope="module")
def signals(tmp_path_factory) -> dict[str, np.ndarray]:
    folder = tmp_path_factory.mktemp("spectral")
    song = decode_mono(make_song(folder / "song.wav", 20.0, tempo_bpm=128.0)).samples
    rng = np.random.default_rng(7)
    return {"song": song,
            "noise": (0.1 * rng.standard_normal(SR * 6)).astype(np.float32),
            "short": song[: SR // 2 + 123]}


@pytest.mark.parametrize("name", ["song", "noise", "short"])
def test_power_spectrogram_mel_and_db_are_librosas(signals, name):
    y = signals[name]
    power = spectral.stft_power(y, hop=512)
    ref = np.abs(librosa.stft(y, hop_length=512)) ** 2
    assert power.shape == ref.shape
    np.testing.assert_allclose(power, ref, rtol=1e-3, atol=1e-6 * ref.max())
    np.testing.assert_allclose(spectral.mel_basis(SR), librosa.filters.mel(sr=SR, n_fft=2048),
                               rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(spectral.power_to_db(ref), librosa.power_to_db(ref), atol=1e-4)


@pytest.mark.parametrize(("hop", "n_fft"), [(512, 2048), (64, 512)])
@pytest.mark.parametrize("name", ["song", "noise", "short"])
def test_onset_envelope_is_librosas(signals, name, hop, n_fft):
    y = signals[name]
    ours = spectral.onset_strength(y, SR, hop, n_fft=n_fft)
    ref = librosa.onset.onset_strength(y=y, sr=SR, hop_length=hop, n_fft=n_fft)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-3 * max(1.0, ref.max()))


@pytest.mark.parametrize("name", ["song", "noise"])
def test_tempo_chroma_rms_and_onsets_are_librosas(signals, name):
    y = signals[name]
    env = librosa.onset.onset_strength(y=y, sr=SR, hop_length=512)
    for start_bpm in (120.0, 90.0):
        assert spectral.tempo(env, SR, 512, start_bpm=start_bpm) == pytest.approx(
            float(librosa.feature.tempo(onset_envelope=env, sr=SR, hop_length=512,
                                        start_bpm=start_bpm)[0]), rel=1e-9)
    power = np.abs(librosa.stft(y, hop_length=512)) ** 2
    np.testing.assert_allclose(spectral.chroma_basis(SR), librosa.filters.chroma(sr=SR, n_fft=2048),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(spectral.chroma_stft(power, SR),
                               librosa.feature.chroma_stft(S=power, sr=SR, tuning=0.0),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(spectral.rms(y, 512), librosa.feature.rms(y=y, hop_length=512)[0],
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(spectral.onset_times(env, SR, 512),
                               librosa.onset.onset_detect(onset_envelope=env, sr=SR,
                                                          hop_length=512, units="time"))


def test_silence_has_no_onsets():
    env = spectral.onset_strength(np.zeros(SR * 3, np.float32), SR)
    assert not env.any() and len(spectral.onset_times(env, SR)) == 0


def test_beat_analysis_imports_neither_librosa_nor_scipy(tmp_path: Path):
    """The point of the port: a fresh process analyses a song without importing either."""
    song = make_song(tmp_path / "s.wav", 8.0, tempo_bpm=100.0)
    code = ("import sys\n"
            "from video_assets.media.audio import decode_mono\n"
            "from video_assets.media import beats\n"
            f"grid = beats.analyze(decode_mono({str(song)!r}))\n"
            "assert grid.method == 'beats', grid.method\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('librosa', 'scipy')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
