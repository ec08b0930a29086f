"""``voiceover``: for ads, each scene's line spoken (text-to-speech) over the music bed.

Writes ``voiceover.json`` (the lines, where each starts, and the soundtrack's key) and, when
there is a voice, ``soundtrack.wav``: the music bed at a lower level with the lines placed at
their scenes' starts, as long as the music, which composition then uses instead of the bed.
Music videos keep the song untouched, and offline there is no voice: no soundtrack is made.
"""

import shutil

from dagster import AssetExecutionContext, MaterializeResult, asset

from video_assets.assets.budget import preflight
from video_assets.assets.common import load_plan, voice_line
from video_assets.generation import Stage, generate_voice, ledger
from video_assets.layout import VOICEOVER as VOICEOVER_FILE
from video_assets.media.audio import decode_mono
from video_assets.media.ffmpeg_bin import run_ffmpeg
from video_assets.partitions import jobs_partitions
from video_assets.providers.select import voice
from video_assets.resources import PipelineSettings, StoreResource, WarehouseResource
from video_assets.store import job_key

__all__ = ["VOICEOVER_FILE", "voiceover"]  # VOICEOVER_FILE: imported from here by final.py
LEAD_IN_S = 0.15  # a line starts just after its scene's cut
BED_GAIN = 0.45  # the music under the voice


def mix_soundtrack(bed, lines, duration_s: float, out_path, scene_ends_s) -> None:
    """One ffmpeg pass: the bed lowered, each ``(path, start_s)`` line cut at its scene's end."""
    args = ["-y", "-i", str(bed)]
    chains = [f"[0:a]aformat=sample_rates=44100:channel_layouts=stereo,volume={BED_GAIN}[bed]"]
    for i, ((path, start_s), end_s) in enumerate(zip(lines, scene_ends_s, strict=True), start=1):
        args += ["-i", str(path)]
        room_s = max(0.2, end_s - start_s - 0.05)
        delay_ms = int(round(start_s * 1000))
        chains.append(f"[{i}:a]aformat=sample_rates=44100:channel_layouts=stereo,"
                      f"atrim=0:{room_s:.3f},afade=t=out:st={max(0.0, room_s - 0.08):.3f}:d=0.08,"
                      f"adelay={delay_ms}|{delay_ms}[v{i}]")
    mix = "".join(f"[v{i}]" for i in range(1, len(lines) + 1))
    chains.append(f"[bed]{mix}amix=inputs={len(lines) + 1}:duration=first:normalize=0[out]")
    run_ffmpeg([*args, "-filter_complex", ";".join(chains), "-map", "[out]",
                "-t", f"{duration_s:.6f}", "-c:a", "pcm_s16le", str(out_path)],
               what="mixing the voiceover over the music")


@asset(partitions_def=jobs_partitions, group_name="video", deps=["script"], kinds={"openai"})
def voiceover(
    context: AssetExecutionContext,
    store: StoreResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
) -> MaterializeResult:
    """Speak each scene's caption (cached per line) and mix the lines over the music."""
    job_id = context.partition_key
    media, wh = store.get(), warehouse.get()
    stored, grid, plan = load_plan(media, job_id)
    speaker = voice(stored.request.providers, settings.retry_policy(),
                    settings.provider_concurrency)
    out_key = job_key(job_id, VOICEOVER_FILE)
    if speaker is None or stored.request.mode != "ad":
        why = "music videos keep the song as it is" if stored.request.mode != "ad" \
            else "no voice offline; set OPENAI_API_KEY for a voiceover"
        media.put_json(out_key, {"lines": [], "soundtrack_key": None, "note": why})
        return MaterializeResult(metadata={"n_lines": 0, "note": why})
    preflight(job_id, stored, settings, media, wh, "voice", grid=grid, plan=plan)
    lines, hits = [], 0
    with ledger(wh) as calls, media.scratch_dir() as tmp:
        paths = []
        stage = Stage(media, calls, job_id, "voiceover")
        for scene in plan.scenes:
            text = voice_line(scene)
            key, hit = generate_voice(stage, speaker, text, scene.index)
            hits += hit
            local = tmp / f"line-{scene.index:02d}.wav"
            with media.local_path(key) as cached:
                shutil.copyfile(cached, local)
            paths.append((local, scene.start_s + LEAD_IN_S))
            lines.append({"index": scene.index, "start_s": round(scene.start_s + LEAD_IN_S, 3),
                          "text": text, "duration_s": round(decode_mono(local).duration_s, 3)})
        with media.local_path(stored.audio_key) as bed:
            mix_soundtrack(bed, paths, stored.audio_duration_s, tmp / "soundtrack.wav",
                           [s.end_s for s in plan.scenes])
        soundtrack_key = job_key(job_id, "soundtrack.wav")
        media.put_file(soundtrack_key, tmp / "soundtrack.wav")
    media.put_json(out_key, {"lines": lines, "soundtrack_key": soundtrack_key,
                             "voice": f"{speaker.name}/{speaker.model}"})
    context.log.info(f"voiceover: {len(lines)} lines ({hits} cached) over the music")
    return MaterializeResult(metadata={
        "n_lines": len(lines),
        "cache_hits": hits,
        "voice": f"{speaker.name}/{speaker.model}",
        "soundtrack": media.uri(soundtrack_key),
        "lines": "\n".join(f"{x['start_s']:.2f} s: {x['text']}" for x in lines),
    })
