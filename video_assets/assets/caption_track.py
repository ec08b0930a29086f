"""``captions``: the job's words on screen, decided once per version.

Writes ``captions.json`` (``captions.CaptionTrack``: the source, the resolved style and the lines)
from what the earlier stages made: the user's lyrics (``lyrics_user.txt``, staged at admission),
the transcript (``lyrics.json``), an ad's spoken lines and the scenes' own captions
(``script.json``; a scene's caption edit reaches the track here). With captions it writes the same
lines as ``captions.srt`` and ``captions.vtt`` beside the video; without, it removes those a
version before left. Composition burns the track in (``final_video``). The decision itself is
``captions.build_track``; this stage only loads and writes.

An ad's spoken lines: those ``voiceover.json`` lists when a voice spoke them (each until its
audio or its scene ends), else, offline, the lines the voice would speak (``voice_line``) at
each scene's start plus the voiceover's lead-in, until the scene's end.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from video_assets.assets.common import load_plan, voice_line
from video_assets.assets.voiceover import LEAD_IN_S
from video_assets.captions import CaptionTrack, build_track
from video_assets.layout import CAPTIONS, CAPTIONS_SRT, CAPTIONS_VTT, LYRICS, USER_LYRICS, VOICEOVER
from video_assets.media.subtitles import default_style, srt_text, vtt_text
from video_assets.partitions import jobs_partitions
from video_assets.resources import StoreResource
from video_assets.schemas import Lyrics, Request, Script
from video_assets.store import MediaStore, job_key
from video_assets.versions import current_file_key

PREVIEW_LINES = 8  # caption lines shown in the asset's metadata


def spoken_lines(media: MediaStore, job_id: str, request: Request, plan: Script) -> list[dict]:
    """An ad's lines as ``captions.from_voiceover`` takes them (see the module docstring); a
    music video speaks none."""
    if request.mode != "ad":
        return []
    key = job_key(job_id, VOICEOVER)
    said = media.get_json(key) if media.exists(key) else {}
    ends = {s.index: s.end_s for s in plan.scenes}
    if said.get("lines"):
        return [{"start_s": x["start_s"], "text": x["text"],
                 "end_s": min(x["start_s"] + x["duration_s"], ends.get(x["index"], float("inf")))}
                for x in said["lines"]]
    return [{"start_s": round(s.start_s + LEAD_IN_S, 3), "end_s": s.end_s, "text": voice_line(s)}
            for s in plan.scenes if s.end_s > s.start_s + LEAD_IN_S]


def user_lyrics(media: MediaStore, job_id: str, request: Request) -> str | None:
    """The job's copy of the user's lyrics (or its current version's), when the request has
    lyrics."""
    if not request.lyrics:
        return None
    key = current_file_key(media, job_id, USER_LYRICS)
    if key is None:
        raise FileNotFoundError(f"job {job_id}: the request names lyrics {request.lyrics!r} but "
                                f"{media.uri(job_key(job_id, USER_LYRICS))} is missing; fix: give "
                                "them again (videogen rerender JOB_ID --lyrics FILE)")
    return media.get_bytes(key).decode("utf-8")


def style_name(request: Request) -> str:
    """The preset the captions use, and the fields the request overrides."""
    name = request.captions.style or default_style(request.flavor, request.mode)
    overridden = sorted(request.captions.overrides())
    return name + (f" ({', '.join(overridden)} overridden)" if overridden else "")


def write_track(media: MediaStore, job_id: str, track: CaptionTrack) -> None:
    """``captions.json`` and, with captions, the subtitle files; without, none (a stale pair
    from the version before is removed)."""
    media.put_json(job_key(job_id, CAPTIONS), track.model_dump(mode="json"))
    for name, render in ((CAPTIONS_SRT, srt_text), (CAPTIONS_VTT, vtt_text)):
        if track.captions:
            media.put_bytes(job_key(job_id, name), render(track.captions).encode("utf-8"))
        else:
            media.delete(job_key(job_id, name))


@asset(partitions_def=jobs_partitions, group_name="video", deps=["script", "lyrics", "voiceover"],
       kinds={"python"})
def captions(context: AssetExecutionContext, store: StoreResource) -> MaterializeResult:
    """Decide the job's captions (source, lines, style) and write them with their subtitle files."""
    job_id = context.partition_key
    media = store.get()
    stored, grid, plan = load_plan(media, job_id)
    request = stored.request
    words = Lyrics.model_validate(media.get_json(job_key(job_id, LYRICS)))
    track = build_track(
        request.captions, request.mode, request.flavor,
        lyrics_text=user_lyrics(media, job_id, request), duration_s=stored.audio_duration_s,
        beats_s=grid.beats_s, sections=grid.sections, transcript_words=words.words,
        voice_lines=spoken_lines(media, job_id, request, plan), scenes=plan.scenes)
    write_track(media, job_id, track)
    n_timed = sum(len(c.words) for c in track.captions)
    context.log.info(f"captions: {len(track.captions)} lines from {track.source}"
                     if track.source else f"captions: none ({track.note})")
    preview = "\n".join(f"- {c.start_s:.2f}-{c.end_s:.2f} s: {c.text}"
                        for c in track.captions[:PREVIEW_LINES])
    return MaterializeResult(metadata={
        "source": track.source or "none",
        "style": style_name(request) if track.source else "none",
        "n_captions": len(track.captions),
        "n_words": sum(len(c.text.split()) for c in track.captions),
        "n_timed_words": n_timed,
        "subtitle_track": track.subtitle_track,
        "note": track.note,
        "captions": MetadataValue.path(media.uri(job_key(job_id, CAPTIONS))),
        "first_lines": MetadataValue.md(preview or "_no captions_"),
    })
