"""Beat tracking without ``librosa.beat``: numpy ports of librosa 0.11's beat tracker pieces.

Why it exists: ``import librosa.beat`` compiles ``__beat_local_score``, a numba gufunc that librosa
deliberately leaves uncached (``cache=False``: caching guvectorize functions races between processes,
librosa issue #1998 / numba issue #10128). That costs 2-4 s in every fresh process; this port takes
about 10 ms on a 3-minute song. Tempo estimation is ``spectral.tempo``, the port of
``librosa.feature.tempo``.

``track_beats_curve`` is librosa's dynamic programming beat tracker (Ellis, "Beat tracking by
dynamic programming", J. New Music Research 36(1), 2007) with a tempo per frame (librosa's ``bpm``
array), which ``tests/test_tempo_curve.py`` pins to ``librosa.beat.beat_track(bpm=curve)``
(identical frames). Its pieces follow librosa's code, including its quirks: the local score never
uses the first envelope frame, the trim threshold smooths a slice of the full convolution of the
beat scores, squares are ``x * x`` (not pow), and ``exp``/``log``/``cos`` come from libm (Python's
``math``, as numba calls them) rather than numpy's SIMD versions; ``tests/test_beat_track.py`` pins
the onset normalisation and the local score to librosa's bit for bit. (The fixed-tempo tracker
ported before is gone: the analysis uses only the curve.) librosa's ISC license: ``LICENSE.librosa``.
"""
from __future__ import annotations

import math

import numpy as np

TIGHTNESS = 100.0  # librosa's default: how strongly the DP keeps beats at the estimated period


def normalize_onsets(onset_env: np.ndarray) -> np.ndarray:
    """Divide by the standard deviation (ddof 1) plus the dtype's tiny value, in the input dtype."""
    dtype = onset_env.dtype if np.issubdtype(onset_env.dtype, np.floating) else np.dtype(np.float32)
    norm = onset_env.std(ddof=1, axis=-1, keepdims=True)
    return onset_env / (norm + np.finfo(dtype).tiny)


def gaussian_window(frames_per_beat: float) -> np.ndarray:
    """``exp(-0.5 * (k * 32 / frames_per_beat) ** 2)`` for k in -frames_per_beat..frames_per_beat."""
    arg = -0.5 * (np.arange(-frames_per_beat, frames_per_beat + 1) * 32.0 / frames_per_beat) ** 2
    return np.array([math.exp(a) for a in arg.tolist()])


def local_score(onset_norm: np.ndarray, frames_per_beat: float) -> np.ndarray:
    """Same-mode convolution with the Gaussian window, term order and bounds as librosa's loop.

    librosa's loop ``for k in range(max(0, i + K//2 - N + 1), min(i + K//2, K))`` stops one term
    short, so frame 0 of the envelope never contributes; this keeps that.
    """
    env = onset_norm.astype(np.float64)
    window = gaussian_window(frames_per_beat)
    n_frames, half = len(env), len(window) // 2
    score = np.zeros(n_frames)
    for k, weight in enumerate(window.tolist()):
        first = max(0, k - half + 1)  # i + half - k >= 1
        last = min(n_frames - 1, k + n_frames - 1 - half)  # i + half - k <= n_frames - 1
        if last >= first:
            score[first : last + 1] += weight * env[first + half - k : last + half - k + 1]
    return score


def local_max(x: np.ndarray) -> np.ndarray:
    """librosa.util.localmax for 1-D: ``x[i] > x[i-1] and x[i] >= x[i+1]``; last frame ``> x[-2]``."""
    peaks = np.zeros(len(x), dtype=bool)
    peaks[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
    peaks[-1] = x[-1] > x[-2]
    return peaks


def last_beat(cumscore: np.ndarray) -> int:
    """Last local maximum of the cumulative score reaching half the median local maximum."""
    mask = ~local_max(cumscore)
    median = np.ma.median(np.ma.masked_array(data=cumscore, mask=mask))
    threshold = 0.5 * float(np.ma.getdata(median))
    candidates = np.flatnonzero(~mask & (cumscore >= threshold))
    return int(candidates[-1]) if candidates.size else len(cumscore) - 1


def backtrack(backlink: np.ndarray, tail: int) -> np.ndarray:
    """Beat indicator from following backlinks from ``tail``."""
    beats = np.zeros(len(backlink), dtype=bool)
    frame = tail
    while frame >= 0:
        beats[frame] = True
        frame = int(backlink[frame])
    return beats


def hann5() -> np.ndarray:
    """numba's ``np.hanning(5)``: ``0.5 + 0.5 * cos(pi * n / 4)`` for n = -4, -2, 0, 2, 4."""
    return np.array([0.5 + 0.5 * math.cos(math.pi * n / 4) for n in range(-4, 5, 2)])


def numba_convolve_full(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``np.convolve(x, w)`` summed in the order numba's implementation (sequential dot) uses."""
    out = np.zeros(len(x) + len(w) - 1)
    # numba correlates the longer input with the reversed shorter one, in ascending index of the longer
    order = range(len(w) - 1, -1, -1) if len(x) >= len(w) else range(len(w))
    for k in order:
        out[k : k + len(x)] += w[k] * x
    return out


def trim_beats(local: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Drop leading and trailing frames whose local score is at most half the beats' smoothed RMS.

    As librosa: the smoothed beat envelope is ``np.convolve(local[beats], hann(5))[2 : N + 2]`` with
    N the number of frames, i.e. the full convolution minus its first two values.
    """
    window = hann5()
    smooth = numba_convolve_full(local[beats], window)[len(window) // 2 : len(local) + len(window) // 2]
    squares = smooth * smooth
    threshold = 0.5 * math.sqrt(float(np.add.accumulate(squares)[-1]) / len(squares))
    strong = np.flatnonzero(~(local <= threshold))
    trimmed = beats.copy()
    if not strong.size:  # librosa reads past the array here; no beat survives
        trimmed[:] = False
        return trimmed
    trimmed[: strong[0]] = False
    trimmed[strong[-1] + 1 :] = False
    return trimmed


def track_beats_curve(onset_env: np.ndarray, frames_per_beat: np.ndarray,
                      tightness: float = TIGHTNESS) -> np.ndarray:
    """Beat frames following a tempo that moves: ``frames_per_beat`` holds one period per frame.

    librosa 0.11's ``beat_track`` with a time-varying ``bpm`` (its ``__beat_local_score`` and
    ``__beat_track_dp`` read ``frames_per_beat[i]`` at frame ``i``), vectorised and not bit-exact:
    frame ``i`` is scored with the Gaussian window of its own period and may follow a beat
    ``round(fpb[i] / 2)`` to ``2 * fpb[i]`` frames earlier at a cost of
    ``tightness * log(distance / fpb[i]) ** 2``. Returns beat frame indices (trimmed as librosa).
    """
    onset_env = np.asarray(onset_env)
    fpb = np.round(np.asarray(frames_per_beat, dtype=np.float64))
    if fpb.shape != onset_env.shape:
        raise ValueError(f"frames_per_beat: shape {fpb.shape} differs from the envelope's "
                         f"{onset_env.shape}; fix: give one period per envelope frame")
    if not onset_env.any():
        return np.array([], dtype=int)
    if fpb.min() < 2:
        raise ValueError(f"frames_per_beat must be at least 2, got {fpb.min()}")
    env = normalize_onsets(onset_env)
    local = np.zeros(len(env))
    for period in np.unique(fpb):  # the local score with each frame's own window
        where = fpb == period
        local[where] = local_score(env, float(period))[where]
    n = len(local)
    near_all = np.round(fpb / 2).astype(int)
    far_all = (2 * fpb).astype(int)
    step = max(1, int(near_all.min()))
    dist = np.arange(int(near_all.min()), int(far_all.max()) + 1)
    cumscore = np.zeros(n)
    best_loc = np.full(n, -1, dtype=np.int64)
    for start in range(0, n, step):
        frames = np.arange(start, min(start + step, n))
        loc = frames[:, None] - dist[None, :]
        with np.errstate(divide="ignore"):
            lr = np.log(dist)[None, :] - np.log(fpb[frames])[:, None]
        penalty = tightness * lr * lr
        allowed = (dist[None, :] >= near_all[frames, None]) & (dist[None, :] <= far_all[frames, None]) \
            & (loc >= 0)
        scores = np.where(allowed, cumscore[np.maximum(loc, 0)] - penalty, -np.inf)
        pick = np.argmax(scores, axis=1)
        best = scores[np.arange(len(frames)), pick]
        found = best > -np.inf
        cumscore[frames] = np.where(found, local[frames] + best, local[frames])
        best_loc[frames] = np.where(found, frames - dist[pick], -1)
    backlink = best_loc.astype(np.int32)
    started = np.flatnonzero(~(local < 0.01 * local.max()))
    backlink[: started[0] if started.size else n] = -1
    beats = backtrack(backlink, last_beat(cumscore))
    return np.flatnonzero(trim_beats(local, beats))
