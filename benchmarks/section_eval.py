"""Song sections (``media.sections.detect_sections``) against pieces whose form is known exactly.

Pieces: the two songs of ``tests/music_corpus.py`` (``song_pop``, ``song_waltz``), the three of
``tests/section_corpus.py`` (``song_bridge``, ``song_long``: the three-minute song, ``song_edm``)
and, as the check that music without a form is not cut up, two steady pieces of the music corpus
(``electronic``, ``march``: one section each). For each piece the WAV is decoded as the product
does, the product's beat analysis (``media.beats.analyze``) gives the downbeats, and
``detect_sections`` runs on them; its boundaries are scored with
``mir_eval.segment.detection(ref, est, window=3, trim=True)`` (inner boundaries only: the trivial
start and end are left out):

- hit rate: the fraction of true boundaries with a detected one within 3 s (mir_eval's recall);
- F: the F-measure of that matching (precision counts detected boundaries that match a true one);
- labels: the fraction of the true sections' time whose detected label is the true one;
- ``detect_s``: the seconds ``detect_sections`` took (warm; the beat analysis is not included).

``section_rows()`` returns one dict per piece; ``python -m benchmarks.section_eval [--cache DIR]
[--pieces a,b]`` prints them as a markdown table. Needs ``fluidsynth`` and ``fluid-soundfont-gm``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import mir_eval
import numpy as np

from tests import music_corpus, section_corpus
from video_assets.media import beats
from video_assets.media.audio import decode_mono
from video_assets.media.sections import detect_sections
from video_assets.schemas import Section

WINDOW_S = 3.0
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "video_assets_music_corpus"
PIECES = ("song_pop", "song_waltz", *section_corpus.PIECES, "electronic", "march")


def render(name: str, folder: Path) -> music_corpus.Piece:
    corpus = section_corpus if name in section_corpus.PIECES else music_corpus
    return corpus.render(name, folder)


def label_agreement(truth: list[music_corpus.Section], found: list[Section]) -> float:
    """The fraction of the piece's time (by the true sections) labelled as the truth labels it."""
    total = agree = 0.0
    for ref in truth:
        total += ref.end_s - ref.start_s
        for est in found:
            overlap = min(ref.end_s, est.end_s) - max(ref.start_s, est.start_s)
            if overlap > 0 and est.label == ref.label:
                agree += overlap
    return agree / total if total > 0 else 0.0


def evaluate(piece: music_corpus.Piece) -> dict:
    """Detect the piece's sections on the product's downbeats and score them against the truth."""
    audio = decode_mono(piece.wav_path)
    grid = beats.analyze(audio)
    detect_sections(audio, grid.beats_s, grid.downbeats_s)  # warm-up (first-call allocations)
    t0 = time.perf_counter()
    found = detect_sections(audio, grid.beats_s, grid.downbeats_s)
    detect_s = time.perf_counter() - t0
    ref = np.array([(s.start_s, s.end_s) for s in piece.sections])
    est = np.array([(s.start_s, s.end_s) for s in found])
    if len(piece.sections) > 1:
        precision, hit_rate, f = mir_eval.segment.detection(ref, est, window=WINDOW_S, trim=True)
    else:
        precision = hit_rate = f = None  # no inner boundary to find: count the sections instead
    return {
        "piece": piece.name,
        "duration_s": round(piece.duration_s, 1),
        "n_true": len(piece.sections),
        "n_found": len(found),
        "hit_rate": None if hit_rate is None else round(float(hit_rate), 3),
        "f": None if f is None else round(float(f), 3),
        "precision": None if precision is None else round(float(precision), 3),
        "labels": round(label_agreement(piece.sections, found), 3),
        "true_form": " ".join(s.label for s in piece.sections),
        "found_form": " ".join(s.label for s in found),
        "detect_s": round(detect_s, 3),
    }


def section_rows(cache: str | Path = DEFAULT_CACHE, pieces: tuple[str, ...] = PIECES) -> list[dict]:
    """One row per piece: boundary hit rate and F within 3 s, sections found vs true, labels."""
    reason = music_corpus.missing_tools()
    if reason:
        raise RuntimeError(f"section_eval: cannot render the corpus: {reason}")
    return [evaluate(render(name, Path(cache))) for name in pieces]


def table(rows: list[dict]) -> str:
    head = ("piece", "length", "hit rate (3 s)", "F (3 s)", "sections found / true", "labels right",
            "found form", "detect")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for r in rows:
        cells = (r["piece"], f"{r['duration_s']:.0f} s",
                 "n/a" if r["hit_rate"] is None else f"{r['hit_rate']:.2f}",
                 "n/a" if r["f"] is None else f"{r['f']:.2f}", f"{r['n_found']} / {r['n_true']}",
                 f"{r['labels']:.0%}", r["found_form"], f"{r['detect_s']:.2f} s")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="corpus cache folder")
    parser.add_argument("--pieces", default=",".join(PIECES), help="comma-separated piece names")
    args = parser.parse_args(argv)
    try:
        rows = section_rows(args.cache, tuple(n for n in args.pieces.split(",") if n))
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
