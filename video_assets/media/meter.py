"""The metrical level, the meter and the downbeats of tracked beats, from bar-level evidence.

Three questions, each answered from what bars do in most music:

1. **Are the tracked beats a subdivision?** A tracker that locks onto the eighth notes of a slow
   ballad finds a pulse whose every other beat is a different event (the arpeggio's chord tone
   against its passing note): the onset envelope then repeats far more strongly at two tracked
   beats than at one (``SUBDIVISION_RATIO``). The beats are halved, keeping the more accented half.
2. **How many beats to a bar (2, 3 or 4)?** Chords hold for a bar and change on the bar line, so
   the beat-synchronous chroma is homogeneous inside the right bars (``homogeneity``). A meter of
   3 wins when 3-beat bars are the most homogeneous; 2 (2/4, and 6/8 counted in dotted quarters)
   when 2-beat bars are far more homogeneous than 4-beat ones and the accents do not favour a 4-beat
   bar; else 4, the common case (a 2/4 march with chords that last two bars reads as 4/4).
3. **Where does the bar start?** The phase that maximises the chroma's homogeneity inside bars
   plus the accent of bar starts (``accent``: low-frequency energy rising after the beat, the kick
   and the bass, and the chroma changing across it). For 4, the half-bar phase is settled first
   (a backbeat, a chord per half bar) and then which half starts the bar.

Inputs are per-frame features from one streamed pass (``spectral.streamed_features``): the onset
envelope, a low-band (30-160 Hz) power row and the chroma, at hop ``HOP``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUBDIVISION_RATIO = 1.5  # autocorrelation at 2 beats / at 1 beat above which beats are halved
MIN_HALVED_BPM = 40.0
TWO_BEAT_ACCENT = 1.0  # 2-beat bars when accents alternate this many times more than the halves differ
HOMOGENEITY_SCALE = 0.05  # a contrast in within-bar chroma similarity worth one accent std


@dataclass(frozen=True)
class Meter:
    beats_per_bar: int
    phase: int  # index of the first downbeat among the beats


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9) if x.size else x


def beat_sync(features: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``(n_beats, n_rows)``: the mean of each row over each beat's span (to the next beat or the
    end), scaled to unit length (cosine-ready)."""
    n = features.shape[1]
    edges = [*np.clip(frames, 0, n - 1), n]
    spans = np.stack([features[:, a : max(a + 1, b)].mean(axis=1)
                      for a, b in zip(edges, edges[1:], strict=False)])
    return spans / (np.linalg.norm(spans, axis=1, keepdims=True) + 1e-9)


def homogeneity(sync: np.ndarray, beats_per_bar: int, phase: int) -> float:
    """Mean cosine similarity between the beats of the same bar, bars starting at ``phase``."""
    m = beats_per_bar
    scores = []
    for start in range(phase, len(sync) - m + 1, m):
        gram = sync[start : start + m] @ sync[start : start + m].T
        scores.append((gram.sum() - np.trace(gram)) / (m * (m - 1)))
    return float(np.mean(scores)) if scores else 0.0


def accent(low_power: np.ndarray, sync_chroma: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Per-beat evidence that a bar starts there, z-scored: the rise of low-frequency energy in dB
    (the largest value in the 4 frames after the beat minus the smallest in the 4 before) plus the
    chroma's cosine distance from the previous beat span."""
    if len(frames) < 2:
        return np.zeros(len(frames))
    low = 10.0 * np.log10(np.maximum(low_power, 1e-10))
    low = np.maximum(low, low.max() - 80.0)
    n = len(low)
    clipped = np.clip(frames, 0, n - 1)
    peak = np.array([low[f : min(n, f + 4)].max() for f in clipped])
    rise = peak - np.array([low[max(0, f - 4) : f + 1].min() for f in clipped])
    change = np.zeros(len(frames))
    change[1:] = 1.0 - np.sum(sync_chroma[1:] * sync_chroma[:-1], axis=1)
    change[0] = change[1:].mean()
    return _z(rise) + _z(change) + _z(peak)


def _best_ac(e: np.ndarray, lag: int) -> float:
    energy = float(np.dot(e, e))
    if energy <= 0 or lag + 3 >= len(e):
        return 0.0
    return max(float(np.dot(e[:-k], e[k:])) / energy for k in range(max(1, lag - 2), lag + 3))


def subdivision_ratio(onset_env: np.ndarray, frames: np.ndarray, window: int = 768) -> float:
    """Median over ~18 s windows of the envelope's autocorrelation at two local beat periods divided
    by the one at one period (values below 0.05 count as 0.05)."""
    if len(frames) < 8:
        return 0.0
    n = len(onset_env)
    ratios = []
    for a in range(0, max(1, n - window // 2), window // 2):
        inside = frames[(frames >= a) & (frames < a + window)]
        if len(inside) < 4:
            continue
        lag = int(round(float(np.median(np.diff(inside)))))
        seg = onset_env[a : a + window].astype(np.float64)
        e = seg - seg.mean()
        ratios.append(_best_ac(e, 2 * lag) / max(0.05, _best_ac(e, lag)))
    return float(np.median(ratios)) if ratios else 0.0


def _phase_scores(sync: np.ndarray, acc: np.ndarray, m: int) -> tuple[np.ndarray, float, float]:
    """Per phase: homogeneity contrast / ``HOMOGENEITY_SCALE`` plus mean accent, centred; also the
    best phase's homogeneity contrast and accent contrast against the other phases."""
    h = np.array([homogeneity(sync, m, p) for p in range(m)])
    a = np.array([acc[p::m].mean() if acc[p::m].size else 0.0 for p in range(m)])
    score = (h - h.mean()) / HOMOGENEITY_SCALE + (a - a.mean())
    best = int(np.argmax(score))
    others = np.delete(np.arange(m), best)
    return score, float(h[best] - h[others].mean()), float(a[best] - a[others].mean())


def bass_height(bass_rows: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Per beat, z-scored: the power-weighted mean log2 frequency of 35-300 Hz over the first half of
    the beat's span (``bass_rows``: that band's power and its log2-frequency-weighted power, per
    frame). Low where the bass plays the chord's root, which it does most on the downbeat."""
    n = bass_rows.shape[1]
    edges = [*np.clip(frames, 0, n - 1), n]
    height = np.array([bass_rows[1, a : max(a + 1, (a + b) // 2)].sum()
                       / (bass_rows[0, a : max(a + 1, (a + b) // 2)].sum() + 1e-12)
                       for a, b in zip(edges, edges[1:], strict=False)])
    return _z(height)


def estimate(sync_chroma: np.ndarray, acc: np.ndarray, bass: np.ndarray) -> Meter:
    """Beats per bar and the downbeat phase from per-beat chroma, accent and bass height.

    3 when 3-beat bars are the most homogeneous. Otherwise the half-bar phase comes first (the
    best 2-beat phase: homogeneity and accent); the bar has 2 beats when the accents repeat every
    2 beats (their alternation between the half bars' two beats exceeds their difference between
    the first and the second half, ``TWO_BEAT_ACCENT`` times), else 4, starting on whichever half is
    more homogeneous, more accented and lower in the bass.
    """
    if len(acc) < 8:
        return Meter(4, 0)
    s2, h2, _ = _phase_scores(sync_chroma, acc, 2)
    s3, h3, _ = _phase_scores(sync_chroma, acc, 3)
    _, h4, _ = _phase_scores(sync_chroma, acc, 4)
    if h3 > max(h2, h4):
        return Meter(3, int(np.argmax(s3)))
    half = int(np.argmax(s2))
    idx = np.arange(len(acc)) % 4
    a4 = np.array([acc[idx == k].mean() for k in range(4)])
    alternation = abs(a4[0] + a4[2] - a4[1] - a4[3]) / 2
    halves_differ = abs(a4[0] - a4[2]) + abs(a4[1] - a4[3])
    if alternation > TWO_BEAT_ACCENT * halves_differ:
        return Meter(2, half)
    hom = np.array([homogeneity(sync_chroma, 4, k) for k in range(4)])
    low = np.array([bass[idx == k].mean() for k in range(4)])
    first = (hom[half] - hom[half + 2]) / HOMOGENEITY_SCALE + (a4[half] - a4[half + 2]) \
        - (low[half] - low[half + 2])
    return Meter(4, half if first >= 0 else half + 2)


def halve(frames: np.ndarray, onset_env: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Every other beat: the half whose beats carry more accent and onset strength."""
    strength = _z(onset_env[np.clip(frames, 0, len(onset_env) - 1)].astype(np.float64)) + acc
    parity = 0 if strength[0::2].mean() >= strength[1::2].mean() else 1
    return frames[parity::2]
