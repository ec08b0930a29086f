"""The few spectral features beat analysis needs, in numpy: ports of librosa 0.11's functions.

Why it exists: ``import librosa.onset`` (or ``librosa.feature``) imports ``scipy.signal`` and
librosa's numba kernels, about 2.8 s in every fresh process on a 2-core machine, which a 30 s
render paid for a quarter of a second of analysis. Each function here follows librosa's code
with librosa's defaults (Hann window, centred frames padded with zeros, Slaney mel scale and
norm, ``power_to_db`` with ``top_db=80``); ``tests/test_spectral.py`` pins every one to librosa.

``streamed_features`` gives the onset envelope and other projections of the power spectrogram
from blocks of frames, so beat analysis never holds a song-long spectrogram. librosa's ISC
license: ``LICENSE.librosa``.

One deliberate difference: ``chroma_stft`` takes the tuning as 0 cents instead of estimating it
(librosa's ``estimate_tuning`` runs a pitch tracker); beat analysis compares chroma only with
itself, so a constant detuning changes nothing it measures.

Units: ``sr`` in Hz, ``hop`` and ``n_fft`` in samples, envelopes one value per hop (a frame).
"""

from __future__ import annotations

import numpy as np

N_FFT = 2048  # librosa's default frame length (samples)


def frame(y: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """``(n_frames, frame_length)`` view of ``y`` with a step of ``hop`` samples (no copy)."""
    n = 1 + (len(y) - frame_length) // hop
    return np.lib.stride_tricks.as_strided(y, shape=(max(0, n), frame_length),
                                           strides=(y.strides[0] * hop, y.strides[0]),
                                           writeable=False)


BLOCK_VALUES = 1 << 21  # elements per block of a blocked computation: ~8 MB of float32


def stft_power(y: np.ndarray, n_fft: int = N_FFT, hop: int = 512,
               basis: np.ndarray | None = None) -> np.ndarray:
    """``|STFT|**2``, shape ``(1 + n_fft // 2, 1 + len(y) // hop)``: librosa's ``stft`` (periodic
    Hann window, frames centred, the signal padded with ``n_fft // 2`` zeros each side).
    With ``basis`` (e.g. ``mel_basis``), ``basis @ |STFT|**2`` is returned instead, computed a
    block of frames at a time, so the full power spectrogram is never held."""
    rows = 1 + n_fft // 2 if basis is None else basis.shape[0]
    power = np.empty((rows, n_frames(len(y), hop)), np.float32)
    for start, part in stft_power_blocks(y, n_fft, hop):
        power[:, start : start + part.shape[1]] = part if basis is None else basis @ part
    return power


def centred_frames(y: np.ndarray, frame_length: int, hop: int, start: int, stop: int) -> np.ndarray:
    """Frames ``start..stop-1`` of ``y`` padded with ``frame_length // 2`` zeros each side (librosa's
    centred frames), ``(stop - start, frame_length)``, built from a copy of only the samples they
    cover: the whole signal is never padded (copied)."""
    half = frame_length // 2
    lo = start * hop - half
    hi = (stop - 1) * hop + frame_length - half
    chunk = np.zeros(hi - lo, np.float32)
    a, b = max(0, lo), min(len(y), hi)
    if b > a:
        chunk[a - lo : b - lo] = y[a:b]
    return frame(chunk, frame_length, hop)


def power_rows(y: np.ndarray, n_fft: int = N_FFT, hop: int = 512):
    """Yield ``(start_frame, power)`` with ``power`` ``(frames, 1 + n_fft // 2)`` float32: the rows
    of ``stft_power(y, n_fft, hop).T``, a block of frames at a time (~8 MB of windowed samples)."""
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    n = n_frames(len(y), hop)
    block = max(1, BLOCK_VALUES // n_fft)
    for start in range(0, n, block):
        stop = min(n, start + block)
        spectrum = np.fft.rfft(centred_frames(y, n_fft, hop, start, stop) * window, axis=-1)
        power = spectrum.real * spectrum.real
        power += spectrum.imag * spectrum.imag
        yield start, power


def stft_power_blocks(y: np.ndarray, n_fft: int = N_FFT, hop: int = 512):
    """Yield ``(start_frame, power)`` blocks of ``stft_power(y, n_fft, hop)`` (all its rows, a block of
    frames at a time), so a caller can reduce them as they come."""
    for start, power in power_rows(y, n_fft, hop):
        yield start, power.T


def n_frames(n_samples: int, hop: int) -> int:
    """Frames of a centred STFT of ``n_samples`` samples (librosa's ``1 + n // hop``)."""
    return 1 + n_samples // hop


def _mel_db(power: np.ndarray, mel_t: np.ndarray) -> np.ndarray:
    """``10 log10(max(power @ mel_t, 1e-10))``, ``(frames, n_mels)``, computed in place."""
    db = power @ mel_t
    np.maximum(db, 1e-10, out=db)
    np.log10(db, out=db)
    db *= 10.0
    return db


def _rise(db: np.ndarray, floor_db: float) -> np.ndarray:
    """Mean over bands of the rise into each frame after the first, both frames floored."""
    clipped = np.maximum(db, floor_db)
    rise = np.diff(clipped, axis=0)
    np.maximum(rise, 0.0, out=rise)
    return rise.mean(axis=1)


def streamed_features(y: np.ndarray, sr: int, hop: int = 512, n_fft: int = N_FFT,
                      bases: tuple[np.ndarray, ...] = ()) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(onset_strength(y, sr, hop, n_fft), [basis @ |STFT|**2 for basis in bases])`` without ever
    holding a song-long spectrogram: one pass over blocks of frames (the previous frame carried
    across blocks). ``power_to_db``'s floor (80 dB under the loudest mel value of the whole song)
    is not known until the end, so each block is floored at 80 dB under the loudest value so far;
    a block that held values between that and the final floor (a quiet intro before the song gets
    loud) is computed again at the end, and the rise into each block's first frame is taken at the
    end from the rows kept. Memory: the outputs plus one block, whatever the length."""
    mel_t = np.ascontiguousarray(mel_basis(sr, n_fft).T)
    n = n_frames(len(y), hop)
    flux = np.zeros(n, np.float32)  # flux[t]: mean rise into frame t (flux[0] = 0)
    extras = [np.empty((b.shape[0], n), np.float32) for b in bases]
    bases_t = [np.ascontiguousarray(b.T) for b in bases]
    top_db = -100.0  # 10 log10(1e-10): the floor of every value
    blocks = []  # (start, stop, floor used, lowest value, first row, last row), rows before flooring
    for start, power in power_rows(y, n_fft, hop):
        db = _mel_db(power, mel_t)
        top_db = max(top_db, float(db.max()))
        floor_db = top_db - 80.0
        flux[start + 1 : start + len(db)] = _rise(db, floor_db)
        blocks.append((start, start + len(db), floor_db, float(db.min()), db[0].copy(), db[-1].copy()))
        for out, basis_t in zip(extras, bases_t, strict=True):
            out[:, start : start + len(power)] = (power @ basis_t).T
    final_floor = top_db - 80.0
    stale = {start for start, _, used, lowest, _, _ in blocks if used < final_floor and lowest < final_floor}
    if stale:
        for start, power in power_rows(y, n_fft, hop):
            if start in stale:
                db = _mel_db(power, mel_t)
                flux[start + 1 : start + len(db)] = _rise(db, final_floor)
    for (_, _, _, _, _, last), (start, _, _, _, first, _) in zip(blocks, blocks[1:], strict=False):
        flux[start] = _rise(np.stack([last, first]), final_floor)[0]
    lag = 1 + n_fft // (2 * hop)  # a value sits on the frame where its rise is (onset_strength)
    env = np.zeros(n, np.float32)
    env[lag:] = flux[1 : n - lag + 1]
    return env, extras


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz,
                    min_log_mel + np.log(np.maximum(hz, 1e-12) / min_log_hz) / logstep,
                    hz / f_sp)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)),
                    f_sp * mels)


def mel_basis(sr: int, n_fft: int = N_FFT, n_mels: int = 128) -> np.ndarray:
    """``(n_mels, 1 + n_fft // 2)`` triangular filters from 0 Hz to ``sr / 2``, Slaney-normalised
    (librosa's ``filters.mel`` defaults), float32."""
    fft_hz = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_hz)
    ramps = np.subtract.outer(mel_hz, fft_hz)
    weights = np.zeros((n_mels, len(fft_hz)), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_hz[2 : n_mels + 2] - mel_hz[:n_mels]))[:, None]
    return weights


def power_to_db(power: np.ndarray, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """``10 log10(power)`` (reference 1), floored at ``amin`` and at ``top_db`` below the peak."""
    db = 10.0 * np.log10(np.maximum(amin, power))
    return np.maximum(db, db.max() - top_db) if top_db is not None else db


def onset_strength(y: np.ndarray, sr: int, hop: int = 512, n_fft: int = N_FFT,
                   power: np.ndarray | None = None) -> np.ndarray:
    """Spectral flux onset envelope, one value per frame (librosa's ``onset.onset_strength``:
    the mean over 128 mel bands of the rise in dB from the previous frame, shifted by
    ``1 + n_fft // (2 hop)`` frames so that a value sits on the frame where its rise is).
    ``power``: ``stft_power(y, n_fft, hop)`` if the caller already has it."""
    basis = mel_basis(sr, n_fft)
    mel = stft_power(y, n_fft, hop, basis=basis) if power is None else basis @ power
    np.maximum(mel, 1e-10, out=mel)  # power_to_db in place (the same values): a song-long array
    np.log10(mel, out=mel)
    mel *= 10.0
    np.maximum(mel, mel.max() - 80.0, out=mel)
    n = mel.shape[1]
    env = np.empty(max(0, n - 1), np.float32)
    block = max(1, BLOCK_VALUES // mel.shape[0])
    for start in range(0, n - 1, block):  # the flux a block of frames at a time
        stop = min(n - 1, start + block)
        env[start:stop] = np.maximum(0.0, mel[:, start + 1 : stop + 1] - mel[:, start:stop]).mean(
            axis=0)
    env = np.pad(env, (1 + n_fft // (2 * hop), 0), mode="constant")
    return env[:n]


def normalize_max(x: np.ndarray, axis: int) -> np.ndarray:
    """``x`` divided by its largest magnitude along ``axis`` (librosa's ``normalize`` with
    ``norm=inf``; all-zero slices stay zero)."""
    length = np.max(np.abs(x), axis=axis, keepdims=True)
    length[length < np.finfo(x.dtype).tiny] = 1.0
    return x / length


def chroma_basis(sr: int, n_fft: int = N_FFT) -> np.ndarray:
    """``(12, 1 + n_fft // 2)`` chroma filters starting at C, tuned to A440 (librosa's
    ``filters.chroma`` defaults: Gaussian bumps per pitch class, L2-normalised per FFT bin,
    weighted by a Gaussian over octaves centred on octave 5, two octaves wide), float32."""
    n_chroma = 12
    hz = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    bins = n_chroma * np.log2(hz / (440.0 / 16))
    bins = np.concatenate(([bins[0] - 1.5 * n_chroma], bins))
    width = np.concatenate((np.maximum(bins[1:] - bins[:-1], 1.0), [1]))
    d = np.subtract.outer(bins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    d = np.remainder(d + half + 10 * n_chroma, n_chroma) - half
    wts = np.exp(-0.5 * (2 * d / np.tile(width, (n_chroma, 1))) ** 2)
    norm = np.sqrt(np.sum(wts ** 2, axis=0, keepdims=True))
    norm[norm < np.finfo(wts.dtype).tiny] = 1.0
    wts = wts / norm
    wts *= np.tile(np.exp(-0.5 * (((bins / n_chroma - 5.0) / 2) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3, axis=0)
    return np.ascontiguousarray(wts[:, : 1 + n_fft // 2], dtype=np.float32)


def chroma_stft(power: np.ndarray, sr: int) -> np.ndarray:
    """``(12, n_frames)`` chroma of a power spectrogram, each frame scaled to a maximum of 1
    (librosa's ``feature.chroma_stft(S=power, tuning=0.0)``)."""
    n_fft = 2 * (power.shape[0] - 1)
    return normalize_max(chroma_basis(sr, n_fft) @ power, axis=0)


def rms(y: np.ndarray, hop: int = 512, frame_length: int = N_FFT) -> np.ndarray:
    """Root-mean-square level per centred frame (librosa's ``feature.rms(y=y)[0]``)."""
    n = n_frames(len(y), hop)
    out = np.empty(n, np.float32)
    block = max(1, BLOCK_VALUES // frame_length)  # a block of frames at a time
    for start in range(0, n, block):
        stop = min(n, start + block)
        out[start:stop] = np.mean(centred_frames(y, frame_length, hop, start, stop) ** 2, axis=-1)
    return np.sqrt(out)


def tempogram_blocks(onset_env: np.ndarray, win: int, step: int = 1):
    """Yield ``(columns, ac)`` blocks of librosa's ``feature.tempogram`` (autocorrelation, Hann
    window of ``win`` frames centred on each frame, the envelope padded with linear ramps to 0,
    each column scaled to a maximum of 1): ``ac`` is ``(len(columns), win)`` for the frames
    ``columns`` (every ``step``-th frame), a block at a time so no song-long matrix is held."""
    n = len(onset_env)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    padded = np.pad(onset_env, (win // 2, win // 2), mode="linear_ramp", end_values=[0, 0])
    frames = frame(np.ascontiguousarray(padded), win, 1)[:n]  # (n, win), a view
    n_pad = 1 << (2 * win - 2).bit_length()  # >= 2 win - 1: linear, not circular, correlation
    columns = np.arange(0, n, step)
    block = max(1, BLOCK_VALUES // (4 * n_pad))  # the autocorrelations a block of frames at a time
    for start in range(0, len(columns), block):
        cols = columns[start : start + block]
        spectrum = np.fft.rfft(frames[cols] * window, n=n_pad, axis=-1)
        ac = np.fft.irfft(spectrum.real ** 2 + spectrum.imag ** 2, n=n_pad, axis=-1)[:, :win]
        yield cols, normalize_max(ac, axis=-1)


def tempogram(onset_env: np.ndarray, win: int = 384, step: int = 1) -> np.ndarray:
    """``(win, len(range(0, n, step)))``: every ``step``-th column of librosa's
    ``feature.tempogram(onset_envelope=onset_env, win_length=win)``."""
    blocks = [ac for _, ac in tempogram_blocks(onset_env, win, step)]
    return np.concatenate(blocks).T if blocks else np.zeros((win, 0))


def tempo(onset_env: np.ndarray, sr: int, hop: int = 512, start_bpm: float = 120.0,
          std_bpm: float = 1.0, ac_size_s: float = 8.0, max_tempo_bpm: float = 320.0) -> float:
    """The global tempo in BPM (librosa's ``feature.tempo``): the mean over time of a windowed,
    normalised autocorrelation of the envelope (8 s windows), weighted by a log-normal prior
    around ``start_bpm``; the best lag is the tempo."""
    win = int(int(ac_size_s * sr) // hop)
    n = len(onset_env)
    total = np.zeros(win)
    for _, ac in tempogram_blocks(onset_env, win):
        total += ac.sum(axis=0)
    tg = total / max(1, n)
    bpms = np.full(win, np.inf)
    bpms[1:] = 60.0 * sr / (hop * np.arange(1.0, win))
    with np.errstate(divide="ignore"):
        logprior = -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_bpm) ** 2
    logprior[: int(np.argmax(bpms < max_tempo_bpm))] = -np.inf
    return float(bpms[int(np.argmax(np.log1p(1e6 * tg) + logprior))])


def onset_times(onset_env: np.ndarray, sr: int, hop: int = 512) -> np.ndarray:
    """Onset times in seconds: peaks of the normalised envelope (librosa's ``onset.onset_detect``
    defaults: a maximum over the last 30 ms, 0.07 above the mean of +-100 ms, 30 ms apart)."""
    x = onset_env - onset_env.min()
    x = x / (x.max() + np.finfo(x.dtype).tiny)
    if not x.any() or not np.all(np.isfinite(x)):
        return np.zeros(0)
    per_s = sr / hop
    pre_max, post_max = int(np.ceil(0.03 * sr // hop)), int(np.ceil(0.00 * sr // hop + 1))
    pre_avg, post_avg = int(np.ceil(0.10 * sr // hop)), int(np.ceil(0.10 * sr // hop + 1))
    wait, delta, n_frames = int(np.ceil(0.03 * sr // hop)), 0.07, len(x)
    peaks = []
    if x[0] >= x[:min(post_max, n_frames)].max() and \
            x[0] >= x[:min(post_avg, n_frames)].mean() + delta:
        peaks.append(0)
        n = wait + 1
    else:
        n = 1
    while n < n_frames:
        if x[n] == x[max(0, n - pre_max) : min(n + post_max, n_frames)].max() and \
                x[n] >= x[max(0, n - pre_avg) : min(n + post_avg, n_frames)].mean() + delta:
            peaks.append(n)
            n += wait + 1
        else:
            n += 1
    return np.asarray(peaks, dtype=np.float64) / per_s
