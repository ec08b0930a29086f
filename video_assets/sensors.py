"""The inbox sensor (a local folder or an S3 bucket, both through the store interface) and the
run-failure hook that keeps the ``jobs`` table honest.

A file in the inbox is a request (a new job) or an edit file (``edit: <job id>`` and a list of
``operations``, as ``videogen edit`` takes them): an edit is checked against the job's current
version at admission, rejected with a report like a bad request, and otherwise becomes a run of
``edit_job`` with the edits as its run config."""

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    run_failure_sensor,
    sensor,
)

from video_assets.admission import (
    INBOX,
    REJECTED,
    REQUEST_SUFFIXES,
    AudioNotFound,
    RequestError,
    audio_key,
    check_audio,
    check_lyrics,
    check_lyrics_size,
    inbox_file_key,
    lyrics_text,
    parse_request,
    read_lyrics,
    request_job_id,
    resolve_audio_path,
    resolve_request_file,
    stage,
    validate_request,
)
from video_assets.editor import check_edits, is_staged_clip, is_upload, staged_clip_key
from video_assets.edits import EditError, ReplaceEdit, parse_ops
from video_assets.jobs import EDIT_JOB_NAME, edit_job, render_job
from video_assets.media.audio import short
from video_assets.media.user_clip import MAX_CLIP_BYTES, ClipFileError, probe_clip_s
from video_assets.partitions import job_model_tags, jobs_partitions
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.schemas import MAX_AUDIO_BYTES, MAX_REQUEST_BYTES
from video_assets.store import LocalStore, MediaStore, ObjectInfo, _check_key, sha256_file


@dataclass
class TickResult:
    """What one inbox scan decided (pure data, so the CLI and tests can use it directly)."""

    admitted: list[tuple[str, str, str]] = field(default_factory=list)  # (job_id, run_key, key)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (key, message)
    waiting: list[str] = field(default_factory=list)  # audio not arrived yet
    cursor: dict = field(default_factory=dict)
    more: bool = False  # the batch limit was reached: another tick has work
    edits: dict[str, list[dict]] = field(default_factory=dict)  # run_key -> the edits (edit files)


REPORT_SUFFIX = ".error.json"
MAX_NAME_BYTES = 255  # the longest file name local file systems (and a key's part) allow


def error_report_key(request_key: str) -> str:
    """``rejected/<the request's path under inbox/>.error.json``: two folders' ``req.yaml`` get
    two reports. A name too long for its suffix is shortened, keeping a hash of the whole."""
    rel = PurePosixPath(*[p for p in PurePosixPath(request_key.removeprefix(INBOX)).parts
                          if p not in ("/", ".", "..")] or ["request"])
    name = rel.name + REPORT_SUFFIX
    if len(name.encode()) > MAX_NAME_BYTES:
        digest = hashlib.sha256(rel.name.encode()).hexdigest()[:12]
        name = f"{rel.name.encode()[:200].decode('utf-8', 'ignore')}-{digest}{REPORT_SUFFIX}"
    return f"{REJECTED}{(rel.parent / name).as_posix().removeprefix('./')}"


def _new_cursor(cursor: dict) -> dict:
    """``after_ns``: every object modified before it is decided; ``at``: decided keys modified
    exactly then (key -> etag); ``waiting``: requests whose audio has not arrived (key -> etag).
    The cursor's size is bounded by one timestamp's objects plus the waiting ones."""
    return {"after_ns": int(cursor.get("after_ns", 0)), "at": dict(cursor.get("at", {})),
            "waiting": dict(cursor.get("waiting", {}))}


@contextlib.contextmanager
def _audio(request, inbox: MediaStore, request_key: str, name: str) -> Iterator[Path | None]:
    """A local file with the request's audio (None when it has none), from either store."""
    if not request.audio:
        yield None
    elif isinstance(inbox, LocalStore):
        yield resolve_audio_path(request, inbox.path(request_key).parent, name)
    else:
        key = audio_key(request, request_key, inbox.bucket, name)
        info = inbox.info(key)
        if info is None:
            raise AudioNotFound(name, "audio", f'"{short(request.audio)}" not found at '
                                f"{inbox.uri(key)}; fix: upload the song there or fix the name")
        if info.size_bytes > MAX_AUDIO_BYTES:
            raise RequestError(name, "audio", f'"{short(request.audio)}" is '
                               f"{info.size_bytes / 2**20:.0f} MB, over the "
                               f"{MAX_AUDIO_BYTES // 2**20} MB limit; fix: use a compressed file "
                               "(e.g. mp3) or a shorter cut")
        with inbox.local_path(key) as path:
            yield path


def _lyrics(request, inbox: MediaStore, request_key: str, name: str) -> str | None:
    """The text of the request's lyrics file (None when it has none), from either store: beside
    the request, by the same rules as its audio (``read_lyrics``: size, UTF-8)."""
    if not request.lyrics:
        return None
    if isinstance(inbox, LocalStore):
        path = resolve_request_file(request, "lyrics", inbox.path(request_key).parent, name)
        return read_lyrics(path, name, request.lyrics)
    key = inbox_file_key(request, "lyrics", request_key, inbox.bucket, name)
    info = inbox.info(key)
    if info is None:
        raise AudioNotFound(name, "lyrics", f'"{short(request.lyrics)}" not found at '
                            f"{inbox.uri(key)}; fix: upload the lyrics file there or fix the name")
    check_lyrics_size(info.size_bytes, name, request.lyrics)
    return lyrics_text(inbox.get_bytes(key), name, request.lyrics)


def _admit(inbox: MediaStore, media: MediaStore, obj: ObjectInfo, grace_s: float,
           now_s: float) -> tuple[str, list[dict] | None] | None:
    """Validate and stage one request or edit file; returns its job id and, for an edit file,
    its edits; None while a request's audio is awaited. Raises RequestError for a bad file."""
    name = PurePosixPath(obj.key).name
    try:
        _check_key(obj.key)
    except ValueError:
        raise RequestError(name, "file", f"the key {obj.key!r} contains '..' or is not a plain "
                           "path; fix: upload the request under inbox/ with a plain name") from None
    if obj.size_bytes > MAX_REQUEST_BYTES:
        raise RequestError(name, "file", f"{obj.size_bytes / 2**20:.0f} MB is not a request (at "
                           f"most {MAX_REQUEST_BYTES // 1024} KB of YAML or JSON); fix: upload "
                           "the request file, and the song beside it")
    content = inbox.get_bytes(obj.key)
    data = parse_request(content, name)
    if "edit" in data:
        return _admit_edit(inbox, media, obj.key, data, name)
    request = validate_request(data, name)
    try:
        lyrics = _lyrics(request, inbox, obj.key, name)
        with _audio(request, inbox, obj.key, name) as audio_path:
            duration_s = check_audio(audio_path, name, shown=request.audio) if audio_path else None
            if lyrics is not None:
                check_lyrics(request, lyrics, duration_s or request.duration_s, name)
            audio_sha256 = sha256_file(audio_path) if audio_path else ""
            lyrics_sha256 = hashlib.sha256(lyrics.encode()).hexdigest() if lyrics is not None else ""
            job_id = request_job_id(name, content, audio_sha256, obj.key, lyrics_sha256)
            stage(media, job_id, request, name, audio_path, duration_s, audio_sha256 or None,
                  lyrics)
    except AudioNotFound:
        if now_s - obj.modified_ns / 1e9 < grace_s:
            return None
        raise
    return job_id, None


EDIT_FILE_KEYS = ("edit", "operations")


def _admit_edit(inbox: MediaStore, media: MediaStore, key: str, data: dict,
                name: str) -> tuple[str, list[dict]]:
    """An edit file: the job must have a version the edits apply to (checked now, in memory);
    a replacement clip is taken from beside the edit file and put aside for the run."""
    from video_assets.admission import check_job_id

    for extra in sorted(set(data) - set(EDIT_FILE_KEYS)):
        raise RequestError(name, short(str(extra), 80), "unknown key in an edit file; fix: an edit "
                           "file has only 'edit: <job id>' and 'operations: [...]'")
    try:
        job_id = check_job_id(str(data["edit"]), "edit")
    except RequestError as exc:
        raise RequestError(name, "edit", exc.message) from None
    settings = PipelineSettings()
    try:
        ops = [_put_aside(inbox, media, key, job_id, op) if isinstance(op, ReplaceEdit) else op
               for op in parse_ops(data.get("operations"))]
        check_edits(media, job_id, ops, settings.limits(), settings.fps,
                    settings.transition_half_frames)
    except EditError as exc:
        raise RequestError(name, exc.field, exc.message) from None
    return job_id, [op.model_dump(mode="json") for op in ops]


def _put_aside(inbox: MediaStore, media: MediaStore, edit_key: str, job_id: str,
               op: ReplaceEdit) -> ReplaceEdit:
    """A replacement file named by an edit file: beside it in the inbox (never outside that
    folder), a video by its container (probed, not decoded), copied as it came to the job's
    staging area; the run re-encodes it."""
    if is_upload(job_id, op.file) or is_staged_clip(job_id, op.file):
        return op
    folder = PurePosixPath(edit_key).parent
    clip_key = (folder / op.file).as_posix()
    try:
        _check_key(clip_key)
    except ValueError:
        clip_key = ""
    if isinstance(inbox, LocalStore):
        path = inbox.path(clip_key) if clip_key else None
        inside = path is not None and path.resolve().is_relative_to(
            inbox.path(folder.as_posix()).resolve())
    else:
        inside = bool(clip_key) and clip_key.startswith(folder.as_posix() + "/")
    if not inside or not inbox.exists(clip_key):
        raise EditError("file", f'"{short(op.file)}" is not a file beside the edit file; fix: '
                        "upload the video into the same inbox folder and give its name")
    if inbox.size(clip_key) > MAX_CLIP_BYTES:
        raise EditError("file", f'"{short(op.file)}" is over {MAX_CLIP_BYTES // 2**20} MB; fix: '
                        "use a shorter clip")
    with inbox.local_path(clip_key) as path:
        try:
            probe_clip_s(path)
        except ClipFileError as exc:
            raise EditError("file", str(exc)) from None
        staged = staged_clip_key(job_id, sha256_file(path), PurePosixPath(clip_key).suffix)
        media.put_file(staged, path)
    return op.model_copy(update={"file": staged})


def scan_inbox(
    inbox: MediaStore,
    media: MediaStore,
    cursor: dict,
    grace_s: float = 120.0,
    max_per_tick: int = 50,
    time_budget_s: float = 40.0,
    now_s: float | None = None,
) -> TickResult:
    """Decide the request files in ``inbox/`` that arrived (or changed) since ``cursor``.

    One listing per tick; only new objects and awaited ones are read. Objects are taken oldest
    first, at most ``max_per_tick`` requests or ``time_budget_s`` seconds per tick (within the
    sensor's timeout); the rest wait for the next tick (``more``). A request whose audio is
    missing is retried for ``grace_s`` seconds after it arrived, then rejected. A bad request gets
    ``rejected/<name>.error.json``; the user's own files are never changed.
    """
    now_s = time.time() if now_s is None else now_s
    started = time.monotonic()
    state = _new_cursor(cursor)
    result = TickResult()
    listing = [o for o in inbox.list(INBOX) if o.key.lower().endswith(REQUEST_SUFFIXES)]
    by_key = {o.key: o for o in listing}
    retry = [by_key[k] for k, etag in state["waiting"].items()
             if k in by_key and by_key[k].etag == etag]
    state["waiting"] = {o.key: o.etag for o in retry}  # awaited files that vanished are dropped
    fresh = sorted((o for o in listing if o.modified_ns > state["after_ns"] or (
        o.modified_ns == state["after_ns"] and state["at"].get(o.key) != o.etag)),
        key=lambda o: (o.modified_ns, o.key))
    fresh = [o for o in fresh if o.key not in state["waiting"]]
    fresh_keys = {o.key for o in fresh}
    for done, obj in enumerate([*retry, *fresh]):
        if done >= max_per_tick or time.monotonic() - started > time_budget_s:
            result.more = True
            break
        try:
            admitted = _admit(inbox, media, obj, grace_s, now_s)
        except Exception as exc:  # any failure rejects this file alone; the tick goes on
            if not isinstance(exc, RequestError):
                exc = RequestError(PurePosixPath(obj.key).name, "file", "could not be admitted "
                                   f"({type(exc).__name__}: {short(str(exc))}); fix: check the "
                                   "request and its song, then upload it again")
            result.rejected.append((obj.key, _write_report(inbox, obj.key, exc)))
            state["waiting"].pop(obj.key, None)
        else:
            if admitted is None:
                result.waiting.append(obj.key)
                state["waiting"][obj.key] = obj.etag
            else:
                job_id, edits = admitted
                inbox.delete(error_report_key(obj.key))  # an earlier version may have been rejected
                result.admitted.append((job_id, f"{obj.key}:{obj.etag}", obj.key))
                if edits is not None:
                    result.edits[f"{obj.key}:{obj.etag}"] = edits
                state["waiting"].pop(obj.key, None)
        if obj.key in fresh_keys:  # the watermark moves over what this tick decided or set aside
            if obj.modified_ns > state["after_ns"]:
                state["after_ns"], state["at"] = obj.modified_ns, {}
            state["at"][obj.key] = obj.etag
    result.cursor = state
    return result


def _write_report(inbox: MediaStore, request_key: str, exc: RequestError) -> str:
    """Write ``rejected/...error.json`` for a rejected request; returns what to log. A report
    that cannot be written is said in the log (the request is rejected all the same)."""
    report = {**exc.to_report(), "key": short(request_key, 1100),
              "rejected_at": datetime.now(UTC).isoformat()}
    try:
        inbox.put_bytes(error_report_key(request_key), json.dumps(report, indent=2).encode())
    except Exception as err:  # noqa: BLE001 - the store failing must not stop the tick
        return f"{exc} (its report could not be written: {type(err).__name__}: {short(str(err))})"
    return str(exc)


def inbox_store() -> MediaStore:
    """The inbox's store: the bucket when ``VIDEO_ASSETS_BUCKET`` is set, else ``$DAGSTER_HOME``
    (``inbox/`` and ``rejected/`` sit beside ``media/``)."""
    from video_assets.config import dagster_home, s3_bucket
    from video_assets.resources import StoreResource

    return StoreResource().get() if s3_bucket() else LocalStore(dagster_home())


def run_requests(tick: TickResult, media: MediaStore | None = None) -> list[RunRequest]:
    """A render run per admitted request; an edit run (the edits as run config) per edit file.
    With ``media``, each run is tagged with the models of its job (``partitions.model_tags``),
    which the run queue's per-model limits count."""
    return [
        RunRequest(run_key=run_key, partition_key=job_id,
                   tags={"video_assets/source": key, "video_assets/job_id": job_id,
                         **(job_model_tags(media, job_id) if media is not None else {})},
                   **({"job_name": EDIT_JOB_NAME, "run_config": edit_run_config(
                       tick.edits[run_key])} if run_key in tick.edits
                      else {"job_name": render_job.name}))
        for job_id, run_key, key in tick.admitted
    ]


def edit_run_config(edits: list[dict]) -> dict:
    return {"ops": {"script": {"config": {"edits": edits}}}}


@sensor(jobs=[render_job, edit_job], minimum_interval_seconds=15,
        default_status=DefaultSensorStatus.RUNNING)
def inbox_sensor(context: SensorEvaluationContext, store: StoreResource,
                 settings: PipelineSettings) -> SensorResult:
    """New request files in the inbox (``s3://$VIDEO_ASSETS_BUCKET/inbox/`` or
    ``$DAGSTER_HOME/inbox/``) become job partitions and runs, in batches of at most 50."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    tick = scan_inbox(inbox_store(), store.get(), cursor, grace_s=settings.inbox_grace_s)
    for key, message in tick.rejected:
        context.log.warning(f"rejected {key}: {message}")
    return SensorResult(
        run_requests=run_requests(tick, store.get()),
        dynamic_partitions_requests=[
            jobs_partitions.build_add_request([job_id for job_id, _, _ in tick.admitted])
        ] if tick.admitted else [],
        cursor=json.dumps(tick.cursor, sort_keys=True),
    )


def run_failure(step_failures: list, open_steps: Sequence[str] = ()) -> tuple[str, str, str]:
    """``(status, stage, error)`` of a failed run from its STEP_FAILURE events; with none (the
    run failed from outside, e.g. its code server saw the worker die), the stage is the first of
    ``open_steps`` (steps started and never ended: ``monitor.open_steps``), else ``unknown``.

    A blocking quality check that fails leaves a finished but wrong video: ``checks_failed``;
    anything else is ``failed``. ``error`` is the stage's own message, not Dagster's wrapper.
    """
    if not step_failures:
        return "failed", open_steps[0] if open_steps else "unknown", ""
    event = step_failures[0]
    err = event.step_failure_data.error if event.step_failure_data else None
    status = "failed"
    if err is not None and err.cls_name == "DagsterAssetCheckFailedError":
        status = "checks_failed"
    while err is not None and err.cause is not None:  # Dagster wraps the stage's own exception
        err = err.cause
    if err is None:
        return status, event.step_key, ""
    # the message starts with the exception's dotted class name: the problem is what follows
    return status, event.step_key, re.sub(rf"^[\w.]*\b{re.escape(err.cls_name or '')}: ", "",
                                          err.message.strip())


ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
          DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


@run_failure_sensor(monitored_jobs=None, default_status=DefaultSensorStatus.RUNNING)
def job_failure_sensor(context: RunFailureSensorContext, warehouse: WarehouseResource,
                       store: StoreResource) -> None:
    """Mark the job ``failed`` (or ``checks_failed``) with the failing stage when a run fails;
    a failed edit's files go back to the job's current version (``versions.restore_current``)."""
    from video_assets.monitor import open_steps
    from video_assets.versions import restore_current

    job_id = context.dagster_run.tags.get("dagster/partition")
    if job_id:
        status, stage, _ = run_failure(
            context.get_step_failure_events(),
            [e.step_key for e in open_steps(context.instance, context.dagster_run.run_id)])
        warehouse.get().upsert_job(job_id, status=status, failed_stage=stage)
        busy = context.instance.get_run_records(RunsFilter(
            tags={"dagster/partition": job_id}, statuses=ACTIVE), limit=1)
        if status == "failed" and not busy:  # a later run of the job has its files now
            restore_current(store.get(), job_id)
