"""``quality_report``: the finished video measured independently of the plan; ``quality.json`` and
one ``quality_metrics`` row per metric."""

from datetime import UTC, datetime

import numpy as np
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from video_assets.assets.clips import segments_for
from video_assets.assets.common import load_plan
from video_assets.media import quality
from video_assets.partitions import jobs_partitions
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.schemas import QualityMetric, QualityReport
from video_assets.store import job_key


@asset(partitions_def=jobs_partitions, group_name="video", deps=["final_video"],
       kinds={"python"})
def quality_report(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Decode ``final.mp4`` (decord, downscaled) and its audio; check PRODUCT.md's quality bars."""
    job_id = context.partition_key
    media = store.get()
    stored, grid, plan = load_plan(media, job_id)
    segments = segments_for(plan, settings.fps, settings.transition_half_frames)
    with media.local_path(job_key(job_id, "final.mp4")) as video, \
            media.local_path(stored.audio_key) as source:
        report = measure(video, source, stored.audio_duration_s, grid.beats_s, segments,
                         settings.fps, stored.request.size)
    report = report.model_copy(update={"job_id": job_id})
    media.put_json(job_key(job_id, "quality.json"), report.model_dump(mode="json"))
    warehouse.get().replace_quality(job_id, report.metrics, report.measured_at)
    failed = [m.metric for m in report.metrics if not m.passed]
    context.log.info(f"quality: {len(report.metrics) - len(failed)}/{len(report.metrics)} bars met"
                     + (f"; failed: {', '.join(failed)}" if failed else ""))
    table = "| metric | value | threshold | passed |\n|---|---|---|---|\n" + "\n".join(
        f"| {m.metric} | {m.value:.3f} | {'' if m.threshold is None else m.threshold} | "
        f"{'yes' if m.passed else '**NO**'} |" for m in report.metrics)
    return MaterializeResult(metadata={
        "passed": not failed,
        "failed_metrics": ", ".join(failed) or "none",
        "metrics": MetadataValue.md(table),
        "cuts_detected": len(report.cut_frames),
    })


def measure(video, source, audio_duration_s, beats_s, segments, fps, size) -> QualityReport:
    frame_ms = 1000.0 / fps
    width, height, video_fps = quality.video_format(video)
    frames = quality.decode_frames(video)
    n = len(frames)
    windows = [(s.cut_in_frame - h, s.cut_in_frame + h) for s in segments[1:]
               for h in [max(s.half_in_frames, s.fade_in_frames)] if h]
    in_transition = quality.transition_mask(n, windows)
    cuts = quality.detect_cuts(frames)
    planned = [s.cut_in_frame for s in segments[1:] if s.transition_in == "cut"]
    # a fade through black also changes the shot abruptly at its black frame
    changes = [s.cut_in_frame for s in segments[1:] if s.transition_in in ("cut", "fade")]
    cut_beat_ms = [abs(d) * 1000 for d in quality.nearest_distance_s([c / fps for c in cuts], beats_s)]
    cut_plan_ms = [abs(d) * 1000 for d in quality.nearest_distance_s(
        [c / fps for c in cuts], [p / fps for p in changes])] if changes else []
    missed = sum(1 for p in planned if not any(abs(c - p) <= 1 for c in cuts))
    extra = sum(1 for c in cuts if not any(abs(c - p) <= 1 for p in changes))
    outside = ~in_transition
    black = float(quality.black_frames(frames)[outside].mean()) if outside.any() else 0.0
    frozen = float(quality.frozen_frames(frames)[outside].mean()) if outside.any() else 0.0
    clip_sharpness = [quality.sharpness(frames[min(n - 1, (s.cut_in_frame + s.cut_out_frame) // 2)])
                      for s in segments]
    clip_brightness = [float(frames[s.cut_in_frame:s.cut_out_frame].mean()) for s in segments]
    offset_ms = quality.audio_offset_of(video, source) * 1000
    duration_ms = abs(n / fps - audio_duration_s) * 1000

    def metric(name: str, value: float, threshold: float | None, ok: bool) -> QualityMetric:
        return QualityMetric(metric=name, value=round(float(value), 4), threshold=threshold,
                             passed=bool(ok))

    lim = round(frame_ms, 3)
    metrics = [
        metric("duration_error_ms", duration_ms, lim, duration_ms <= lim + 1e-6),
        metric("audio_offset_ms", abs(offset_ms), 5.0, abs(offset_ms) <= 5.0),
        metric("fps", video_fps, float(fps), abs(video_fps - fps) < 1e-3),
        metric("width", width, float(size[0]), width == size[0]),
        metric("height", height, float(size[1]), height == size[1]),
        metric("cut_to_beat_max_ms", max(cut_beat_ms, default=0.0), lim,
               max(cut_beat_ms, default=0.0) <= lim + 1e-6),
        metric("cut_to_boundary_max_ms", max(cut_plan_ms, default=0.0), lim,
               max(cut_plan_ms, default=0.0) <= lim + 1e-6),
        metric("missed_cuts", missed, 0.0, missed == 0),
        metric("extra_cuts", extra, 0.0, extra == 0),
        metric("black_ratio", black, 0.01, black <= 0.01),
        metric("frozen_ratio", frozen, 0.05, frozen <= 0.05),
        metric("min_clip_sharpness", min(clip_sharpness), 1.0, min(clip_sharpness) >= 1.0),
    ]
    return QualityReport(
        job_id="", measured_at=datetime.now(UTC), metrics=metrics, cut_frames=cuts,
        cut_to_beat_ms=[round(x, 2) for x in cut_beat_ms],
        clip_sharpness=[round(x, 2) for x in clip_sharpness],
        clip_brightness=[round(x, 2) for x in clip_brightness],
        n_frames=n, audio_offset_ms=round(offset_ms, 3),
        black_ratio=round(black, 5), frozen_ratio=round(frozen, 5),
        luma_mean=round(float(np.mean(clip_brightness)), 2),
    )
