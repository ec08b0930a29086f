"""``final_video`` and ``quality_report``: the clips and the original audio composed into
``final.mp4`` in chunks joined by stream copy (``media/chunks.py``; chunks kept in the cache, so an
edit re-encodes only those it changes), then the file measured (``assets/quality.py``) in the
same step, so that the blocking checks on ``final_video`` hold back anything downstream, and a
failing video still leaves its measurements in ``quality.json`` and the warehouse."""

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from dagster import (
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from video_assets.assets.clips import CLIPS_MANIFEST
from video_assets.assets.common import file_image_md, load_plan
from video_assets.assets.quality import (
    caption_metrics,
    check_results,
    check_specs,
    measure,
    report_metadata,
    seamless_cuts,
)
from video_assets.assets.voiceover import VOICEOVER_FILE
from video_assets.captions import CaptionTrack
from video_assets.layout import (
    CAPTIONS,
    CAPTIONS_SRT,
    CHUNK_CACHE,
    FINAL,
    FRAME_MEASURES,
    QUALITY,
    THUMBNAIL,
)
from video_assets.media.caption_quality import CaptionMeasures, measure_captions
from video_assets.media.chunks import CHUNK_SUFFIX, compose_chunked
from video_assets.media.compose import FramesTap, extract_thumbnail
from video_assets.media.probe import probe_video
from video_assets.media.quality import WindowMemo, read_frames
from video_assets.media.subtitles import CaptionBurn
from video_assets.partitions import jobs_partitions
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.scene_media import shot_plan
from video_assets.schemas import ClipSpec, QualityReport
from video_assets.store import MediaStore, cache_key, job_key, sha256_file
from video_assets.versions import commit


def soundtrack_key(media: MediaStore, job_id: str, stored) -> str:
    """The audio under the video: the song, or for an ad with a voice, the voiceover mix."""
    voice_key = job_key(job_id, VOICEOVER_FILE)
    mixed = media.get_json(voice_key).get("soundtrack_key") if media.exists(voice_key) else None
    return mixed or stored.audio_key


def load_window_memo(media: MediaStore, key: str) -> WindowMemo:
    """The frames' measurements the job's last render kept (``quality.WindowMemo``); an empty
    memo if there are none or the file is unreadable (everything is then measured again)."""
    try:
        return WindowMemo(media.get_json(key) if media.exists(key) else None)
    except ValueError:  # not JSON (a damaged or foreign file): measured again, then rewritten
        return WindowMemo()


def load_captions(media: MediaStore, job_id: str) -> CaptionTrack | None:
    """The job's caption track (``captions.json``, the ``captions`` stage's), or None when it
    shows nothing (no file: a job staged before captions existed)."""
    key = job_key(job_id, CAPTIONS)
    track = CaptionTrack.model_validate(media.get_json(key)) if media.exists(key) else None
    return track if track is not None and track.source and track.captions else None


def caption_inputs(media: MediaStore, job_id: str, stack: ExitStack) -> tuple[CaptionBurn | None,
                                                                              Path | None]:
    """What composition burns (``media.subtitles.CaptionBurn``) and the SubRip file it muxes as
    a soft subtitle track when the request asks for one (a local file until ``stack`` closes)."""
    track = load_captions(media, job_id)
    if track is None:
        return None, None
    srt = stack.enter_context(media.local_path(job_key(job_id, CAPTIONS_SRT))) \
        if track.subtitle_track else None
    return CaptionBurn(tuple(track.captions), track.style), srt


def measure_burned(context: AssetExecutionContext, video: Path, tap: FramesTap,
                   burn: CaptionBurn | None, report: QualityReport, size: tuple[int, int],
                   fps: int) -> CaptionMeasures | None:
    """The burned captions measured from the file against the caption-free tap
    (``media.caption_quality``); None when there are none, or no tap fits the file."""
    if burn is None:
        return None
    if report.frames_source != "encoder":
        context.log.warning("captions not measured: the encoder's caption-free frames did not "
                            "fit the file")
        return None
    return measure_captions(video, read_frames(tap.path, *tap.size), burn.captions, burn.style,
                            size, fps)


class StoreChunkCache:
    """``media.chunks.ChunkCache`` in the media store: a chunk under ``cache/chunk/``, checked
    against its recorded digest before reuse (``MediaStore.cached``), a reused one a local file
    until ``stack`` closes (the render's end)."""

    def __init__(self, media: MediaStore, stack: ExitStack) -> None:
        self.media, self.stack = media, stack

    @staticmethod
    def key(chunk_key: str) -> str:
        return cache_key(CHUNK_CACHE, CHUNK_SUFFIX, chunk=chunk_key)

    def lookup(self, key: str) -> Path | None:
        if not self.media.cached(self.key(key)):
            return None
        return self.stack.enter_context(self.media.local_path(self.key(key)))

    def store(self, key: str, path: Path) -> None:
        self.media.put_file(self.key(key), path)


@multi_asset(
    name="final_video",
    partitions_def=jobs_partitions,
    group_name="video",
    specs=[
        AssetSpec("final_video", deps=["clips", "voiceover", "captions"], kinds={"ffmpeg"},
                  description="final.mp4: the clips cut on the beats over the original audio "
                              "(for ads with a voice, the voiceover mix), captions burned in"),
        AssetSpec("quality_report", deps=["final_video"], kinds={"python"},
                  description="quality.json: final.mp4 measured against PRODUCT.md's quality bars"),
    ],
    check_specs=check_specs(),
)
def final_video(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> Iterator[MaterializeResult]:
    """Normalise, trim/loop, transition on the beats (in chunks, reused from the cache when
    unchanged) and mux the original audio; then measure the file and decide the checks."""
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    stored, grid, plan = load_plan(media, job_id)
    specs = [ClipSpec.model_validate(x) for x in media.get_json(job_key(job_id, CLIPS_MANIFEST))]
    size = stored.request.size
    # a segment per scene, or per shot where energetic pacing cuts a scene again on beats
    segments, shots = shot_plan(plan, specs, grid, stored.request.pacing, settings.fps,
                                settings.transition_half_frames)
    final_key, thumb_key = job_key(job_id, FINAL), job_key(job_id, THUMBNAIL)
    memo_key = job_key(job_id, FRAME_MEASURES)
    with ExitStack() as stack:
        tmp = stack.enter_context(media.scratch_dir())
        local = {key: stack.enter_context(media.local_path(key)) for key in {s.key for s in shots}}
        digests = {key: sha256_file(path) for key, path in local.items()}
        clip_paths = [local[s.key] for s in shots]
        audio = stack.enter_context(media.local_path(soundtrack_key(media, job_id, stored)))
        out = tmp / "final.mp4"
        context.log.info(f"composing {len(specs)} clips into {size[0]}x{size[1]} "
                         f"@ {settings.fps} fps")
        tap = FramesTap(tmp / "frames.rgb")  # what the encoder encodes, for the measurement
        burn, subtitle_track = caption_inputs(media, job_id, stack)
        # in chunks, each kept in the cache: an edit re-encodes only the chunks it changes
        render = compose_chunked(
            clip_paths, [s.clip_duration_s for s in shots], segments, audio, out,
            settings.compose_settings(size), clip_in_s=[s.in_s for s in shots],
            clip_digests=[digests[s.key] for s in shots], audio_digest=sha256_file(audio),
            cache=StoreChunkCache(media, stack), workers=settings.compose_workers, frames=tap,
            captions=burn, subtitle_track=subtitle_track)
        context.log.info(f"encoded {len(render.encoded)} of {len(render.chunks)} chunks "
                         f"({len(render.reused)} reused from the cache)")
        probe = probe_video(out)
        extract_thumbnail(out, tmp / "thumbnail.jpg", at_s=probe.video_duration_s / 3)
        media.put_file(final_key, out)  # kept even if it fails its checks: it is evidence
        media.put_file(thumb_key, tmp / "thumbnail.jpg")
        context.log.info("measuring the result against the quality bars")
        memo = load_window_memo(media, memo_key)
        report = measure(out, audio, stored.audio_duration_s, grid.beats_s, segments, settings.fps,
                         size, probe, continued=stored.request.continuation,
                         seamless_cuts=seamless_cuts(shots, segments, settings.fps),
                         frames=read_frames(tap.path, *tap.size), memo=memo).model_copy(update={
                             "job_id": job_id,
                             "fallback_scenes": [s.index + 1 for s in specs if s.fallback]})
        report = report.model_copy(update={"metrics": [
            *report.metrics, *caption_metrics(measure_burned(context, out, tap, burn, report,
                                                             size, settings.fps))]})
    media.put_json(job_key(job_id, QUALITY), report.model_dump(mode="json"))
    media.put_json(memo_key, memo.kept)  # for the next version's measurement
    context.log.info(f"measured {memo.misses} windows of frames, {memo.hits} unchanged since "
                     "the last render")
    wh.replace_quality(job_id, report.metrics, report.measured_at)
    checks = check_results(report)
    failed = [c.check_name for c in checks if not c.passed]
    context.log.info(f"quality: {len(checks) - len(failed)}/{len(checks)} checks pass"
                     + (f"; failing: {', '.join(failed)}" if failed else ""))
    cost_usd = wh.job_cost_usd(job_id)
    blocked = any(not c.passed and c.severity == AssetCheckSeverity.ERROR for c in checks)
    # a presigned link expires (and may carry a session token): stored only where links last
    wh.upsert_job(job_id, final_uri=media.uri(final_key),
                  final_url=None if media.links_expire else media.url(final_key),
                  status="checks_failed" if blocked else "done")  # cost: the ledger's sum
    history, added = commit(media, wh, job_id, "checks_failed" if blocked else "done")
    version = history.get(history.current)
    transitions = [s.transition_in for s in segments[1:]]
    yield MaterializeResult(
        asset_key="final_video",
        metadata={
            # a presigned link expires and may carry a session token: the event log keeps none
            **({"fresh_link": f"videogen link {job_id}"} if media.links_expire
               else {"video": MetadataValue.url(media.url(final_key))}),
            "path": media.uri(final_key),
            "thumbnail_path": media.uri(thumb_key),
            "size_bytes": media.size(final_key),
            "duration_s": round(probe.video_duration_s, 4),
            "audio_duration_s": round(stored.audio_duration_s, 4),
            "resolution": f"{probe.width}x{probe.height}",
            "fps": probe.fps,
            "n_frames": probe.n_frames,
            "n_clips": len(specs),
            "beat_cuts": len(shots) - len(specs),  # energetic pacing's cuts inside scenes
            "cuts": transitions.count("cut"),
            "crossfades": transitions.count("crossfade"),
            "fades": transitions.count("fade"),
            "cost_usd": cost_usd,
            "version": version.version,
            "version_made_by": f"{version.operation}: {version.summary}" if added
            else "nothing changed: the current version",
            "changed_scenes": ", ".join(map(str, version.changed_scenes)) or "none",
            "paid_calls": version.paid_calls if added else 0,
            "thumbnail": file_image_md(media, thumb_key, max_px=320),
        },
        check_results=checks,
    )
    yield MaterializeResult(asset_key="quality_report", metadata={
        "quality_json": media.uri(job_key(job_id, QUALITY)), **report_metadata(report)})
