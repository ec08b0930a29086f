"""The right metrical level and downbeats on music with known truth, and analysis memory that does
not grow with the song.

The corpus tests render ``tests/music_corpus.py`` (FluidSynth and a General MIDI SoundFont; skipped
with the install hint otherwise) and score ``beats.analyze`` with ``mir_eval`` as
``benchmarks/music_eval.py`` does: the issue's goals are beat F >= 0.9 and downbeat F >= 0.8 (70 ms).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from tests import music_corpus
from video_assets.media.audio import DecodedAudio, synthesize_track
from video_assets.media.beats import analyze

SR = 22050


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("music_corpus_meter")


@pytest.mark.skipif(music_corpus.missing_tools() is not None,
                    reason=f"music corpus cannot render: {music_corpus.missing_tools()}")
@pytest.mark.parametrize("name", music_corpus.PIECES)
def test_corpus_piece_meets_the_beat_and_downbeat_goals(corpus_dir: Path, name: str) -> None:
    from benchmarks.music_eval import evaluate

    row = evaluate(music_corpus.render(name, corpus_dir))
    assert row["beat_f"] >= 0.9, row
    assert row["downbeat_f"] >= 0.8, row


@pytest.mark.parametrize("tempo_bpm", [90.0, 110.0, 130.0, 150.0, 170.0])
def test_downbeats_on_the_louder_kick_at_any_tempo(tempo_bpm):
    """4/4 with a kick on every beat, the bar's first one louder, chords lasting two bars: the
    downbeats are the loud kicks (the kick's level is part of the accent, not only its rise)."""
    import mir_eval

    y = synthesize_track(30.0, tempo_bpm=tempo_bpm, sample_rate=SR, seed=int(tempo_bpm)).mean(axis=1)
    grid = analyze(DecodedAudio(samples=y, sample_rate=SR))
    assert grid.meter == 4
    bars = np.arange(0.0, 30.0, 4 * 60.0 / tempo_bpm)
    assert mir_eval.beat.f_measure(bars, np.asarray(grid.downbeats_s), f_measure_threshold=0.07) >= 0.9


def _peak_bytes(duration_s: float, base: np.ndarray) -> tuple[int, int]:
    """Peak traced allocation while analysing ``base`` repeated to ``duration_s`` (the samples
    themselves are allocated before tracing starts) and the samples' size."""
    y = np.resize(base, int(duration_s * SR)).astype(np.float32)
    audio = DecodedAudio(samples=y, sample_rate=SR)
    tracemalloc.start()
    try:
        analyze(audio)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, y.nbytes


def test_analysis_memory_does_not_grow_with_the_song():
    """From 1 to 8 minutes, the analysis may add at most a quarter of the extra samples' size
    (a whole-song spectrogram is twice it; the per-frame envelopes and chroma are a few percent)."""
    base = synthesize_track(20.0, tempo_bpm=120.0, sample_rate=SR).mean(axis=1)
    short_peak, short_bytes = _peak_bytes(60.0, base)
    long_peak, long_bytes = _peak_bytes(480.0, base)
    growth = long_peak - short_peak
    assert growth < 0.25 * (long_bytes - short_bytes), (short_peak, long_peak, long_bytes)
