"""A tempo that moves: the local tempo of a song over time, and how clearly it pulses.

The onset envelope's local autocorrelation (``spectral.tempogram``, librosa's
``feature.tempogram``: 384 frames, about 8.9 s, around each point) is read every ``STEP_FRAMES``
frames at candidate tempi spaced 1/48 octave apart from 30 to 300 BPM. A Viterbi path through those
candidates picks, at every point, a tempo that is strong there (log autocorrelation plus librosa's
log-normal prior around 120 BPM) and close to the tempo just before it (a Gaussian step in
log-tempo of ``SIGMA_OCTAVES`` per step), so an accelerando or a ritardando is followed while a
momentary pull to a half or double tempo is not. The path, interpolated to every frame, is the
tempo curve the beat tracker (``beat_track.track_beats_curve``) follows.
"""

from __future__ import annotations

import numpy as np

from video_assets.media import spectral

WIN_FRAMES = 384  # librosa's tempogram window (frames of hop 512 at 22050 Hz: 8.9 s)
STEP_FRAMES = 22  # a tempogram column every ~0.5 s
BINS_PER_OCTAVE = 48
MIN_BPM, MAX_BPM = 30.0, 300.0
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0  # librosa.feature.tempo's prior (start_bpm, std_bpm)
SIGMA_OCTAVES = 0.02  # how far the tempo may move between columns (~0.5 s) without a penalty
JUMP_COST = 15.0  # log units: an abrupt tempo change pays this once instead of the gradual cost


def candidate_bpms() -> np.ndarray:
    n = int(np.floor(np.log2(MAX_BPM / MIN_BPM) * BINS_PER_OCTAVE)) + 1
    return MIN_BPM * 2.0 ** (np.arange(n) / BINS_PER_OCTAVE)


def salience(onset_env: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(columns, bpms, sal)``: the local autocorrelation ``sal[column, bpm]`` at each candidate
    tempo's lag (linear interpolation between lags), for the frames ``columns``."""
    bpms = candidate_bpms()
    lags = 60.0 * sr / (hop * bpms)
    keep = lags < WIN_FRAMES - 1
    bpms, lags = bpms[keep], lags[keep]
    lo = np.floor(lags).astype(int)
    frac = lags - lo
    cols, sal = [], []
    for c, ac in spectral.tempogram_blocks(onset_env, WIN_FRAMES, STEP_FRAMES):
        cols.append(c)
        sal.append(ac[:, lo] * (1 - frac) + ac[:, lo + 1] * frac)
    if not cols:
        return np.zeros(0, int), bpms, np.zeros((0, len(bpms)))
    return np.concatenate(cols), bpms, np.concatenate(sal)


def viterbi_path(obs: np.ndarray, sigma_bins: float, jump_cost: float = np.inf) -> np.ndarray:
    """The state sequence maximising ``sum(obs[t, s_t])`` minus, per step, the smaller of
    ``((s_t - s_{t-1}) / sigma) ** 2 / 2`` and ``jump_cost``; ``obs`` is ``(n_steps, n_states)`` in
    log units."""
    n, k = obs.shape
    jump = np.arange(k)[:, None] - np.arange(k)[None, :]
    trans = np.maximum(-0.5 * (jump / sigma_bins) ** 2, -jump_cost)  # [to, from]
    score = obs[0].copy()
    back = np.zeros((n, k), dtype=np.int32)
    for t in range(1, n):
        cand = trans + score[None, :]
        back[t] = np.argmax(cand, axis=1)
        score = cand[np.arange(k), back[t]] + obs[t]
    path = np.empty(n, dtype=np.int32)
    path[-1] = int(np.argmax(score))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def tempo_curve(onset_env: np.ndarray, sr: int, hop: int, around_bpm: float = PRIOR_BPM,
                octaves: float = PRIOR_OCTAVES) -> np.ndarray:
    """The local tempo in BPM at every frame of ``onset_env`` (see the module docstring), with the
    prior centred on ``around_bpm`` (e.g. the global tempo, which fixes the metrical level) and
    ``octaves`` wide."""
    cols, bpms, sal = salience(onset_env, sr, hop)
    if len(cols) == 0:
        return np.full(len(onset_env), around_bpm)
    prior = -0.5 * ((np.log2(bpms) - np.log2(around_bpm)) / octaves) ** 2
    obs = np.log1p(1e6 * np.maximum(sal, 0.0)) + prior[None, :]
    path = viterbi_path(obs, SIGMA_OCTAVES * BINS_PER_OCTAVE, JUMP_COST)
    return np.interp(np.arange(len(onset_env)), cols, bpms[path])


def pulse(segment: np.ndarray, lag: int) -> float:
    """How clearly ``segment`` (an onset envelope) pulses every ``lag`` frames, 0..1.

    Read from the normalised autocorrelation ``ac`` of the mean-removed envelope: it must be high
    at the lag (best within +-2 frames) and clearly higher than its lowest value between a quarter
    and three quarters of the lag (the off-beat trough). Slowly swelling pads have a smooth
    envelope whose autocorrelation is high at every short lag but has no trough; speech has no
    peak. Both score near 0, music with a pulse near 1.
    """
    if lag < 4 or lag + 2 >= segment.size:
        return 0.0
    e = segment - segment.mean()
    energy = float(np.dot(e, e))
    if energy <= 0:
        return 0.0

    def ac(k: int) -> float:
        return float(np.dot(e[:-k], e[k:])) / energy

    peak = max(ac(k) for k in range(max(1, lag - 2), lag + 3))
    trough = min(ac(k) for k in range(max(1, lag // 4), max(2, (3 * lag) // 4)))
    return float(np.clip(min((peak - 0.15) / 0.35, (peak - trough - 0.35) / 0.35), 0.0, 1.0))


def pulse_clarity(onset_env: np.ndarray, sr: int, hop: int, curve_bpm: np.ndarray) -> float:
    """``pulse`` at the curve's local beat lag in windows of ``2 * WIN_FRAMES`` frames (~18 s,
    half overlapping), the median over the song; one window for a shorter song."""
    win = 2 * WIN_FRAMES
    n = len(onset_env)
    starts = range(0, max(1, n - win // 2), win // 2) if n > win else [0]
    scores = []
    for a in starts:
        seg = onset_env[a : a + win].astype(np.float64)
        lag = int(round(60.0 * sr / (hop * float(np.median(curve_bpm[a : a + win])))))
        scores.append(pulse(seg, lag))
    return float(np.median(scores)) if scores else 0.0
