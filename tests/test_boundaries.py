"""Property tests of the boundary math: exact cover, on beats, within limits, enough clips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from video_assets.media.beats import fill_grid
from video_assets.media.boundaries import (
    BoundaryError,
    BoundaryLimits,
    plan_boundaries,
    required_clips,
)

LIMITS = BoundaryLimits()


@st.composite
def beat_grids(draw):
    """A duration, and beats at a tempo of 60-200 BPM with jitter, dropouts and a late start."""
    duration_s = draw(st.floats(min_value=9.0, max_value=600.0))
    period_s = 60.0 / draw(st.floats(min_value=60.0, max_value=200.0))
    start_s = draw(st.floats(min_value=0.0, max_value=3.0))
    jitter = draw(st.floats(min_value=0.0, max_value=0.08))
    drop = draw(st.floats(min_value=0.0, max_value=0.3))
    seed = draw(st.integers(min_value=0, max_value=2**31))
    import random

    rng = random.Random(seed)
    beats, t = [], start_s
    while t < duration_s:
        if rng.random() >= drop:
            beats.append(t + rng.uniform(-jitter, jitter) * period_s)
        t += period_s
    return duration_s, sorted(b for b in beats if 0 < b < duration_s), period_s


def check_plan(bounds, beats, duration_s, limits=LIMITS, min_len_s=None):
    assert bounds[0][0] == 0.0
    assert bounds[-1][1] == duration_s
    for (_a0, b0), (a1, _) in zip(bounds, bounds[1:], strict=False):
        assert b0 == a1  # contiguous: no gap, no overlap
    beat_set = set(beats)
    for a, _ in bounds[1:]:
        assert a in beat_set  # every internal boundary is a beat
    for a, b in bounds:
        lo = limits.min_len_s if min_len_s is None else min_len_s
        assert lo - 1e-9 <= b - a <= limits.max_len_s + 1e-9
    assert len(bounds) >= required_clips(duration_s, limits)


@settings(max_examples=300, deadline=None)
@given(beat_grids())
def test_boundaries_cover_audio_on_beats_within_limits(grid):
    duration_s, tracked, period_s = grid
    beats, _ = fill_grid(tracked, period_s, duration_s)  # what the beat stage hands over
    bounds = plan_boundaries(beats, duration_s, LIMITS)
    # with two beats of slack the limits hold exactly; just above 9 s the minimum may relax
    slack = duration_s >= 9.0 + 2 * period_s
    check_plan(bounds, beats, duration_s, min_len_s=None if slack else LIMITS.min_len_s - 1.0)
    assert len(bounds) >= 3


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=2.0, max_value=8.99), st.floats(min_value=0.3, max_value=1.0))
def test_short_audio_gets_as_many_clips_as_fit(duration_s, period_s):
    beats, _ = fill_grid([], period_s, duration_s)
    bounds = plan_boundaries(beats, duration_s, LIMITS)
    assert bounds[0][0] == 0.0 and bounds[-1][1] == duration_s
    assert len(bounds) >= required_clips(duration_s, LIMITS)
    assert all(b - a <= LIMITS.max_len_s + 1e-9 for a, b in bounds)
    if duration_s >= 6.0:
        assert len(bounds) >= 2


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=9.0, max_value=120.0), st.floats(min_value=0.3, max_value=1.2),
       st.floats(min_value=3.0, max_value=4.0))
def test_configurable_limits(duration_s, period_s, min_len_s):
    limits = BoundaryLimits(min_len_s=min_len_s, max_len_s=2 * min_len_s + 2.0, min_clips=3)
    beats, _ = fill_grid([], period_s, duration_s)
    bounds = plan_boundaries(beats, duration_s, limits)
    slack = duration_s >= 3 * min_len_s + 2 * period_s
    check_plan(bounds, beats, duration_s, limits, None if slack else min_len_s - 1.0)


def test_prefers_downbeats_and_target_length():
    beats = [i * 0.5 for i in range(1, 64)]
    downbeats = [i * 2.0 for i in range(1, 16)]
    bounds = plan_boundaries(beats, 32.0, LIMITS, downbeats)
    assert all(math.isclose(a % 2.0, 0.0, abs_tol=1e-9) for a, _ in bounds[1:])
    assert all(b - a == pytest.approx(4.0) for a, b in bounds)


def test_sparse_grid_raises_clear_error():
    with pytest.raises(BoundaryError, match="no plan of 3"):
        plan_boundaries([15.0], 30.0, LIMITS)


def test_tight_audio_relaxes_minimum_but_keeps_cuts_on_beats():
    beats = [0.03, 0.97, 1.99, 2.98, 4.01, 5.0, 6.03, 6.97, 8.06]
    bounds = plan_boundaries(beats, 9.0, LIMITS)
    check_plan(bounds, beats, 9.0, min_len_s=2.0)
    assert len(bounds) == 3


def test_fill_grid_extends_and_fills_gaps():
    beats, added = fill_grid([2.0, 2.5, 3.0, 6.0, 6.5], 0.5, 8.0)
    assert beats[0] == pytest.approx(0.5)
    assert beats[-1] == pytest.approx(7.5)
    assert all(b - a == pytest.approx(0.5) for a, b in zip(beats, beats[1:], strict=False))
    assert added == len(beats) - 5


def test_invalid_limits_name_the_fix():
    with pytest.raises(ValueError, match="min_len_s"):
        BoundaryLimits(min_len_s=5, max_len_s=4)


def test_cuts_avoid_filled_beats_when_tracked_ones_fit():
    tracked = [0.5 * i for i in range(1, 9)] + [0.5 * i for i in range(17, 60)]  # gap 4.5-8.5 s
    beats, _ = fill_grid(tracked, 0.5, 30.0)
    weak = sorted(set(beats) - set(tracked))
    bounds = plan_boundaries(beats, 30.0, LIMITS, weak_beats_s=weak)
    check_plan(bounds, beats, 30.0)
    assert not {a for a, _ in bounds[1:]} & set(weak)
