"""Song sections (intro, verse, chorus, bridge, break, drop, outro) from repetition and energy.

``detect_sections(audio, beats_s, downbeats_s)`` cuts the song into bars at the downbeats and
describes each bar (bar-synchronous features, never a frame-rate matrix of the whole song) by four
families: timbre (MFCC 1-19), loudness (RMS in dB), drive (spectral flux: how much attack) and
harmony (chroma). Bar-to-bar distances in each family make the song's self-similarity; a
boundary is a downbeat where the bars before differ from the bars after more than they differ
among themselves (Foote's checkerboard novelty, per family, summed; the smaller of two window
widths, about 4 and 8 s a side), strong enough (``NOVELTY_MIN``, ``NOVELTY_REL``), with
sections at least ``MIN_SECTION_S`` long. Neighbouring sections of the same material are then
joined, as is a fade-out with what it fades; silent bars at the ends join the first and last
section. Sections whose mean features are within ``SAME_GROUP_MAX`` form a group: a group of two
or more is repeated material. Labels follow from repetition and energy:

- repeated: the loudest repeated group -> ``chorus``, other repeated groups -> ``verse``; a
  repeated dip where the kick drops out, before something louder -> ``break``;
- heard once, in the middle: ``chorus`` when as loud as the choruses, else ``bridge`` (``break``
  when it is a dip quieter than ``QUIET_BREAK_ENERGY``); no repeated material at all -> ``verse``;
- the first section, quieter than the rest and not a chorus -> ``intro``; the last, quieter than
  the one before or fading within -> ``outro``;
- loud material entered suddenly from a break every time it comes (at least ``DROP_JUMP`` times
  louder, loud from its first bar) -> ``drop``.

``energy`` is the section's RMS over the loudest section's (0..1). Deterministic (no random
initialisation, no seeded clustering) and fast: one blocked STFT at hop ``HOP`` into 128 mel bands
and 12 chroma bins (``spectral.stft_power`` with a basis, so the full spectrogram is never held),
then arithmetic on at most a few hundred bars. The features are the numpy ports in ``spectral``
(pinned to librosa by ``tests/test_spectral.py``; the MFCC here is librosa's DCT of the dB mel
spectrogram, compared with ``librosa.feature.mfcc`` in ``tests/test_sections.py``), so the
analysis pays no librosa import; at bar level the self-similarity is small enough that
``librosa.segment``'s sparse recurrence and clustering tools are not needed.
"""

from __future__ import annotations

import numpy as np

from video_assets.media import spectral
from video_assets.media.audio import DecodedAudio
from video_assets.schemas import Section

HOP = 1024
N_MFCC = 20
MIN_SECTION_S = 4.0  # the shortest section reported (an intro of two bars at 100 BPM is 4.8 s)
MIN_SECTION_BARS = 2
KICK_MAX_HZ = 200.0
SILENCE_DB = 40.0  # bars this far below the loudest bar, at the ends, are silence
KICK_OUT = 0.6  # a break's low-band attacks are at most this fraction of the song's median bar
WINDOW_S = 4.0  # the novelty compares about this much music each side of a downbeat (and twice)
NOVELTY_MIN = 1.0  # a boundary's novelty must reach this (distance units below) ...
NOVELTY_REL = 0.3  # ... and this fraction of the strongest boundary's
SAME_GROUP_MAX = 1.2  # sections at most this far apart (distance units) are the same material
FADE_SAME_MAX = 2.0  # ... or, level aside, a fade-out of it (playing softer also darkens the timbre)
FADE_STEP_MAX_DB = 4.5  # a fade goes down gradually: no bar-to-bar drop larger than this at the cut
DIP_MAX_ENERGY = 0.7  # a dip (a break's shape) is at most this loud, and its neighbours 1.4 times louder
QUIET_BREAK_ENERGY = 0.3  # a section heard once is a break (not a bridge) when it is this quiet
DROP_JUMP = 1.4  # a drop is at least this many times louder (RMS) than the break before it (3 dB)
LOUD_ENERGY = 0.75  # a lone repeated group, or a drop, is at least this loud to be a chorus or drop
QUIETER = 0.8  # an intro (outro) is at most this loud relative to the rest (the section before)

# distance units: a difference of this much counts as 1
TIMBRE_UNIT = 25.0  # Euclidean distance of mean MFCC 1..19 (dB-scaled coefficients)
LOUDNESS_UNIT_DB = 4.0
FLUX_UNIT = 0.5  # ratio of mean spectral flux (log2: 1 = twice as much)
CHROMA_UNIT = 0.5  # cosine distance of the mean chroma


def dct_ortho(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` orthonormal DCT-II matrix (``scipy.fft.dct(x, type=2, norm="ortho")``
    along the input axis, first ``n_out`` coefficients), as librosa's MFCC uses."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def frame_features(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """Per analysis frame (hop ``HOP``): ``mfcc`` (20, n), ``chroma`` (12, n), ``power`` (n,:
    mean square), ``flux`` (n,: mean rise in dB over the mel bands, the onset envelope) and
    ``kick`` (the same below ``KICK_MAX_HZ``: kick drum and bass attacks)."""
    mel_b = spectral.mel_basis(sr)
    chroma_b = spectral.chroma_basis(sr)
    both = spectral.stft_power(y, hop=HOP, basis=np.vstack([mel_b, chroma_b]))
    mel, chroma = both[: mel_b.shape[0]], both[mel_b.shape[0]:]
    log_mel = spectral.power_to_db(mel)
    mfcc = dct_ortho(N_MFCC, log_mel.shape[0]) @ log_mel
    rise = np.zeros_like(log_mel)
    np.maximum(0.0, np.diff(log_mel, axis=1), out=rise[:, 1:])
    low = spectral.mel_to_hz(np.linspace(spectral.hz_to_mel(0.0), spectral.hz_to_mel(sr / 2),
                                         mel_b.shape[0] + 2))[1:-1] < KICK_MAX_HZ
    level = spectral.rms(y, HOP)[: log_mel.shape[1]]
    return {"mfcc": mfcc, "chroma": spectral.normalize_max(chroma, axis=0),
            "power": level.astype(np.float64) ** 2, "flux": rise.mean(axis=0),
            "kick": rise[low].mean(axis=0)}


def bar_edges_s(downbeats_s: list[float], duration_s: float) -> np.ndarray:
    """Bar start times: 0, each downbeat, and the end. A pickup before the first downbeat, or a
    remainder after the last, shorter than half a bar joins its neighbouring bar."""
    inner = np.unique(np.array([t for t in downbeats_s if 0.0 < t < duration_s], dtype=float))
    if inner.size >= 2:
        bar_s = float(np.median(np.diff(inner)))
        if inner[0] < 0.5 * bar_s:
            inner = inner[1:]
        if inner.size and duration_s - inner[-1] < 0.5 * bar_s:
            inner = inner[:-1]
    return np.concatenate([[0.0], inner, [duration_s]])


def bar_features(feats: dict[str, np.ndarray], edges_s: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """Means of the frame features over each bar ``[edges_s[i], edges_s[i + 1])``.

    A bar starts at the first frame whose window reaches its downbeat, so the downbeat's attack
    (a frame's flux) counts in the bar it starts, even when the downbeat time is a little late."""
    n = feats["power"].shape[0]
    first = np.ceil((edges_s * sr - spectral.N_FFT / 2) / HOP).astype(int)
    first[0], first[-1] = 0, n
    first = np.clip(first, 0, n)
    starts = np.minimum(first[:-1], n - 1)
    ends = np.maximum(first[1:], starts + 1)
    cum = {k: np.concatenate([np.zeros((*v.shape[:-1], 1)), np.cumsum(v, axis=-1)], axis=-1)
           for k, v in feats.items()}
    count = (ends - starts).astype(float)
    return {k: (c[..., ends] - c[..., starts]) / count for k, c in cum.items()}


def _span_mean(cum: np.ndarray, a: int, b: int) -> np.ndarray:
    return (cum[..., b] - cum[..., a]) / max(1, b - a)


def _distance(left: dict[str, np.ndarray], right: dict[str, np.ndarray], level: bool = True) -> float:
    """How different two stretches of music are (mean features): timbre, loudness, drive and
    harmony, each in its unit, combined as a root sum of squares (``level=False``: timbre and
    harmony only, the same music played softer is the same)."""
    timbre = float(np.linalg.norm(left["mfcc"][1:] - right["mfcc"][1:])) / TIMBRE_UNIT
    loud = abs(10 * np.log10((left["power"] + 1e-10) / (right["power"] + 1e-10))) / LOUDNESS_UNIT_DB
    flux = abs(np.log2((left["flux"] + 1e-6) / (right["flux"] + 1e-6))) / FLUX_UNIT
    if not level:
        loud = flux = 0.0
    cl, cr = left["chroma"], right["chroma"]
    chroma = (1.0 - float(cl @ cr) / (np.linalg.norm(cl) * np.linalg.norm(cr) + 1e-9)) / CHROMA_UNIT
    return float(np.sqrt(timbre ** 2 + float(loud) ** 2 + float(flux) ** 2 + chroma ** 2))


def window_bars(edges_s: np.ndarray) -> tuple[int, int]:
    """Novelty window widths in bars: about ``WINDOW_S`` seconds (at least two bars), and twice
    that."""
    bar_s = float(np.median(np.diff(edges_s))) if len(edges_s) > 1 else WINDOW_S
    w = max(MIN_SECTION_BARS, int(round(WINDOW_S / max(bar_s, 1e-3))))
    return w, 2 * w


def distance_matrices(bars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Bar-to-bar distances (the self-similarity of the song, as distances), one ``(n, n)``
    matrix per family, each in its unit: timbre, loudness, drive and harmony."""
    m = bars["mfcc"][1:].T / TIMBRE_UNIT
    sq = (m ** 2).sum(axis=1)
    level = 10 * np.log10(bars["power"] + 1e-10) / LOUDNESS_UNIT_DB
    drive = np.log2(bars["flux"] + 1e-6) / FLUX_UNIT
    c = bars["chroma"].T
    c = c / (np.linalg.norm(c, axis=1, keepdims=True) + 1e-9)
    return {"timbre": np.sqrt(np.maximum(0.0, sq[:, None] + sq[None, :] - 2 * m @ m.T)),
            "loudness": np.abs(level[:, None] - level[None, :]),
            "drive": np.abs(drive[:, None] - drive[None, :]),
            "harmony": (1.0 - c @ c.T) / CHROMA_UNIT}


def novelty(bars: dict[str, np.ndarray], widths: tuple[int, ...]) -> np.ndarray:
    """For each bar start ``k``: how much more the ``w`` bars before differ from the ``w`` after
    than they differ among themselves (Foote's checkerboard kernel on each family's distance
    matrix, summed over the families), the smallest over ``widths`` (windows clipped at the
    song's ends, at least two bars a side; 0 at the first and last bar). Comparing with the
    variation inside each side keeps a chord loop or a melody from reading as a new section;
    asking every width keeps a swell that comes and goes every two bars from reading as sections
    two bars long (a new section is new at both scales)."""
    n = bars["power"].shape[-1]
    per_width = np.full((len(widths), n), np.nan)
    dists = list(distance_matrices(bars).values())
    for row, w in enumerate(widths):
        for k in range(2, n - 1):
            a, b = max(0, k - w), min(n, k + w)  # clipped at the ends: at least two bars a side
            nl, nr = k - a, b - k
            per_width[row, k] = sum(max(0.0, float(d[a:k, k:b].mean()) - (
                d[a:k, a:k].sum() / (nl * (nl - 1)) + d[k:b, k:b].sum() / (nr * (nr - 1))) / 2)
                for d in dists)
    fits = ~np.isnan(per_width).all(axis=0)
    out = np.zeros(n)
    out[fits] = np.nanmin(per_width[:, fits], axis=0)
    return out


def pick_boundaries(nov: np.ndarray, edges_s: np.ndarray) -> list[int]:
    """Bar indices where sections start (0 first): the strongest novelty peaks, each section at
    least ``MIN_SECTION_S`` and ``MIN_SECTION_BARS`` long."""
    n = len(nov)
    if n < 2 * MIN_SECTION_BARS:
        return [0]
    floor = max(NOVELTY_MIN, NOVELTY_REL * float(nov.max()))
    peaks = [k for k in range(1, n) if nov[k] >= floor
             and nov[k] >= nov[k - 1] and (k + 1 >= n or nov[k] >= nov[k + 1])]
    chosen: list[int] = []
    for k in sorted(peaks, key=lambda k: (-nov[k], k)):
        cuts = sorted([0, n, *chosen, k])
        i = cuts.index(k)
        short = any(cuts[j + 1] - cuts[j] < MIN_SECTION_BARS
                    or edges_s[cuts[j + 1]] - edges_s[cuts[j]] < MIN_SECTION_S for j in (i - 1, i))
        if not short:
            chosen.append(k)
    return [0, *sorted(chosen)]


def detect_sections(audio: DecodedAudio, beats_s: list[float], downbeats_s: list[float]) -> list[Section]:
    """The song's sections, covering ``0 .. audio.duration_s``, boundaries on ``downbeats_s``."""
    del beats_s  # bars are enough today; kept so callers pass the whole grid
    y, sr = audio.samples, audio.sample_rate
    duration_s = audio.duration_s
    if duration_s <= 0:
        return []
    edges_s = bar_edges_s(downbeats_s, duration_s)
    bars = bar_features(frame_features(y, sr), edges_s, sr)
    # silent bars at either end (a lead-in, the last chord's tail) belong to the first and last
    # sections and take no part in the analysis: silence is not a section of its own
    level_db = 10 * np.log10(bars["power"] + 1e-12)
    sound = np.flatnonzero(level_db >= level_db.max() - SILENCE_DB)
    lo, hi = int(sound[0]), int(sound[-1]) + 1
    bars = {k: v[..., lo:hi] for k, v in bars.items()}
    edges_s = edges_s[lo : hi + 1]
    starts = pick_boundaries(novelty(bars, window_bars(edges_s)), edges_s)
    spans = merge_repeats(bars, list(zip(starts, [*starts[1:], len(edges_s) - 1], strict=True)))
    sections = label_sections(bars, edges_s, spans)
    sections[0] = sections[0].model_copy(update={"start_s": 0.0})
    sections[-1] = sections[-1].model_copy(update={"end_s": round(duration_s, 6)})
    return sections


def _means(bars: dict[str, np.ndarray], a: int, b: int) -> dict[str, np.ndarray]:
    return {k: v[..., a:b].mean(axis=-1) for k, v in bars.items()}


def merge_repeats(bars: dict[str, np.ndarray], spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Neighbouring sections of the same material (one group) joined into one, until none are;
    then a last section that is the one before it played softer (a fade-out: quieter, no step
    down at the cut, the same music level aside) joins it."""
    while len(spans) > 1:
        group = _group(bars, spans)
        same = [i for i in range(1, len(spans)) if group[i] == group[i - 1]]
        if not same:
            break
        i = same[0]
        spans = [*spans[: i - 1], (spans[i - 1][0], spans[i][1]), *spans[i + 1:]]
    if len(spans) > 1:
        before, last = _means(bars, *spans[-2]), _means(bars, *spans[-1])
        cut = spans[-1][0]
        step_db = 10 * np.log10((bars["power"][cut - 1] + 1e-12) / (bars["power"][cut] + 1e-12))
        if last["power"] < before["power"] and step_db <= FADE_STEP_MAX_DB and \
                _distance(before, last, level=False) <= FADE_SAME_MAX:
            spans = [*spans[:-2], (spans[-2][0], spans[-1][1])]
    return spans


def _group(bars: dict[str, np.ndarray], spans: list[tuple[int, int]]) -> list[int]:
    """Group id per section: sections within ``SAME_GROUP_MAX`` of each other (single linkage)."""
    means = [_means(bars, a, b) for a, b in spans]
    group = list(range(len(spans)))
    for i in range(len(spans)):
        for j in range(i):
            if _distance(means[i], means[j]) <= SAME_GROUP_MAX:
                old, new = group[i], group[j]
                group = [new if g == old else g for g in group]
    return group


def label_sections(bars: dict[str, np.ndarray], edges_s: np.ndarray,
                   spans: list[tuple[int, int]]) -> list[Section]:
    """Labels and energies for the sections ``spans`` (bar index ranges), by the module's rules."""
    power = bars["power"] * np.diff(edges_s)  # energy per bar (mean square times length)
    rms = np.array([np.sqrt(power[a:b].sum() / (edges_s[b] - edges_s[a])) for a, b in spans])
    energy = rms / (rms.max() + 1e-12)
    n = len(spans)
    group = _group(bars, spans)
    members = {g: [i for i in range(n) if group[i] == g] for g in set(group)}
    labels: list[str] = ["verse"] * n
    if n > 1:
        kick = np.array([bars["kick"][a:b].mean() for a, b in spans])
        kick_out = kick <= KICK_OUT * float(np.median(bars["kick"]))

        def dip(i: int) -> bool:  # the beat drops out before something louder
            return 0 < i < n - 1 and energy[i] <= DIP_MAX_ENERGY and bool(kick_out[i]) and \
                energy[i + 1] >= DROP_JUMP * energy[i]

        body = [g for g, m in members.items() if len(m) >= 2 and not all(dip(j) for j in m)]
        loudest = max(body, key=lambda g: energy[members[g]].mean()) if body else None
        for i in range(n):
            g = group[i]
            if len(members[g]) >= 2 and all(dip(j) for j in members[g]):
                labels[i] = "break"
            elif len(members[g]) >= 2:
                labels[i] = "chorus" if g == loudest and (len(body) > 1 or energy[i] >= LOUD_ENERGY) \
                    else "verse"
            elif loudest is not None and energy[i] >= energy[members[loudest]].mean():
                labels[i] = "chorus"
            elif loudest is None and not dip(i):
                labels[i] = "verse"  # no verse/chorus form: the body of the piece
            else:
                labels[i] = "break" if dip(i) and energy[i] <= QUIET_BREAK_ENERGY else "bridge"
        for m in members.values():  # loud material entered suddenly from a break every time
            if energy[m].mean() >= LOUD_ENERGY and all(
                    j > 0 and labels[j - 1] == "break" and energy[j] >= DROP_JUMP * energy[j - 1]
                    and power[spans[j][0]] / (edges_s[spans[j][0] + 1] - edges_s[spans[j][0]])
                    >= 0.5 * rms[j] ** 2 for j in m):
                for j in m:
                    labels[j] = "drop"
        if labels[0] != "chorus" and energy[0] <= QUIETER * float(energy[1:].max()):
            labels[0] = "intro"
        a, b = spans[-1]
        fading = b - a >= 2 and power[b - 1] < 0.5 * power[a:b].mean()
        if labels[-1] not in ("chorus", "drop") and (energy[-1] <= QUIETER * energy[-2] or fading):
            labels[-1] = "outro"
    return [Section(start_s=round(float(edges_s[a]), 6), end_s=round(float(edges_s[b]), 6),
                    label=labels[i], energy=round(float(energy[i]), 4))
            for i, (a, b) in enumerate(spans)]


def sections_table(sections: list[Section]) -> str:
    """The sections as a markdown table (start, end, length, label, energy), for metadata."""
    if not sections:
        return "no sections (a grid analysed before sections existed)"
    rows = ["| # | start (s) | end (s) | length (s) | label | energy |",
            "| --- | --- | --- | --- | --- | --- |"]
    rows += [f"| {i + 1} | {s.start_s:.2f} | {s.end_s:.2f} | {s.end_s - s.start_s:.2f} | {s.label} | "
             f"{s.energy:.2f} |" for i, s in enumerate(sections)]
    return "\n".join(rows)
