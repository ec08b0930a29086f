"""``lyrics``: the words sung in the song with their times (``lyrics.json``), for the planner.

Transcribed with word timestamps by the transcription provider (OpenAI ``whisper-1``,
``verbose_json``); offline, or for a synthesized or generated music bed, there are no words.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from video_assets.assets.budget import preflight
from video_assets.assets.common import load_grid, load_request
from video_assets.generation import Stage, generate_lyrics, ledger
from video_assets.layout import LYRICS as LYRICS_FILE
from video_assets.partitions import jobs_partitions
from video_assets.providers.select import transcriber
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.schemas import Lyrics
from video_assets.store import job_key

__all__ = ["LYRICS_FILE", "lyrics"]  # LYRICS_FILE: imported from here by the script stage


@asset(partitions_def=jobs_partitions, group_name="video", deps=["beat_grid"], kinds={"openai"})
def lyrics(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Transcribe the song's words with their start and end times (cached by the audio's hash)."""
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    stored = load_request(media, job_id)
    provider = transcriber(stored.request.providers, settings.retry_policy(),
                           settings.provider_concurrency)
    cached = False
    if provider is None:
        result = Lyrics(provider="offline", model="none",
                        note="no transcription offline; set OPENAI_API_KEY for word timestamps")
    elif stored.synthesized_audio:
        result = Lyrics(provider="offline", model="none", note="instrumental bed: no words")
    else:
        with ledger(wh) as calls:
            result, cached = generate_lyrics(
                Stage(media, calls, job_id, "lyrics"), provider, stored.audio_key,
                stored.audio_sha256, stored.audio_duration_s,
                before=lambda: preflight(job_id, stored, settings, media, wh, "transcribe",
                                         grid=load_grid(media, job_id)))
    media.put_json(job_key(job_id, LYRICS_FILE), result.model_dump(mode="json"))
    preview = " ".join(f"{w.word}@{w.start_s:.2f}" for w in result.words[:40])
    return MaterializeResult(metadata={
        "provider": f"{result.provider}/{result.model}",
        "n_words": len(result.words),
        "language": result.language or "n/a",
        "cached": cached,
        "note": result.note or "",
        "words": MetadataValue.md(preview or "_no words_"),
    })
