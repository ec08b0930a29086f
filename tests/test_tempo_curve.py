"""Beats follow a tempo that moves (accelerando, ritardando), and the tempogram is librosa's."""

from __future__ import annotations

import librosa
import mir_eval
import numpy as np
import pytest

from video_assets.media import spectral
from video_assets.media.audio import DecodedAudio, synthesize_track
from video_assets.media.beats import analyze
from video_assets.media.tempo import tempo_curve

SR = 22050


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.15 * sr)) / sr
    return np.sin(2 * np.pi * (50 + 90 * np.exp(-t * 30)) * t) * np.exp(-t * 18)


def moving_tempo_song(start_bpm: float, end_bpm: float, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Kick and hat on every beat (accented bar starts; an off-beat hat would pull librosa's onset
    envelope, which weighs a noise burst over a kick, to the off-beats), with
    the tempo moving linearly in beats from ``start_bpm`` to ``end_bpm``; returns (samples, beats_s)."""
    beats, t = [], 0.2
    n_beats = int(duration_s * (start_bpm + end_bpm) / 120)
    for k in range(n_beats):
        beats.append(t)
        t += 60.0 / (start_bpm + (end_bpm - start_bpm) * k / max(1, n_beats - 1))
    beats_s = np.array([b for b in beats if b < duration_s - 0.5])
    y = np.zeros(int(duration_s * SR))
    kick = _kick(SR)
    rng = np.random.default_rng(0)
    hat = rng.standard_normal(int(0.03 * SR)) * np.exp(-np.arange(int(0.03 * SR)) / (0.006 * SR))
    for k, b in enumerate(beats_s):
        i = int(b * SR)
        seg = kick[: len(y) - i]
        y[i : i + len(seg)] += (1.0 if k % 4 == 0 else 0.6) * seg
        y[i : i + len(hat)] += 0.05 * hat[: len(y) - i]
    return (0.8 * y / np.abs(y).max()).astype(np.float32), beats_s


@pytest.mark.parametrize(("start_bpm", "end_bpm"), [(90.0, 130.0), (140.0, 95.0)])
def test_beats_follow_an_accelerando_and_a_ritardando(start_bpm, end_bpm):
    y, truth = moving_tempo_song(start_bpm, end_bpm, 45.0)
    grid = analyze(DecodedAudio(samples=y, sample_rate=SR))
    assert grid.method == "beats", grid.confidence
    f = mir_eval.beat.f_measure(truth, np.asarray(grid.beats_s), f_measure_threshold=0.07)
    assert f >= 0.9, f


def test_tempo_curve_rises_with_an_accelerando():
    y, _ = moving_tempo_song(90.0, 130.0, 45.0)
    env = spectral.onset_strength(y, SR, 512)
    curve = tempo_curve(env, SR, 512, around_bpm=spectral.tempo(env, SR, 512), octaves=0.3)
    per_s = SR / 512
    early = np.median(curve[int(5 * per_s) : int(10 * per_s)])
    late = np.median(curve[int(35 * per_s) : int(40 * per_s)])
    assert early == pytest.approx(90 + 40 * 7.5 / 45, rel=0.06)
    assert late == pytest.approx(90 + 40 * 37.5 / 45, rel=0.06)


def test_tempogram_columns_are_librosas():
    y = synthesize_track(20.0, tempo_bpm=98.0, sample_rate=SR).mean(axis=1)
    env = spectral.onset_strength(y, SR, 512)
    ref = librosa.feature.tempogram(onset_envelope=env, sr=SR, hop_length=512, win_length=384)
    np.testing.assert_allclose(spectral.tempogram(env, 384, 7), ref[:, ::7], atol=1e-9)


@pytest.mark.parametrize(("start_bpm", "end_bpm"), [(90.0, 130.0), (140.0, 95.0)])
def test_curve_tracker_is_librosas_beat_track_with_a_tempo_curve(start_bpm, end_bpm):
    import librosa.beat

    from video_assets.media.beat_track import track_beats_curve

    y, _ = moving_tempo_song(start_bpm, end_bpm, 45.0)
    env = spectral.onset_strength(y, SR, 512)
    curve = tempo_curve(env, SR, 512, around_bpm=spectral.tempo(env, SR, 512), octaves=0.3)
    _, ref = librosa.beat.beat_track(onset_envelope=env, sr=SR, hop_length=512, bpm=curve)
    np.testing.assert_array_equal(track_beats_curve(env, SR * 60.0 / (512 * curve)), ref)


@pytest.mark.parametrize(("hop", "n_fft"), [(512, 2048), (64, 512)])
def test_streamed_onset_envelope_and_projections_are_librosas(hop, n_fft):
    """One streamed pass gives librosa's onset envelope and, e.g., its chroma filters' projection."""
    y = synthesize_track(20.0, tempo_bpm=98.0, sample_rate=SR).mean(axis=1)
    basis = spectral.chroma_basis(SR, n_fft)
    env, (proj,) = spectral.streamed_features(y, SR, hop, n_fft, bases=(basis,))
    ref = librosa.onset.onset_strength(y=y, sr=SR, hop_length=hop, n_fft=n_fft)
    np.testing.assert_allclose(env, ref, atol=1e-4)
    power = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)) ** 2
    np.testing.assert_allclose(proj, basis @ power, rtol=1e-3, atol=1e-3)


def test_grid_extended_and_filled_at_the_local_tempo():
    """A speeding-up song's grid continues at its tempo at each end, and a gap is filled at the
    tempo around it, not at the song's average."""
    from video_assets.media.beats import fill_grid

    slow, fast = np.arange(2.0, 10.0, 0.8), np.arange(10.0, 20.0, 0.4)
    tracked = [float(t) for t in np.concatenate([slow, fast[fast < 14.0], fast[fast > 16.05]])]
    beats, _ = fill_grid(tracked, 0.6, 22.0, follow_tempo=True)
    assert np.allclose(np.diff([b for b in beats if b <= 2.0 + 1e-9]), 0.8)  # the head at 75 BPM
    assert np.allclose(np.diff([b for b in beats if b >= 19.6]), 0.4)  # the tail at 150 BPM
    gap = [b for b in beats if 13.9 < b < 16.2]
    assert np.allclose(np.diff(gap), 0.4, atol=0.01)  # the gap at the local 0.4 s, not 0.6 s


@pytest.mark.parametrize(("first_bpm", "then_bpm"), [(96.0, 140.0), (120.0, 90.0)])
def test_beats_follow_an_abrupt_tempo_change(first_bpm, then_bpm):
    """15 s at one tempo, then 15 s at another: the curve jumps (once, at a fixed cost) instead of
    staying on the first tempo; most beats of both halves are found (the tempogram's 9 s window
    blurs the seconds around the change)."""
    halves = [synthesize_track(15.0, tempo_bpm=bpm, sample_rate=SR).mean(axis=1)
              for bpm in (first_bpm, then_bpm)]
    truth = np.concatenate([np.arange(0, 15, 60 / first_bpm), 15 + np.arange(0, 15, 60 / then_bpm)])
    grid = analyze(DecodedAudio(samples=np.concatenate(halves).astype(np.float32), sample_rate=SR))
    assert grid.method == "beats", grid.confidence
    assert mir_eval.beat.f_measure(truth, np.asarray(grid.beats_s), f_measure_threshold=0.07) >= 0.8
