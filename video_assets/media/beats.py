"""Beat analysis: tempo, beats, downbeats, per-beat energy, confidence, fallback grid.

All times are seconds from the start of the audio. Beat tracking uses librosa's method and
defaults (hop 512 at 22050 Hz) through numpy ports: ``video_assets.media.beat_track`` of
``librosa.beat.beat_track`` and ``video_assets.media.spectral`` of the onset envelope, tempo,
chroma and RMS, so no process pays librosa's import (about 2.8 s with ``scipy.signal``); tests pin
both to librosa, so an independent ``librosa.beat.beat_track`` on the same audio agrees.
"""

from __future__ import annotations

import numpy as np

from video_assets.media import spectral
from video_assets.media.audio import DecodedAudio
from video_assets.media.beat_track import track_beats_curve
from video_assets.media.boundaries import BoundaryLimits, plan_boundaries
from video_assets.media.tempo import pulse_clarity, tempo_curve
from video_assets.schemas import BeatGrid, Boundary

HOP = 512
MIN_TEMPO_BPM = 60.0
MAX_TEMPO_BPM = 180.0
CURVE_OCTAVES = 0.3  # how far the local tempo may stray from the global one (log-normal prior)


def fold_tempo(tempo_bpm: float) -> float:
    """Double or halve a tempo until it lies in 60..180 BPM (120 for a non-positive tempo)."""
    if not np.isfinite(tempo_bpm) or tempo_bpm <= 0:
        return 120.0
    while tempo_bpm < MIN_TEMPO_BPM:
        tempo_bpm *= 2
    while tempo_bpm > MAX_TEMPO_BPM:
        tempo_bpm /= 2
    return float(tempo_bpm)


def beat_confidence(onset_env: np.ndarray, beat_frames: np.ndarray, curve_bpm: np.ndarray,
                    sr: int) -> float:
    """0..1: regularity of the beats against the local tempo times how clearly the onset envelope
    pulses at the local beat lag (``tempo.pulse_clarity``).

    Regularity: each beat interval divided by the tempo curve's period there should be near 1; a
    tempo that moves (a ritardando, rubato) is regular in this sense, random onsets are not.
    """
    if len(beat_frames) < 4 or onset_env.size < 8:
        return 0.0
    ibi = np.diff(beat_frames).astype(float)
    ratio = ibi * HOP * curve_bpm[beat_frames[1:]] / (60.0 * sr)
    regularity = float(np.clip(1.0 - np.std(ratio) * 2.0, 0.0, 1.0))
    clarity = pulse_clarity(onset_env, sr, HOP, curve_bpm)
    return round(regularity * clarity, 4)


def refine_to_onsets(y: np.ndarray, sr: int, beats_s: list[float]) -> tuple[list[float], float]:
    """Move each tracked beat to the attack it stands for; returns ``(beats_s, median_shift_s)``.

    librosa's beat times are peaks of a 23 ms-frame onset envelope and sit 25-40 ms after the
    attacks you hear (librosa issue #1052). A fine envelope (hop 64 samples, 512-sample window)
    is searched from 90 ms before to 20 ms after each beat; a clear peak there is the attack.
    Beats without a clear peak (no percussion at that moment) move by the median shift, so the
    grid stays regular. Measured on synthesized pieces with known beats: median error 35-40 ms
    before, 5-9 ms after.
    """
    if not beats_s:
        return beats_s, 0.0
    hop = 64
    env = spectral.onset_strength(y, sr, hop, n_fft=512)
    times = np.arange(len(env)) * hop / sr
    clear = float(np.percentile(env, 90))
    found: list[float | None] = []
    for b in beats_s:
        lo, hi = np.searchsorted(times, [b - 0.09, b + 0.02])
        if hi > lo and env[lo:hi].max() >= clear:
            found.append(float(times[lo + int(np.argmax(env[lo:hi]))]))
        else:
            found.append(None)
    shifts = [b - f for b, f in zip(beats_s, found, strict=True) if f is not None]
    median_shift = float(np.median(shifts)) if shifts else 0.0
    out = [f if f is not None else b - median_shift for b, f in zip(beats_s, found, strict=True)]
    # keep the order strict (a refined beat never passes its neighbour)
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + 1e-3)
    return out, median_shift


def fill_grid(beats_s: list[float], period_s: float, duration_s: float) -> tuple[list[float], int]:
    """Extend beats to the whole audio at ``period_s`` and fill gaps longer than 1.5 periods.

    Returns ``(beats_s, n_added)``; every returned beat lies in ``(0, duration_s)``.
    """
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    if not beats_s:
        grid = list(np.arange(period_s, duration_s, period_s))
        return [float(t) for t in grid if 0 < t < duration_s], len(grid)
    out: list[float] = []
    t = beats_s[0] - period_s
    head: list[float] = []
    while t > 1e-3:
        head.append(t)
        t -= period_s
    out.extend(reversed(head))
    for a, b in zip(beats_s, beats_s[1:], strict=False):
        out.append(a)
        gap = b - a
        if gap > 1.5 * period_s:
            k = int(round(gap / period_s))
            out.extend(a + gap * i / k for i in range(1, k))
    out.append(beats_s[-1])
    t = beats_s[-1] + period_s
    while t < duration_s - 1e-3:
        out.append(t)
        t += period_s
    kept = [float(x) for x in out if 0 < x < duration_s]
    return kept, len(kept) - len([x for x in beats_s if 0 < x < duration_s])


def estimate_meter(beat_strength: np.ndarray) -> tuple[int, int]:
    """Pick meter (3 or 4) and the phase of the downbeat from per-beat accent strength."""
    best = (4, 0)
    best_score = -np.inf
    if len(beat_strength) < 8:
        return best
    z = (beat_strength - beat_strength.mean()) / (beat_strength.std() + 1e-9)
    for meter in (4, 3):
        for phase in range(meter):
            mask = np.zeros(len(z), dtype=bool)
            mask[phase::meter] = True
            score = float(z[mask].mean() - z[~mask].mean())
            if score > best_score + 1e-6:
                best_score, best = score, (meter, phase)
    return best


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9) if x.size else x


def downbeat_accent(power: np.ndarray, sr: int, frames: np.ndarray) -> np.ndarray:
    """Per-beat evidence that a bar starts there (higher = more likely), z-scored.

    Sums two cues that mark bar starts in most music: a rise of low-frequency energy (kick and
    bass, under 160 Hz) just after the beat, and harmonic change (chords move on the bar: cosine
    distance between the chroma of the beat span before and after the beat). ``power``: the
    audio's ``spectral.stft_power`` at hop ``HOP``.
    """
    if len(frames) < 2:
        return np.zeros(len(frames))
    freqs = np.fft.rfftfreq(spectral.N_FFT, d=1.0 / sr)
    low = spectral.power_to_db(power[(freqs > 30) & (freqs < 160)].sum(axis=0) + 1e-10)
    n = power.shape[1]
    rise = np.array([low[f : min(n, f + 4)].max() - low[max(0, f - 4) : f + 1].min()
                     for f in np.clip(frames, 0, n - 1)])
    chroma = spectral.chroma_stft(power, sr)
    edges = [*np.clip(frames, 0, n - 1), n]
    spans = np.stack([chroma[:, a : max(a + 1, b)].mean(axis=1) for a, b in zip(edges, edges[1:],
                                                                                strict=False)])
    spans /= np.linalg.norm(spans, axis=1, keepdims=True) + 1e-9
    change = np.zeros(len(frames))
    change[1:] = 1.0 - np.sum(spans[1:] * spans[:-1], axis=1)
    change[0] = change[1:].mean()
    return _z(rise) + _z(change)


def analyze(
    audio: DecodedAudio,
    limits: BoundaryLimits = BoundaryLimits(),
    min_confidence: float = 0.2,
) -> BeatGrid:
    """Track beats, estimate downbeats and energy, and plan clip boundaries on the beats."""
    y, sr = audio.samples, audio.sample_rate
    duration_s = audio.duration_s
    power = spectral.stft_power(y, hop=HOP)  # for the onset envelope and the downbeat cues
    onset_env = spectral.onset_strength(y, sr, HOP, power=power)
    tempo = spectral.tempo(onset_env, sr, HOP)  # librosa's global tempo: the metrical level
    beat_frames = np.zeros(0, dtype=int)
    curve_bpm = np.full(len(onset_env), tempo if tempo > 0 else 120.0)
    if onset_env.any() and tempo > 0:
        curve_bpm = tempo_curve(onset_env, sr, HOP, around_bpm=tempo, octaves=CURVE_OCTAVES)
        beat_frames = track_beats_curve(onset_env, sr * 60.0 / (HOP * curve_bpm))
    confidence = beat_confidence(onset_env, beat_frames, curve_bpm, sr)
    if confidence >= min_confidence and len(beat_frames) >= 4:
        method = "beats"
        tracked, _ = refine_to_onsets(
            y, sr, [float(f) * HOP / sr for f in beat_frames])
        # the median interval is quantised to analysis frames (23 ms); the slope of a line
        # through the beat times, fitted where beats are regular, is not
        ibi = np.diff(tracked)
        period_s = float(np.median(ibi))
        steady = np.abs(ibi - period_s) < 0.25 * period_s
        if steady.sum() >= 4:
            period_s = float(np.sum(ibi[steady]) / steady.sum())
        tempo = 60.0 / period_s
    else:
        method = "tempo_fallback"
        tempo = fold_tempo(tempo)
        period_s = 60.0 / tempo
        onsets = spectral.onset_times(onset_env, sr, HOP)
        start = float(onsets[0]) % period_s if len(onsets) else period_s
        tracked = [float(t) for t in np.arange(start or period_s, duration_s, period_s)]
    beats_s, n_filled = fill_grid(tracked, period_s, duration_s)
    frames = np.clip((np.asarray(beats_s) * sr).astype(int) // HOP, 0, len(onset_env) - 1)
    rms = spectral.rms(y, HOP)
    half = max(1, int(period_s * sr / HOP / 2))
    loud = np.array([rms[max(0, f - half) : f + half + 1].mean() for f in frames]) if len(frames) \
        else np.zeros(0)
    energy = loud / (loud.max() + 1e-9) if loud.size else loud
    if method == "beats":
        meter, phase = estimate_meter(downbeat_accent(power, sr, frames))
    else:
        meter, phase = 4, 0
    downbeats_s = beats_s[phase::meter]
    tracked_set = {round(t, 6) for t in tracked}
    weak = [t for t in beats_s if round(t, 6) not in tracked_set] if method == "beats" else []
    bounds = plan_boundaries(beats_s, duration_s, limits, downbeats_s, weak)
    return BeatGrid(
        duration_s=duration_s,
        tempo_bpm=round(tempo, 3),
        beats_s=[round(t, 6) for t in beats_s],
        downbeats_s=[round(t, 6) for t in downbeats_s],
        beat_energy=[round(float(e), 4) for e in energy],
        method=method,
        confidence=confidence,
        meter=meter,
        n_filled_beats=n_filled,
        boundaries=[Boundary(start_s=round(a, 6), end_s=round(b, 6)) for a, b in bounds],
    )
