"""Clip fan-out and Dagster's own overhead, each in a fresh process (``python -m
benchmarks.orchestration_bench fanout|dagster ...`` prints one JSON line).

fan-out: the real ``clips`` asset (thread pool, ledger, content cache, media store) with a stand-in
video provider that answers after a fixed latency ``L`` (it sleeps, then hands back a pre-made
clip, as a remote model would after its queue), for 8 scenes at concurrency 1, 4 and 8. The hook
lives here: ``video_assets.assets.clips.video_provider`` is replaced in this process only; no
provider module is touched.

dagster: the whole render graph (same asset keys, dependencies, partitions and checks) with
trivial stage bodies, run in process as a render runs.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import PYTHON, REPO, Result, Target, log, run_child

N_FANOUT_CLIPS = 8


class FixedLatencyVideo:
    """A video provider that takes exactly ``latency_s`` per call and returns a ready clip."""

    name = "standin"
    version = "1"
    allowed_durations_s = (5.0, 10.0)
    paid = False

    def __init__(self, latency_s: float, templates: dict[float, Path], nonce: str) -> None:
        self.latency_s = latency_s
        self.templates = templates
        self.model = f"fixed-latency-{nonce}"  # a new model name per run: no cache hits

    def output_size(self, target_size: tuple[int, int]) -> tuple[int, int]:
        return (720, 1280)

    def generate(self, image_path, scene, duration_s, beats_s, size, out_path) -> None:
        time.sleep(self.latency_s)
        shutil.copyfile(self.templates[duration_s], out_path)


def _home(tmp: Path) -> Path:
    import os

    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.pop("VIDEO_ASSETS_WAREHOUSE", None)
    os.environ.pop("VIDEO_ASSETS_BUCKET", None)
    return home


def _step_seconds(instance, run_id: str, step: str) -> float:
    from dagster import DagsterEventType

    start = end = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key != step:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            start = record.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            end = record.timestamp
    if start is None or end is None:
        raise RuntimeError(f"step {step} of run {run_id} did not succeed")
    return end - start


def fanout_child(latency_s: float, concurrencies: list[int]) -> dict:
    """Stage a job whose plan has 8 scenes, materialize everything up to the storyboard once,
    then the ``clips`` asset once per concurrency."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    _home(tmp)
    from dagster import DagsterInstance, materialize

    import video_assets.assets.clips as clips_module
    from video_assets.admission import check_audio, stage, validate_request
    from video_assets.definitions import STAGES
    from video_assets.media.audio import synthesize_track, write_wav
    from video_assets.partitions import JOBS_PARTITION_NAME
    from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
    from video_assets.store import job_key

    if not hasattr(clips_module, "video_provider"):
        raise RuntimeError("video_assets.assets.clips.video_provider is gone: update the fan-out "
                           "benchmark's hook (benchmarks/orchestration_bench.py)")
    templates = {}
    for d in FixedLatencyVideo.allowed_durations_s:
        path = tmp / f"template-{d:g}.mp4"
        from video_assets.media.ffmpeg_bin import run_ffmpeg

        run_ffmpeg(["-y", "-f", "lavfi", "-i", f"testsrc2=s=720x1280:r=30:d={d}", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], what="template clip")
        templates[d] = path
    song = tmp / "song.wav"
    write_wav(song, synthesize_track(30.0, tempo_bpm=120.0), 44100)
    request = validate_request({"prompt": "Neon city at night, a lone skater", "audio": str(song)},
                               "bench")
    job_id = "fanout-bench"
    stage(StoreResource().get(), job_id, request, song.name, song, check_audio(song, "bench"))
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(JOBS_PARTITION_NAME, [job_id])
    resources = {"store": StoreResource(), "warehouse": WarehouseResource()}
    def named(name: str):
        return next(a for a in STAGES if name in {k.to_user_string() for k in a.keys})

    upstream = [named(n) for n in ("job_request", "beat_grid", "lyrics", "script", "storyboard")]
    clips_asset = named("clips")
    materialize(upstream, partition_key=job_id, instance=instance,
                resources={**resources, "settings": PipelineSettings()})
    plan = StoreResource().get().get_json(job_key(job_id, "script.json"))
    n_scenes = len(plan["scenes"])
    out = {"n_clips": n_scenes, "latency_s": latency_s, "runs": []}
    for c in concurrencies:
        provider = FixedLatencyVideo(latency_s, templates, nonce=f"c{c}-{time.time_ns()}")
        clips_module.video_provider = lambda *a, _p=provider, **k: _p
        settings = PipelineSettings(clip_workers=c, provider_concurrency=c)
        started = time.perf_counter()
        result = materialize([clips_asset, *upstream], selection=[clips_asset], partition_key=job_id,
                             instance=instance, resources={**resources, "settings": settings})
        run_s = time.perf_counter() - started
        step_s = _step_seconds(instance, result.run_id, "clips")
        ideal_s = math.ceil(n_scenes / c) * latency_s
        out["runs"].append({"concurrency": c, "clip_stage_s": round(step_s, 3),
                            "dagster_run_s": round(run_s, 3), "ideal_s": ideal_s,
                            "excess_s": round(step_s - ideal_s, 3)})
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def dagster_child(repeats: int) -> dict:
    """The render graph's shape with trivial bodies, run in process ``repeats`` times."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-dagster-"))
    _home(tmp)
    t0 = time.perf_counter()
    from dagster import (
        AssetCheckResult,
        DagsterInstance,
        Definitions,
        MaterializeResult,
        define_asset_job,
        in_process_executor,
        multi_asset,
    )

    from video_assets.definitions import STAGES
    from video_assets.partitions import JOBS_PARTITION_NAME, jobs_partitions

    import_s = time.perf_counter() - t0

    def trivial(stage):
        specs = list(stage.specs)
        checks = list(stage.check_specs)

        @multi_asset(name=f"trivial_{stage.node_def.name}", specs=specs, check_specs=checks,
                     partitions_def=jobs_partitions, can_subset=False)
        def body():
            for spec in specs:
                yield MaterializeResult(asset_key=spec.key, metadata={"trivial": True})
            for check in checks:
                yield AssetCheckResult(asset_key=check.asset_key, check_name=check.name,
                                       passed=True)

        return body

    t1 = time.perf_counter()
    assets = [trivial(s) for s in STAGES]
    job = define_asset_job("trivial_render", executor_def=in_process_executor)
    defs = Definitions(assets=assets, jobs=[job])
    resolved = defs.resolve_job_def("trivial_render")
    build_s = time.perf_counter() - t1
    instance = DagsterInstance.get()
    runs_s = []
    for i in range(repeats):
        job_id = f"trivial-{i}"
        instance.add_dynamic_partitions(JOBS_PARTITION_NAME, [job_id])
        started = time.perf_counter()
        result = resolved.execute_in_process(instance=instance, partition_key=job_id)
        runs_s.append(time.perf_counter() - started)
        assert result.success
    shutil.rmtree(tmp, ignore_errors=True)
    return {"import_s": round(import_s, 3), "definitions_s": round(build_s, 3),
            "run_s": [round(x, 3) for x in runs_s], "n_steps": len(STAGES)}


def fanout(latency_s: float, concurrencies: tuple[int, ...] = (1, 4, 8)) -> Result:
    log(f"fan-out: clip stage, 8 scenes, provider latency {latency_s:g} s, "
        f"concurrency {', '.join(map(str, concurrencies))}")
    run = run_child([PYTHON, "-m", "benchmarks.orchestration_bench", "fanout", str(latency_s),
                     *map(str, concurrencies)], cwd=REPO)
    data = json.loads(run.stdout.strip().splitlines()[-1])
    result = Result("fan_out", figures=data, method=(
        "the real clips asset materialized by Dagster with a stand-in provider of fixed latency "
        "L (sleep L, then copy a ready clip); clip_stage_s = the step's STEP_START..STEP_SUCCESS, "
        "ideal = ceil(n/c) * L; clip_workers = provider_concurrency = c"))
    for r in data["runs"]:
        log(f"fan-out: c={r['concurrency']}: {r['clip_stage_s']:.2f} s (ideal {r['ideal_s']:g} s)")
        result.targets.append(Target.at_most(
            f"fan_out_c{r['concurrency']}_excess_s", 1.5, r["excess_s"], unit=" s",
            why_missed="per-clip work outside the provider call (hashing, cache copy, ledger) "
                       "or thread start-up"))
    return result


def dagster_overhead(repeats: int = 3) -> Result:
    log("dagster: the render graph with trivial stage bodies, in process")
    run = run_child([PYTHON, "-m", "benchmarks.orchestration_bench", "dagster", str(repeats)],
                    cwd=REPO)
    data = json.loads(run.stdout.strip().splitlines()[-1])
    first, steady = data["run_s"][0], min(data["run_s"][1:] or data["run_s"])
    data.update(first_run_s=first, steady_run_s=steady, process_wall_s=round(run.wall_s, 2))
    log(f"dagster: first run {first:.2f} s, later runs {steady:.2f} s "
        f"(import {data['import_s']:.2f} s)")
    result = Result("dagster_overhead", figures=data, method=(
        "execute_in_process of the render job's graph (same assets, deps, partitions, checks; "
        "bodies only yield their results) on a fresh sqlite instance; first_run_s is the first "
        "run in the process, steady_run_s the best later one; imports reported apart"))
    result.targets = [Target.at_most("dagster_overhead_s", 3.0, first, unit=" s",
                                     why_missed="Dagster's per-run event writes to sqlite")]
    return result


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "fanout":
        print(json.dumps(fanout_child(float(sys.argv[2]), [int(x) for x in sys.argv[3:]])))
    elif kind == "dagster":
        print(json.dumps(dagster_child(int(sys.argv[2]))))
    else:
        raise SystemExit(f"unknown benchmark {kind!r}")
