"""``job_request``: the validated request and the job's audio, copied into the job's folder."""

from pathlib import PurePosixPath

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from video_assets.admission import staged_key, validate_request
from video_assets.media.audio import synthesize_track, write_wav
from video_assets.partitions import jobs_partitions
from video_assets.resources import StoreResource, WarehouseResource
from video_assets.schemas import StoredRequest
from video_assets.store import job_key

FLAVOR_TEMPO_BPM = {"default": 112.0, "cinematic": 84.0, "energetic": 128.0, "minimal": 96.0}


@asset(partitions_def=jobs_partitions, group_name="video", kinds={"python"})
def job_request(
    context: AssetExecutionContext, store: StoreResource, warehouse: WarehouseResource
) -> MaterializeResult:
    """Validate the staged request again and copy its audio to ``jobs/<id>/audio.*``.

    Ad requests without a song get a synthesized music bed of ``duration_s``.
    """
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    if not media.exists(staged_key(job_id)):
        raise FileNotFoundError(
            f"job {job_id}: no staged request at {media.uri(staged_key(job_id))}; "
            "fix: submit the request again (videogen submit / render) to stage it"
        )
    staged = StoredRequest.model_validate(media.get_json(staged_key(job_id)))
    request = validate_request(staged.request.model_dump(mode="json"), staged.source_name)
    if staged.synthesized_audio:
        audio_key = job_key(job_id, "audio.wav")
        with media.scratch_dir() as tmp:
            tempo = FLAVOR_TEMPO_BPM[request.flavor]
            samples = synthesize_track(staged.audio_duration_s, tempo_bpm=tempo)
            write_wav(tmp / "audio.wav", samples, 44100)
            media.put_file(audio_key, tmp / "audio.wav")
    else:
        audio_key = job_key(job_id, "audio" + PurePosixPath(staged.audio_key).suffix)
        media.copy(staged.audio_key, audio_key)
    stored = staged.model_copy(update={"audio_key": audio_key, "request": request})
    media.put_json(job_key(job_id, "request.json"), stored.model_dump(mode="json"))
    wh.upsert_job(job_id, mode=request.mode, prompt=request.prompt,
                  audio_duration_s=stored.audio_duration_s, status="running", failed_stage=None)
    context.log.info(f"job {job_id}: {request.mode}, {stored.audio_duration_s:.2f} s of audio")
    return MaterializeResult(metadata={
        "job_id": job_id,
        "prompt": request.prompt,
        "mode": request.mode,
        "aspect": request.aspect,
        "transitions": request.transitions,
        "audio": MetadataValue.path(media.uri(audio_key)),
        "audio_duration_s": round(stored.audio_duration_s, 3),
        "synthesized_audio": stored.synthesized_audio,
    })
