"""``videogen``: render, submit, ingest, retry, dev and demo, all through the same Dagster asset
graph, on the instance of the profile (``VIDEO_ASSETS_PROFILE``, video_assets/profiles.py).

Exit codes: 0 success, 2 bad input (message on stderr), 1 a stage failed (the stage is named),
130 / 143 a render stopped by SIGINT / SIGTERM (or ``videogen cancel``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from video_assets.job_lock import JobBusy
from video_assets.schemas import PROVIDER_CAPABILITIES, PROVIDER_KEYS, REAL_PROVIDERS

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEMO_PROMPT = "Neon city at night, a lone skater chasing the sunrise"


def _err(message: str) -> None:
    print(f"videogen: {message}", file=sys.stderr)


# request fields set by a flag of another name
FIELD_FLAGS = {"captions.source": "captions", "captions.style": "caption-style",
               "captions.font": "caption-style"}


def flag_message(exc) -> str:
    """A ``RequestError`` of a command line's request, named by its flag (``--lyrics: ...``)."""
    return f"--{FIELD_FLAGS.get(exc.field, exc.field)}: {exc.message}"


def caption_source(value: str) -> str:
    """``--captions SOURCE``: one of the caption sources, or argparse's exit 2 with the fix."""
    from typing import get_args

    from video_assets.captions import CaptionSource

    if value not in get_args(CaptionSource):
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a caption source; fix: use one "
                                         f"of {' | '.join(get_args(CaptionSource))}")
    return value


def caption_style(value: str) -> str:
    """``--caption-style PRESET``: one of the caption presets, or argparse's exit 2 with the fix."""
    from video_assets.media.subtitles import PRESETS

    if value not in PRESETS:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a caption style; fix: use one "
                                         f"of {' | '.join(PRESETS)}")
    return value


def add_caption_flags(parser: argparse.ArgumentParser, again: bool = False) -> None:
    """``--lyrics``, ``--captions`` and ``--caption-style`` (render; rerender: ``again``)."""
    parser.add_argument("--lyrics", metavar="FILE", help="the song's words, plain text or LRC "
                        "([mm:ss.xx] line times, <mm:ss.xx> word times); works offline"
                        + ("; replaces the job's lyrics" if again else ""))
    parser.add_argument("--captions", type=caption_source, metavar="SOURCE",
                        help="auto | lyrics | transcript | voiceover | custom | off: where the "
                        "words on screen come from (auto: the lyrics file, else the transcript, "
                        "else an ad's voiceover; none: no captions)")
    parser.add_argument("--caption-style", dest="caption_style", type=caption_style,
                        metavar="PRESET", help="karaoke | bold_pop | minimal | lower_third "
                        "(default: the flavor's)")


def caption_fields(args: argparse.Namespace, current: dict | None = None) -> dict[str, Any]:
    """The request's ``captions`` with the caption flags given applied (to ``current``)."""
    given = {k: v for k, v in (("source", getattr(args, "captions", None)),
                               ("style", getattr(args, "caption_style", None))) if v is not None}
    return {**(current or {}), **given}


def _instance():
    """The Dagster instance of the profile (``VIDEO_ASSETS_PROFILE``: video_assets/profiles.py);
    a ``ProfileError`` (exit 2, the message names the variable and the fix) when it cannot be
    used."""
    from video_assets.profiles import instance

    return instance()


@contextlib.contextmanager
def held_job(job_id: str) -> Iterator[None]:
    """Hold ``job_id`` for one run in this process (``JobBusy`` if another run has it), after
    failing the runs whose worker died (no daemon may be running), so a dead run of the job does
    not read as in progress. Held before anything of the job is staged or run."""
    from video_assets.job_lock import hold_job
    from video_assets.monitor import sweep_dead_runs
    from video_assets.resources import WarehouseResource

    instance = _instance()
    for dead in sweep_dead_runs(instance, WarehouseResource().get()):
        _err(dead.describe())
    with hold_job(instance, job_id):
        yield


def execute_job(job_id: str, tags: dict[str, str] | None = None,
                log_level: str = "INFO", verbose: bool = False, job_name: str | None = None,
                ops_config: dict[str, Any] | None = None,
                stages: list[str] | None = None) -> dict[str, Any]:
    """Materialize every stage of one job in this process (the caller holds the job:
    ``held_job``); return the summary dict. ``job_name``: ``edit_job`` for an edit (default: the
    render job); ``ops_config``: the run config of its assets (the edits, for ``script``);
    ``stages``: only these assets (a retry: what a failed run did not finish)."""
    import uuid

    from dagster import AssetKey, DagsterEventType

    from video_assets.cli_log import LOGGER_NAME
    from video_assets.definitions import defs
    from video_assets.jobs import RUN_JOB_NAME
    from video_assets.monitor import heartbeat, worker_tags
    from video_assets.partitions import JOBS_PARTITION_NAME
    from video_assets.providers.retry import reset_cancel
    from video_assets.resources import WarehouseResource
    from video_assets.sensors import run_failure

    instance = _instance()
    reset_cancel()  # an earlier run's cancel in this process (an ingest worker) is not this run's
    if not instance.has_dynamic_partition(JOBS_PARTITION_NAME, job_id):
        instance.add_dynamic_partitions(JOBS_PARTITION_NAME, [job_id])
    job = defs.resolve_job_def(job_name or RUN_JOB_NAME)
    started = time.perf_counter()
    run_id = str(uuid.uuid4())
    with heartbeat(instance, run_id):  # the run names its worker, so a dead one is found
        result = job.execute_in_process(
            instance=instance, partition_key=job_id, raise_on_error=False, run_id=run_id,
            tags={**(tags or {}), **worker_tags()},
            asset_selection=[AssetKey(s) for s in stages] if stages else None,
            run_config={"loggers": {"console" if verbose else LOGGER_NAME:
                                    {"config": {"log_level": log_level}}},
                        **({"ops": ops_config} if ops_config else {})},
        )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    summary: dict[str, Any] = {
        "job_id": job_id, "run_id": result.run_id, "status": "failed", "final_video": None,
        "thumbnail": None, "duration_s": None, "audio_duration_s": None, "width": None,
        "height": None, "fps": None, "clips": None, "cost_usd": None, "checks": checks,
        "elapsed_s": round(time.perf_counter() - started, 2), "version": None, "paid_calls": None,
    }
    meta = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat.asset_key.to_user_string() == "final_video":
            meta = {k: v.value for k, v in mat.metadata.items()}
    if not result.success:
        status, stage, error = run_failure(
            [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE])
        warehouse = WarehouseResource().get()
        warehouse.upsert_job(job_id, status=status, failed_stage=stage)
        summary.update(failed_stage=stage, error=error, cost_usd=warehouse.job_cost_usd(job_id))
        if status == "failed" or not meta:
            return summary
    width, height = (int(x) for x in str(meta.get("resolution", "0x0")).split("x"))
    summary.update(
        status="done" if result.success else "checks_failed",
        final_video=meta.get("path"),
        duration_s=meta.get("duration_s"),
        audio_duration_s=meta.get("audio_duration_s"),
        width=width, height=height, fps=meta.get("fps"),
        clips=meta.get("n_clips"),
        cost_usd=meta.get("cost_usd", summary["cost_usd"] or 0.0),
        thumbnail=meta.get("thumbnail_path"),
        version=meta.get("version"), paid_calls=meta.get("paid_calls"),
    )
    return summary


def render(args: argparse.Namespace) -> int:
    import hashlib

    from video_assets.admission import (
        RequestError,
        check_audio,
        check_job_id,
        check_lyrics,
        read_lyrics,
        render_job_id,
        resolve_providers,
        stage,
        validate_request,
    )
    from video_assets.resources import StoreResource
    from video_assets.store import sha256_file

    data: dict[str, Any] = {"prompt": args.prompt, "mode": args.mode, "aspect": args.aspect,
                            "transitions": args.transitions, "flavor": args.flavor}
    if args.audio:
        data["audio"] = str(args.audio)
    for key in ("style", "duration_s", "budget_usd"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    for key in ("lipsync", "continuation"):
        if getattr(args, key, False):
            data[key] = True
    if getattr(args, "pacing", None):  # only when asked for: the demo's arguments have none
        data["pacing"] = args.pacing
    if getattr(args, "lyrics", None):
        data["lyrics"] = str(args.lyrics)
    if captions := caption_fields(args):
        data["captions"] = captions
    providers = {k: getattr(args, f"{k}_provider", None) for k in PROVIDER_CAPABILITIES
                 if getattr(args, f"{k}_provider", None)}
    if providers:
        data["providers"] = providers
    source = "command line"
    try:
        if args.job_id is not None:
            check_job_id(args.job_id)
        # providers resolved first: a render with real providers is another job than offline
        request = resolve_providers(validate_request(data, source), source)
        audio_path = Path(args.audio).resolve() if args.audio else None
        duration_s = check_audio(audio_path, source) if audio_path else None
        lyrics = None
        if request.lyrics:  # the user's own file, wherever it is (as the song)
            lyrics = read_lyrics(Path(request.lyrics), source, request.lyrics)
            check_lyrics(request, lyrics, duration_s or request.duration_s, source)
    except RequestError as exc:
        _err(flag_message(exc))
        return EXIT_BAD_INPUT
    name = audio_path.name if audio_path else "ad"
    audio_sha256 = sha256_file(audio_path) if audio_path else ""
    lyrics_sha256 = hashlib.sha256(lyrics.encode()).hexdigest() if lyrics is not None else ""
    job_id = args.job_id or render_job_id(request, name, audio_sha256, lyrics_sha256)
    from video_assets.providers.retry import stop_on_signals

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(held_job(job_id))  # before staging: a busy job's files stay as they are
            stage(StoreResource().get(), job_id, request, name, audio_path, duration_s,
                  audio_sha256 or None, lyrics)
        except RequestError as exc:
            _err(flag_message(exc))
            return EXIT_BAD_INPUT
        except JobBusy as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT
        if getattr(args, "queue", False):
            return submit_render(job_id, args.json)
        if not args.json:
            length_s = duration_s or request.duration_s
            print(f"job {job_id}: rendering "
                  f"{f'{length_s:.1f} s' if length_s else 'a song of unknown length'} "
                  f"({request.mode}, {request.aspect}, transitions {request.transitions})",
                  file=sys.stderr)
        with stop_on_signals() as stop:  # Ctrl-C / SIGTERM / `videogen cancel`: calls stop
            try:
                summary = execute_job(job_id, verbose=args.verbose)
            except KeyboardInterrupt:
                if stop.signum is None:
                    raise
                summary = None
    if stop.signum is not None:  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them
        _err(f"job {job_id}: stopped by {signal.Signals(stop.signum).name}; provider calls in "
             "flight were cancelled (the ledger says cancelled); render again to resume")
        if summary is not None and args.json:
            print(json.dumps({**summary, "status": "cancelled"}, sort_keys=True))
        return 128 + stop.signum
    return _report(summary, args.json)


def submit_render(job_id: str, as_json: bool) -> int:
    """``render --queue``: submit the staged job's render run to the instance's run queue (the
    daemon launches it within the queue's limits); print its run id."""
    from video_assets.partitions import job_model_tags
    from video_assets.resources import StoreResource
    from video_assets.run_queue import QueueError, daemon_alive, has_queue, submit, workspace

    instance = _instance()
    if not has_queue(instance):
        _err("render --queue: this instance has no run queue (its dagster.yaml sets another run "
             "coordinator); fix: render without --queue, or use the committed dagster.yaml")
        return EXIT_BAD_INPUT
    from video_assets.jobs import RUN_JOB_NAME

    tags = {"video_assets/job_id": job_id, **job_model_tags(StoreResource().get(), job_id)}
    try:
        with workspace(instance) as request:
            run_id = submit(instance, request, RUN_JOB_NAME, job_id, tags)
    except QueueError as exc:
        _err(f"render --queue: {exc}")
        return EXIT_FAILED
    if not daemon_alive(instance):
        _err(f"job {job_id}: no daemon is running, so the run waits in the queue until one starts; "
             "fix: `make ui` or `videogen dev` (or `videogen dev --daemon`)")
    if as_json:
        print(json.dumps({"job_id": job_id, "run_id": run_id, "status": "queued"}, sort_keys=True))
    else:
        print(f"job {job_id}: run {run_id} queued (videogen cancel {job_id} stops it)")
    return EXIT_OK


def cancel(args: argparse.Namespace) -> int:
    """Stop a job's run in progress, wherever it runs, as SIGTERM would: a run whose worker is a
    process on this host (its worker tags) is sent SIGTERM (its provider calls stop and cancel
    their predictions, the ledger says cancelled); any other run is cancelled through Dagster's
    run coordinator (a queued run never starts; a launched one is terminated by its launcher).
    Waits up to ``--wait-s`` for the run to end."""
    import os

    from dagster import DagsterRunStatus, RunsFilter

    from video_assets.monitor import TAG_HOST, TAG_PID, process_alive, this_host

    active = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    instance = _instance()
    runs = [r.dagster_run for r in instance.get_run_records(
        RunsFilter(tags={"dagster/partition": args.job_id}, statuses=active))]
    if not runs:
        _err(f"cancel: job {args.job_id!r} has no run in progress; fix: check the job id "
             "(`dagster run list`, the UI's Runs page); a finished job needs no cancel")
        return EXIT_BAD_INPUT
    for run in runs:
        pid = int(run.tags[TAG_PID]) if run.tags.get(TAG_PID, "").isdigit() else None
        created_s = instance.get_run_record_by_id(run.run_id).create_timestamp.timestamp()
        if pid is not None and run.tags.get(TAG_HOST) == this_host() \
                and process_alive(pid, created_s):
            os.kill(pid, signal.SIGTERM)
            how = f"sent SIGTERM to its worker (pid {pid})"
        else:
            instance.run_coordinator.cancel_run(run.run_id)
            how = "asked Dagster's run coordinator to cancel it"
        print(f"job {args.job_id}: run {run.run_id}: {how}")
    deadline = time.monotonic() + max(0.0, args.wait_s)
    while True:
        left = [r for r in runs if instance.get_run_by_id(r.run_id).status in active]
        if not left:
            print(f"job {args.job_id}: stopped")
            return EXIT_OK
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    _err(f"cancel: job {args.job_id}: {len(left)} run(s) still in progress after {args.wait_s:g} s "
         f"({', '.join(r.run_id for r in left)}); fix: wait, or stop the worker where it runs "
         "(Ctrl-C, kill -TERM)")
    return EXIT_FAILED


def _report(summary: dict[str, Any], as_json: bool) -> int:
    if summary["status"] == "failed":  # one line: the stage, the problem and its fix
        problem = "; ".join(line.strip() for line in summary.get("error", "").splitlines()
                            if line.strip())
        _err(f"job {summary['job_id']}: stage {summary['failed_stage']} failed: {problem} "
             "(the traceback is in the Dagster UI's run log, or add --verbose)")
    elif not as_json:
        print(f"video:     {summary['final_video']}\n"
              f"thumbnail: {summary['thumbnail']}\n"
              f"duration:  {summary['duration_s']} s (audio {summary['audio_duration_s']} s), "
              f"{summary['width']}x{summary['height']} @ {summary['fps']} fps, "
              f"{summary['clips']} clips, cost ${summary['cost_usd']:.2f}, "
              f"rendered in {summary['elapsed_s']} s\n"
              f"checks:    " + ", ".join(f"{k} {'ok' if v else 'FAILED'}"
                                         for k, v in summary["checks"].items()))
    if as_json:
        print(json.dumps(summary, sort_keys=True))
    return EXIT_OK if summary["status"] == "done" else EXIT_FAILED


def submit(args: argparse.Namespace) -> int:
    """Validate a request, then copy it (and its local audio) into the inbox."""
    from video_assets.admission import RequestError, parse_request, validate_request
    from video_assets.sensors import INBOX, inbox_store

    path = Path(args.request)
    if not path.is_file():
        _err(f'request "{path}": file not found; fix: give the path of a .yaml or .json request')
        return EXIT_BAD_INPUT
    try:
        request = validate_request(parse_request(path.read_bytes(), path.name), path.name)
    except RequestError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    from video_assets.admission import REQUEST_FILES

    inbox = inbox_store()
    for field, (what, _) in REQUEST_FILES.items():  # the song and the lyrics beside the request
        ref = getattr(request, field)
        if not ref or ref.startswith("s3://"):
            continue
        if ".." in Path(ref).parts or Path(ref).is_absolute():
            _err(f'request "{path.name}": {field}: submit copies {what} into the inbox beside '
                 f"the request, so it must be a name in the request's folder; fix: put {what} "
                 f"next to the request and write {field}: <its name>")
            return EXIT_BAD_INPUT
        local = (path.parent / ref).resolve()
        if not local.is_file():
            _err(f'request "{path.name}": {field}: file "{ref}" not found beside the '
                 f"request; fix: put {what} next to the request file")
            return EXIT_BAD_INPUT
        inbox.put_file(INBOX + ref, local)  # before the request: the request finds them
    inbox.put_file(INBOX + path.name, path)
    print(f"submitted {path.name} to {inbox.uri(INBOX + path.name)}")
    return EXIT_OK


def ingest(args: argparse.Namespace) -> int:
    """Evaluate the inbox sensor once, add partitions, and run (or queue) its runs."""
    from dagster import DagsterRunStatus, RunsFilter

    from video_assets.config import dagster_home, s3_bucket
    from video_assets.partitions import JOBS_PARTITION_NAME
    from video_assets.resources import PipelineSettings, StoreResource
    from video_assets.sensors import inbox_store, scan_inbox

    instance = _instance()
    inbox = inbox_store()
    # the CLI's own cursor, kept in the instance: each call reads only what arrived since
    cursor_key = f"video_assets/ingest_cursor/{s3_bucket() or dagster_home()}"
    stored = instance.run_storage.get_cursor_values({cursor_key}).get(cursor_key)
    tick = scan_inbox(inbox, StoreResource().get(), cursor=json.loads(stored) if stored else {},
                      grace_s=PipelineSettings().inbox_grace_s if args.grace_s is None
                      else args.grace_s)
    instance.run_storage.set_cursor_values({cursor_key: json.dumps(tick.cursor, sort_keys=True)})
    for key, message in tick.rejected:
        _err(f"rejected {key}: {message}")
    for key in tick.waiting:
        print(f"waiting for the audio of {key}", file=sys.stderr)
    new = []
    for job_id, run_key, key in tick.admitted:
        done = instance.get_run_records(RunsFilter(
            tags={"dagster/run_key": run_key},
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.STARTED,
                      DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING]), limit=1)
        if not done:
            new.append((job_id, run_key, key, tick.edits.get(run_key)))
    if new:
        instance.add_dynamic_partitions(JOBS_PARTITION_NAME, sorted({j[0] for j in new}))
    print(f"inbox: {len(new)} new job(s), {len(tick.rejected)} rejected, "
          f"{len(tick.waiting)} waiting" + ("; more remain: run ingest again" if tick.more else ""),
          file=sys.stderr)
    from video_assets.run_queue import uses_queue

    if new and uses_queue(instance):  # a daemon launches them within the queue's limits
        return submit_jobs(instance, new, args.wait, args.json)
    if not args.wait:
        if new:
            log = launch_background(new)
            print(f"launched {len(new)} run(s) in the background; log: {log}", file=sys.stderr)
        return EXIT_OK
    return run_jobs(new, args.json)


def submit_jobs(instance, jobs: list[tuple], wait: bool, as_json: bool) -> int:
    """Submit admitted jobs' runs to the run queue, tagged as the sensor tags them (so
    ``max_concurrent_runs`` and every tag limit apply); with ``wait``, wait for their ends.
    Each entry: ``(job_id, run_key, inbox key, edits or None)``. The runs carry the inbox
    sensor's name: ingest is one evaluation of that sensor, and the daemon's sensor, which
    skips run keys it has already run, then does not run the same request again."""
    from video_assets.jobs import EDIT_JOB_NAME, RUN_JOB_NAME
    from video_assets.partitions import job_model_tags
    from video_assets.resources import StoreResource
    from video_assets.run_queue import QueueError, submit, wait_for_runs, workspace
    from video_assets.sensors import edit_run_config, inbox_sensor

    media = StoreResource().get()
    submitted: dict[str, str] = {}
    try:
        with workspace(instance) as request:
            for job_id, run_key, key, edits in jobs:
                tags = {"dagster/run_key": run_key, "dagster/sensor_name": inbox_sensor.name,
                        "video_assets/source": key, "video_assets/job_id": job_id,
                        **job_model_tags(media, job_id)}
                submitted[submit(instance, request, EDIT_JOB_NAME if edits else RUN_JOB_NAME,
                                 job_id, tags, edit_run_config(edits) if edits else None)] = job_id
                print(f"job {job_id}: run {list(submitted)[-1]} queued", file=sys.stderr)
    except QueueError as exc:
        _err(f"ingest: {exc}")
        return EXIT_FAILED
    if not wait:
        print(f"queued {len(submitted)} run(s); the daemon launches them", file=sys.stderr)
        return EXIT_OK
    code = EXIT_OK
    for run_id, run in wait_for_runs(instance, list(submitted)).items():
        status = run.status.value if run else "missing"
        if as_json:
            print(json.dumps({"job_id": submitted[run_id], "run_id": run_id,
                              "status": status.lower()}, sort_keys=True))
        else:
            print(f"job {submitted[run_id]}: run {run_id} {status.lower()}")
        code = max(code, EXIT_OK if status == "SUCCESS" else EXIT_FAILED)
    return code


def run_jobs(jobs: list[tuple], as_json: bool) -> int:
    """Run admitted jobs one after another (one in-process run each; an edit file's edits as
    ``videogen edit`` makes them); worst exit code wins. Each entry: ``(job_id, run_key, inbox
    key, edits or None)``."""
    from video_assets.cli_edit import run_edit
    from video_assets.edits import parse_ops

    code = EXIT_OK
    for job_id, run_key, key, *rest in jobs:
        tags = {"dagster/run_key": run_key, "video_assets/source": key,
                "video_assets/job_id": job_id}
        if rest and rest[0] is not None:
            code = max(code, run_edit(job_id, parse_ops(rest[0]), as_json, tags=tags))
            continue
        try:
            with held_job(job_id):
                summary = execute_job(job_id, tags=tags)
        except JobBusy as exc:
            _err(str(exc))
            code = max(code, EXIT_FAILED)
            continue
        code = max(code, _report(summary, as_json))
    return code


def launch_background(jobs: list[tuple]) -> Path:
    """Start one detached worker process that runs the jobs; returns its log file."""
    import subprocess

    from video_assets.config import dagster_home

    logs = dagster_home() / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}-{jobs[0][0]}.log"
    spec = json.dumps([list(j) for j in jobs])
    with open(log, "ab") as handle:
        subprocess.Popen([sys.executable, "-m", "video_assets.cli", "run-jobs", spec],
                         stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    return log


def worker_main(argv: list[str]) -> int:
    """The worker behind ``ingest`` (``python -m video_assets.cli run-jobs SPEC``), not a
    ``videogen`` command: SPEC is a JSON list of ``[job_id, run_key, source key, edits]``."""
    return run_jobs([tuple(j) for j in json.loads(argv[0])], as_json=False)


def retry(args: argparse.Namespace) -> int:
    """Run a failed or cancelled job again from where its last run stopped: through the run queue
    when a daemon runs it (Dagster's re-execution from failure), else in this process (the
    stages its last run did not finish). Generations are taken from the content cache, so
    nothing made before is paid again."""
    from dagster import DagsterEventType, RunsFilter

    from video_assets.monitor import sweep_dead_runs
    from video_assets.resources import WarehouseResource
    from video_assets.run_queue import QueueError, submit_retry, uses_queue, wait_for_runs, workspace

    instance = _instance()
    for dead in sweep_dead_runs(instance, WarehouseResource().get()):  # a killed run: failed now
        _err(dead.describe())
    records = instance.get_run_records(RunsFilter(tags={"dagster/partition": args.job_id}),
                                       limit=1)
    if not records:
        _err(f"retry: job {args.job_id!r} has no run; fix: check the job id (`dagster run list`), "
             "or render the job")
        return EXIT_BAD_INPUT
    parent = records[0].dagster_run
    if parent.status.value not in ("FAILURE", "CANCELED"):
        _err(f"retry: job {args.job_id}: its last run {parent.run_id} is "
             f"{parent.status.value.lower()}, not failed or cancelled; fix: retry only a failed or "
             "cancelled job (`videogen cancel` stops one in progress)")
        return EXIT_BAD_INPUT
    if uses_queue(instance):
        try:
            with workspace(instance) as request:
                run_id = submit_retry(instance, request, parent)
        except QueueError as exc:
            _err(f"retry: {exc}")
            return EXIT_FAILED
        if not args.wait:
            print(json.dumps({"job_id": args.job_id, "run_id": run_id, "status": "queued"},
                             sort_keys=True) if args.json
                  else f"job {args.job_id}: retry run {run_id} queued (retrying run "
                  f"{parent.run_id})")
            return EXIT_OK
        run = wait_for_runs(instance, [run_id])[run_id]
        status = run.status.value.lower() if run else "missing"
        print(json.dumps({"job_id": args.job_id, "run_id": run_id, "status": status},
                         sort_keys=True) if args.json else f"job {args.job_id}: run {run_id} {status}")
        return EXIT_OK if status == "success" else EXIT_FAILED
    done = {r.event_log_entry.step_key for r in instance.get_records_for_run(
        parent.run_id, of_type=DagsterEventType.STEP_SUCCESS).records}
    from video_assets.definitions import defs

    layer = defs.resolve_job_def(parent.job_name).asset_layer
    stages = sorted(k.to_user_string() for k in layer.selected_asset_keys
                    if str(layer.get_op_output_handle(k).node_handle) not in done)
    tags = {k: v for k, v in parent.tags.items()
            if k.startswith("video_assets/") and k.split("/", 1)[1] not in
            ("worker_host", "worker_pid", "heartbeat_at")}
    from video_assets.providers.retry import stop_on_signals

    try:
        with held_job(args.job_id), stop_on_signals():
            summary = execute_job(args.job_id, tags={**tags, "video_assets/retry_of": parent.run_id},
                                  job_name=parent.job_name,
                                  ops_config=(parent.run_config or {}).get("ops"),
                                  stages=stages or None, verbose=args.verbose)
    except JobBusy as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    return _report(summary, args.json)


def dev(args: argparse.Namespace) -> int:
    """Prepare the profile's instance folder, then run ``dagster dev`` (the webserver and the
    daemon) or, with ``--daemon``, ``dagster-daemon run``, with ``DAGSTER_HOME`` pointing at it."""
    import os

    from video_assets.profiles import dagster_command, prepare_home

    home = prepare_home()
    command = dagster_command(args.daemon)
    print(f"{' '.join(Path(c).name if i == 0 else c for i, c in enumerate(command))} "
          f"(DAGSTER_HOME={home})", file=sys.stderr)
    sys.stderr.flush()
    os.execv(command[0], command)  # replaces this process: signals reach Dagster directly
    return EXIT_FAILED  # not reached


def demo(args: argparse.Namespace) -> int:
    from video_assets.config import dagster_home
    from video_assets.media.audio import synthesize_track, write_wav

    folder = dagster_home() / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    song = folder / "demo_song.wav"
    write_wav(song, synthesize_track(args.duration_s, tempo_bpm=118.0), 44100)
    print(f"synthesized {args.duration_s:g} s demo track at 118 BPM: {song}", file=sys.stderr)
    offline = {f"{cap}_provider": "offline" for cap in PROVIDER_CAPABILITIES}  # keys or not
    ns = argparse.Namespace(audio=str(song), prompt=args.prompt, mode="music_video",
                            aspect=args.aspect, transitions="auto", flavor="default", style=None,
                            duration_s=None, budget_usd=None, job_id=None, json=args.json,
                            verbose=args.verbose, **offline)
    return render(ns)


def s3_setup(args: argparse.Namespace) -> int:
    """Apply the bucket's lifecycle policy and block public access (VIDEO_ASSETS_BUCKET)."""
    from video_assets.config import s3_bucket
    from video_assets.store_s3 import s3_client, setup_bucket

    bucket = args.bucket or s3_bucket()
    if not bucket:
        _err("s3 setup: no bucket; fix: set VIDEO_ASSETS_BUCKET or pass --bucket")
        return EXIT_BAD_INPUT
    try:
        state = setup_bucket(s3_client(), bucket, args.final_days)
    except ValueError as exc:
        _err(f"s3 setup: {exc}")
        return EXIT_BAD_INPUT
    print(json.dumps(state, sort_keys=True) if args.json else
          f"s3://{bucket}: intermediates expire after 1 day, finals after {args.final_days} "
          f"days; public access blocked: {'yes' if state['public_access_blocked'] else 'NO'}")
    return EXIT_OK if state["public_access_blocked"] else EXIT_FAILED


def link(args: argparse.Namespace) -> int:
    """Print a fresh link to a job's final video (presigned on S3, valid ``--expires-s``)."""
    from video_assets.config import check_url_expiry_s, url_expiry_s
    from video_assets.layout import FINAL
    from video_assets.resources import StoreResource
    from video_assets.store import job_key

    try:
        expires_s = (url_expiry_s() if args.expires_s is None
                     else check_url_expiry_s(args.expires_s, "--expires-s"))
        key = job_key(args.job_id, FINAL)
        media = StoreResource().get()
        found = media.exists(key)
    except ValueError as exc:
        _err(f"link: {exc}")
        return EXIT_BAD_INPUT
    if not found:
        _err(f"link: job {args.job_id!r} has no final video ({media.uri(key)}); fix: check the "
             "job id, or render the job (again, if its video expired: `s3 setup --final-days`)")
        return EXIT_BAD_INPUT
    print(media.url(key, expires_s))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videogen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="render one job in this process")
    r.add_argument("--audio", help="song file (mp3, wav, flac, ogg, m4a)")
    r.add_argument("--prompt", required=True)
    r.add_argument("--mode", default="music_video")
    r.add_argument("--aspect", default="9:16")
    r.add_argument("--transitions", default="auto")
    r.add_argument("--flavor", default="default")
    r.add_argument("--pacing", metavar="calm|auto|energetic",
                   help="shot lengths: auto (by each song section's energy, the default), calm "
                   "(longer shots) or energetic (shorter ones)")
    r.add_argument("--style")
    r.add_argument("--duration-s", dest="duration_s", type=float,
                   help="ad mode without audio: target length")
    r.add_argument("--budget-usd", dest="budget_usd", type=float)
    add_caption_flags(r)
    for cap in PROVIDER_CAPABILITIES:
        real = REAL_PROVIDERS[cap]
        flag = "--lipsync-model" if cap == "lipsync" else f"--{cap}"
        r.add_argument(flag, dest=f"{cap}_provider", metavar="PROVIDER",
                       help=f"offline | {real} | {real}:<model> (default: {real} when "
                       f"{PROVIDER_KEYS[real]} is set, else offline"
                       + ("; lip-sync happens only with --lipsync)" if cap == "lipsync" else ")"))
    r.add_argument("--lipsync", action="store_true",
                   help="lip-sync the scenes where words are sung (needs REPLICATE_API_TOKEN)")
    r.add_argument("--continuation", action="store_true",
                   help="start each scene from the previous clip's last frame")
    r.add_argument("--job-id")
    r.add_argument("--queue", action="store_true",
                   help="submit the run to the instance's run queue instead of running it here "
                   "(a daemon launches it; prints the run id)")
    r.add_argument("--json", action="store_true", help="last stdout line is a JSON summary")
    r.add_argument("--verbose", action="store_true",
                   help="print Dagster's own log, tracebacks included")
    r.set_defaults(func=render)
    s = sub.add_parser("submit", help="validate a request and put it into the inbox")
    s.add_argument("request")
    s.set_defaults(func=submit)
    i = sub.add_parser("ingest", help="evaluate the inbox sensor once")
    i.add_argument("--once", action="store_true", required=True)
    i.add_argument("--wait", action="store_true", help="run the new jobs now and wait for them")
    i.add_argument("--grace-s", type=float, default=None,
                   help="how long a request may wait for its audio (default: the pipeline "
                   "setting inbox_grace_s, 120 s)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=ingest)
    s3 = sub.add_parser("s3", help="S3 bucket administration").add_subparsers(
        dest="s3_command", required=True)
    setup = s3.add_parser("setup", help="lifecycle policy (intermediates 1 day, finals N days) "
                          "and public access block")
    setup.add_argument("--bucket", help="default: $VIDEO_ASSETS_BUCKET")
    setup.add_argument("--final-days", type=int, default=7,
                       help="days a job's final.mp4, thumbnail and quality.json are kept")
    setup.add_argument("--json", action="store_true")
    setup.set_defaults(func=s3_setup)
    ln = sub.add_parser("link", help="print a fresh link to a job's final video (presigned on "
                        "S3; links are never stored)")
    ln.add_argument("job_id")
    ln.add_argument("--expires-s", type=int, default=None,
                    help="how long the link stays valid (default: VIDEO_ASSETS_URL_EXPIRY_S, "
                    "an hour; at most 7 days)")
    ln.set_defaults(func=link)
    c = sub.add_parser("cancel", help="stop a job's run in progress (as Ctrl-C would): provider "
                       "calls in flight are cancelled")
    c.add_argument("job_id")
    c.add_argument("--wait-s", type=float, default=30.0,
                   help="how long to wait for the run to end (default 30)")
    c.set_defaults(func=cancel)
    rt = sub.add_parser("retry", help="run a failed or cancelled job again from where it stopped "
                        "(through the run queue when a daemon runs; nothing generated is paid "
                        "again)")
    rt.add_argument("job_id")
    rt.add_argument("--wait", action="store_true", help="queued: wait for the retry run's end")
    rt.add_argument("--json", action="store_true")
    rt.add_argument("--verbose", action="store_true",
                    help="print Dagster's own log, tracebacks included")
    rt.set_defaults(func=retry)
    dv = sub.add_parser("dev", help="the profile's webserver and daemon (`dagster dev`), or with "
                        "--daemon the daemon alone (`dagster-daemon run`)")
    dv.add_argument("--daemon", action="store_true", help="the daemon only, no webserver")
    dv.set_defaults(func=dev)
    from video_assets.cli_cache import add_parsers as add_cache_parsers
    from video_assets.cli_edit import add_parsers
    from video_assets.cli_jobs import add_job_commands
    from video_assets.cli_warehouse import add_parsers as add_warehouse_parsers

    add_parsers(sub)  # edit, history, undo, redo, rerender
    add_job_commands(sub)  # jobs, status
    add_warehouse_parsers(sub)  # warehouse migrate | compact
    add_cache_parsers(sub)  # cache prune
    d = sub.add_parser("demo", help="synthesize a demo track and render it offline")
    d.add_argument("--duration-s", dest="duration_s", type=float, default=20.0)
    d.add_argument("--prompt", default=DEMO_PROMPT)
    d.add_argument("--aspect", default="9:16")
    d.add_argument("--json", action="store_true")
    d.add_argument("--verbose", action="store_true",
                   help="print Dagster's own log, tracebacks included")
    d.set_defaults(func=demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from video_assets.profiles import ProfileError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ProfileError as exc:  # the profile's variables or its database: say which and the fix
        _err(str(exc))
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[2:]) if sys.argv[1:2] == ["run-jobs"] else main())
