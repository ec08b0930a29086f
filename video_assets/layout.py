"""The names of a job's files in the media store, each defined once (``jobs/<job_id>/...``).

The files of the job's current version sit in its folder; every version's own copy sits under
``versions/<n>/`` with the same names (``version_key``). Pure names, no I/O.
"""

from __future__ import annotations

from video_assets.store import job_key

REQUEST = "request.json"
CLEAN_AUDIO = "audio.flac"  # the upload re-encoded at admission: every stage reads this
BEAT_GRID = "beat_grid.json"
BEAT_PLOT = "beat_grid.png"
LYRICS = "lyrics.json"
SCRIPT = "script.json"
VOICEOVER = "voiceover.json"
USER_LYRICS = "lyrics_user.txt"  # the user's lyrics file (plain text or LRC) as admission read it
CAPTIONS = "captions.json"  # the caption track: its source, style and lines (captions.CaptionTrack)
CAPTIONS_SRT = "captions.srt"  # the same lines as subtitle files beside final.mp4 (none: no file)
CAPTIONS_VTT = "captions.vtt"
STORYBOARD = "storyboard"  # a folder: NN.png per scene, and the contact sheet
CONTACT_SHEET = "contact_sheet.jpg"
CLIPS = "clips"  # a folder: NN.mp4 per scene
CLIPS_MANIFEST = "clips.json"
FINAL = "final.mp4"
THUMBNAIL = "thumbnail.jpg"
QUALITY = "quality.json"
FRAME_MEASURES = "frame_measures.json"  # the last measurement's windows, for an edit's
HISTORY = "history.json"  # the job's versions and which one is current
VERSIONS = "versions"  # a folder: one folder per version

# what a version is: the files an edit may change, copied into versions/<n>/ when it is made
# (besides the storyboard and clips folders; voiceover: ads with a voice; the lyrics and captions
# files: jobs with words on screen)
VERSION_FILES = (REQUEST, SCRIPT, VOICEOVER, USER_LYRICS, CAPTIONS, CAPTIONS_SRT, CAPTIONS_VTT,
                 CLIPS_MANIFEST, FINAL, THUMBNAIL, QUALITY)


def scene_file(index: int, ext: str) -> str:
    """A scene's file name in the storyboard or clips folder: 1-based, two digits (``03.png``)."""
    return f"{index + 1:02d}.{ext}"


def storyboard_key(job_id: str, index: int) -> str:
    return job_key(job_id, STORYBOARD, scene_file(index, "png"))


def clip_key(job_id: str, index: int) -> str:
    return job_key(job_id, CLIPS, scene_file(index, "mp4"))


def version_key(job_id: str, version: int, *parts: str) -> str:
    """Key of a file of version ``version`` of a job, e.g. ``jobs/<id>/versions/3/final.mp4``."""
    return job_key(job_id, VERSIONS, str(version), *parts)

# cache kinds (``store.cache_key``) that are remade from what the store keeps, at no cost:
# composition chunks (and the soundtrack beside them) and contact-sheet tiles
CHUNK_CACHE = "chunk"
TILE_CACHE = "tile"
DERIVED_CACHE_KINDS = (CHUNK_CACHE, TILE_CACHE)
