"""Clip boundaries on the beat grid (pure math, seconds in and out).

Every internal boundary is one of the given beat times; the boundaries cover ``[0, duration_s]``
exactly; each clip lasts ``min_len_s..max_len_s``; there are at least ``min_clips`` clips whenever
the audio is long enough to hold them (``duration_s >= min_clips * min_len_s``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass


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


def plan_boundaries(
    beats_s: Sequence[float],
    duration_s: float,
    limits: BoundaryLimits = BoundaryLimits(),
    downbeats_s: Sequence[float] = (),
    weak_beats_s: Sequence[float] = (),
) -> list[tuple[float, float]]:
    """Choose clip boundaries on beats by dynamic programming.

    Returns ``[(start_s, end_s), ...]`` in order, first start 0.0, last end ``duration_s``.
    Clip lengths near ``target_len_s`` are preferred, clip ends on downbeats are rewarded, and
    cuts on ``weak_beats_s`` (grid beats filled in where the tracker found none) are avoided.
    Audio shorter than ``min_len_s`` is a single clip. When no plan fits the limits exactly
    (audio barely long enough for ``min_clips``, beats just off the 3 s marks), the minimum length
    is relaxed by up to one second in quarter-second steps before giving up; cuts always stay on
    beats. Raises ``BoundaryError`` if the grid is too sparse even then.
    """
    error: BoundaryError | None = None
    for relax_s in (0.0, 0.25, 0.5, 0.75, 1.0):
        try:
            return _plan(beats_s, duration_s, limits, downbeats_s, weak_beats_s, relax_s)
        except BoundaryError as exc:
            error = error or exc
    assert error is not None
    raise error


def _plan(
    beats_s: Sequence[float],
    duration_s: float,
    limits: BoundaryLimits,
    downbeats_s: Sequence[float],
    weak_beats_s: Sequence[float],
    relax_s: float,
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
            step = (length - limits.target_len_s) ** 2 - bonus
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
