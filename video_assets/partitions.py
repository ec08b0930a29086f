"""One dynamic partition per job: the job id is the partition key; and the tags and pool that bound
provider calls across runs."""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition

JOBS_PARTITION_NAME = "jobs"
jobs_partitions = DynamicPartitionsDefinition(name=JOBS_PARTITION_NAME)

# the stages that call paid providers (images, clips, lip-sync) share one Dagster concurrency
# pool: `dagster instance concurrency set providers 2` caps how many run them at once across
# runs (unlimited until set); inside a run, PipelineSettings.provider_concurrency bounds the calls
PROVIDERS_POOL = "providers"

# Per model, across runs: each run is tagged `video_assets/model_<capability>: <owner/model>` for
# every capability a real provider serves (the sensor, `ingest` and `render --queue` set them
# from the job's request), and the run queue's `tag_concurrency_limits` in dagster.yaml cap the
# runs at once per model value (1 for the Replicate media models: images, video, lipsync, music).
# Inside a run, steps run one at a time (in-process executor) and a stage's calls are bounded by
# PipelineSettings.clip_workers threads and the provider_concurrency semaphore, so predictions in
# flight for one model <= (its runs-at-once limit) x min(clip_workers, provider_concurrency):
# 1 x min(2, 4) = 2 with the committed settings.
MODEL_TAG_PREFIX = "video_assets/model_"


def model_tags(stored) -> dict[str, str]:
    """``{video_assets/model_<capability>: model}`` for each capability the job calls a real
    provider for (``stored``: its ``schemas.StoredRequest``): images and video always; music only
    for a synthesized music bed; transcription only for a song; voice only for an ad; lip-sync
    only when asked for; the planner when a real one is chosen."""
    providers, request = stored.request.providers, stored.request
    used = {"images": True, "video": True, "music": stored.synthesized_audio,
            "transcribe": not stored.synthesized_audio, "voice": request.mode == "ad",
            "lipsync": request.lipsync, "planner": True}
    return {f"{MODEL_TAG_PREFIX}{cap}": model for cap, wanted in used.items()
            if wanted and (model := providers.model_for(cap))}


def job_model_tags(media, job_id: str) -> dict[str, str]:
    """The model tags of a job's runs, from its staged request (a new job) or its own
    ``request.json`` (an edit, a retry); none when neither is there."""
    from video_assets.admission import staged_key
    from video_assets.layout import REQUEST
    from video_assets.schemas import StoredRequest
    from video_assets.store import job_key

    for key in (staged_key(job_id), job_key(job_id, REQUEST)):
        if media.exists(key):
            return model_tags(StoredRequest.model_validate(media.get_json(key)))
    return {}
