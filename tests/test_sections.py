"""Song sections (``media.sections``): boundaries on downbeats, labels, energy, ground truth.

Fast tests use a song synthesized here in numpy (quiet verses and loud, bright choruses on a
known bar grid); the ground-truth tests use the FluidSynth pieces of ``tests/music_corpus.py``
and ``tests/section_corpus.py`` (skipped with the install command when FluidSynth is missing),
scored with ``mir_eval`` as ``benchmarks/section_eval.py`` does.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import mir_eval
import numpy as np
import pytest
from PIL import Image

from tests import music_corpus, section_corpus
from video_assets.media import sections as sec
from video_assets.media.audio import DecodedAudio, synthesize_track
from video_assets.media.plot import SECTION_COLOURS, SIZE_PX, plot_beat_grid
from video_assets.schemas import SECTION_LABELS, BeatGrid, Boundary, Section

SR = 22050
BAR_S = 2.0  # 120 BPM in 4/4
needs_fluidsynth = pytest.mark.skipif(music_corpus.missing_tools() is not None,
                                      reason=f"corpus cannot render: {music_corpus.missing_tools()}")


def _part(bars: int, seed: int, loud: bool) -> np.ndarray:
    """``bars`` bars of the synthesized groove; loud parts add a sawtooth chord and noise hats on
    the eighths (a brighter, denser chorus), quiet parts are the groove at a third of the level."""
    y = synthesize_track(bars * BAR_S, tempo_bpm=120.0, sample_rate=SR, seed=seed)[:, 0].astype(np.float64)
    if not loud:
        return 0.3 * y
    t = np.arange(len(y)) / SR
    saw = sum(2 * ((f * t) % 1.0) - 1 for f in (220.0, 277.2, 329.6))
    rng = np.random.default_rng(seed)
    hats = np.zeros(len(y))
    burst = rng.standard_normal(int(0.03 * SR)) * np.exp(-np.arange(int(0.03 * SR)) / (0.006 * SR))
    for start in range(0, len(y) - len(burst), int(0.25 * SR)):
        hats[start : start + len(burst)] += burst
    return 0.6 * y + 0.08 * saw + 0.15 * hats


FORM = (("verse", 8, False), ("chorus", 8, True), ("verse", 8, False), ("chorus", 8, True))


@pytest.fixture(scope="module")
def structured() -> tuple[DecodedAudio, list[float], list[tuple[float, str]]]:
    """Verse, chorus, verse, chorus (8 bars each, 64 s), its downbeats and true section starts."""
    parts = [_part(bars, 2 if loud else 1, loud) for _, bars, loud in FORM]  # repeats repeat
    y = np.concatenate(parts)
    y = (0.9 * y / np.abs(y).max()).astype(np.float32)
    audio = DecodedAudio(samples=y, sample_rate=SR)
    downbeats = [float(t) for t in np.arange(0.0, audio.duration_s - 1e-6, BAR_S)]
    starts, t = [], 0.0
    for label, bars, _ in FORM:
        starts.append((t, label))
        t += bars * BAR_S
    return audio, downbeats, starts


@pytest.fixture(scope="module")
def found(structured) -> list[Section]:
    audio, downbeats, _ = structured
    return sec.detect_sections(audio, [], downbeats)


def test_section_boundaries_are_downbeats_and_cover_the_song(structured, found) -> None:
    audio, downbeats, _ = structured
    assert found[0].start_s == 0.0 and found[-1].end_s == pytest.approx(audio.duration_s)
    assert [s.start_s for s in found[1:]] == [s.end_s for s in found[:-1]]
    on_grid = {round(t, 6) for t in downbeats}
    assert all(round(s.start_s, 6) in on_grid for s in found[1:]), [s.start_s for s in found]


def test_synthesized_form_is_found_within_a_bar(structured, found) -> None:
    _, _, truth = structured
    assert [round(s.start_s) for s in found] == [round(t) for t, _ in truth]


def test_labels_come_from_the_allowed_set_and_energy_is_0_to_1(found) -> None:
    assert {s.label for s in found} <= set(SECTION_LABELS)
    assert all(0.0 <= s.energy <= 1.0 for s in found)
    assert max(s.energy for s in found) == pytest.approx(1.0)


def test_a_loud_chorus_has_more_energy_than_a_quiet_verse(found) -> None:
    labels = [s.label for s in found]
    assert labels[1] == labels[3] == "chorus", labels
    assert min(found[1].energy, found[3].energy) > max(found[0].energy, found[2].energy) + 0.3


def test_a_steady_loop_is_one_section() -> None:
    y = synthesize_track(64.0, tempo_bpm=120.0, sample_rate=SR)[:, 0]
    audio = DecodedAudio(samples=np.ascontiguousarray(y), sample_rate=SR)
    found = sec.detect_sections(audio, [], [float(t) for t in np.arange(0.0, 64.0, BAR_S)])
    assert len(found) == 1, found


def test_without_downbeats_the_song_is_one_section() -> None:
    audio = DecodedAudio(samples=np.zeros(SR * 5, np.float32), sample_rate=SR)
    assert [(s.start_s, s.end_s) for s in sec.detect_sections(audio, [], [])] == [(0.0, 5.0)]


def test_mfcc_matches_librosa() -> None:
    """The DCT of the dB mel spectrogram is librosa's MFCC (``feature.mfcc`` defaults)."""
    import librosa

    y = synthesize_track(6.0, sample_rate=SR)[:, 0].astype(np.float32)
    ours = sec.frame_features(y, SR)["mfcc"]
    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=sec.HOP)
    theirs = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=sec.N_MFCC)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=0.05 * np.abs(theirs).max())


def _steady(duration_s: float) -> tuple[DecodedAudio, list[float]]:
    y = np.tile(synthesize_track(30.0, sample_rate=SR)[:, 0], int(round(duration_s / 30.0)))
    audio = DecodedAudio(samples=np.ascontiguousarray(y), sample_rate=SR)
    return audio, [float(t) for t in np.arange(0.0, audio.duration_s, BAR_S)]


def _peak_bytes(audio: DecodedAudio, downbeats: list[float]) -> int:
    tracemalloc.start()
    sec.detect_sections(audio, [], downbeats)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak_bytes


def test_a_three_minute_song_takes_under_a_second() -> None:
    audio, downbeats = _steady(180.0)
    sec.detect_sections(audio, [], downbeats)  # warm
    best_s = min(_timed(audio, downbeats) for _ in range(2))
    assert best_s < 1.0, f"{best_s:.2f} s for 180 s of audio"


def _timed(audio: DecodedAudio, downbeats: list[float]) -> float:
    t0 = time.perf_counter()
    sec.detect_sections(audio, [], downbeats)
    return time.perf_counter() - t0


def test_memory_grows_with_the_song_only_as_its_samples_do() -> None:
    """Bar-synchronous work: three times the song costs at most a few copies of the extra
    samples more, not a frame-rate matrix of the song (at 180 s: 3,876 frames square, 120 MB)."""
    short, long = _steady(60.0), _steady(180.0)
    extra_bytes = long[0].samples.nbytes - short[0].samples.nbytes
    growth_bytes = _peak_bytes(*long) - _peak_bytes(*short)
    assert growth_bytes < 3 * extra_bytes, f"peak grew {growth_bytes / 2**20:.0f} MB"


def _grid(duration_s: float, sections: list[Section] | None = None) -> BeatGrid:
    beats = [float(t) for t in np.arange(0.5, duration_s, 0.5)]
    return BeatGrid(duration_s=duration_s, tempo_bpm=120.0, beats_s=beats, downbeats_s=beats[::4],
                    beat_energy=[0.5] * len(beats), method="beats", confidence=0.9, meter=4,
                    boundaries=[Boundary(start_s=0.0, end_s=duration_s)], sections=sections or [])


def test_an_old_beat_grid_json_without_sections_still_loads() -> None:
    old = _grid(10.0).model_dump(mode="json")
    del old["sections"]
    loaded = BeatGrid.model_validate_json(json.dumps(old))
    assert loaded.sections == []


def test_a_section_label_outside_the_set_is_refused() -> None:
    with pytest.raises(ValueError, match="label"):
        Section(start_s=0.0, end_s=1.0, label="hook", energy=0.5)


def test_plot_draws_each_section_as_a_band_of_its_colour(tmp_path: Path) -> None:
    audio = DecodedAudio(samples=np.zeros(SR * 20, np.float32), sample_rate=SR)
    parts = [Section(start_s=0.0, end_s=8.0, label="verse", energy=0.4),
             Section(start_s=8.0, end_s=20.0, label="chorus", energy=1.0)]
    plot_beat_grid(audio, _grid(20.0, parts), tmp_path / "with.png")
    plot_beat_grid(audio, _grid(20.0), tmp_path / "without.png")
    width, height = SIZE_PX
    left, right = 20, width - 20

    def colour_at(path: Path, t_s: float) -> tuple[int, int, int]:
        with Image.open(path) as img:  # between the envelope and the beat ticks
            return img.convert("RGB").getpixel((int(left + (right - left) * t_s / 20.0), height // 2 + 60))

    def hex_rgb(hex_colour: str) -> tuple[int, int, int]:
        return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))

    assert colour_at(tmp_path / "with.png", 4.2) == hex_rgb(SECTION_COLOURS["verse"])
    assert colour_at(tmp_path / "with.png", 14.2) == hex_rgb(SECTION_COLOURS["chorus"])
    assert colour_at(tmp_path / "without.png", 14.2) == (255, 255, 255)


def test_metadata_table_lists_every_section() -> None:
    parts = [Section(start_s=0.0, end_s=8.0, label="intro", energy=0.2),
             Section(start_s=8.0, end_s=20.0, label="drop", energy=1.0)]
    table = sec.sections_table(parts)
    assert "| 1 | 0.00 | 8.00 | 8.00 | intro | 0.20 |" in table
    assert "| 2 | 8.00 | 20.00 | 12.00 | drop | 1.00 |" in table
    assert "no sections" in sec.sections_table([])


# --- ground truth (FluidSynth) -----------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("section_corpus")


def _detect(piece: music_corpus.Piece) -> list[Section]:
    from video_assets.media.audio import decode_mono

    return sec.detect_sections(decode_mono(piece.wav_path), piece.beats_s, piece.downbeats_s)


def _hit_rate(piece: music_corpus.Piece, found: list[Section]) -> float:
    ref = np.array([(s.start_s, s.end_s) for s in piece.sections])
    est = np.array([(s.start_s, s.end_s) for s in found])
    _, recall, _ = mir_eval.segment.detection(ref, est, window=3.0, trim=True)
    return float(recall)


@needs_fluidsynth
@pytest.mark.parametrize("name", ["song_pop", "song_waltz"])
def test_corpus_song_boundaries_hit_within_3s(corpus_dir: Path, name: str) -> None:
    piece = music_corpus.render(name, corpus_dir)
    found = _detect(piece)
    assert _hit_rate(piece, found) >= 0.8, [(s.start_s, s.label) for s in found]
    assert len(found) <= len(piece.sections) + 1


@needs_fluidsynth
def test_corpus_song_labels_follow_the_form(corpus_dir: Path) -> None:
    piece = music_corpus.render("song_pop", corpus_dir)
    assert [s.label for s in _detect(piece)] == [s.label for s in piece.sections]


@needs_fluidsynth
def test_a_steady_electronic_loop_is_one_section(corpus_dir: Path) -> None:
    piece = music_corpus.render("electronic", corpus_dir)
    assert len(_detect(piece)) == 1


@needs_fluidsynth
@pytest.mark.parametrize("name", section_corpus.PIECES)
def test_section_corpus_boundaries_hit_within_3s(corpus_dir: Path, name: str) -> None:
    piece = section_corpus.render(name, corpus_dir)
    found = _detect(piece)
    assert _hit_rate(piece, found) >= 0.8, [(s.start_s, s.label) for s in found]


@needs_fluidsynth
def test_electronic_breaks_and_drops_are_labelled(corpus_dir: Path) -> None:
    piece = section_corpus.render("song_edm", corpus_dir)
    found = _detect(piece)
    assert [s.label for s in found] == [s.label for s in piece.sections]
    drops = [s.energy for s in found if s.label == "drop"]
    breaks = [s.energy for s in found if s.label == "break"]
    assert min(drops) > max(breaks)
