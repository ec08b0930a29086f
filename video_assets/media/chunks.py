"""Incremental composition: the edit encoded in chunks joined by stream copy, each chunk cached by
what determines its frames, so that an edit re-encodes only the chunks it changes.

``plan_encodes`` cuts the timeline at every hard cut and at both ends of the solo stretch of
every clip next to a crossfade or fade (``compose.solo_span``): each soft transition's blended
frames (16 at the default half-length), each clip's solo stretch, is what one ffmpeg process
decodes at most, so a changed picture decodes its own frames and its transitions', never a
neighbour's solo frames. ``plan_chunks`` cuts the solo stretches further where a neighbour's
transition could begin or end had the clip another slot of the same length
(``context_splits``): a slot's core is then one chunk whatever its neighbours are, and a scene
moved (a reorder) re-encodes only its edges and the transitions around it. A chunk is a window
of today's composition (``compose.windows_at``): the same graph (``compose.edit_stream``:
normalisation, trims, fades, joins), scaled once to the output size, encoded with the same x264
options as a single-pass render (``compose.x264_options``). The consecutive chunks of one encode
share its process (``run_args``: one decode, a ``trim`` and an encoder of its own per chunk), so
each chunk's bytes are those it has when encoded alone: it starts on an IDR frame and no frame
refers outside it. The same file carries the ``FramesTap`` copy of its frames
as a second, lossless stream, so a cached chunk brings its tap with it: QuickTime Animation
(``qtrle``, run-length rgb24), 29 % of the raw bytes for a 30 s 1080x1920 edit (16.5 of 56.0 MB)
for 0.3 CPU s to encode and 0.1 s to decode; FFV1 would take 18 % (10.2 MB) but 1.0 s and 1.1 s,
and the decode is in the final pass, which nothing runs beside.

The soundtrack is encoded once, alone, beside the chunks (AAC in QuickTime, ``soundtrack_args``)
and cached like a chunk under ``soundtrack_key``: an edit does not encode it again. The final
pass reads the chunks in order (ffmpeg's concat demuxer, each chunk's exact length given),
copies the H.264 packets and the AAC (CFR 30 fps, the same track timescale, ``+faststart``)
and, in the same process, writes the taps' frames, decoded, as the render's ``FramesTap``.

Captions (``subtitles.CaptionBurn``) are burned in the same encode: after the scale to the output
size, the H.264 branch runs libass (ffmpeg's ``ass`` filter) over the script of the chunk's own
window on timeline times (``subtitles.burn_windows``), so a chunk's frames are those one burn of
the whole document gives, and a line running across chunks is seamless; the tap is split off
before it and stays caption-free. A chunk on which no caption shows burns nothing: its key and
bytes are the caption-free render's. A 20 s 1080x1920 edit of 13 chunks with karaoke lyrics on
most of it took 37.0 ffmpeg CPU s against 35.5 without (two runs each on a loaded 2-core
machine: +4 %). The final pass may add a SubRip file as a soft subtitle track (``mov_text``).

Chunks are cached through ``ChunkCache`` (the caller's: media knows nothing of the store) under
``chunk_key``: the clips' digests (given by the caller), lengths and in-points, the chunk's
geometry, the settings, the join and tap sizes, the ffmpeg version and ``CHUNK_FORMAT``, and the
digest of the captions it burns (its script and font files), if any. An edit
re-encodes the chunks whose key changed; the others are reused as they are.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import ffmpeg

from video_assets.media.compose import (
    ComposeSettings,
    FramesTap,
    Segment,
    Window,
    edit_stream,
    in_frames,
    solo_span,
    tap_stream,
    to_output_size,
    windows_at,
    work_size,
    x264_options,
)
from video_assets.media.ffmpeg_bin import Deadline, FfmpegError, ffmpeg_exe, ffmpeg_output, remove_outputs
from video_assets.media.probe import mp4_video_size
from video_assets.media.subtitles import CaptionBurn, WindowBurn, burn_windows

CHUNK_FORMAT = 3  # bump when what a chunk holds, or how it is made, changes
DEFAULT_WORKERS = 2  # chunks encoded at once (PipelineSettings.compose_workers; 2 cores here)
TAP_SIZE = FramesTap(Path()).size
CHUNK_SUFFIX = ".mov"  # QuickTime: H.264 and the tap (qtrle) in one file
TAP_CODEC = "qtrle"
# x264 threads per chunk: the workers run chunks side by side, and one thread per encode takes
# less CPU and memory than x264's frame threads (a 30 s 1080x1920 edit: 51.5 CPU s, 257 MB per
# process, against 56.4 CPU s and 334 MB with x264's own choice)
CHUNK_X264_THREADS = 1
AUDIO_RATE_HZ = 48000


class ChunkCache(Protocol):
    """Where encoded chunks are kept between renders (the caller's storage)."""

    def lookup(self, key: str) -> Path | None:
        """The chunk stored under ``key`` as a local file valid until the render ends, or None."""

    def store(self, key: str, path: Path) -> None:
        """Keep a copy of the chunk ``path`` under ``key`` (the render goes on reading ``path``)."""


@dataclass(frozen=True)
class ChunkedRender:
    """What a chunked render did: its chunks, their keys (when cached), which were encoded."""

    chunks: tuple[Window, ...]
    keys: tuple[str, ...]
    encoded: tuple[int, ...]  # indices of the chunks encoded by this render (the rest: reused)
    args: list[str]  # the final pass's ffmpeg arguments
    soundtrack_encoded: bool = True  # False: the encoded soundtrack came from the cache

    @property
    def reused(self) -> tuple[int, ...]:
        return tuple(k for k in range(len(self.chunks)) if k not in set(self.encoded))


def _encode_splits(segments: Sequence[Segment]) -> set[int]:
    """Every hard cut and both ends of the solo stretch of every clip next to a crossfade or
    fade (``compose.solo_span``)."""
    splits = {s.cut_in_frame for s in segments[1:] if s.transition_in == "cut"}
    for seg in segments:
        span = solo_span(seg)
        if span is None:
            continue
        if seg.half_in_frames or seg.fade_in_frames:
            splits.add(span[0])
        if seg.half_out_frames or seg.fade_out_frames:
            splits.add(span[1])
    return splits


def context_splits(segments: Sequence[Segment]) -> set[int]:
    """The frames of each clip's solo stretch where a neighbour's transition could begin or
    end if the clip sat in another slot of the same length: clip frames ``2H``, ``L - H`` and
    ``L`` counted from the clip's first frame shown (``Segment.start_frame``), with ``H`` the
    crossfade half-length and ``L`` the slot's length. Whatever its neighbours (a cut or a
    crossfade on either side), a slot of ``L`` frames shows the clip's frames ``[2H, L - H)``
    alone: cut there, that core is one chunk, the same bytes in every such slot, and a scene
    moved to a slot as long as its own re-encodes only its edges (at most ``2H`` frames each)
    and the transitions around it."""
    half = max((max(s.half_in_frames, s.half_out_frames) for s in segments), default=0)
    splits: set[int] = set()
    if not half:
        return splits  # no crossfade: every solo stretch is the same whatever its neighbours
    for seg in segments:
        span = solo_span(seg)
        if span is None:
            continue
        length = seg.cut_out_frame - seg.cut_in_frame
        for clip_frame in (2 * half, length - half, length):
            if span[0] < seg.start_frame + clip_frame < span[1]:
                splits.add(seg.start_frame + clip_frame)
    return splits


def plan_encodes(segments: Sequence[Segment]) -> list[Window]:
    """What one ffmpeg process encodes at most: the timeline cut at every hard cut and at both
    ends of the solo stretch of every clip next to a crossfade or fade: each soft transition
    the frames it blends, each clip's solo stretch its own, so changing one clip re-encodes
    its own frames and its transitions', never a neighbour's solo frames. A clip too short to
    have a solo stretch stays whole inside its transitions'."""
    total = segments[-1].cut_out_frame
    return windows_at(segments, sorted(f for f in _encode_splits(segments) if 0 < f < total))


def plan_chunks(segments: Sequence[Segment]) -> list[Window]:
    """The chunks: ``plan_encodes``' windows, the solo stretches cut further at their
    ``context_splits`` (each chunk its own encode, so its own file and cache entry)."""
    total = segments[-1].cut_out_frame
    splits = _encode_splits(segments) | context_splits(segments)
    return windows_at(segments, sorted(f for f in splits if 0 < f < total))


def plan_runs(chunks: Sequence[Window], encodes: Sequence[Window],
              todo: Sequence[int]) -> list[list[int]]:
    """The chunks to encode (``todo``, indices) grouped by process: consecutive chunks inside
    one of ``encodes``' windows share one decode (a run), each encoded on its own."""
    group = {}
    for g, w in enumerate(encodes):
        for k, c in enumerate(chunks):
            if w.first_frame <= c.first_frame < w.first_frame + w.n_frames:
                group[k] = g
    runs: list[list[int]] = []
    for k in sorted(todo):
        if runs and runs[-1][-1] == k - 1 and group[k - 1] == group[k]:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs


@functools.cache
def ffmpeg_version() -> str:
    """The first line of ``ffmpeg -version``: another build may encode other bits."""
    return ffmpeg_output(["-version"], what="reading the ffmpeg version", media_s=0) \
        .decode("utf-8", "replace").splitlines()[0]


@functools.cache
def ffmpeg_filters() -> frozenset[str]:
    """The names of the filters the ffmpeg build has (``ffmpeg -filters``)."""
    text = ffmpeg_output(["-filters"], what="listing ffmpeg's filters", media_s=0) \
        .decode("utf-8", "replace")
    return frozenset(parts[1] for parts in map(str.split, text.splitlines())
                     if len(parts) >= 3 and "->" in parts[2])


def check_ass_filter() -> None:
    """Raise unless the ffmpeg in use can burn captions (its ``ass`` filter, from libass)."""
    if "ass" not in ffmpeg_filters():
        raise FfmpegError(
            f"captions: the ffmpeg at {ffmpeg_exe()} has no 'ass' filter (built without libass), "
            "so captions cannot be burned in; fix: point VIDEO_ASSETS_FFMPEG at an ffmpeg built "
            "with --enable-libass (Debian's ffmpeg package and the imageio-ffmpeg wheel's binary "
            "have it), or unset it if it names this one")


def chunk_key(chunk: Window, clip_digests: Sequence[str], clip_durations_s: Sequence[float],
              clip_in_frames: Sequence[int], settings: ComposeSettings,
              join_size: tuple[int, int], captions_sha256: str | None = None) -> str:
    """A sha256 of everything that determines the chunk's bytes: per part its clip's digest,
    length (whether it loops) and first frame (in-point + frames already shown), its geometry
    on the chunk's own timeline; the video settings, join and tap sizes, ffmpeg's version and
    ``CHUNK_FORMAT``; with ``captions_sha256`` (``WindowBurn.sha256``: the captions it burns),
    that too. Not the scene's index or the chunk's place on the timeline: the same picture
    anywhere is the same chunk (a chunk showing no caption keeps the key of a caption-free
    render: the two share it)."""
    parts = [{
        "clip_sha256": clip_digests[p.clip],
        "clip_s": round(float(clip_durations_s[p.clip]), 6),
        "first_frame": clip_in_frames[p.clip] + p.skip_frames,
        # (no zoom: keyed as before punch-ins existed)
        "segment": {k: v for k, v in p.segment.__dict__.items()
                    if k != "index" and not (k == "zoom" and v == 1.0)},
    } for p in chunk.parts]
    spec = {
        "format": CHUNK_FORMAT, "ffmpeg": ffmpeg_version(), "n_frames": chunk.n_frames,
        # every setting but the audio's (a new one is keyed without a change here)
        "settings": {k: v for k, v in asdict(settings).items() if k != "audio_bitrate"},
        "join": list(join_size), "tap": list(TAP_SIZE),
        "threads": CHUNK_X264_THREADS, "parts": parts,
        **({"captions_sha256": captions_sha256} if captions_sha256 is not None else {}),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def chunk_args(chunk: Window, clip_paths: Sequence[str | Path],
               clip_durations_s: Sequence[float], clip_in_frames: Sequence[int],
               settings: ComposeSettings, join_size: tuple[int, int], out_path: Path,
               ass_path: Path | None = None) -> list[str]:
    """The ffmpeg arguments encoding ``chunk`` into ``out_path``: its frames in H.264 (stream
    0, the single-pass encoder's options) and their ``FramesTap`` copy, lossless (stream 1).

    ``ass_path``: an ASS script on timeline times (``subtitles.burn_windows``) burned into the
    H.264 frames by libass (ffmpeg's ``ass`` filter) at the output size, each frame carrying
    its timeline time while it is burned, so that a chunk's frames are those of one burn of the
    whole document. The tap is split off before: it stays caption-free (the quality
    measurement of cuts, black and frozen frames must not see text)."""
    return run_args(chunk, [chunk], clip_paths, clip_durations_s, clip_in_frames, settings,
                    join_size, [out_path], [ass_path])


def run_args(run: Window, chunks: Sequence[Window], clip_paths: Sequence[str | Path],
             clip_durations_s: Sequence[float], clip_in_frames: Sequence[int],
             settings: ComposeSettings, join_size: tuple[int, int], out_paths: Sequence[Path],
             ass_paths: Sequence[Path | None]) -> list[str]:
    """The ffmpeg arguments encoding consecutive ``chunks`` (their frames, in order, are
    ``run``'s) in one process: ``run``'s frames decoded and scaled once, then each chunk's
    frames (a ``trim``) encoded by an encoder of its own into its own file, as ``chunk_args``
    would alone: the same bytes, only the decode is shared."""
    video = edit_stream([clip_paths[p.clip] for p in run.parts],
                        [clip_durations_s[p.clip] for p in run.parts],
                        [p.segment for p in run.parts], settings, join_size,
                        [clip_in_frames[p.clip] + p.skip_frames for p in run.parts],
                        decode_threads=1)
    video = to_output_size(video, join_size, settings)
    if sum(c.n_frames for c in chunks) != run.n_frames or chunks[0].first_frame != run.first_frame:
        raise ValueError("chunks: they must cover the run's frames in order")
    branches = [video] if len(chunks) == 1 else [video.split()[k] for k in range(len(chunks))]
    threads = {"threads:v:0": CHUNK_X264_THREADS} if CHUNK_X264_THREADS else {}
    outputs = []
    for chunk, branch, out_path, ass_path in zip(chunks, branches, out_paths, ass_paths, strict=True):
        if len(chunks) > 1:
            skip = chunk.first_frame - run.first_frame
            branch = branch.trim(start_frame=skip, end_frame=skip + chunk.n_frames) \
                .setpts("PTS-STARTPTS")
        parts = branch.split()
        shown = parts[0]
        if ass_path is not None:
            shown = (shown.filter("settb", f"1/{settings.fps}").setpts(f"N+{chunk.first_frame}")
                     .filter("ass", filename=str(ass_path)).setpts("N"))
        outputs.append(ffmpeg.output(
            shown, tap_stream(parts[1], TAP_SIZE), str(out_path), format="mov",
            **x264_options(settings, "v:0"), **threads, **{"c:v:1": TAP_CODEC},
            r=settings.fps, fps_mode="cfr", video_track_timescale=settings.fps * 512))
    out = outputs[0] if len(outputs) == 1 else ffmpeg.merge_outputs(*outputs)
    return out.global_args("-loglevel", "error").overwrite_output().get_args()


def _concat_list(paths: Sequence[Path], n_frames: Sequence[int], fps: int) -> str:
    """An ffconcat list giving each file's exact length: each ends where the next starts, at
    the whole microsecond nearest its true start (the demuxer's unit), so the error never adds
    up over hundreds of chunks (at 15360 ticks a second, a tick is 65 microseconds)."""
    lines = ["ffconcat version 1.0"]
    done = 0
    for path, n in zip(paths, n_frames, strict=True):
        a, b = round(done * 1_000_000 / fps), round((done + n) * 1_000_000 / fps)
        quoted = str(path).replace("'", "'\\''")
        lines += [f"file '{quoted}'", f"duration {(b - a) // 1_000_000}.{(b - a) % 1_000_000:06d}"]
        done += n
    return "\n".join(lines) + "\n"


def soundtrack_key(audio_sha256: str, settings: ComposeSettings) -> str:
    """A sha256 of what determines the encoded soundtrack: the audio's bytes, the AAC settings,
    ffmpeg's version and ``CHUNK_FORMAT`` (none of the video's settings)."""
    spec = {"format": CHUNK_FORMAT, "ffmpeg": ffmpeg_version(), "kind": "soundtrack",
            "audio_sha256": audio_sha256, "bitrate": settings.audio_bitrate,
            "rate_hz": AUDIO_RATE_HZ}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def soundtrack_args(audio_path: str | Path, settings: ComposeSettings, out_path: Path) -> list[str]:
    """The audio encoded once, alone (AAC in QuickTime, like a chunk): the final pass copies it."""
    return ["-loglevel", "error", "-y", "-i", str(audio_path), "-map", "0:a:0", "-c:a", "aac",
            "-b:a", settings.audio_bitrate, "-ar", str(AUDIO_RATE_HZ), "-f", "mov", str(out_path)]


def final_args(list_path: Path, soundtrack_path: str | Path, out_path: str | Path,
               settings: ComposeSettings, frames: FramesTap | None,
               subtitle_track: str | Path | None = None, subtitle_language: str = "und") -> list[str]:
    """The final pass: the chunks' H.264 and the encoded soundtrack (``soundtrack_args``)
    copied, faststart; with ``subtitle_track`` (SubRip), its cues as a soft subtitle track
    (``mov_text``, tagged ``subtitle_language``); with ``frames``, the chunks' taps decoded
    into it, in order."""
    subs_in, subs_out = [], []
    if subtitle_track is not None:
        subs_in = ["-f", "srt", "-i", str(subtitle_track)]
        subs_out = ["-map", "2:s:0", "-c:s", "mov_text", "-metadata:s:s:0",
                    f"language={subtitle_language}"]
    args = ["-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(list_path),
            "-i", str(soundtrack_path), *subs_in, "-map", "0:v:0", "-map", "1:a:0",
            "-c:v", "copy", "-c:a", "copy", *subs_out, "-movflags", "+faststart",
            "-video_track_timescale", str(settings.fps * 512), str(out_path)]
    if frames is not None:
        args += ["-map", "0:v:1", "-f", "rawvideo", "-pix_fmt", "rgb24",
                 "-fps_mode", "passthrough", str(frames.path)]
    return args


def compose_chunked(
    clip_paths: Sequence[str | Path],
    clip_durations_s: Sequence[float],
    segments: Sequence[Segment],
    audio_path: str | Path,
    out_path: str | Path,
    settings: ComposeSettings,
    *,
    clip_in_s: Sequence[float] | None = None,
    clip_digests: Sequence[str] | None = None,
    audio_digest: str | None = None,
    cache: ChunkCache | None = None,
    workers: int = DEFAULT_WORKERS,
    frames: FramesTap | None = None,
    captions: CaptionBurn | None = None,
    subtitle_track: str | Path | None = None,
    subtitle_language: str = "und",
) -> ChunkedRender:
    """Render the edit in chunks (``plan_chunks``), ``workers`` encoded at once, reusing those
    ``cache`` holds, then join them by stream copy with the audio encoded once (module doc).

    ``clip_in_s``: per clip, where its scene starts in it (``compose.in_frames``, default 0).
    ``clip_digests``: per clip, a digest of its bytes (sha256); needed with ``cache``.
    ``audio_digest``: the audio's sha256; with ``cache``, its encoded soundtrack is kept too.
    ``frames``: the frames encoded, downscaled, written there (``FramesTap``, default size).
    ``captions``: burned into the chunks that show them (``chunk_args``; the tap stays
    caption-free); a chunk showing none is the caption-free render's, key and bytes.
    ``subtitle_track``: a SubRip file muxed as a soft subtitle track (``mov_text``) tagged
    ``subtitle_language`` (ISO 639-2; ``und``: undetermined).
    The whole render shares one deadline for its length (``ffmpeg_bin.Deadline``); on failure
    or timeout every process is killed and ``out_path`` and the tap are deleted (cached chunks
    stay: each was whole when stored)."""
    n = len(segments)
    if not (len(clip_paths) == len(clip_durations_s) == n):
        raise ValueError("one clip path and duration per segment is needed")
    if cache is not None and (clip_digests is None or len(clip_digests) != n):
        raise ValueError("clip_digests: one per clip is needed to cache chunks; fix: pass each "
                         "clip's sha256 (store.sha256_file)")
    if frames is not None and tuple(frames.size) != TAP_SIZE:
        raise ValueError(f"frames.size: chunks carry a {TAP_SIZE} tap, not {frames.size}; "
                         f"fix: use FramesTap's default size")
    if subtitle_track is not None and not Path(subtitle_track).is_file():
        raise ValueError(f"subtitle_track: {subtitle_track} is not a file; fix: write the "
                         "captions' SubRip text (subtitles.srt_text) there first")
    if not re.fullmatch(r"[a-z]{3}", subtitle_language):
        raise ValueError(f"subtitle_language: {subtitle_language!r} is not an ISO 639-2 code; "
                         "fix: three lower-case letters, e.g. 'eng', or 'und'")
    fps = settings.fps
    ins = [in_frames(t, fps) for t in (clip_in_s if clip_in_s is not None else [0.0] * n)]
    if len(ins) != n:
        raise ValueError(f"clip_in_s: {len(ins)} in-points for {n} clips; fix: one per clip")
    join_size = work_size((settings.width, settings.height),
                          [mp4_video_size(p) for p in clip_paths])
    chunks = plan_chunks(segments)
    burns: list[WindowBurn | None] = [None] * len(chunks) if captions is None else burn_windows(
        captions, (settings.width, settings.height), fps, [(c.first_frame, c.n_frames) for c in chunks])
    if any(b is not None for b in burns):
        check_ass_filter()
    keys = tuple(chunk_key(c, clip_digests, clip_durations_s, ins, settings, join_size,
                           b.sha256 if b is not None else None)
                 for c, b in zip(chunks, burns, strict=True)) \
        if clip_digests is not None else ("",) * len(chunks)
    out_path = Path(out_path)
    outputs = [out_path, *([frames.path] if frames is not None else [])]
    what = f"composing {n} clips into {out_path.name} in {len(chunks)} chunks"
    with tempfile.TemporaryDirectory(prefix=".chunks-", dir=out_path.parent) as scratch, \
            Deadline(what, segments[-1].cut_out_frame / fps) as deadline:
        tmp = Path(scratch)
        paths: list[Path | None] = [cache.lookup(k) if cache is not None else None for k in keys]
        runs = plan_runs(chunks, plan_encodes(segments), [k for k, p in enumerate(paths) if p is None])
        todo = sorted(k for run in runs for k in run)
        inner = {chunks[k].first_frame for run in runs for k in run[1:]}
        spans = {w.first_frame: w for w in windows_at(
            segments, sorted({c.first_frame for c in chunks[1:]} - inner))}
        # the longest first: the last run to finish, encoding alone on one core, is short
        runs.sort(key=lambda run: (-sum(chunks[k].n_frames for k in run), run[0]))
        jobs = {run[0]: (f"chunk {run[0] + 1}" if len(run) == 1 else f"chunks {run[0] + 1}-{run[-1] + 1}",
                         run_args(spans[chunks[run[0]].first_frame], [chunks[k] for k in run],
                                  clip_paths, clip_durations_s, ins, settings, join_size,
                                  [tmp / f"{k:04d}{CHUNK_SUFFIX}" for k in run],
                                  [_write_ass(burns[k], tmp / f"{k:04d}.ass") for k in run]))
                for run in runs}
        run_of = {run[0]: run for run in runs}
        # the soundtrack is one more job, run beside the chunks (the last key: len(chunks))
        sound_key = soundtrack_key(audio_digest, settings) \
            if cache is not None and audio_digest is not None else None
        soundtrack = cache.lookup(sound_key) if sound_key is not None else None
        if soundtrack is None:
            soundtrack = tmp / f"soundtrack{CHUNK_SUFFIX}"
            jobs[len(chunks)] = ("the soundtrack", soundtrack_args(audio_path, settings, soundtrack))
        try:
            def encoded(k: int) -> None:
                if k == len(chunks):
                    if sound_key is not None:
                        cache.store(sound_key, soundtrack)
                    return
                for j in run_of[k]:
                    paths[j] = tmp / f"{j:04d}{CHUNK_SUFFIX}"
                    if cache is not None:
                        cache.store(keys[j], paths[j])

            _encode(jobs, workers, deadline, what, encoded)
            list_path = tmp / "chunks.ffconcat"
            list_path.write_text(_concat_list(paths, [c.n_frames for c in chunks], fps))
            args = final_args(list_path, soundtrack, out_path, settings, frames, subtitle_track,
                              subtitle_language)
            _run(deadline, args, f"joining {len(chunks)} chunks of {out_path.name}")
        except (FfmpegError, OSError) as exc:
            remove_outputs(outputs)
            if deadline.expired:
                raise deadline.error() from exc
            raise
        except BaseException:
            remove_outputs(outputs)
            raise
    return ChunkedRender(tuple(chunks), keys, tuple(todo), args,
                         soundtrack_encoded=len(chunks) in jobs)


def _write_ass(burn: WindowBurn | None, path: Path) -> Path | None:
    """The chunk's ASS script written to ``path`` (None: it burns nothing)."""
    if burn is None:
        return None
    path.write_text(burn.ass, encoding="utf-8")
    return path


class _Running:
    """The chunk processes alive, to kill them all when one fails or the render is stopped."""

    def __init__(self) -> None:
        self.stopped = False
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def add(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.add(proc)
            if self.stopped:
                proc.kill()

    def discard(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            for proc in self._procs:
                if proc.poll() is None:
                    proc.kill()


def _run(deadline: Deadline, args: list[str], what: str, running: _Running | None = None) -> None:
    """One ffmpeg process under ``deadline``; raises with its log's tail if it fails."""
    with tempfile.TemporaryFile() as log:
        proc = deadline.watch(subprocess.Popen([ffmpeg_exe(), "-hide_banner", "-nostdin", *args],
                                               stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL, stderr=log))
        if running is not None:
            running.add(proc)
        try:
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted while waiting
                proc.kill()
                proc.wait()
            if running is not None:
                running.discard(proc)
        if code != 0:
            log.seek(0)
            tail = "\n".join(log.read().decode("utf-8", "replace").strip().splitlines()[-12:])
            raise FfmpegError(f"ffmpeg failed while {what} (exit {code}):\n{tail}")


def _encode(jobs: dict[int, tuple[str, list[str]]], workers: int, deadline: Deadline, what: str,
            encoded: Callable[[int], None]) -> None:
    """Run the chunk encodes, ``workers`` at a time, calling ``encoded(k)`` in this thread as
    each chunk ``k`` is done. On any error or interrupt, the processes still running are
    killed and the rest never started; the first error is raised."""
    running = _Running()

    def one(k: int, label: str, args: list[str]) -> int:
        if running.stopped:
            raise FfmpegError(f"ffmpeg not started while {what}: stopped")
        _run(deadline, args, f"{what}: {label}", running)
        return k

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="chunk") as pool:
        pending: set[Future] = {pool.submit(one, k, *job) for k, job in jobs.items()}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    encoded(fut.result())
        except BaseException:
            running.stop()
            for fut in pending:
                fut.cancel()
            raise
