"""``videogen edit | history | undo | redo | rerender``: a job's versions from the command line.

Each edit is checked against the job's current version before anything runs (a bad one exits 2
and changes nothing), then made by one in-process run of ``edit_job``; a run that fails leaves
the current version as it was. Undo and redo run ``version_job`` (no render, nothing paid).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from video_assets.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    _err,
    _report,
    add_caption_flags,
    held_job,
)
from video_assets.edits import OPERATIONS, EditError, EditOp, parse_ops
from video_assets.job_lock import JobBusy


def _store_settings():
    from video_assets.resources import PipelineSettings, StoreResource

    return StoreResource().get(), PipelineSettings()


def _job_id(value: str) -> str:
    """JOB_ID on the command line: the slug rule, or argparse's exit 2 with the fix."""
    from video_assets.admission import RequestError, check_job_id

    try:
        return check_job_id(value, "JOB_ID")
    except RequestError as exc:
        raise argparse.ArgumentTypeError(
            f"{exc.message.split('; fix:')[0]}; fix: give the job id render printed "
            "(e.g. song-1a2b3c4d)") from None


def edit(args: argparse.Namespace) -> int:
    fields = {"op": args.operation, "scene": args.scene, "camera": args.camera,
              "motion": args.motion, "caption": args.caption, "transition": args.transition,
              "beats": args.beats, "in_s": args.in_s, "to": args.to, "at_beat": args.at_beat,
              "file": args.file}
    if args.text is not None:
        if args.operation != "prompt":
            _err(f"edit: {args.operation} takes no text (only prompt does); fix: drop "
                 f"{args.text[:40]!r}")
            return EXIT_BAD_INPUT
        fields["prompt"] = args.text
    job_id = args.job_id
    try:
        ops = parse_ops([{k: v for k, v in fields.items() if v is not None}])
    except EditError as exc:
        _err(f"edit: {_flag(exc)}")
        return EXIT_BAD_INPUT
    return run_edit(job_id, ops, args.json, args.verbose)


def _hold(stack: contextlib.ExitStack, job_id: str) -> bool:
    """Hold the job for this process until ``stack`` closes; False (said on stderr) when
    another run has it."""
    try:
        stack.enter_context(held_job(job_id))
    except JobBusy as exc:
        _err(str(exc))
        return False
    return True


def _flag(exc: EditError) -> str:
    """The error with the field named as the command line's option (``--in-s``)."""
    field = exc.field.removeprefix("operations.0.").removeprefix("operations.0")
    flags = {"in_s": "--in-s", "at_beat": "--at-beat", "beats": "--beats", "to": "--to",
             "file": "--file", "camera": "--camera", "motion": "--motion",
             "caption": "--caption", "transition": "--transition", "scene": "SCENE",
             "prompt": "prompt"}
    return f"{flags.get(field, field or 'edit')}: {exc.message}"


def run_edit(job_id: str, ops: list[EditOp], as_json: bool, verbose: bool = False,
             base_dir: Path | None = None, tags: dict[str, str] | None = None) -> int:
    """Check ``ops`` against the job's current version, then make the new version in one run."""
    from video_assets.cli import execute_job
    from video_assets.editor import check_edits, staged_ops
    from video_assets.jobs import EDIT_JOB_NAME

    media, settings = _store_settings()
    with contextlib.ExitStack() as held:
        if not _hold(held, job_id):
            return EXIT_BAD_INPUT
        try:
            ops = staged_ops(media, job_id, ops, base_dir)
            pending = check_edits(media, job_id, ops, settings.limits(), settings.fps,
                                  settings.transition_half_frames)
        except EditError as exc:
            _err(f"edit {job_id}: {_flag(exc)}")
            return EXIT_BAD_INPUT
        if not as_json:
            print(f"job {job_id}: editing version {pending.base_version}: {pending.summary}"
                  + (f" (scenes made again: {', '.join(map(str, pending.changed_scenes))})"
                     if pending.changed_scenes else " (nothing to generate)"), file=sys.stderr)
        config = {"script": {"config": {"edits": [op.model_dump(mode="json") for op in ops]}}}
        return run_version(media, job_id, "the edit", as_json, lambda: execute_job(
            job_id, tags=tags, verbose=verbose, job_name=EDIT_JOB_NAME, ops_config=config))


def run_version(media, job_id: str, what: str, as_json: bool,
                execute: Callable[[], dict[str, Any]]) -> int:
    """Run what makes the job's next version (Ctrl-C, SIGTERM and ``videogen cancel`` stop it:
    exit 130 / 143); a run that fails or is stopped leaves the current version's files as they
    were. The caller holds the job."""
    from video_assets.providers.retry import stop_on_signals
    from video_assets.versions import restore_current

    with stop_on_signals() as stop:
        try:
            summary = execute()
        except KeyboardInterrupt:
            if stop.signum is None:
                raise
            summary = None
    if summary is None or summary["status"] == "failed":
        version = restore_current(media, job_id)
        _err(f"job {job_id}: {what} was not made; "
             + (f"version {version} is still current" if version else "the job has no version"))
    if stop.signum is not None:
        _err(f"job {job_id}: stopped by {signal.Signals(stop.signum).name}")
        return 128 + stop.signum
    assert summary is not None
    return _report(summary, as_json)


def history(args: argparse.Namespace) -> int:
    from video_assets.versions import load_history

    media, _ = _store_settings()
    job_id = args.job_id
    found = load_history(media, job_id)
    if found is None:
        _err(f"history: job {job_id!r} has no rendered version; fix: check the job id, or "
             "render it first")
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(found.model_dump(mode="json"), sort_keys=True))
        return EXIT_OK
    print(f"job {job_id}: version {found.current} is current"
          + (f"; redo would bring back {found.redo[0]}" if found.redo else ""))
    for v in found.versions:
        mark = "*" if v.version == found.current else " "
        changed = ", ".join(map(str, v.changed_scenes)) or "-"
        print(f"{mark} {v.version:>3}  {v.created_at:%Y-%m-%d %H:%M:%S}  {v.operation:<9} "
              f"paid {v.paid_calls:>2} (${v.cost_usd:.2f})  scenes made: {changed:<8}  "
              f"{v.summary or 'first render'}{'' if v.status == 'done' else '  [' + v.status + ']'}")
    return EXIT_OK


def move(args: argparse.Namespace) -> int:
    """``undo`` / ``redo``: run ``version_job`` for the job (no render, nothing paid)."""
    from video_assets.cli import _instance
    from video_assets.cli_log import LOGGER_NAME
    from video_assets.definitions import defs
    from video_assets.layout import FINAL
    from video_assets.store import job_key
    from video_assets.versions import load_history

    action = args.command
    media, _ = _store_settings()
    job_id = args.job_id
    with contextlib.ExitStack() as held:
        if not _hold(held, job_id):
            return EXIT_BAD_INPUT
        found = load_history(media, job_id)
        problem = ("has no rendered version; fix: check the job id, or render it first"
                   if found is None else
                   f"version {found.current} is the first; nothing to undo"
                   if action == "undo" and found.get(found.current).parent is None else
                   "has nothing to redo (no undo since its last edit)"
                   if action == "redo" and not found.redo else None)
        if problem:
            _err(f"{action}: job {job_id} {problem}; `videogen history {job_id}` lists its versions")
            return EXIT_BAD_INPUT
        result = defs.resolve_job_def("version_job").execute_in_process(
            instance=_instance(), raise_on_error=False, tags={"video_assets/job_id": job_id},
            run_config={"ops": {"change_version": {"config": {"job_id": job_id,
                                                              "action": action}}},
                        "loggers": {LOGGER_NAME: {"config": {"log_level": "WARNING"}}}})
    if not result.success:
        _err(f"{action}: job {job_id}: failed; see the run {result.run_id} in the UI")
        return EXIT_FAILED
    version = result.output_for_node("change_version")["version"]
    out: dict[str, Any] = {"job_id": job_id, "action": action, "version": version,
                           "final_video": media.uri(job_key(job_id, FINAL)), "paid_calls": 0}
    print(json.dumps(out, sort_keys=True) if args.json else
          f"job {job_id}: version {version} is current ({action}); video: {out['final_video']}")
    return EXIT_OK


def rerender(args: argparse.Namespace) -> int:
    """Render an existing job again with new options, from its own song (no upload); its scenes
    and their edits are kept (``--replan`` plans afresh). New captions or lyrics change only the
    composition: the scenes are kept, and a new version results."""
    from video_assets.admission import (
        RequestError,
        check_caption_font,
        check_lyrics,
        read_lyrics,
        resolve_providers,
        staged_key,
        validate_request,
    )
    from video_assets.cli import caption_fields, execute_job, flag_message
    from video_assets.layout import REQUEST, USER_LYRICS
    from video_assets.schemas import StoredRequest
    from video_assets.store import job_key

    media, _ = _store_settings()
    job_id = args.job_id
    if not media.exists(job_key(job_id, REQUEST)):
        _err(f"rerender: job {job_id!r} has never run; fix: check the job id, or render it with "
             "videogen render --audio ...")
        return EXIT_BAD_INPUT
    stored = StoredRequest.model_validate(media.get_json(job_key(job_id, REQUEST)))
    if args.pacing is not None and not args.replan:
        _err("rerender: --pacing: the pacing sets where the cuts are, so the scenes must be "
             "planned again; fix: add --replan (the edited versions stay in the history)")
        return EXIT_BAD_INPUT
    options = {k: v for k in ("aspect", "transitions", "flavor", "pacing", "budget_usd")
               if (v := getattr(args, k)) is not None}
    data = {**stored.request.model_dump(mode="json", exclude_none=True), **options}
    if captions := caption_fields(args):
        data["captions"] = caption_fields(args, data.get("captions"))
        options["captions"] = ", ".join(captions.values())
    if args.lyrics:
        data["lyrics"] = options["lyrics"] = str(args.lyrics)
    source = "command line"
    try:
        request = resolve_providers(validate_request(data, source), source)
        check_caption_font(request, source)
        lyrics = read_lyrics(Path(args.lyrics), source, args.lyrics) if args.lyrics else None
        if request.lyrics:  # new lyrics, or the job's own against a new caption style
            text = lyrics if lyrics is not None else _job_lyrics(media, job_id, source)
            check_lyrics(request, text, stored.audio_duration_s, source)
    except RequestError as exc:
        _err(flag_message(exc))
        return EXIT_BAD_INPUT
    with contextlib.ExitStack() as held:
        if not _hold(held, job_id):
            return EXIT_BAD_INPUT
        # the job's own clean copy of its song is the "upload" this time
        media.put_json(staged_key(job_id), stored.model_copy(update={"request": request})
                       .model_dump(mode="json"))
        if lyrics is not None:  # a run that fails puts the current version's back
            media.put_bytes(job_key(job_id, USER_LYRICS), lyrics.encode("utf-8"))
        if not args.json:
            print(f"job {job_id}: rendering again with "
                  + (", ".join(f"{k} {v}" for k, v in options.items()) or "the same options")
                  + ("; planned afresh" if args.replan else "; scenes and edits kept"),
                  file=sys.stderr)
        return run_version(media, job_id, "the new render", args.json, lambda: execute_job(
            job_id, verbose=args.verbose,
            ops_config={"script": {"config": {"replan": bool(args.replan)}}}))


def _job_lyrics(media, job_id: str, source: str) -> str:
    """The job's own copy of its lyrics (``layout.USER_LYRICS``, or its current version's)."""
    from video_assets.admission import RequestError, lyrics_text
    from video_assets.layout import USER_LYRICS
    from video_assets.versions import current_file_key

    key = current_file_key(media, job_id, USER_LYRICS)
    if key is None:
        raise RequestError(source, "lyrics", f"job {job_id} has lost its lyrics file "
                           f"({USER_LYRICS}); fix: give it again with --lyrics FILE")
    return lyrics_text(media.get_bytes(key), source, USER_LYRICS)


def add_parsers(sub) -> None:
    e = sub.add_parser("edit", help="edit one scene of a job: a new version, paying only for "
                       "what changed", description="Scenes are numbered from 1 as in the job's "
                       "files. Examples: edit JOB prompt 3 \"a red kite\"; edit JOB move-cut 2 "
                       "--beats +2; edit JOB slip 4 --in-s 1.5; edit JOB reorder 5 --to 1; "
                       "edit JOB delete 2; edit JOB split 3 --at-beat 4; edit JOB replace 2 "
                       "--file clip.mp4; edit JOB reroll 6")
    e.add_argument("job_id", metavar="JOB_ID", type=_job_id)
    e.add_argument("operation", choices=OPERATIONS, metavar="OPERATION",
                   help=" | ".join(OPERATIONS))
    e.add_argument("scene", type=int, metavar="SCENE", help="the scene, from 1")
    e.add_argument("text", nargs="?", help="prompt: the scene's new prompt")
    e.add_argument("--camera")
    e.add_argument("--motion")
    e.add_argument("--caption")
    e.add_argument("--transition", help="into the next scene: cut | crossfade | fade")
    e.add_argument("--beats", type=int, help="move-cut: beats to move the cut after SCENE "
                   "(+ later, - earlier)")
    e.add_argument("--in-s", dest="in_s", type=float, help="slip: the clip's in-point, seconds")
    e.add_argument("--to", type=int, help="reorder: the new position, from 1")
    e.add_argument("--at-beat", dest="at_beat", type=int,
                   help="split: the N-th beat inside the scene")
    e.add_argument("--file", help="replace: your video file")
    e.add_argument("--json", action="store_true", help="last stdout line is a JSON summary "
                   "(render's, plus version and paid_calls)")
    e.add_argument("--verbose", action="store_true")
    e.set_defaults(func=edit)
    h = sub.add_parser("history", help="list a job's versions")
    h.add_argument("job_id", metavar="JOB_ID", type=_job_id)
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=history)
    for name, what in (("undo", "make the version before the current one current again"),
                       ("redo", "bring back the version the last undo left")):
        m = sub.add_parser(name, help=f"{what} (no render, nothing paid)")
        m.add_argument("job_id", metavar="JOB_ID", type=_job_id)
        m.add_argument("--json", action="store_true")
        m.set_defaults(func=move)
    r = sub.add_parser("rerender", help="render a job again with new options, from its own "
                       "song; its scenes and edits are kept")
    r.add_argument("job_id", metavar="JOB_ID", type=_job_id)
    r.add_argument("--aspect", help="9:16 | 16:9 | 1:1 (the pictures are made again)")
    r.add_argument("--transitions", help="auto | cut | crossfade | fade")
    r.add_argument("--flavor", help="default | cinematic | energetic | minimal")
    r.add_argument("--pacing", help="calm | auto | energetic (shot lengths; with --replan)")
    r.add_argument("--budget-usd", dest="budget_usd", type=float)
    add_caption_flags(r, again=True)
    r.add_argument("--replan", action="store_true", help="plan the scenes afresh (the edits stay "
                   "in the history)")
    r.add_argument("--json", action="store_true")
    r.add_argument("--verbose", action="store_true")
    r.set_defaults(func=rerender)
