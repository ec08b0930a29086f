"""The product's beat analysis against the ground-truth music corpus (``tests/music_corpus.py``).

For each piece: decode the WAV as the product does (``media.audio.decode_mono``), run
``media.beats.analyze``, and score it with ``mir_eval`` against the piece's exact truth:

- beat F-measure: ``mir_eval.beat.f_measure(ref, est, f_measure_threshold=0.07)`` (70 ms window,
  no trimming of the first seconds);
- downbeat F-measure: the same function on the bar starts;
- section boundaries: ``mir_eval.segment.detection(ref, est, window=3, trim=True)`` (inner
  boundaries only, the trivial start and end are left out) when the product's ``BeatGrid`` has
  ``sections`` and the piece has more than one; otherwise ``n/a``;
- also (JSON only) mir_eval's continuity scores (CMLt: correct metrical level, AMLt: any level,
  i.e. double/half tempo and off-beat count as right), which tell a wrong level from lost beats.

``rows(names, cache)`` returns the scored rows (one dict per piece, keyed by ``"piece"``) for other
evaluations to merge their columns into; ``table(rows)`` prints them.

Usage: ``.venv/bin/python -m benchmarks.music_eval [--cache DIR] [--json PATH] [--pieces a,b]``.
Prints a markdown table on stdout and writes the JSON (default: ``music_eval.json`` in the cache
folder, which defaults to ``$TMPDIR/video_assets_music_corpus``). Needs ``fluidsynth`` and
``fluid-soundfont-gm`` (``apt-get install -y fluidsynth fluid-soundfont-gm``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import mir_eval
import numpy as np

from benchmarks.common import Result, Target, log, machine_info
from tests import music_corpus
from video_assets.media import beats
from video_assets.media.audio import decode_mono
from video_assets.schemas import BeatGrid

BEAT_WINDOW_S = 0.07
SECTION_WINDOW_S = 3.0
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "video_assets_music_corpus"


def _intervals(bounds: list[tuple[float, float]]) -> np.ndarray:
    return np.asarray(bounds, dtype=float).reshape(-1, 2)


def section_scores(piece: music_corpus.Piece, grid: BeatGrid) -> dict | None:
    """Boundary detection within 3 s, or ``None`` when the product or the piece has no sections."""
    if "sections" not in BeatGrid.model_fields or len(piece.sections) < 2:
        return None
    est = grid.sections  # the field issue 17 adds: a list of {start_s, end_s, label, energy}
    ref = _intervals([(s.start_s, s.end_s) for s in piece.sections])
    est_iv = _intervals([(s.start_s, s.end_s) for s in est])
    if est_iv.size == 0:
        return {"precision": 0.0, "recall": 0.0, "f": 0.0, "n_estimated": 0}
    p, r, f = mir_eval.segment.detection(ref, est_iv, window=SECTION_WINDOW_S, trim=True)
    return {"precision": round(p, 4), "recall": round(r, 4), "f": round(f, 4), "n_estimated": len(est)}


def evaluate(piece: music_corpus.Piece) -> dict:
    """Run the product's beat analysis on one piece and score it against the truth."""
    audio = decode_mono(piece.wav_path)
    t0 = time.perf_counter()
    grid = beats.analyze(audio)
    analyze_s = time.perf_counter() - t0
    ref_beats = np.asarray(piece.beats_s)
    est_beats = np.asarray(grid.beats_s)
    ref_down = np.asarray(piece.downbeats_s)
    est_down = np.asarray(grid.downbeats_s)
    beat_f = mir_eval.beat.f_measure(ref_beats, est_beats, f_measure_threshold=BEAT_WINDOW_S)
    down_f = mir_eval.beat.f_measure(ref_down, est_down, f_measure_threshold=BEAT_WINDOW_S)
    cmlc, cmlt, amlc, amlt = mir_eval.beat.continuity(ref_beats, est_beats)
    ref_period_s = float(np.median(np.diff(ref_beats)))
    return {
        "piece": piece.name,
        "description": piece.description,
        "tempo": piece.tempo_label,
        "meter": piece.meter,
        "duration_s": piece.duration_s,
        "n_beats": len(piece.beats_s),
        "n_downbeats": len(piece.downbeats_s),
        "true_median_beat_bpm": round(60.0 / ref_period_s, 2),
        "product": {"method": grid.method, "tempo_bpm": grid.tempo_bpm, "meter": grid.meter,
                    "confidence": grid.confidence, "n_beats": len(grid.beats_s),
                    "n_downbeats": len(grid.downbeats_s), "n_filled_beats": grid.n_filled_beats,
                    "analyze_s": round(analyze_s, 3)},
        "beat_f": round(float(beat_f), 4),
        "downbeat_f": round(float(down_f), 4),
        "beat_continuity": {"CMLc": round(float(cmlc), 4), "CMLt": round(float(cmlt), 4),
                            "AMLc": round(float(amlc), 4), "AMLt": round(float(amlt), 4)},
        "sections": section_scores(piece, grid),
        "true_sections": [{"start_s": s.start_s, "end_s": s.end_s, "label": s.label}
                          for s in piece.sections],
    }


def rows(names: list[str] | tuple[str, ...] = music_corpus.PIECES, cache: Path = DEFAULT_CACHE) -> list[dict]:
    """One scored row per piece (``evaluate``): render (cached), analyse, score. The hook for other
    evaluations to merge their columns into, by ``row["piece"]``."""
    out = []
    for name in names:
        t0 = time.perf_counter()
        out.append(evaluate(music_corpus.render(name, cache)))
        log(f"music_eval: {name}: beat F {out[-1]['beat_f']:.3f}, downbeat F "
            f"{out[-1]['downbeat_f']:.3f} ({time.perf_counter() - t0:.1f} s)")
    return out


def music_result(cache: Path = DEFAULT_CACHE) -> Result:
    """``make bench``'s row: every corpus piece scored (``rows``) and the section pieces of
    ``section_eval``, against the goals: per piece with a beat, beat F >= 0.9 and downbeat F >= 0.8
    (70 ms), and per structured song a section boundary hit rate within 3 s >= 0.8."""
    from benchmarks import section_eval

    reason = music_corpus.missing_tools()
    if reason:
        return Result("music", error=f"skipped: cannot render the corpus: {reason}")
    scored = rows(music_corpus.PIECES, cache)
    sections = section_eval.section_rows(cache)
    targets = []
    for r in scored:
        targets.append(Target.at_least(f"music_{r['piece']}_beat_f", 0.9, round(r["beat_f"], 3)))
        targets.append(Target.at_least(f"music_{r['piece']}_downbeat_f", 0.8,
                                       round(r["downbeat_f"], 3)))
    for r in sections:
        if r["hit_rate"] is not None:
            targets.append(Target.at_least(f"sections_{r['piece']}_hit_rate_3s", 0.8,
                                           round(r["hit_rate"], 3)))
    return Result("music", figures={"pieces": scored, "sections": sections}, targets=targets,
                  method="synthesized MIDI pieces rendered with a General MIDI SoundFont through "
                         "FluidSynth, their beat, downbeat and section times known exactly; "
                         "scored with mir_eval (beats and downbeats: 70 ms; sections: 3 s)")


def table(rows: list[dict]) -> str:
    head = ("piece", "tempo", "meter", "product: tempo, meter, method", "beat F", "downbeat F",
            "sections (F, 3 s)")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for r in rows:
        p = r["product"]
        sections = "n/a" if r["sections"] is None else f"{r['sections']['f']:.2f}"
        cells = (r["piece"], r["tempo"], r["meter"],
                 f"{p['tempo_bpm']:.1f}, {p['meter']}, {p['method']}",
                 f"{r['beat_f']:.3f}", f"{r['downbeat_f']:.3f}", sections)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="corpus cache folder")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument("--pieces", default=",".join(music_corpus.PIECES),
                        help="comma-separated piece names")
    args = parser.parse_args(argv)
    reason = music_corpus.missing_tools()
    if reason:
        print(f"music_eval: cannot render the corpus: {reason}", file=sys.stderr)
        return 2
    scored = rows([n for n in args.pieces.split(",") if n], args.cache)
    print(table(scored))
    out = args.json or args.cache / "music_eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "fluidsynth_latency_s": music_corpus.render_latency_s(args.cache),
        "soundfont": str(music_corpus.find_soundfont()),
        "beat_window_s": BEAT_WINDOW_S,
        "section_window_s": SECTION_WINDOW_S,
        "pieces": scored,
    }, indent=1) + "\n")
    log(f"music_eval: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
