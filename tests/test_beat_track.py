"""The ported onset normalisation and local score are librosa's bit for bit, and analyze never imports
librosa.beat (the curve tracker itself: tests/test_tempo_curve.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest


def test_analyze_does_not_import_librosa_beat():
    code = (
        "import sys\n"
        "from video_assets.media.audio import DecodedAudio, synthesize_track\n"
        "from video_assets.media.beats import analyze\n"
        "y = synthesize_track(8.0, tempo_bpm=120.0, sample_rate=22050).mean(axis=1)\n"
        "grid = analyze(DecodedAudio(samples=y.astype('float32'), sample_rate=22050))\n"
        "assert grid.method == 'beats', grid.method\n"
        "print('librosa.beat' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("seed", "frames_per_beat"), [(0, 22.0), (1, 43.0), (2, 87.0)])
def test_intermediate_arrays_are_bit_identical(seed, frames_per_beat):
    """Local score and DP (cumulative score, backlinks) equal librosa's private gufuncs bit for bit.

    Beat frames hide most rounding differences; this catches them (at 87 frames per beat, squaring
    the log ratio with Python's ``x ** 2``, i.e. libm pow, instead of numba's ``x * x`` changes a score).
    """
    import librosa.beat

    from video_assets.media import beat_track as port

    def private(name: str):  # module-level dunder names are not mangled
        return getattr(librosa.beat, name)

    rng = np.random.default_rng(seed)
    onset_env = np.abs(rng.standard_normal(2000)).astype(np.float32) ** 2
    onset_norm = private("__normalize_onsets")(onset_env)
    np.testing.assert_array_equal(port.normalize_onsets(onset_env), onset_norm)
    local = private("__beat_local_score")(onset_norm, np.array([frames_per_beat]))
    np.testing.assert_array_equal(port.local_score(onset_norm, frames_per_beat), local)
