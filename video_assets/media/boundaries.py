"""Clip boundaries on the beat grid (pure math, seconds in and out).

Every internal boundary is one of the given beat times; the boundaries cover ``[0, duration_s]``
exactly; each clip lasts ``min_len_s..max_len_s``; there are at least ``min_clips`` clips whenever
the audio is long enough to hold them (``duration_s >= min_clips * min_len_s``).

Given the song's sections (``schemas.Section``), the plan follows the song: every section boundary
is a cut (when the limits cannot put one there, the cut nearest to it that they allow), no clip
straddles one, and each section's clips aim at a length from its intensity (its label and energy,
``section_intensity``): long in intros, verses, breaks and outros, short in choruses and drops,
always within the limits. ``pacing`` moves every section's intensity (``calm``: longer shots,
``energetic``: shorter ones). Without sections and with ``auto`` pacing the plan is the one made
before sections existed (the one ``target_len_s``).

``inner_beat_cuts``: with ``energetic`` pacing, a scene in an intense section (a chorus, a drop)
is also cut on single beats inside it, in its second half: the picture jumps on in its own clip
(composition makes the jumps: ``scene_media.shot_plan``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from video_assets.schemas import Section

PACINGS = ("calm", "auto", "energetic")
# how intense a kind of section is (0 calm .. 1 intense), blended half and half with its energy
LABEL_INTENSITY = {"intro": 0.1, "verse": 0.4, "bridge": 0.5, "break": 0.0, "outro": 0.1,
                   "chorus": 0.9, "drop": 1.0}
PACING_SHIFT = {"calm": -0.35, "auto": 0.0, "energetic": 0.35}  # added to every intensity
BEAT_CUT_INTENSITY = 0.75  # energetic pacing cuts on beats inside scenes of sections this intense
# (at auto pacing: a loud chorus or a drop, not a verse)
BEAT_CUT_MARGIN_BEATS = 1  # no beat cut on a scene's first or last beat inside it
LONG_SHOT_FRACTION = 0.75  # the calmest target: this far from min_len_s towards max_len_s
SECTION_TOLERANCE_S = 0.01  # a cut this close to a section boundary is on it
SECTION_MISS_COST = 1000.0  # cost (s^2) of a clip straddling a section boundary ...
SECTION_MISS_COST_PER_S = 100.0  # ... plus this per second from the boundary to the nearest cut


class BoundaryError(ValueError):
    """No boundary plan satisfies the limits on this beat grid."""


@dataclass(frozen=True)
class BoundaryLimits:
    min_len_s: float = 3.0
    max_len_s: float = 7.0
    min_clips: int = 3
    target_len_s: float = 4.0
    downbeat_bonus: float = 0.75  # cost bonus (s^2) for ending a clip on a downbeat
    weak_penalty: float = 2.0  # cost (s^2) for cutting on a weak beat (one the tracker did not find)

    def __post_init__(self) -> None:
        if not 0 < self.min_len_s < self.max_len_s:
            raise ValueError(
                f"clip length limits {self.min_len_s}..{self.max_len_s} s are not a range; "
                "fix: min_len_s must be positive and below max_len_s"
            )
        if self.max_len_s < 2 * self.min_len_s - 1e-9:
            raise ValueError(
                f"max_len_s ({self.max_len_s}) must be at least twice min_len_s ({self.min_len_s}) "
                "so that any long stretch can be split"
            )
        if self.min_clips < 1:
            raise ValueError("min_clips must be at least 1")


def required_clips(duration_s: float, limits: BoundaryLimits) -> int:
    """How many clips the plan must have at least: ``min_clips``, or fewer for short audio."""
    if duration_s >= limits.min_clips * limits.min_len_s:
        return limits.min_clips
    return max(1, math.floor(duration_s / limits.min_len_s + 1e-9))


def section_intensity(section: Section, pacing: str = "auto") -> float:
    """0 (calm) .. 1 (intense): the section's kind and energy, half each, moved by ``pacing``."""
    x = 0.5 * LABEL_INTENSITY[section.label] + 0.5 * section.energy + PACING_SHIFT[pacing]
    return min(1.0, max(0.0, x))


def shot_target_s(limits: BoundaryLimits, intensity: float) -> float:
    """The clip length aimed at for music of ``intensity`` (0..1): ``min_len_s`` at 1, and
    ``LONG_SHOT_FRACTION`` of the way to ``max_len_s`` at 0."""
    long_s = limits.min_len_s + LONG_SHOT_FRACTION * (limits.max_len_s - limits.min_len_s)
    return long_s - min(1.0, max(0.0, intensity)) * (long_s - limits.min_len_s)


def inner_beat_cuts(start_s: float, end_s: float, beats_s: Sequence[float],
                    sections: Sequence[Section], pacing: str) -> list[float]:
    """The beats inside the scene ``[start_s, end_s)`` where ``energetic`` pacing cuts again:
    in a section whose intensity (at ``auto``) is at least ``BEAT_CUT_INTENSITY``, every beat
    of the scene's second half but its last one (so each shot there lasts one beat). None for
    other pacings, calmer sections, or a song without sections."""
    if pacing != "energetic" or not sections:
        return []
    mid_s = (start_s + end_s) / 2
    section = next((x for x in sections if x.start_s <= mid_s < x.end_s), None)
    if section is None or section_intensity(section) < BEAT_CUT_INTENSITY:
        return []
    inside = [b for b in beats_s if start_s < b < end_s]
    kept = inside[BEAT_CUT_MARGIN_BEATS:len(inside) - BEAT_CUT_MARGIN_BEATS]
    return [b for b in kept if b >= mid_s]


def _unsectioned_target_s(limits: BoundaryLimits, pacing: str) -> float:
    """Without sections: ``target_len_s``, moved by ``pacing`` as a section's intensity is."""
    if pacing == "auto":
        return limits.target_len_s
    long_s = limits.min_len_s + LONG_SHOT_FRACTION * (limits.max_len_s - limits.min_len_s)
    x = (long_s - limits.target_len_s) / (long_s - limits.min_len_s)
    return shot_target_s(limits, x + PACING_SHIFT[pacing])


def plan_boundaries(
    beats_s: Sequence[float],
    duration_s: float,
    limits: BoundaryLimits = BoundaryLimits(),
    downbeats_s: Sequence[float] = (),
    weak_beats_s: Sequence[float] = (),
    sections: Sequence[Section] = (),
    pacing: str = "auto",
) -> list[tuple[float, float]]:
    """Choose clip boundaries on beats by dynamic programming.

    Returns ``[(start_s, end_s), ...]`` in order, first start 0.0, last end ``duration_s``.
    Clip lengths near the target are preferred (``target_len_s``; with ``sections``, each
    section's ``shot_target_s``; ``pacing`` moves both), clip ends on downbeats are rewarded,
    cuts on ``weak_beats_s`` (grid beats filled in where the tracker found none) are avoided, and
    a clip straddling a section boundary costs more than any other choice (so each section
    boundary is a cut whenever the limits allow one there, else the nearest cut they allow).
    Audio shorter than ``min_len_s`` is a single clip. When no plan fits the limits exactly
    (audio barely long enough for ``min_clips``, beats just off the 3 s marks), the minimum length
    is relaxed by up to one second in quarter-second steps before giving up; cuts always stay on
    beats. Raises ``BoundaryError`` if the grid is too sparse even then.
    """
    if pacing not in PACINGS:
        raise ValueError(f"pacing: {pacing!r} is not a pacing; fix: use one of {', '.join(PACINGS)}")
    error: BoundaryError | None = None
    for relax_s in (0.0, 0.25, 0.5, 0.75, 1.0):
        try:
            return _plan(beats_s, duration_s, limits, downbeats_s, weak_beats_s, relax_s,
                         sections, pacing)
        except BoundaryError as exc:
            error = error or exc
    assert error is not None
    raise error


class _SectionCosts:
    """Per clip: its target length (its section's) and the cost of the section boundaries it
    straddles (none when the song has no sections)."""

    def __init__(self, sections: Sequence[Section], duration_s: float, limits: BoundaryLimits,
                 pacing: str) -> None:
        ordered = sorted(sections, key=lambda s: s.start_s)
        self.starts_s = [s.start_s for s in ordered]
        self.targets_s = [shot_target_s(limits, section_intensity(s, pacing)) for s in ordered]
        self.cuts_s = [s.start_s for s in ordered[1:] if 0.0 < s.start_s < duration_s]
        self.default_s = _unsectioned_target_s(limits, pacing)
        self.duration_s = duration_s

    def target_s(self, start_s: float, end_s: float) -> float:
        if not self.targets_s:
            return self.default_s
        k = bisect.bisect_right(self.starts_s, (start_s + end_s) / 2) - 1
        return self.targets_s[max(0, k)]

    def straddle(self, start_s: float, end_s: float) -> float:
        """The cost of the section boundaries strictly inside ``start_s..end_s``: each is
        ``SECTION_MISS_COST`` plus ``SECTION_MISS_COST_PER_S`` per second to the clip's nearer
        cut (the audio's start and end are no cuts)."""
        cost = 0.0
        k = bisect.bisect_right(self.cuts_s, start_s + SECTION_TOLERANCE_S)
        while k < len(self.cuts_s) and self.cuts_s[k] < end_s - SECTION_TOLERANCE_S:
            t = self.cuts_s[k]
            gaps = [g for g, edge in ((t - start_s, start_s > 0.0),
                                      (end_s - t, end_s < self.duration_s)) if edge]
            cost += SECTION_MISS_COST + SECTION_MISS_COST_PER_S * (min(gaps) if gaps else t)
            k += 1
        return cost


def _plan(
    beats_s: Sequence[float],
    duration_s: float,
    limits: BoundaryLimits,
    downbeats_s: Sequence[float],
    weak_beats_s: Sequence[float],
    relax_s: float,
    sections: Sequence[Section] = (),
    pacing: str = "auto",
) -> list[tuple[float, float]]:
    if duration_s <= 0:
        raise BoundaryError(f"duration_s must be positive, got {duration_s}")
    need = required_clips(duration_s, limits)
    if duration_s < limits.min_len_s or need == 1 and duration_s <= limits.max_len_s:
        return [(0.0, duration_s)]
    lo, hi = max(0.5, limits.min_len_s - relax_s), limits.max_len_s
    if need * lo > duration_s + 1e-9:  # short audio: the clips may be as short as they must be
        lo = duration_s / need
    down = {round(t, 6) for t in downbeats_s}
    weak = {round(t, 6) for t in weak_beats_s}
    inner = sorted({float(t) for t in beats_s if 0.0 < t < duration_s})
    times = [0.0, *inner, float(duration_s)]
    n = len(times)
    eps = 1e-9
    inf = math.inf
    # best[j][k]: least cost reaching node j with k clips (k capped at `need`)
    best = [[inf] * (need + 1) for _ in range(n)]
    back: list[list[tuple[int, int] | None]] = [[None] * (need + 1) for _ in range(n)]
    best[0][0] = 0.0
    song = _SectionCosts(sections, duration_s, limits, pacing)
    for j in range(1, n):
        t_j = times[j]
        # predecessors i with lo <= t_j - t_i <= hi
        i_start = bisect.bisect_left(times, t_j - hi - eps)
        i_stop = bisect.bisect_right(times, t_j - lo + eps)
        key = round(t_j, 6)
        bonus = limits.downbeat_bonus if (j == n - 1 or key in down) else 0.0
        if key in weak and j != n - 1:
            bonus -= limits.weak_penalty
        for i in range(i_start, min(i_stop, j)):
            length = t_j - times[i]
            step = (length - song.target_s(times[i], t_j)) ** 2 - bonus
            if song.cuts_s:
                step += song.straddle(times[i], t_j)
            for k in range(need + 1):
                if best[i][k] == inf:
                    continue
                k2 = min(k + 1, need)
                cost = best[i][k] + step
                if cost < best[j][k2]:
                    best[j][k2] = cost
                    back[j][k2] = (i, k)
    if best[n - 1][need] == inf:
        raise BoundaryError(
            f"no plan of {need}+ clips of {lo:.2f}-{hi:.2f} s fits {duration_s:.2f} s "
            f"on {len(inner)} beats"
        )
    path = [n - 1]
    state: tuple[int, int] | None = (n - 1, need)
    while state is not None and state[0] != 0:
        state = back[state[0]][state[1]]
        assert state is not None
        path.append(state[0])
    path.reverse()
    return [(times[a], times[b]) for a, b in zip(path, path[1:], strict=False)]
