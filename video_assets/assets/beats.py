"""``beat_grid``: tempo, beats, downbeats, energy, song sections and beat-aligned clip boundaries."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from video_assets.assets.common import file_image_md, load_request
from video_assets.layout import BEAT_GRID, BEAT_PLOT
from video_assets.media import beats
from video_assets.media.audio import decode_mono
from video_assets.media.plot import plot_beat_grid
from video_assets.media.sections import sections_table
from video_assets.partitions import jobs_partitions
from video_assets.resources import PipelineSettings, StoreResource
from video_assets.store import job_key


@asset(partitions_def=jobs_partitions, group_name="video", deps=["job_request"],
       kinds={"python"})
def beat_grid(
    context: AssetExecutionContext, store: StoreResource, settings: PipelineSettings
) -> MaterializeResult:
    """Track beats with librosa (tempo-grid fallback when unsure) and plan clips on them."""
    job_id = context.partition_key
    media = store.get()
    stored = load_request(media, job_id)
    with media.local_path(stored.audio_key) as audio_path:
        audio = decode_mono(audio_path)
    grid = beats.analyze(audio, settings.limits(), pacing=stored.request.pacing)
    media.put_json(job_key(job_id, BEAT_GRID), grid.model_dump(mode="json"))
    with media.scratch_dir() as tmp:
        plot_beat_grid(audio, grid, tmp / "beat_grid.png")
        media.put_file(job_key(job_id, BEAT_PLOT), tmp / "beat_grid.png")
    lengths = [b.length_s for b in grid.boundaries]
    context.log.info(f"{grid.method}: {grid.tempo_bpm:.1f} BPM, {len(grid.beats_s)} beats, "
                     f"{len(grid.sections)} sections, "
                     f"{len(lengths)} clips of {min(lengths):.2f}-{max(lengths):.2f} s")
    return MaterializeResult(metadata={
        "tempo_bpm": grid.tempo_bpm,
        "method": grid.method,
        "confidence": grid.confidence,
        "meter": grid.meter,
        "n_beats": len(grid.beats_s),
        "n_filled_beats": grid.n_filled_beats,
        "n_clips": len(grid.boundaries),
        "clip_lengths_s": ", ".join(f"{x:.2f}" for x in lengths),
        "duration_s": round(grid.duration_s, 3),
        "n_sections": len(grid.sections),
        "sections": MetadataValue.md(sections_table(grid.sections)),
        "plot": file_image_md(media, job_key(job_id, BEAT_PLOT), max_px=640),
    })
