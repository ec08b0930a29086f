"""The edit path's I/O (no Dagster): a job's current version read from the store, edits checked
against it before any run, replacement files staged, and the next version's script made.

The ``script`` asset calls ``next_script`` (an edit run, a render again); the CLI and the inbox
call ``check_edits`` first, so a bad edit is refused (exit 2, a rejection report) before a run
starts and nothing of the job changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from video_assets import layout
from video_assets.edits import (
    EditContext,
    EditError,
    EditOp,
    PromptEdit,
    ReplaceEdit,
    apply_edits,
    with_takes,
)
from video_assets.media.boundaries import BoundaryLimits
from video_assets.media.fonts import FontCoverageError, check_text_coverage
from video_assets.media.subtitles import resolve_style
from video_assets.media.user_clip import ClipFileError, clean_clip, probe_clip_s
from video_assets.providers.offline import plan_transitions
from video_assets.schemas import BeatGrid, ClipSpec, Request, Script, StoredRequest, Take
from video_assets.store import MediaStore, job_key, sha256_file
from video_assets.versions import History, PendingEdit, load_history, restore_takes

UPLOADS = "uploads"  # a job's folder of users' replacement clips (re-encoded), by content


@dataclass(frozen=True)
class JobState:
    """A job's current version: what an edit starts from."""

    history: History
    request: StoredRequest
    grid: BeatGrid
    script: Script
    clips: list[ClipSpec]


def current_state(media: MediaStore, job_id: str) -> JobState:
    """The current version's request, script and clips (from its own copy under ``versions/``)
    and the job's beat grid. Raises ``EditError`` for a job that has no rendered version."""
    history = load_history(media, job_id)
    if history is None:
        raise EditError("job", f"{job_id!r} has no rendered version to edit; fix: check the job "
                        "id (the UI's partitions, or the jobs table), or render it first")
    root = layout.version_key(job_id, history.current)
    return JobState(
        history=history,
        request=StoredRequest.model_validate(media.get_json(f"{root}/{layout.REQUEST}")),
        grid=BeatGrid.model_validate(media.get_json(job_key(job_id, layout.BEAT_GRID))),
        script=Script.model_validate(media.get_json(f"{root}/{layout.SCRIPT}")),
        clips=[ClipSpec.model_validate(c)
               for c in media.get_json(f"{root}/{layout.CLIPS_MANIFEST}")])


def upload_key(job_id: str, sha256: str) -> str:
    return job_key(job_id, UPLOADS, f"{sha256[:32]}.mp4")


def stage_clip(media: MediaStore, job_id: str, path: Path) -> str:
    """Re-encode a user's video file into the job's uploads (by content); returns its key.
    Raises ``EditError`` (field ``file``) when it is not a readable video."""
    with media.scratch_dir() as tmp:
        try:
            clean_clip(path, tmp / "clip.mp4")
        except ClipFileError as exc:
            raise EditError("file", str(exc)) from None
        key = upload_key(job_id, sha256_file(tmp / "clip.mp4"))
        if not media.exists(key):
            media.put_file(key, tmp / "clip.mp4")
    return key


def staged_ops(media: MediaStore, job_id: str, ops: Sequence[EditOp],
               base_dir: Path | None = None) -> list[EditOp]:
    """The edits with every replacement file staged into the job's uploads (their ``file``
    becomes the upload's key), so that the run reads only the store. A local ``file`` is
    relative to ``base_dir`` (where the edit was given) and, when ``base_dir`` is given, must
    lie inside it after links are followed."""
    out: list[EditOp] = []
    for op in ops:
        if isinstance(op, ReplaceEdit) and not (is_upload(job_id, op.file)
                                                or is_staged_clip(job_id, op.file)):
            out.append(op.model_copy(update={"file": stage_clip(
                media, job_id, _inside(Path(op.file), base_dir))}))
        else:
            out.append(op)
    return out


def _inside(path: Path, base_dir: Path | None) -> Path:
    if base_dir is None:
        return path.expanduser().resolve()
    resolved = (base_dir / path).resolve()
    if not resolved.is_relative_to(base_dir.resolve()) or not resolved.is_file():
        raise EditError("file", f"{str(path)[:200]!r} is not a file in the edit's folder; fix: put "
                        "the video beside the edit file and give its name")
    return resolved


def is_upload(job_id: str, key: str) -> bool:
    return key.startswith(job_key(job_id, UPLOADS) + "/") and ".." not in key


def staged_clip_key(job_id: str, sha256: str, suffix: str) -> str:
    """Where the inbox puts a replacement file as it came (the run re-encodes it)."""
    return f"staged/{job_id}/clips/{sha256[:32]}{suffix.lower()[:8]}"


def is_staged_clip(job_id: str, key: str) -> bool:
    return key.startswith(f"staged/{job_id}/clips/") and ".." not in key


def upload_take(media: MediaStore, job_id: str, key: str, clean: bool = True) -> Take:
    """The take of a replacement clip: one staged in the job's uploads, or one the inbox put
    aside as it came (re-encoded into the uploads now; with ``clean`` False only probed, for a
    check before the run)."""
    if is_staged_clip(job_id, key) and media.exists(key) and clean:
        with media.local_path(key) as path:
            key = stage_clip(media, job_id, path)
    elif not (is_upload(job_id, key) or is_staged_clip(job_id, key)) or not media.exists(key):
        raise EditError("file", f"{key[:200]!r} is not a staged clip of job {job_id}; fix: give "
                        "the file through videogen edit ... replace, or an edit file beside it")
    with media.local_path(key) as path:
        try:
            clip_s = probe_clip_s(path)
        except ClipFileError as exc:
            raise EditError("file", str(exc)) from None
    return Take(clip_key=key, clip_s=round(clip_s, 6), provider="user")


def edit_context(media: MediaStore, job_id: str, state: JobState, limits: BoundaryLimits,
                 fps: int, half_frames: int, clean: bool = True) -> EditContext:
    return EditContext(grid=state.grid, clips=state.clips, limits=limits, fps=fps,
                       half_frames=half_frames,
                       stage_file=lambda key: upload_take(media, job_id, key, clean))


def describe(ops: Sequence[EditOp], summary: str, changed: list[int],
             base_version: int) -> PendingEdit:
    return PendingEdit(operation="edit" if len(ops) > 1 else ops[0].op,
                       scene=ops[0].scene if len(ops) == 1 else None,
                       parameters=[op.model_dump(mode="json") for op in ops], summary=summary,
                       changed_scenes=changed, base_version=base_version)


def check_caption_fonts(ops: Sequence[EditOp], request: Request) -> None:
    """``EditError`` naming ``caption`` and the package to install when a new caption has text
    no installed font draws in the job's caption style (checked with the edit, as admission
    checks lyrics, not when the captions are made)."""
    style = resolve_style(request.captions, request.flavor, request.mode)
    for op in ops:
        if isinstance(op, PromptEdit) and op.caption:
            try:
                check_text_coverage(op.caption, style.font, style.bold)
            except FontCoverageError as exc:
                raise EditError("caption", f"scene {op.scene}: {exc}") from exc


def check_edits(media: MediaStore, job_id: str, ops: Sequence[EditOp], limits: BoundaryLimits,
                fps: int, half_frames: int) -> PendingEdit:
    """Apply the edits to the current version in memory: the description of the version they
    would make, or ``EditError``. Nothing is written (a replacement file is only probed)."""
    state = current_state(media, job_id)
    check_caption_fonts(ops, state.request.request)
    result = apply_edits(state.script, ops, edit_context(media, job_id, state, limits, fps,
                                                         half_frames, clean=False))
    return describe(ops, result.summary, result.changed, state.history.current)


def retime_transitions(script: Script, request: Request, grid: BeatGrid) -> Script:
    """The script's transitions chosen again for ``request.transitions`` (``auto``: by the
    music's energy at each cut and how the song's sections change there, as the offline
    planner chooses them)."""
    transitions = plan_transitions(grid, [s.end_s for s in script.scenes], request.transitions,
                                   request.flavor)
    return script.model_copy(update={"scenes": [
        s.model_copy(update={"transition": t}) for s, t in zip(script.scenes, transitions,
                                                                strict=True)]})


def next_script(media: MediaStore, job_id: str, ops: Sequence[EditOp], limits: BoundaryLimits,
                fps: int, half_frames: int) -> tuple[Script, PendingEdit | None] | None:
    """What the ``script`` stage starts from when the job already has a version:
    with ``ops``, the current version edited; without, the current version kept with its edits
    (a render again: its transitions chosen again if the request's ``transitions`` changed).
    None when the job has no version yet (plan it). The pending edit says what the run makes."""
    if load_history(media, job_id) is None:
        if ops:
            current_state(media, job_id)  # raises: nothing to edit
        return None
    state = current_state(media, job_id)
    stored = StoredRequest.model_validate(media.get_json(job_key(job_id, layout.REQUEST)))
    if stored.audio_sha256 != state.request.audio_sha256:
        if ops:
            raise EditError("job", f"{job_id}: its song changed since version "
                            f"{state.history.current}, so its cuts moved; fix: render it again "
                            "(videogen rerender JOB_ID --replan), then edit")
        return None  # another song (an ad's music made again): its cuts are elsewhere
    restore_takes(media, job_id, state.history.current, state.clips)
    if ops:
        check_caption_fonts(ops, state.request.request)
        result = apply_edits(state.script, ops, edit_context(media, job_id, state, limits, fps,
                                                             half_frames))
        return result.script, describe(ops, result.summary, result.changed,
                                       state.history.current)
    request = stored.request
    before = state.request.request
    changed = {k: v for k, v in request.model_dump(mode="json").items()
               if v != before.model_dump(mode="json").get(k)}
    script = with_takes(state.script, state.clips)
    if request.aspect != before.aspect or request.providers != before.providers:
        # pictures of another size or from other models: made again (a user's clip stays)
        script = script.model_copy(update={"scenes": [
            s if s.take is not None and s.take.provider == "user"
            else s.model_copy(update={"take": None, "in_s": 0.0}) for s in script.scenes]})
    if request.transitions != before.transitions or request.flavor != before.flavor:
        script = retime_transitions(script, request, state.grid)
    if not changed:
        return script, None  # rendered again as it is: a version only if something differs
    return script, PendingEdit(
        operation="rerender", parameters=changed,
        summary=", ".join(f"{k} -> {v}" for k, v in changed.items()),
        changed_scenes=[s.index + 1 for s in script.scenes if s.take is None],
        base_version=state.history.current)
