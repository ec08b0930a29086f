"""``make bench``: run every benchmark, print the table, write ``benchmarks/results.json``.

``BENCH_QUICK=1`` runs a smaller version (shorter edits, one pair each) in a few minutes;
``BENCH_ONLY=compose,captions,moviepy,e2e,beats,music,memory,fanout,dagster,edits,queue,queue_pg,overhead``
picks benchmarks (the default: all).
Each benchmark that fails is reported as an error row and the others still run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import compose_bench, e2e_bench, edit_bench, music_eval, orchestration_bench, scale_bench
from benchmarks.common import REPO, Result, Target, load_average, log, machine_info, write_json

RESULTS = REPO / "benchmarks" / "results.json"

FULL = {"compose_6": (6, 30.0, 2), "compose_24": (24, 120.0, 2), "moviepy": (6, 30.0),
        "e2e": (30.0, 3), "beats_s": 180.0, "memory_songs_s": (60.0, 600.0),
        "fanout_latency_s": 2.0, "dagster_repeats": 3, "edits": (120.0, 3), "queue": (8, 20.0, 2)}
QUICK = {"compose_6": (6, 12.0, 1), "compose_24": (24, 48.0, 1), "moviepy": (6, 12.0),
         "e2e": (15.0, 1), "beats_s": 180.0, "memory_songs_s": (30.0, 90.0),
         "fanout_latency_s": 1.0, "dagster_repeats": 3, "edits": (30.0, 1), "queue": (2, 6.0, 2)}


def plan(cfg: dict, work: Path) -> list[tuple[str, object]]:
    n6, s6, r6 = cfg["compose_6"]
    n24, s24, r24 = cfg["compose_24"]
    return [
        ("compose", lambda: compose_bench.compose_vs_bare(f"compose_{n6}_clips", work, n6, s6, r6)),
        ("compose", lambda: compose_bench.compose_vs_bare(f"compose_{n24}_clips", work, n24, s24,
                                                          r24)),
        ("compose", lambda: compose_bench.chunked_vs_single(work, n24, s24, r24)),
        ("captions", lambda: compose_bench.captions_cost(work, n6, s6, max(r6, 2))),
        ("moviepy", lambda: compose_bench.vs_moviepy(work, *cfg["moviepy"])),
        ("e2e", lambda: e2e_bench.end_to_end(work, *cfg["e2e"])),
        ("beats", lambda: e2e_bench.beat_analysis(work, cfg["beats_s"])),
        ("music", lambda: music_eval.music_result()),
        ("memory", lambda: e2e_bench.render_memory(work, cfg["memory_songs_s"])),
        ("fanout", lambda: orchestration_bench.fanout(cfg["fanout_latency_s"])),
        ("dagster", lambda: orchestration_bench.dagster_overhead(cfg["dagster_repeats"])),
        ("edits", lambda: edit_bench.edit_speed(work, *cfg["edits"])),
        ("queue", lambda: scale_bench.queue_throughput(work, *cfg["queue"])),
        ("queue_pg", lambda: scale_bench.queue_throughput(work, *cfg["queue"], profile="postgres")),
        ("overhead", lambda: scale_bench.orchestration_overhead(cfg["dagster_repeats"])),
    ]


def table(results: list[Result]) -> str:
    rows = [("benchmark", "target", "measured", "met")]
    for r in results:
        if r.error and not r.targets:
            rows.append((r.name, "-", f"ERROR: {r.error[:60]}", "no"))
        for t in r.targets:
            measured = "n/a" if t.measured is None else f"{t.measured:g}"
            rows.append((t.name, t.target, measured, "yes" if t.met else "NO"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(data: dict) -> str:
    """The benchmarks README's table: one line per target, from a results.json."""
    lines = ["| benchmark | target | measured | met |", "| --- | --- | --- | --- |"]
    for r in data["results"]:
        for t in r["targets"]:
            measured = "n/a" if t["measured"] is None else f"{t['measured']:g}"
            met = "yes" if t["met"] else f"**no**: {t['why']}"
            lines.append(f"| {r['name']}: {t['name']} | {t['target']} | {measured} | {met} |")
    return "\n".join(lines)


def main() -> int:
    if "--markdown" in sys.argv:
        import json

        print(markdown(json.loads(Path(os.environ.get("BENCH_RESULTS", RESULTS)).read_text())))
        return 0
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    only = {x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",") if x.strip()}
    cfg = QUICK if quick else FULL
    work = Path(tempfile.mkdtemp(prefix="video-assets-bench-"))
    started = time.perf_counter()
    machine = machine_info()
    load_start = load_average()
    log(f"{'quick' if quick else 'full'} run on {machine['cpu_count']} cores "
        f"(load average {load_start}); scratch {work}")
    results: list[Result] = []
    try:
        for kind, job in plan(cfg, work):
            if only and kind not in only:
                continue
            try:
                results.append(job())  # type: ignore[operator]
            except Exception as exc:  # one broken benchmark must not hide the others
                traceback.print_exc()
                name = kind
                results.append(Result(name, error=f"{type(exc).__name__}: {exc}"[:1000],
                                      targets=[Target(name, "runs", None, False,
                                                      f"the benchmark failed: {exc}"[:300])]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    data = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "machine": {**machine, "load_average_start": load_start, "load_average_end": load_average()},
        "total_s": round(time.perf_counter() - started, 1),
        "all_targets_met": all(t.met for r in results for t in r.targets),
        "results": [r.to_json() for r in results],
    }
    out = Path(os.environ.get("BENCH_RESULTS", RESULTS))
    write_json(out, data)
    print(table(results))
    print(f"\n{machine['cpu_count']} cores, {data['mode']} run in {data['total_s']:g} s; "
          f"written to {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
