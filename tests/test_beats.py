"""Beat analysis on synthesized music with known beats, and the fallback for beatless audio."""

from __future__ import annotations

import numpy as np
import pytest

from video_assets.media.audio import DecodedAudio, decode_mono, synthesize_track, write_wav
from video_assets.media.beats import analyze, fold_tempo

FRAME_S = 1 / 30


def decoded(tmp_path, duration_s, **kwargs) -> DecodedAudio:
    path = tmp_path / "t.wav"
    write_wav(path, synthesize_track(duration_s, **kwargs), 44100)
    return decode_mono(path)


@pytest.mark.parametrize("tempo_bpm", [90.0, 120.0, 150.0])
def test_beats_land_on_the_kicks(tmp_path, tempo_bpm):
    audio = decoded(tmp_path, 30.0, tempo_bpm=tempo_bpm)
    result = analyze(audio)
    assert result.method == "beats"
    assert result.confidence > 0.5
    assert result.tempo_bpm == pytest.approx(tempo_bpm, rel=0.03)
    assert result.meter == 4
    period = 60.0 / tempo_bpm
    kicks = np.arange(0, 30.0, period)
    errors = [np.min(np.abs(kicks - b)) for b in result.beats_s]
    assert np.median(errors) < FRAME_S  # beats sit on the synthesized kicks
    # every internal boundary is a beat, and the boundaries cover the audio exactly
    assert result.boundaries[0].start_s == 0.0
    assert result.boundaries[-1].end_s == pytest.approx(audio.duration_s)
    assert all(b.start_s in result.beats_s for b in result.boundaries[1:])
    assert all(3.0 - 1e-6 <= b.length_s <= 7.0 + 1e-6 for b in result.boundaries)


def test_beatless_audio_falls_back_to_a_tempo_grid(tmp_path):
    audio = decoded(tmp_path, 40.0, tempo_bpm=70.0, beatless=True)
    result = analyze(audio)
    assert result.method == "tempo_fallback"
    assert result.confidence < 0.2
    assert 60.0 <= result.tempo_bpm <= 180.0
    ibi = np.diff(result.beats_s)
    assert np.allclose(ibi, 60.0 / result.tempo_bpm, atol=1e-3)  # an even grid
    assert len(result.boundaries) >= 3


def test_waltz_meter_and_downbeats(tmp_path):
    audio = decoded(tmp_path, 30.0, tempo_bpm=96.0, meter=3)
    result = analyze(audio)
    assert result.method == "beats"
    assert result.meter == 3
    bar_s = 3 * 60.0 / 96.0
    downbeats = np.arange(0, 30.0, bar_s)
    errors = [np.min(np.abs(downbeats - d)) for d in result.downbeats_s]
    assert np.median(errors) < 0.1


def test_fold_tempo():
    assert fold_tempo(40.0) == 80.0
    assert fold_tempo(400.0) == 100.0
    assert fold_tempo(0.0) == 120.0


def _pads_with_swells(duration_s: float, sr: int = 22050) -> np.ndarray:
    """Overlapping chord pads with slow sin^2 swells: a smooth onset curve, no pulse."""
    t = np.arange(int(duration_s * sr)) / sr
    y = np.zeros_like(t)
    chords = [[146.8, 220.0, 293.7], [116.5, 174.6, 233.1], [130.8, 196.0, 261.6]]
    for i in range(int(duration_s // 6) + 1):
        start, length = i * 6.0 - 1.5, 9.0
        env = np.where((t >= start) & (t < start + length),
                       np.sin(np.pi * np.clip((t - start) / length, 0, 1)) ** 2, 0.0)
        for f in chords[i % 3]:
            y += env * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t + 1.0))
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


def _speech_like(duration_s: float, sr: int = 22050) -> np.ndarray:
    """Noise syllables of random length and spacing."""
    rng = np.random.default_rng(1)
    y = np.zeros(int(duration_s * sr))
    i = 0
    while i < len(y) - sr:
        n = int(rng.uniform(0.1, 0.4) * sr)
        y[i : i + n] += rng.standard_normal(n) * np.hanning(n) * 0.3
        i += n + int(rng.uniform(0.05, 0.5) * sr)
    return y.astype(np.float32)


@pytest.mark.parametrize("make", [_pads_with_swells, _speech_like])
def test_pads_and_speech_have_no_confident_beat(make):
    result = analyze(DecodedAudio(samples=make(40.0), sample_rate=22050))
    assert result.method == "tempo_fallback", result.confidence
    assert len(result.boundaries) >= 3


def test_beat_grid_plot_marks_every_boundary_without_matplotlib(tmp_path):
    """The PNG is drawn with Pillow: boundaries are orange full-height lines where they fall,
    and a fresh process that loads the pipeline and plots never imports matplotlib."""
    import json
    import subprocess
    import sys

    from PIL import Image

    from video_assets.media.plot import SIZE_PX

    song = tmp_path / "s.wav"
    write_wav(song, synthesize_track(12.0, tempo_bpm=120.0), 44100)
    out = tmp_path / "grid.png"
    code = ("import sys, json\n"
            "import video_assets.definitions\n"
            "from video_assets.media.audio import decode_mono\n"
            "from video_assets.media import beats\n"
            "from video_assets.media.plot import plot_beat_grid\n"
            f"a = decode_mono({str(song)!r}); grid = beats.analyze(a)\n"
            f"plot_beat_grid(a, grid, {str(out)!r})\n"
            "print(json.dumps([[b.start_s for b in grid.boundaries], grid.duration_s,\n"
            "                  'matplotlib' in sys.modules]))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    starts, duration_s, imported = json.loads(run.stdout.strip().splitlines()[-1])
    assert imported is False
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert img.shape == (SIZE_PX[1], SIZE_PX[0], 3)
    orange = (abs(img[..., 0] - 0xFF) < 20) & (abs(img[..., 1] - 0x7F) < 20) & (img[..., 2] < 40)
    columns = np.flatnonzero(orange.sum(axis=0) > 200)  # a line across the plot's height
    expected = [20 + (SIZE_PX[0] - 40) * s / duration_s for s in starts[1:]]
    assert len(starts) >= 3
    for x in expected:
        assert np.min(np.abs(columns - x)) <= 1.5, (x, columns)
    assert all(np.min(np.abs(np.array(expected) - c)) <= 1.5 for c in columns)
