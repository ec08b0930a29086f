"""Admitting a request: parse, validate, check the audio, name the job, stage it for its run.

Nothing is staged until everything is valid, so a rejected request never leaves a half-made job.
Every error names the field (or file) and the fix.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from pathlib import Path, PurePosixPath

import yaml
from pydantic import ValidationError

from video_assets.media.audio import AudioError, decode_mono
from video_assets.schemas import (
    ASPECT_SIZES,
    FLAVORS,
    MAX_AUDIO_BYTES,
    MAX_AUDIO_S,
    MIN_AUDIO_S,
    PROVIDER_CAPABILITIES,
    PROVIDER_KEYS,
    REAL_PROVIDERS,
    Providers,
    Request,
    StoredRequest,
)
from video_assets.store import MediaStore, sha256_file

REQUEST_SUFFIXES = (".yaml", ".yml", ".json")

FIXES = {
    "prompt": "write a prompt of 3 to 2000 characters",
    "audio": "set audio to a song file beside the request (mp3, wav, flac, ogg, m4a)",
    "mode": "use mode: music_video or mode: ad",
    "duration_s": f"give a length in seconds between {MIN_AUDIO_S:g} and {MAX_AUDIO_S:g}",
    "aspect": f"use one of {', '.join(repr(a) for a in ASPECT_SIZES)}",
    "style": "use free text of at most 500 characters",
    "flavor": f"use one of {', '.join(FLAVORS)}",
    "transitions": "use auto, cut, crossfade or fade",
    "budget_usd": "give a non-negative number of US dollars",
    "providers": "use offline, openai[:<model>] (planner, transcribe, voice) or "
                 "replicate[:<owner/model>] (images, video, music, lipsync); models are listed in "
                 "video_assets/providers/prices.json",
    "lipsync": "use true or false",
    "continuation": "use true or false",
}


class RequestError(ValueError):
    """A bad request: ``field`` names what is wrong, the message says how to fix it."""

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message
        super().__init__(f'request "{source}": {field}: {message}')

    def to_report(self) -> dict[str, str]:
        return {"request": self.source, "field": self.field, "error": self.message}


class AudioNotFound(RequestError):
    """The request names audio that is not there (yet): the inbox retries for a grace period."""


def slug(name: str) -> str:
    stem = PurePosixPath(name).name
    for suffix in (*REQUEST_SUFFIXES, ".mp3", ".wav", ".flac", ".ogg", ".m4a"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    s = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    return (s or "job")[:40].strip("-") or "job"


def job_id_for(name: str, content: bytes) -> str:
    """``<slug of the file name>-<first 8 hex of the content hash>`` (PRODUCT.md)."""
    return f"{slug(name)}-{hashlib.sha256(content).hexdigest()[:8]}"


def render_job_id(request: Request, name: str, audio_sha256: str) -> str:
    """The job id of a ``videogen render`` of the song ``name``: the request (its providers
    resolved, see ``resolve_providers``) and the song's content hash, not where the song lies:
    the same song and request are one job, and one video, wherever the file is."""
    content = json.dumps({**request.model_dump(mode="json", exclude={"audio"}),
                          "audio_sha256": audio_sha256}, sort_keys=True).encode()
    return job_id_for(name, content)


def parse_request(content: bytes, source: str) -> dict:
    """Parse YAML or JSON (by suffix; YAML also reads JSON) into a mapping."""
    if not content.strip():
        raise RequestError(source, "file", "the request file is empty; fix: write at least "
                           "'prompt:' and 'audio:' lines")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(source, "file", "not UTF-8 text; fix: save the request as UTF-8 "
                           "YAML or JSON") from None
    try:
        data = json.loads(text) if source.lower().endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else (
            f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "")
        kind = "JSON" if source.lower().endswith(".json") else "YAML"
        raise RequestError(source, "file", f"malformed {kind}{at}; fix: check quoting and "
                           "indentation") from None
    if not isinstance(data, dict):
        raise RequestError(source, "file", "the request must be a mapping of fields (e.g. "
                           "'prompt: ...'); fix: write one 'key: value' per line")
    return data


def validate_request(data: dict, source: str) -> Request:
    try:
        return Request.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        field = ".".join(loc) or "request"
        top = loc[0] if loc else ""
        if err["type"] == "extra_forbidden":
            known = ", ".join(Request.model_fields)
            msg = f"unknown key {field!r}; fix: remove it or use one of: {known}"
        elif err["type"] == "missing":
            msg = f"missing; fix: {FIXES.get(top, 'add it')}"
        else:
            raw = err.get("input")
            shown = f" (got {raw!r})" if raw is not None and not isinstance(raw, dict) else ""
            text = err["msg"].removeprefix("Value error, ")
            msg = f"{text}{shown}; fix: {FIXES.get(top, 'correct the value')}"
        if not loc:  # model-level rule (mode needs audio or duration_s)
            field = "audio"
            msg = f"{err['msg'].removeprefix('Value error, ')}; fix: {FIXES['audio']}"
        raise RequestError(source, field, msg) from None


def check_audio(path: Path, source: str, field: str = "audio") -> float:
    """Check size, decodability and length of the audio; returns its duration in seconds."""
    if not path.is_file():
        raise AudioNotFound(source, field, f'file "{path.name}" not found beside the request; '
                           "fix: put the song next to the request file or fix the name")
    size = path.stat().st_size
    if size == 0:
        raise RequestError(source, field, f'"{path.name}" is empty (0 bytes); fix: upload the '
                           "song again")
    if size > MAX_AUDIO_BYTES:
        raise RequestError(source, field, f'"{path.name}" is {size / 2**20:.0f} MB, over the '
                           f"{MAX_AUDIO_BYTES // 2**20} MB limit; fix: use a compressed file "
                           "(e.g. mp3) or a shorter cut")
    try:
        duration_s = decode_mono(path).duration_s
    except AudioError as exc:
        raise RequestError(source, field, str(exc)) from None
    if duration_s < MIN_AUDIO_S:
        raise RequestError(source, field, f'"{path.name}" lasts {duration_s:.2f} s, under the '
                           f"{MIN_AUDIO_S:g} s minimum; fix: use a longer song")
    if duration_s > MAX_AUDIO_S:
        raise RequestError(source, field, f'"{path.name}" lasts {duration_s / 60:.1f} min, over '
                           f"the {MAX_AUDIO_S / 60:g} min limit; fix: cut the song to 10 minutes "
                           "or less")
    return duration_s


def resolve_audio_path(request: Request, base_dir: Path, source: str) -> Path | None:
    if not request.audio:
        return None
    if request.audio.startswith("s3://"):
        raise RequestError(source, "audio", "s3:// audio needs the S3 media store; fix: set "
                           "VIDEO_ASSETS_BUCKET (and AWS_ENDPOINT_URL for a non-AWS server) or "
                           "put the song beside the request")
    rel = Path(request.audio)
    path = rel if rel.is_absolute() else (base_dir / rel)
    return path.resolve()


def audio_key(request: Request, request_key: str, bucket: str, source: str) -> str:
    """The store key of the request's audio in an S3 inbox: relative to the request's folder, or
    ``s3://<bucket>/<key>`` in the same bucket. Nothing outside the bucket is reachable."""
    ref = request.audio or ""
    if ref.startswith("s3://"):
        other, _, key = ref[len("s3://"):].partition("/")
        if other != bucket:
            raise RequestError(source, "audio", f"{ref!r} is in bucket {other!r}, not in "
                               f"{bucket!r}; fix: copy the song into s3://{bucket}/ (beside the "
                               "request is simplest)")
    else:
        key = posixpath.normpath(posixpath.join(posixpath.dirname(request_key), ref))
    if not key or key in (".", "..") or key.startswith(("/", "../")) or ".." in key.split("/"):
        raise RequestError(source, "audio", f"{ref!r} points outside the bucket; fix: name a song "
                           "beside the request or give s3://" + bucket + "/<key>")
    return key


def stage(
    store: MediaStore,
    job_id: str,
    request: Request,
    source_name: str,
    audio_path: Path | None,
    audio_duration_s: float | None,
    audio_sha256: str | None = None,
) -> StoredRequest:
    """Copy the audio and the validated request to ``staged/<job_id>/`` for the job's run
    (``audio_sha256``: the audio's hash if already taken).

    Providers left unset are decided here, once: real ones only when their key is set."""
    request = resolve_providers(request, source_name)
    if audio_path is not None:
        ext = audio_path.suffix.lower() or ".audio"
        audio_key = f"staged/{job_id}/audio{ext}"
        store.put_file(audio_key, audio_path)
        digest = audio_sha256 or sha256_file(audio_path)
        duration_s = float(audio_duration_s or 0.0)
    else:
        audio_key, digest, duration_s = "", "", float(request.duration_s or 0.0)
    stored = StoredRequest(
        job_id=job_id, request=request, source_name=source_name, audio_key=audio_key,
        audio_duration_s=duration_s, audio_sha256=digest, synthesized_audio=audio_path is None,
    )
    store.put_json(staged_key(job_id), stored.model_dump(mode="json"))
    return stored


def resolve_providers(request: Request, source: str = "request") -> Request:
    """Unset providers become real ones only when their key is set (lip-sync only when asked
    for); a real provider named without its key is refused before anything is staged."""
    from video_assets.providers.keys import ApiKeyInvalid, api_key  # stripped, checked

    chosen = {}
    for field in PROVIDER_CAPABILITIES:
        choice = getattr(request.providers, field)
        real = REAL_PROVIDERS[field]
        try:
            has_key = bool(api_key(real))
        except ApiKeyInvalid as exc:  # the message names the variable, never its value
            raise RequestError(source, f"providers.{field}", str(exc)) from None
        if choice and choice != "offline" and not has_key:
            raise RequestError(source, f"providers.{field}", f"{choice!r} needs "
                               f"{PROVIDER_KEYS[real]} in the environment; fix: export it, or "
                               "use offline")
        if choice is None:
            wanted = field != "lipsync" or request.lipsync
            choice = real if has_key and wanted else "offline"
        chosen[field] = choice
    if request.lipsync and chosen["lipsync"] == "offline":
        raise RequestError(source, "lipsync", "lip-sync needs a lip-sync model (providers.lipsync: "
                           "replicate) and REPLICATE_API_TOKEN; fix: export the token, or set "
                           "lipsync: false")
    return request.model_copy(update={"providers": Providers(**chosen)})


def staged_key(job_id: str) -> str:
    return f"staged/{job_id}/request.json"

