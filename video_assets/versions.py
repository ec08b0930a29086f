"""A job's versions: every render and edit is kept, the current one also where it always was.

``jobs/<id>/history.json`` lists the versions (what made each one, what it cost, which scenes it
made again) and says which is current; ``jobs/<id>/versions/<n>/`` holds version ``n``'s own
copy of its files (the request, script, clip manifest, storyboard images, clips, final video,
thumbnail and quality report, and the user's lyrics and the caption track with its subtitle files
where there are any; on a local store these are hard links to the same bytes, not copies).
Undo and redo make another version current by copying its files back: the same bytes, no render.
A version is committed whole, after its final video is made and measured; a run that fails
before leaves the current version as it was (``restore_current``).

Pure store operations (no Dagster).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from video_assets import layout
from video_assets.schemas import ClipSpec
from video_assets.store import MediaStore, is_cache_key, job_key
from video_assets.warehouse import Warehouse

PENDING_EDIT = "edit.json"  # what the run in progress is making: written by `script`, read at commit
VERSION_FILES = layout.VERSION_FILES  # the files of a version besides its folders
VERSION_FOLDERS = (layout.STORYBOARD, layout.CLIPS)


class Version(BaseModel):
    version: int
    parent: int | None  # the version it was made from
    operation: str  # render | rerender | edit
    scene: int | None = None  # the scene of a one-scene edit (1-based)
    parameters: list[dict] | dict = Field(default_factory=dict)  # the edits, or the options
    summary: str = ""
    changed_scenes: list[int] = Field(default_factory=list)  # made again (1-based)
    paid_calls: int = 0
    cost_usd: float = 0.0
    status: str = "done"  # done | checks_failed
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class History(BaseModel):
    job_id: str
    current: int
    versions: list[Version]
    redo: list[int] = Field(default_factory=list)  # versions undo left, the next redo first

    def get(self, version: int) -> Version:
        for v in self.versions:
            if v.version == version:
                return v
        raise KeyError(version)


class PendingEdit(BaseModel):
    """What a run is about to make: the next version's description, before it exists."""

    operation: str
    scene: int | None = None
    parameters: list[dict] | dict = Field(default_factory=dict)
    summary: str = ""
    changed_scenes: list[int] = Field(default_factory=list)
    base_version: int | None = None
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class HistoryError(ValueError):
    """Nothing to undo or redo, an unknown version, or a job never rendered."""


def load_history(media: MediaStore, job_id: str) -> History | None:
    key = job_key(job_id, layout.HISTORY)
    return History.model_validate(media.get_json(key)) if media.exists(key) else None


def save_history(media: MediaStore, history: History) -> None:
    media.put_json(job_key(history.job_id, layout.HISTORY), history.model_dump(mode="json"))


def write_pending(media: MediaStore, job_id: str, pending: PendingEdit) -> None:
    media.put_json(job_key(job_id, PENDING_EDIT), pending.model_dump(mode="json"))


def read_pending(media: MediaStore, job_id: str) -> PendingEdit | None:
    key = job_key(job_id, PENDING_EDIT)
    return PendingEdit.model_validate(media.get_json(key)) if media.exists(key) else None


def current_file_key(media: MediaStore, job_id: str, name: str) -> str | None:
    """Where the current version's ``name`` is: in the job's folder, else (on S3 the folder's
    copy of a file that is not a deliverable expires) the current version's own copy; None when
    neither has it."""
    key = job_key(job_id, name)
    if media.exists(key):
        return key
    history = load_history(media, job_id)
    kept = layout.version_key(job_id, history.current, name) if history else None
    return kept if kept is not None and media.exists(kept) else None


def _files(media: MediaStore, root: str) -> list[str]:
    """The version files under ``root`` (a job's folder or a version's), relative to it."""
    names = [f for f in VERSION_FILES if media.exists(f"{root}/{f}")]
    for folder in VERSION_FOLDERS:
        names += [o.key[len(root) + 1:] for o in media.list(f"{root}/{folder}/")]
    return names


def _copy_tree(media: MediaStore, src_root: str, dst_root: str) -> None:
    """Make ``dst_root``'s version files exactly ``src_root``'s: copy each, remove the rest
    (a scene deleted since leaves no clip behind)."""
    wanted = _files(media, src_root)
    for name in wanted:
        media.copy(f"{src_root}/{name}", f"{dst_root}/{name}")
    for name in set(_files(media, dst_root)) - set(wanted):
        media.delete(f"{dst_root}/{name}")


def restore_takes(media: MediaStore, job_id: str, version: int, clips: Sequence[ClipSpec]) -> int:
    """Put back into the cache, from version ``version``'s own copies, the images and clips its
    scenes' takes name (``ClipSpec.take``) that the cache no longer holds: on S3 the cache
    expires after a day while a version's files are kept, and an edit then reuses them instead
    of making (and paying for) them again. A lip-synced clip is not its take (the take is the
    clip before lip-sync), so it is not restored. Returns how many entries were put back.

    Only where the cache expires (``MediaStore.cache_expires``): elsewhere an entry is missing
    because it was damaged and deleted, and a local version's copy is a hard link to the same
    damaged bytes, which must be made again, not restored."""
    if not media.cache_expires:
        return 0
    restored = 0
    for spec in clips:
        kept = [(spec.image_key, layout.version_key(job_id, version, layout.STORYBOARD,
                                                    layout.scene_file(spec.index, "png")))]
        if not spec.lipsync:
            kept.append((spec.source_key, layout.version_key(job_id, version, layout.CLIPS,
                                                             layout.scene_file(spec.index, "mp4"))))
        for key, copy in kept:
            if key and is_cache_key(key) and not media.cached(key) and media.exists(copy):
                media.copy(copy, key)
                restored += 1
    return restored


def _prune_scenes(media: MediaStore, job_id: str) -> None:
    """Remove the storyboard images and clips of scenes the job's script no longer has (a
    deleted scene's), so that a version holds only its own."""
    n = len(media.get_json(job_key(job_id, layout.SCRIPT))["scenes"])
    keep = {layout.storyboard_key(job_id, i) for i in range(n)} | \
        {layout.clip_key(job_id, i) for i in range(n)} | \
        {job_key(job_id, layout.STORYBOARD, layout.CONTACT_SHEET)}
    for folder in VERSION_FOLDERS:
        for obj in media.list(job_key(job_id, folder) + "/"):
            if obj.key not in keep:
                media.delete(obj.key)


# what decides whether a render made another video than the current version's
SAME_VIDEO_FILES = (layout.SCRIPT, layout.CLIPS_MANIFEST, layout.CAPTIONS)


def _same(media: MediaStore, a: str, b: str) -> bool:
    """Two files with the same bytes, or both absent (a version made before captions existed
    has no caption track, and neither has a job rendered before them again)."""
    if not media.exists(a) or not media.exists(b):
        return not media.exists(a) and not media.exists(b)
    return media.get_bytes(a) == media.get_bytes(b)


def commit_version(media: MediaStore, job_id: str, pending: PendingEdit | None, status: str,
                   paid_calls: int, cost_usd: float) -> tuple[History, bool]:
    """Keep the job's current files as a new version and make it current; returns the history
    and whether a version was added. A render that changed nothing (the same script and clips as
    the current version, and the same captions: a job rendered again) adds none."""
    history = load_history(media, job_id)
    root = job_key(job_id)
    if pending is None and history is not None:
        cur = layout.version_key(job_id, history.current)
        if all(_same(media, f"{cur}/{f}", f"{root}/{f}") for f in SAME_VIDEO_FILES):
            _copy_tree(media, cur, root)  # the current version's own bytes, as before
            return history, False
    pending = pending or PendingEdit(operation="render")
    _prune_scenes(media, job_id)
    number = 1 + max((v.version for v in history.versions), default=0) if history else 1
    _copy_tree(media, root, layout.version_key(job_id, number))
    version = Version(
        version=number, parent=history.current if history else None,
        operation=pending.operation, scene=pending.scene, parameters=pending.parameters,
        summary=pending.summary, changed_scenes=pending.changed_scenes, paid_calls=paid_calls,
        cost_usd=round(cost_usd, 6), status=status)
    if history is None:
        history = History(job_id=job_id, current=number, versions=[version])
    else:
        history = history.model_copy(update={"current": number, "redo": [],
                                             "versions": [*history.versions, version]})
    save_history(media, history)
    media.delete(job_key(job_id, PENDING_EDIT))
    return history, True


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def commit(media: MediaStore, wh: Warehouse, job_id: str, status: str) -> tuple[History, bool]:
    """Commit the run's result as the job's next version (``commit_version``) with what it paid
    (the ledger since the run's edit began, or since the version before) and record it in the
    ``edits`` table; returns the history and whether a version was added."""
    pending = read_pending(media, job_id)
    history = load_history(media, job_id)
    since = pending.started_at if pending else \
        history.get(history.current).created_at if history else EPOCH
    paid_calls, cost_usd = wh.calls_since(job_id, since)
    history, added = commit_version(media, job_id, pending, status, paid_calls, cost_usd)
    if added:
        v = history.get(history.current)
        wh.record_edit(job_id, v.version, v.operation, v.scene, parameters_json(v.parameters),
                       v.paid_calls, v.cost_usd, v.created_at)
    return history, added


def restore_current(media: MediaStore, job_id: str) -> int | None:
    """Put the current version's files back in the job's folder (after a failed edit run), and
    drop the pending edit; returns the version, or None for a job without versions."""
    history = load_history(media, job_id)
    media.delete(job_key(job_id, PENDING_EDIT))
    if history is None:
        return None
    _copy_tree(media, layout.version_key(job_id, history.current), job_key(job_id))
    return history.current


def undo(media: MediaStore, job_id: str, wh: Warehouse | None = None) -> History:
    """Make the version the current one was made from current again (its exact files)."""
    history = _need_history(media, job_id)
    parent = history.get(history.current).parent
    if parent is None:
        raise HistoryError(f"job {job_id}: version {history.current} is the first; nothing to "
                           "undo; fix: videogen history JOB_ID lists the versions")
    _copy_tree(media, layout.version_key(job_id, parent), job_key(job_id))
    history = history.model_copy(update={"current": parent,
                                         "redo": [history.current, *history.redo]})
    save_history(media, history)
    _record_move(wh, history, "undo")
    return history


def redo(media: MediaStore, job_id: str, wh: Warehouse | None = None) -> History:
    """Make current again the version the last undo left."""
    history = _need_history(media, job_id)
    if not history.redo:
        raise HistoryError(f"job {job_id}: nothing to redo (no undo since the last edit); fix: "
                           "videogen history JOB_ID lists the versions")
    target, *rest = history.redo
    _copy_tree(media, layout.version_key(job_id, target), job_key(job_id))
    history = history.model_copy(update={"current": target, "redo": rest})
    save_history(media, history)
    _record_move(wh, history, "redo")
    return history


def _record_move(wh: Warehouse | None, history: History, operation: str) -> None:
    if wh is not None:
        wh.record_edit(history.job_id, history.current, operation, None, "{}", 0, 0.0,
                       datetime.now(UTC))


def _need_history(media: MediaStore, job_id: str) -> History:
    history = load_history(media, job_id)
    if history is None:
        raise HistoryError(f"job {job_id!r} has no rendered version; fix: check the job id "
                           "(videogen jobs / the UI), or render it first")
    return history


def parameters_json(parameters: list[dict] | dict) -> str:
    return json.dumps(parameters, sort_keys=True, default=str)
