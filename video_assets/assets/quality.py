"""``quality_report``: the finished file measured independently of the plan, against PRODUCT.md's
quality bars; ``quality.json``, one ``quality_metrics`` row per metric, and the asset checks on
``final_video`` that the measurements decide.

Frames are the ones the encoder encoded, downscaled as it encodes them (``compose.FramesTap``:
every frame, in order; their count is checked against the file's), or decoded from the file by
an ffmpeg process into a pipe (``quality.decoded_chunks``) when there is no such copy, and
measured in one pass a chunk at a time (memory does not grow with the video's length); container
facts come from the file itself (ffmpeg's probe), audio
from ffmpeg, in worker threads while the frames are measured.
The plan is used only to say *where to look* (which cuts were intended); every time is measured.
"""

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue, PreviewWarning

from video_assets.media import quality
from video_assets.media.caption_quality import CaptionMeasures
from video_assets.media.compose import Segment
from video_assets.media.probe import VideoProbe, probe_video
from video_assets.partitions import jobs_partitions
from video_assets.schemas import ClipSpec, QualityMetric, QualityReport

SILENCE_LUFS = -70.0  # what ebur128 reports for digital silence; stands in for -inf
CAPTIONS_BAR = "captions_readable"  # its metrics are absent for a video without captions


@dataclass(frozen=True)
class Bar:
    """One asset check on ``final_video``: which metrics decide it and whether it blocks."""

    name: str
    description: str
    metrics: tuple[str, ...]
    blocking: bool = True


BARS = (
    Bar("duration_matches_audio", "video and audio last as long as the source audio, within 1 frame",
        ("duration_error_ms", "audio_duration_error_ms")),
    Bar("format", "constant 30 fps at the requested size; H.264 yuv420p, AAC, +faststart",
        ("fps", "width", "height", "container_ok")),
    Bar("audio_in_sync", "the soundtrack is the source audio, offset at most 5 ms",
        ("audio_offset_ms",)),
    Bar("cuts_on_beats", "every hard cut within 1 frame of a beat; crossfades centred (measured "
        "to +-1 frame) and fades black on their beat; no cut missing or added",
        ("cut_to_beat_max_ms", "cut_to_boundary_max_ms", "missed_cuts", "extra_cuts",
         "crossfade_centre_max_ms", "fade_black_max_ms")),
    Bar("no_black_or_frozen", "no black or frozen stretches outside transitions",
        ("black_ratio", "frozen_ratio")),
    Bar("clips_look_sound", "no clip is blurred to nothing or dark (a broken generation)",
        ("min_clip_sharpness", "min_clip_brightness"), blocking=False),
    Bar("loudness_kept", "the result is as loud as the source (within 1 LU)",
        ("loudness_change_lu",), blocking=False),
    Bar(CAPTIONS_BAR, "captions found where they should be and at every sampled word, inside the "
        "safe area, text contrast against its surroundings at least 4.5:1 (WCAG), each karaoke "
        "word lit within 1 frame of its time (media/caption_quality.py)",
        ("captions_present", "caption_safe_area", "caption_contrast_min",
         "highlight_error_max_frames", "words_without_caption"), blocking=False),
)


def caption_metrics(measures: CaptionMeasures | None) -> list[QualityMetric]:
    """The ``captions_readable`` bar's metrics from ``caption_quality.measure_captions``; none
    for a video without captions (its check then passes saying so). Highlight timing is left
    out when no karaoke word was measured (no karaoke, or no word clear of the others)."""
    if measures is None:
        return []
    out = [
        _metric("captions_present", measures.captions_present, 1.0, measures.captions_present >= 1.0),
        _metric("caption_safe_area", measures.caption_safe_area, 1.0, measures.caption_safe_area >= 1.0),
        _metric("caption_contrast_min", measures.caption_contrast_min, 4.5,
                measures.caption_contrast_min >= 4.5),
        _metric("words_without_caption", measures.words_without_caption, 0.0,
                measures.words_without_caption == 0),
    ]
    if measures.highlight_error_max_frames is not None:
        out.insert(3, _metric("highlight_error_max_frames", measures.highlight_error_max_frames, 1.0,
                              measures.highlight_error_max_frames <= 1))
    return out


def _metric(name: str, value: float, threshold: float | None, ok: bool) -> QualityMetric:
    return QualityMetric(metric=name, value=round(float(value), 4), threshold=threshold,
                         passed=bool(ok))


def check_specs() -> list[AssetCheckSpec]:
    """One check per bar, partitioned like the asset so that each job's video has its own result
    (partitioned checks are a Dagster preview feature: its warning is silenced here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return [AssetCheckSpec(b.name, asset="final_video", description=b.description,
                               blocking=b.blocking, partitions_def=jobs_partitions) for b in BARS]


def check_results(report: QualityReport) -> list[AssetCheckResult]:
    """One result per bar; its metadata carries every measured value and its limit."""
    by_name = {m.metric: m for m in report.metrics}
    results = []
    for bar in BARS:
        if bar.name == CAPTIONS_BAR:  # optional: no captions, or no karaoke word timed
            metrics = [by_name[name] for name in bar.metrics if name in by_name]
            if not metrics:
                results.append(AssetCheckResult(
                    check_name=bar.name, asset_key="final_video", passed=True,
                    metadata={"captions": "none", "failed": "none"},
                    severity=AssetCheckSeverity.WARN, description="no captions"))
                continue
        else:
            metrics = [by_name[name] for name in bar.metrics]
        failed = [m.metric for m in metrics if not m.passed]
        metadata: dict = {m.metric: m.value for m in metrics}
        metadata.update({f"{m.metric}_limit": m.threshold for m in metrics if m.threshold is not None})
        if bar.name == "format":
            metadata.update({k: str(v) for k, v in report.container.items()})
        if bar.name == CAPTIONS_BAR and "highlight_error_max_frames" not in by_name:
            metadata["highlight_error_max_frames"] = "not measured (no karaoke word)"
        if bar.name == "cuts_on_beats":
            metadata["crossfades_unmeasurable"] = report.crossfades_unmeasurable
            unseen = by_name.get("cuts_unmeasurable")
            metadata["cuts_unmeasurable"] = unseen.value if unseen else 0.0
        metadata["failed"] = ", ".join(failed) or "none"
        measured = "; ".join(f"{m.metric} = {m.value:g} (limit {m.threshold:g})"
                             for m in metrics if not m.passed)
        results.append(AssetCheckResult(
            check_name=bar.name, asset_key="final_video", passed=not failed, metadata=metadata,
            severity=AssetCheckSeverity.ERROR if bar.blocking else AssetCheckSeverity.WARN,
            description=f"failed: {measured}" if failed else bar.description,
        ))
    return results


def report_metadata(report: QualityReport) -> dict:
    failed = [m.metric for m in report.metrics if not m.passed]
    table = "| metric | value | limit | passed |\n|---|---|---|---|\n" + "\n".join(
        f"| {m.metric} | {m.value:g} | {'' if m.threshold is None else f'{m.threshold:g}'} | "
        f"{'yes' if m.passed else '**NO**'} |" for m in report.metrics)
    return {
        "passed": not failed,
        "failed_metrics": ", ".join(failed) or "none",
        "metrics": MetadataValue.md(table),
        "cuts_detected": len(report.cut_frames),
        "audio_offset_ms": report.audio_offset_ms,
        "loudness_lufs": report.loudness_lufs,
        "clip_brightness": MetadataValue.json(report.clip_brightness),
        "clip_sharpness": MetadataValue.json(report.clip_sharpness),
    }


CHECKED_FRAMES = 15  # the first half second of the file is decoded and compared with the
# encoder's copy (0.17 s for a 1080x1920 file, against 0.45 s for 2 s of it)


def encoded_frames_fit(video: Path, frames: np.ndarray, file_frames: int) -> bool:
    """Whether the encoder's copy of its frames describes ``video``: as many frames as the file
    holds, and the file's first ``CHECKED_FRAMES`` decoded are the same pictures."""
    if len(frames) != file_frames:
        return False
    head = quality.decode_first_frames(video, CHECKED_FRAMES)
    return quality.frames_match(head, next(quality.frame_chunks(frames, len(head) or 1), head))


def seamless_cuts(specs: Sequence[ClipSpec], segments: Sequence[Segment], fps: int) -> list[int]:
    """The planned hard cuts where the picture goes on: the scene after the cut shows the same
    clip from the frame where the scene before it stops (a scene split in two, its second part
    going on with the clip, framed alike). Nothing changes on screen there, by design."""
    out = []
    for before, after, seg_before, seg in zip(specs, specs[1:], segments, segments[1:],
                                              strict=False):
        if seg.transition_in != "cut" or not before.source_key \
                or before.source_key != after.source_key or seg.zoom != seg_before.zoom:
            continue
        shown_s = (seg.cut_in_frame - seg_before.start_frame) / fps  # of the clip, before the cut
        if abs(after.in_s - (before.in_s + shown_s)) <= 1.0 / fps:
            out.append(seg.cut_in_frame)
    return out


def measure(video: Path, source: Path, audio_duration_s: float, beats_s: list[float],
            segments: list[Segment], fps: int, size: tuple[int, int],
            probe: VideoProbe | None = None, continued: bool = False,
            frames: np.ndarray | None = None,
            seamless_cuts: Sequence[int] = (),
            memo: quality.WindowMemo | None = None) -> QualityReport:
    """Measure ``video`` against its ``source`` audio, the beat grid and PRODUCT.md's bars
    (``probe``: the file's container facts if already read).
    ``continued``: each clip starts from the previous one's last frame, so a planned cut may
    not be visible; it is not counted as missed (the cuts that are seen are still measured).
    A planned cut that shows the same picture on both sides (``quality.same_picture_across``:
    one clip used for two scenes) cannot be seen either: it is counted in the
    ``cuts_unmeasurable`` metric instead of as missed, unless a cut no plan asked for was
    detected nearer to it than to any other planned cut (then it was misplaced, not invisible).
    ``frames``: the frames the encoder encoded, at 108x192 (``compose.FramesTap``); used only if
    they fit the file (``encoded_frames_fit``), else the file is decoded.
    ``seamless_cuts``: planned cut frames where the same clip goes on (``seamless_cuts()``): no
    change can be seen there; they are counted in ``cuts_unmeasurable``, not as missed.
    ``memo``: the frames' measurements of an earlier render of the job (``WindowMemo``).
    ffmpeg decodes and measures the audio (four processes, 1.3 s for 30 s) in worker threads
    while the frames are measured."""
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="quality-audio") as audio_work:
        return _measure(video, source, audio_duration_s, beats_s, segments, fps, size, probe,
                        continued, frames, audio_work, set(seamless_cuts), memo)


def _measure(video: Path, source: Path, audio_duration_s: float, beats_s: list[float],
             segments: list[Segment], fps: int, size: tuple[int, int], probe: VideoProbe | None,
             continued: bool, frames: np.ndarray | None,
             audio_work: ThreadPoolExecutor, seamless: set[int],
             memo: quality.WindowMemo | None) -> QualityReport:
    frame_ms = 1000.0 / fps
    offset_s = audio_work.submit(quality.audio_offset_of, video, source)
    loudness_lufs = [audio_work.submit(quality.loudness_lufs, p, audio_duration_s)
                     for p in (video, source)]
    probe = probe or probe_video(video)
    width, height, video_fps = probe.width, probe.height, probe.fps
    frames_source = "encoder"
    if frames is not None and encoded_frames_fit(video, frames, probe.n_frames):
        n, chunks = len(frames), quality.frame_chunks(frames)
    else:
        (n, chunks), frames_source = quality.decoded_chunks(video), "file"
    inner = segments[1:]
    soft_spans = [(s.cut_in_frame, h) for s in inner
                  for h in [max(s.half_in_frames, s.fade_in_frames)] if h]
    outside = ~quality.transition_mask(n, [(c - h, c + h) for c, h in soft_spans])
    planned = [s.cut_in_frame for s in inner
               if s.transition_in == "cut" and s.cut_in_frame not in seamless]
    # one pass over the frames: cuts, soft transitions, black and frozen frames, each clip's look
    measured = quality.measure_frames(
        chunks, n,
        crossfades=[(s.cut_in_frame, s.half_in_frames) for s in inner
                    if s.transition_in == "crossfade"],
        fades=[(s.cut_in_frame, 2 * s.fade_in_frames + 2) for s in inner
               if s.transition_in == "fade"],
        cuts_at=planned,
        sharpness_at=[min(n - 1, (s.cut_in_frame + s.cut_out_frame) // 2) for s in segments],
        spans=[(s.cut_in_frame, s.cut_out_frame) for s in segments], memo=memo)

    # a crossfade between very different shots can look like a cut, and a fade through black
    # changes the picture abruptly on any of its frames near black (which ones depends on the
    # shots): soft transitions are measured by their centre or black frame, not as cuts
    soft = quality.transition_mask(n, [(c - h - 1, c + h + 1) for c, h in soft_spans])
    cuts = [c for c in measured.cuts if not soft[c]]
    cut_beat_ms = [abs(d) * 1000 for d in quality.nearest_distance_s([c / fps for c in cuts], beats_s)]
    cut_plan_ms = [abs(d) * 1000 for d in quality.nearest_distance_s(
        [c / fps for c in cuts], [p / fps for p in planned])] if planned else []
    extras = [c for c in cuts if not any(abs(c - p) <= 1 for p in planned)]
    # a planned cut not seen: invisible if both sides show the same picture (one clip used for
    # two scenes), unless an unplanned cut within a second is nearer to it than to any other
    # planned cut (then that is this cut, misplaced)
    nearest = [(min(planned, key=lambda p, c=c: abs(c - p)), c) for c in extras] if planned else []
    misplaced = {p for p, c in nearest if abs(c - p) <= fps}
    unseen = [(p, same) for p, same in zip(planned, measured.same_picture, strict=True)
              if not any(abs(c - p) <= 1 for c in cuts)]
    invisible = sum(1 for p, same in unseen if same and p not in misplaced) + len(seamless)
    missed = 0 if continued else len(unseen) - invisible
    extra = len(extras)
    # soft transitions: where the picture is measured to be half-way / black, against the beats
    xfades = measured.crossfade_centres
    xfade_at = [c / fps for c in xfades if c is not None]
    black_at = [f / fps for f in measured.darkest]
    xfade_ms = [abs(d) * 1000 for d in quality.nearest_distance_s(xfade_at, beats_s)]
    fade_ms = [abs(d) * 1000 for d in quality.nearest_distance_s(black_at, beats_s)]

    black = float(measured.black[outside].mean()) if outside.any() else 0.0
    frozen = float(measured.frozen[outside].mean()) if outside.any() else 0.0
    clip_sharpness, clip_brightness = measured.sharpness, measured.brightness
    offset_ms = offset_s.result() * 1000
    loudness, source_loudness = (max(SILENCE_LUFS, f.result()) for f in loudness_lufs)
    duration_ms = abs(n / fps - audio_duration_s) * 1000
    audio_ms = abs((probe.audio_duration_s or 0.0) - audio_duration_s) * 1000
    container_ok = (probe.video_codec == "h264" and probe.pix_fmt == "yuv420p"
                    and probe.audio_codec == "aac" and probe.faststart)

    def metric(name: str, value: float, threshold: float | None, ok: bool) -> QualityMetric:
        return QualityMetric(metric=name, value=round(float(value), 4), threshold=threshold,
                             passed=bool(ok))

    def at_most(name: str, value: float, limit: float) -> QualityMetric:
        return metric(name, value, limit, value <= limit + 1e-6)

    lim = round(frame_ms, 3)
    metrics = [
        at_most("duration_error_ms", duration_ms, lim),
        # ffmpeg reports the audio's end at 10 ms resolution: that on top of one frame
        at_most("audio_duration_error_ms", audio_ms, round(frame_ms + 10, 3)),
        metric("fps", video_fps, float(fps), abs(video_fps - fps) < 1e-3),
        metric("width", width, float(size[0]), width == size[0]),
        metric("height", height, float(size[1]), height == size[1]),
        metric("container_ok", float(container_ok), 1.0, container_ok),
        at_most("audio_offset_ms", abs(offset_ms), 5.0),
        at_most("cut_to_beat_max_ms", max(cut_beat_ms, default=0.0), lim),
        at_most("cut_to_boundary_max_ms", max(cut_plan_ms, default=0.0), lim),
        at_most("missed_cuts", missed, 0.0),
        # planned cuts between two shots of the same picture: no change to see, not a failure
        metric("cuts_unmeasurable", invisible, None, True),
        at_most("extra_cuts", extra, 0.0),
        # a crossfade's centre is found to the frame, 4 of 204 tested a frame off: 1 frame more
        at_most("crossfade_centre_max_ms", max(xfade_ms, default=0.0), round(2 * frame_ms, 3)),
        at_most("fade_black_max_ms", max(fade_ms, default=0.0), lim),
        at_most("black_ratio", black, 0.01),
        at_most("frozen_ratio", frozen, 0.05),
        metric("min_clip_sharpness", min(clip_sharpness), 1.0, min(clip_sharpness) >= 1.0),
        metric("min_clip_brightness", min(clip_brightness), 16.0, min(clip_brightness) >= 16.0),
        at_most("loudness_change_lu", abs(loudness - source_loudness), 1.0),
    ]
    return QualityReport(
        job_id="", measured_at=datetime.now(UTC), metrics=metrics,
        container={"width": probe.width, "height": probe.height, "fps": probe.fps,
                   "n_frames": probe.n_frames, "video_codec": probe.video_codec,
                   "pix_fmt": probe.pix_fmt, "audio_codec": probe.audio_codec,
                   "faststart": probe.faststart},
        n_frames=n, frames_source=frames_source, cut_frames=cuts,
        cut_to_beat_ms=[round(x, 2) for x in cut_beat_ms],
        cut_to_boundary_ms=[round(x, 2) for x in cut_plan_ms],
        crossfade_centre_ms=[round(x, 2) for x in xfade_ms],
        crossfades_unmeasurable=xfades.count(None),
        fade_black_ms=[round(x, 2) for x in fade_ms],
        audio_offset_ms=round(offset_ms, 3),
        loudness_lufs=round(loudness, 2), source_loudness_lufs=round(source_loudness, 2),
        black_ratio=round(black, 5), frozen_ratio=round(frozen, 5),
        clip_sharpness=[round(x, 2) for x in clip_sharpness],
        clip_brightness=[round(x, 2) for x in clip_brightness],
        luma_mean=round(float(np.mean(clip_brightness)), 2),
    )
