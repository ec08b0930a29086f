"""Scene edits: pure functions from one version's script to the next (no Dagster, no I/O).

An edit never generates anything itself. It returns the next version's script, in which every
scene whose picture may stay keeps its ``take`` (the image and clip it already has, see
``schemas.Take``) and every scene whose picture must change has none: the storyboard and clip
stages then reuse the takes (free) and generate (and pay for) only the rest. Scenes are numbered
from 1 in everything a user sees (the job's files are ``01.png``...), from 0 in ``Scene.index``.

Cuts stay on the beat grid: a moved cut, a split or the time of a deleted scene lands on a beat
of ``beat_grid.json``, and every scene keeps the clip-length limits, or the edit is refused
(``EditError``, naming the field, the limit and the values that would be allowed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from video_assets.media.boundaries import BoundaryLimits, required_clips
from video_assets.media.compose import Segment, cut_frame, scene_segments
from video_assets.schemas import BeatGrid, ClipSpec, Scene, Script, Take, Transition

Camera = Literal["push_in", "pull_out", "pan_left", "pan_right", "tilt_up", "tilt_down", "static"]
BEAT_TOLERANCE_S = 0.002  # a cut "is on" a beat within this


class EditError(ValueError):
    """A bad edit: ``field`` names what is wrong; the message says how to fix it."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scene: int = Field(ge=1, description="the scene, numbered from 1 as in the job's files")


class PromptEdit(_Op):
    """Change what a scene shows or how it ends; its image and clip are made again only when
    the prompt, camera or motion change (a caption or a transition reuses them)."""

    op: Literal["prompt"] = "prompt"
    prompt: str | None = Field(default=None, min_length=3, max_length=2000)
    camera: Camera | None = None
    motion: str | None = Field(default=None, min_length=1, max_length=500)
    caption: str | None = Field(default=None, max_length=500)
    transition: Transition | None = None


class RerollEdit(_Op):
    """Make the scene again as it is, with a new seed."""

    op: Literal["reroll"] = "reroll"


class MoveCutEdit(_Op):
    """Move the cut after ``scene`` by ``beats`` beats (+ later, - earlier)."""

    op: Literal["move-cut"] = "move-cut"
    beats: int


class SlipEdit(_Op):
    """Show the scene's clip from ``in_s`` seconds in."""

    op: Literal["slip"] = "slip"
    in_s: float = Field(ge=0, allow_inf_nan=False)


class ReorderEdit(_Op):
    """Move a scene to position ``to``; the cuts stay where the music has them."""

    op: Literal["reorder"] = "reorder"
    to: int = Field(ge=1)


class DeleteEdit(_Op):
    """Remove a scene; its neighbours take its time, cut on a beat."""

    op: Literal["delete"] = "delete"


class SplitEdit(_Op):
    """Cut a scene in two at its ``at_beat``-th beat (counted from 1 inside the scene)."""

    op: Literal["split"] = "split"
    at_beat: int = Field(ge=1)


class ReplaceEdit(_Op):
    """Show the user's own video file in the scene instead of its generated clip."""

    op: Literal["replace"] = "replace"
    file: str = Field(min_length=1, max_length=1024)


EditOp = Annotated[PromptEdit | RerollEdit | MoveCutEdit | SlipEdit | ReorderEdit | DeleteEdit
                   | SplitEdit | ReplaceEdit, Field(discriminator="op")]
OPERATIONS = ("prompt", "reroll", "move-cut", "slip", "reorder", "delete", "split", "replace")
_OPS = TypeAdapter(list[EditOp])


def parse_ops(data: object) -> list[EditOp]:
    """Edit operations from plain data (an edit file, run config): a list of mappings with an
    ``op`` each. Raises ``EditError`` naming the first bad field."""
    if not isinstance(data, list) or not data:
        raise EditError("operations", "must be a non-empty list of edits, each with an 'op' "
                        f"({', '.join(OPERATIONS)}) and a 'scene'")
    cleaned = [{k: v for k, v in item.items() if v is not None} if isinstance(item, dict) else item
               for item in data]
    try:
        return _OPS.validate_python(cleaned)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"] if str(p) not in OPERATIONS)
        field = str(err["loc"][-1]) if err["loc"] else "op"
        fix = (f"give {field!r}" if err["type"] == "missing" else
               f"use one of {', '.join(OPERATIONS)}" if err["type"] == "union_tag_invalid" else
               "see videogen edit --help for each operation's fields")
        raise EditError(f"operations.{where}", f"{err['msg']}; fix: {fix}") from None


@dataclass(frozen=True)
class EditContext:
    """What an edit may need besides the script: the beat grid, the clips the current version
    shows (each scene's take), the timing rules, and how to stage a user's file."""

    grid: BeatGrid
    clips: Sequence[ClipSpec]
    limits: BoundaryLimits
    fps: int = 30
    half_frames: int = 8
    stage_file: Callable[[str], Take] | None = None  # a replacement file -> its take


@dataclass(frozen=True)
class EditResult:
    script: Script
    changed: list[int]  # 1-based scenes of the new version whose picture is made again
    summary: str  # one line: what the edit did


def with_takes(script: Script, clips: Sequence[ClipSpec]) -> Script:
    """The script with each scene's take and in-point as its clip manifest records them."""
    by_index = {c.index: c for c in clips}
    return script.model_copy(update={"scenes": [
        s.model_copy(update={"take": by_index[s.index].take(), "in_s": by_index[s.index].in_s})
        if s.index in by_index else s for s in script.scenes]})


def apply_edit(script: Script, op: EditOp, ctx: EditContext) -> EditResult:
    """The next version's script after ``op`` (``script``: the current version's, its scenes'
    takes filled in from ``ctx.clips``). Raises ``EditError`` for an edit that cannot be made;
    nothing is changed then."""
    script = with_takes(script, ctx.clips)
    n = len(script.scenes)
    if op.scene > n:
        raise EditError("scene", f"the job has {n} scenes; scene {op.scene} does not exist; "
                        f"fix: use 1..{n} (videogen history shows the current version)")
    handler = _HANDLERS[op.op]
    scenes, changed, summary = handler(list(script.scenes), op, ctx)
    scenes = [s.model_copy(update={"index": i}) for i, s in enumerate(scenes)]
    return EditResult(script.model_copy(update={"scenes": scenes}), changed, summary)


def _prompt(scenes: list[Scene], op: PromptEdit, ctx: EditContext):
    i = op.scene - 1
    old = scenes[i]
    fields = {k: v for k, v in op.model_dump(exclude={"op", "scene"}).items() if v is not None}
    if not fields:
        raise EditError("prompt", "nothing to change; fix: give a new prompt, or --camera, "
                        "--motion, --caption or --transition")
    if "prompt" in fields:
        fields["prompt"] = " ".join(fields["prompt"].split())
    if "transition" in fields and i == n_last(scenes):
        raise EditError("transition", f"scene {op.scene} is the last one: it has no transition "
                        "out; fix: set the transition of an earlier scene")
    changes = {k: v for k, v in fields.items() if getattr(old, k) != v}
    if not changes:
        raise EditError("prompt", f"scene {op.scene} already has "
                        + ", ".join(f"{k} {v!r}" for k, v in fields.items()) + "; nothing to do")
    repaint = bool({"prompt", "camera", "motion"} & changes.keys())
    if repaint:
        changes.update(take=None, in_s=0.0)
    scenes[i] = old.model_copy(update=changes)
    return scenes, [op.scene] if repaint else [], \
        f"scene {op.scene}: " + ", ".join(f"{k} -> {_short(v)}" for k, v in changes.items()
                                          if k not in ("take", "in_s"))


def n_last(scenes: Sequence[Scene]) -> int:
    return len(scenes) - 1


def next_seed(seed: int) -> int:
    """A new seed for a reroll: a stable function of the old one (an undo and the same reroll
    give the same picture again, from the cache)."""
    return int.from_bytes(hashlib.sha256(f"reroll:{seed}".encode()).digest()[:4], "big") \
        % (2**31 - 1)


def _reroll(scenes: list[Scene], op: RerollEdit, ctx: EditContext):
    i = op.scene - 1
    seed = next_seed(scenes[i].seed)
    scenes[i] = scenes[i].model_copy(update={"seed": seed, "take": None, "in_s": 0.0})
    return scenes, [op.scene], f"scene {op.scene}: new seed {seed}"


def _length_bounds(scenes: Sequence[Scene], ctx: EditContext) -> tuple[float, float]:
    """The scene lengths an edit may leave: the clip limits, widened to what the plan already
    has (a short song's plan may have relaxed them)."""
    lengths = [s.end_s - s.start_s for s in scenes]
    return (min(ctx.limits.min_len_s, min(lengths)) - 1e-6,
            max(ctx.limits.max_len_s, max(lengths)) + 1e-6)


def _beat_index(beats: Sequence[float], t_s: float) -> int | None:
    for k, b in enumerate(beats):
        if abs(b - t_s) <= BEAT_TOLERANCE_S:
            return k
    return None


def _allowed_range(values: Sequence[int]) -> str:
    if not values:
        return "none"
    return f"{values[0]:+d}..{values[-1]:+d}" if len(values) > 1 else f"{values[0]:+d}"


def _move_cut(scenes: list[Scene], op: MoveCutEdit, ctx: EditContext):
    i = op.scene - 1
    if i >= n_last(scenes):
        raise EditError("scene", f"scene {op.scene} is the last one: the end of the song is not a "
                        f"cut; fix: move the cut after scene 1..{len(scenes) - 1}")
    if op.beats == 0:
        raise EditError("beats", "0 moves nothing; fix: +N for later, -N for earlier")
    left, right = scenes[i], scenes[i + 1]
    beats = ctx.grid.beats_s
    k = _beat_index(beats, left.end_s)
    if k is None:
        raise EditError("scene", f"the cut after scene {op.scene} ({left.end_s:.3f} s) is not on "
                        "a beat of the grid; fix: split or delete to put it on one")
    lo, hi = _length_bounds(scenes, ctx)
    allowed = [j - k for j, b in enumerate(beats)
               if left.start_s < b < right.end_s and j != k
               and lo <= b - left.start_s <= hi and lo <= right.end_s - b <= hi]
    if op.beats not in allowed:
        target = k + op.beats
        why = (f"beat {target + 1} does not exist" if not 0 <= target < len(beats) else
               f"scene {op.scene} would last {beats[target] - left.start_s:.2f} s and scene "
               f"{op.scene + 1} {right.end_s - beats[target]:.2f} s")
        raise EditError("beats", f"{op.beats:+d}: {why}; each scene must last "
                        f"{max(lo, 0):.2f}-{hi:.2f} s; fix: use --beats "
                        f"{_allowed_range(sorted(allowed))}")
    t = beats[k + op.beats]
    scenes[i] = left.model_copy(update={"end_s": t})
    scenes[i + 1] = right.model_copy(update={"start_s": t})
    return scenes, [], f"cut after scene {op.scene}: {left.end_s:.3f} s -> {t:.3f} s " \
                       f"({op.beats:+d} beats)"


def _segments(scenes: Sequence[Scene], ctx: EditContext) -> list[Segment]:
    return scene_segments(scenes, ctx.fps, ctx.half_frames)


def scene_need_s(scenes: Sequence[Scene], i: int, ctx: EditContext) -> float:
    """How many seconds of its clip scene ``i`` shows (its segment, transition overlaps
    included), as composition lays it out."""
    return _segments(scenes, ctx)[i].n_frames / ctx.fps


def _slip(scenes: list[Scene], op: SlipEdit, ctx: EditContext):
    i = op.scene - 1
    scene = scenes[i]
    if scene.take is None:
        raise EditError("scene", f"scene {op.scene} has no clip yet; fix: render the job first")
    need_s = scene_need_s(scenes, i, ctx)
    room_s = scene.take.clip_s - need_s
    if scene.take.provider != "user" and op.in_s > room_s + 1e-6:
        raise EditError("in_s", f"{op.in_s:g} s: scene {op.scene} shows {need_s:.2f} s of its "
                        f"{scene.take.clip_s:g} s clip, so its in-point can be "
                        f"0..{max(0.0, room_s):.2f} s; fix: --in-s {max(0.0, room_s):.2f} or less")
    if scene.take.provider == "user" and op.in_s >= scene.take.clip_s:
        raise EditError("in_s", f"{op.in_s:g} s: the clip of scene {op.scene} is "
                        f"{scene.take.clip_s:g} s long; fix: an in-point below that")
    if abs(op.in_s - scene.in_s) < 1e-9:
        raise EditError("in_s", f"scene {op.scene} already starts {op.in_s:g} s into its clip; "
                        "nothing to do")
    scenes[i] = scene.model_copy(update={"in_s": float(op.in_s)})
    return scenes, [], f"scene {op.scene}: in-point {scene.in_s:g} s -> {op.in_s:g} s"


_CONTENT = ("prompt", "caption", "camera", "motion", "seed", "take", "in_s")  # moves with a scene


def _reorder(scenes: list[Scene], op: ReorderEdit, ctx: EditContext):
    n = len(scenes)
    if op.to > n:
        raise EditError("to", f"position {op.to}: the job has {n} scenes; fix: use 1..{n}")
    if op.to == op.scene:
        raise EditError("to", f"scene {op.scene} is already at position {op.to}; nothing to do")
    contents = [{k: getattr(s, k) for k in _CONTENT} for s in scenes]
    contents.insert(op.to - 1, contents.pop(op.scene - 1))
    # the slots (times, transitions, energy: the music's) stay; the pictures move between them
    moved = [slot.model_copy(update=content) for slot, content in zip(scenes, contents, strict=True)]
    return moved, [], f"scene {op.scene} moved to position {op.to}"


def _delete(scenes: list[Scene], op: DeleteEdit, ctx: EditContext):
    n = len(scenes)
    need = required_clips(ctx.grid.duration_s, ctx.limits)
    if n - 1 < need:
        raise EditError("scene", f"the job has {n} scenes and a video of "
                        f"{ctx.grid.duration_s:.1f} s needs at least {need}; fix: split a scene "
                        "first, or change this one (videogen edit ... prompt)")
    i = op.scene - 1
    gone = scenes[i]
    lo, hi = _length_bounds(scenes, ctx)
    if i == 0 or i == n - 1:
        keep = 1 if i == 0 else n - 2
        span = (0.0, scenes[1].end_s) if i == 0 else (scenes[n - 2].start_s, gone.end_s)
        if span[1] - span[0] > hi:
            raise EditError("scene", f"deleting scene {op.scene} would make scene "
                            f"{keep + 1} last {span[1] - span[0]:.2f} s (at most {hi:.2f} s); fix: "
                            "move the cut next to it first (move-cut), or split it")
        scenes[keep] = scenes[keep].model_copy(update={"start_s": span[0], "end_s": span[1]}) \
            if i == 0 else scenes[keep].model_copy(update={"end_s": span[1], "transition": "cut"})
        del scenes[i]
        return scenes, [], f"scene {op.scene} deleted; scene {keep + 1 if i else 1} takes its time"
    prev, nxt = scenes[i - 1], scenes[i + 1]
    options = [t for t in (gone.start_s, *ctx.grid.beats_s, gone.end_s)
               if gone.start_s - 1e-9 <= t <= gone.end_s + 1e-9
               and lo <= t - prev.start_s <= hi and lo <= nxt.end_s - t <= hi]
    if not options:
        raise EditError("scene", f"deleting scene {op.scene} would leave scenes {op.scene - 1} "
                        f"and {op.scene + 1} with {nxt.end_s - prev.start_s:.2f} s between them, "
                        f"more than two scenes of at most {hi:.2f} s can share on its beats; fix: "
                        "move a cut next to it first (move-cut), or split a neighbour")
    # the neighbours share its time as evenly as the beats allow
    t = min(options, key=lambda x: abs((x - prev.start_s) - (nxt.end_s - x)))
    transition = gone.transition if abs(t - gone.end_s) < abs(t - gone.start_s) else prev.transition
    scenes[i - 1] = prev.model_copy(update={"end_s": t, "transition": transition})
    scenes[i + 1] = nxt.model_copy(update={"start_s": t})
    del scenes[i]
    return scenes, [], f"scene {op.scene} deleted; scenes {op.scene - 1} and {op.scene + 1} " \
                       f"meet at {t:.3f} s"


def _split(scenes: list[Scene], op: SplitEdit, ctx: EditContext):
    i = op.scene - 1
    scene = scenes[i]
    inside = [b for b in ctx.grid.beats_s if scene.start_s + 1e-6 < b < scene.end_s - 1e-6]
    lo = min(ctx.limits.min_len_s, *(s.end_s - s.start_s for s in scenes)) - 1e-6
    allowed = [k + 1 for k, b in enumerate(inside)
               if b - scene.start_s >= lo and scene.end_s - b >= lo]
    if op.at_beat not in allowed:
        where = (f"scene {op.scene} has {len(inside)} beats inside it"
                 if op.at_beat > len(inside) else
                 f"its parts would last {inside[op.at_beat - 1] - scene.start_s:.2f} s and "
                 f"{scene.end_s - inside[op.at_beat - 1]:.2f} s")
        fix = (f"--at-beat {allowed[0]}" + (f"..{allowed[-1]}" if len(allowed) > 1 else "")
               if allowed else "none fits; the scene is too short to split")
        raise EditError("at_beat", f"{op.at_beat}: {where}; each part must last at least "
                        f"{max(lo, 0):.2f} s; fix: {fix}")
    t = inside[op.at_beat - 1]
    first = scene.model_copy(update={"end_s": t, "transition": "cut"})
    # the second part goes on with the same clip where the first one leaves it (a razor cut):
    # its in-point is the clip's time at the cut's frame (the clip starts at its segment's start)
    seg = _segments(scenes, ctx)[i]
    shown_s = (cut_frame(t, ctx.fps) - seg.start_frame) / ctx.fps
    second = scene.model_copy(update={"start_s": t, "in_s": round(scene.in_s + shown_s, 6)})
    scenes[i:i + 1] = [first, second]
    return scenes, [], f"scene {op.scene} split at {t:.3f} s (beat {op.at_beat} inside it)"


def _replace(scenes: list[Scene], op: ReplaceEdit, ctx: EditContext):
    if ctx.stage_file is None:
        raise EditError("file", "a replacement file cannot be read here")
    i = op.scene - 1
    take = ctx.stage_file(op.file)
    old = scenes[i].take
    take = take.model_copy(update={"image_key": old.image_key if old else None})
    scenes[i] = scenes[i].model_copy(update={"take": take, "in_s": 0.0})
    return scenes, [], f"scene {op.scene}: clip replaced by {_short(op.file)} ({take.clip_s:.2f} s)"


def _short(value: object, n: int = 60) -> str:
    text = str(value)
    return repr(text if len(text) <= n else text[: n - 1] + "…")


_HANDLERS = {"prompt": _prompt, "reroll": _reroll, "move-cut": _move_cut, "slip": _slip,
             "reorder": _reorder, "delete": _delete, "split": _split, "replace": _replace}


def apply_edits(script: Script, ops: Sequence[EditOp], ctx: EditContext) -> EditResult:
    """Several edits in order, as one new version. The clips of the scenes an earlier edit kept
    carry on (their takes); ``changed`` lists the new version's scenes made again."""
    result = EditResult(script, [], "")
    summaries = []
    clips = ctx.clips
    for op in ops:
        result = apply_edit(result.script, op, EditContext(**{**ctx.__dict__, "clips": clips}))
        summaries.append(result.summary)
        clips = []  # the takes are in the script now
    changed = sorted({s.index + 1 for s in result.script.scenes if s.take is None})
    return EditResult(result.script, changed, "; ".join(summaries))
