"""``final_video``: one ffmpeg pass from clips and the original audio to ``final.mp4``."""

from contextlib import ExitStack

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from video_assets.assets.clips import CLIPS_MANIFEST, segments_for
from video_assets.assets.common import file_image_md, load_request, load_script
from video_assets.media.compose import compose, extract_thumbnail
from video_assets.media.probe import VideoProbe, probe_video
from video_assets.partitions import jobs_partitions
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.schemas import ClipSpec
from video_assets.store import job_key

CHECKS = {
    "duration_matches_audio": "video and audio last as long as the source audio, within 1 frame",
    "format": "H.264 yuv420p at the requested size and frame rate, AAC audio, +faststart",
}


def run_checks(probe: VideoProbe, audio_duration_s: float, size: tuple[int, int],
               fps: int) -> list[AssetCheckResult]:
    frame_s = 1.0 / fps
    video_err_s = abs(probe.video_duration_s - audio_duration_s)
    audio_err_s = abs((probe.audio_duration_s or 0.0) - audio_duration_s)
    # ffmpeg reports audio time at 10 ms resolution: allow that on top of one frame
    duration_ok = video_err_s <= frame_s + 1e-6 and audio_err_s <= frame_s + 0.01
    fmt_ok = (
        (probe.width, probe.height) == size and abs(probe.fps - fps) < 1e-6
        and probe.video_codec == "h264" and probe.pix_fmt == "yuv420p"
        and probe.audio_codec == "aac" and probe.faststart
    )
    return [
        AssetCheckResult(check_name="duration_matches_audio", passed=duration_ok, metadata={
            "video_error_ms": round(video_err_s * 1000, 2),
            "audio_error_ms": round(audio_err_s * 1000, 2),
            "limit_ms": round(frame_s * 1000, 2),
        }),
        AssetCheckResult(check_name="format", passed=fmt_ok, metadata={
            "size": f"{probe.width}x{probe.height}", "fps": probe.fps,
            "codec": f"{probe.video_codec}/{probe.pix_fmt}", "audio": str(probe.audio_codec),
            "faststart": probe.faststart,
        }),
    ]


@asset(
    partitions_def=jobs_partitions, group_name="video", deps=["clips"], kinds={"ffmpeg"},
    check_specs=[AssetCheckSpec(name, asset="final_video", description=desc, blocking=True)
                 for name, desc in CHECKS.items()],
)
def final_video(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Normalise, trim/loop, transition on the beats and mux the original audio in one encode."""
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    stored, plan = load_request(media, job_id), load_script(media, job_id)
    specs = [ClipSpec.model_validate(x) for x in media.get_json(job_key(job_id, CLIPS_MANIFEST))]
    size = stored.request.size
    segments = segments_for(plan, settings.fps, settings.transition_half_frames)
    final_key, thumb_key = job_key(job_id, "final.mp4"), job_key(job_id, "thumbnail.jpg")
    with ExitStack() as stack:
        tmp = stack.enter_context(media.scratch_dir())
        clip_paths = [stack.enter_context(media.local_path(s.key)) for s in specs]
        audio = stack.enter_context(media.local_path(stored.audio_key))
        out = tmp / "final.mp4"
        context.log.info(f"composing {len(specs)} clips into {size[0]}x{size[1]} "
                         f"@ {settings.fps} fps")
        compose(clip_paths, [s.clip_duration_s for s in specs], segments, audio, out,
                settings.compose_settings(size))
        probe = probe_video(out)
        extract_thumbnail(out, tmp / "thumbnail.jpg", at_s=probe.video_duration_s / 3)
        media.put_file(final_key, out)
        media.put_file(thumb_key, tmp / "thumbnail.jpg")
    checks = run_checks(probe, stored.audio_duration_s, size, settings.fps)
    cost_usd = wh.job_cost_usd(job_id)
    wh.upsert_job(job_id, final_uri=media.uri(final_key), cost_usd=cost_usd,
                  status="done" if all(c.passed for c in checks) else "checks_failed")
    transitions = [s.transition_in for s in segments[1:]]
    return MaterializeResult(
        metadata={
            "video": MetadataValue.url(media.url(final_key)),
            "path": media.uri(final_key),
            "thumbnail_path": media.uri(thumb_key),
            "size_bytes": media.size(final_key),
            "duration_s": round(probe.video_duration_s, 4),
            "audio_duration_s": round(stored.audio_duration_s, 4),
            "resolution": f"{probe.width}x{probe.height}",
            "fps": probe.fps,
            "n_frames": probe.n_frames,
            "n_clips": len(specs),
            "cuts": transitions.count("cut"),
            "crossfades": transitions.count("crossfade"),
            "fades": transitions.count("fade"),
            "cost_usd": cost_usd,
            "thumbnail": file_image_md(media, thumb_key, max_px=320),
        },
        check_results=checks,
    )
