"""Edits against full renders: ``videogen edit`` of one scene's prompt, and a reorder, of a long
offline job, as fractions of that job's full render time (wall, medians, one run).

The full renders are fresh jobs of the same song (a new prompt each, so nothing is reused from
the content cache); the edits are made one after another on the first of them, each a fresh
``videogen`` process as a user runs it (Python start-up, imports and the Dagster run of
``edit_job`` included). A prompt edit makes one image and one clip again and re-encodes the
chunks that show that scene; a reorder makes nothing and re-encodes the chunks of the slots whose
pictures changed: two for a scene moved one place (the target), every slot in between for one
moved across half the video (reported beside it).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import Result, Target, log, median, run_child
from benchmarks.e2e_bench import PROMPTS, VIDEOGEN, bench_folder, make_song, render

PROMPT_EDITS = ("a paper lantern rising over the rooftops", "a cat watching the rain",
                "a bicycle bell glinting in the sun")


def edit(job_id: str, env: dict[str, str], *args: str) -> tuple[float, dict]:
    run = run_child([VIDEOGEN, "edit", job_id, *args, "--json"], env=env)
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    if summary["status"] != "done":
        raise RuntimeError(f"edit {args} ended {summary['status']}: {summary}")
    return run.wall_s, summary


def edit_speed(work: Path, song_s: float, repeats: int) -> Result:
    folder = work / "edits"
    song, _, env = bench_folder(folder, song_s)
    make_song(folder / "warmup.wav", 8.0)
    render(folder / "warmup.wav", "warm-up", env)  # the numba cache and the OS file cache

    full_s, jobs = [], []
    for r in range(repeats):
        wall_s, summary = render(song, f"{PROMPTS[r % len(PROMPTS)]} (edit bench {r + 1})", env)
        full_s.append(wall_s)
        jobs.append(summary)
        log(f"edits: full render {r + 1}/{repeats}: {wall_s:.1f} s, {summary['clips']} scenes")
    job, n = jobs[0]["job_id"], jobs[0]["clips"]
    prompt_s, reorder_s, paid = [], [], []
    for r in range(repeats):
        scene = 1 + (r * 7 + n // 3) % n
        wall_s, summary = edit(job, env, "prompt", str(scene), PROMPT_EDITS[r % len(PROMPT_EDITS)])
        prompt_s.append(wall_s)
        paid.append(summary["paid_calls"])
        log(f"edits: prompt of scene {scene}: {wall_s:.1f} s (version {summary['version']})")
    for r in range(repeats):  # a scene moved one place: two slots change pictures
        scene = 1 + (r * 5 + 2) % (n - 1)
        wall_s, summary = edit(job, env, "reorder", str(scene), "--to", str(scene + 1))
        reorder_s.append(wall_s)
        log(f"edits: reorder {scene} -> {scene + 1}: {wall_s:.1f} s (version {summary['version']})")
    # a scene moved across half the video: every slot in between changes its picture
    far_s, summary = edit(job, env, "reorder", "1", "--to", str(1 + n // 2))
    log(f"edits: reorder 1 -> {1 + n // 2}: {far_s:.1f} s (version {summary['version']})")
    full, prompt, reorder = median(full_s), median(prompt_s), median(reorder_s)
    return Result("edits", figures={
        "song_s": song_s,
        "n_scenes": n,
        "full_render_s": [round(x, 2) for x in full_s],
        "prompt_edit_s": [round(x, 2) for x in prompt_s],
        "reorder_s": [round(x, 2) for x in reorder_s],
        "reorder_across_half_s": round(far_s, 2),
        "prompt_edit_ratio": round(prompt / full, 3),
        "reorder_ratio": round(reorder / full, 3),
        "paid_calls": paid,
    }, targets=[
        Target.at_most("edit one scene's prompt / full render (wall, medians)", 0.15,
                       round(prompt / full, 3)),
        Target.at_most("reorder by one place / full render (wall, medians)", 0.10,
                       round(reorder / full, 3)),
    ])
