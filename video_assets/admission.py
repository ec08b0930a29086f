"""Admitting a request: parse, validate, check the audio (and the lyrics), name the job, stage it
for its run.

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

from video_assets.captions import CaptionSettings, LyricsError, parse_lyrics
from video_assets.config import allowed_models, max_budget_usd
from video_assets.layout import USER_LYRICS
from video_assets.media.audio import AUDIO_SUFFIXES, AudioError, decode_mono, probe_audio, short
from video_assets.schemas import (
    ASPECT_SIZES,
    FLAVORS,
    MAX_AUDIO_BYTES,
    MAX_AUDIO_S,
    MAX_LYRICS_BYTES,
    MIN_AUDIO_S,
    PROVIDER_CAPABILITIES,
    PROVIDER_KEYS,
    REAL_PROVIDERS,
    Providers,
    Request,
    StoredRequest,
)
from video_assets.store import MediaStore, job_key, sha256_file
from video_assets.webhooks import WebhookConfigError, WebhookUrlError, check_webhook_url, webhook_secret

REQUEST_SUFFIXES = (".yaml", ".yml", ".json")
INBOX = "inbox/"  # request files (and their songs) are dropped here
REJECTED = "rejected/"  # one error report per rejected request, mirroring its inbox path

FIXES = {
    "prompt": "write a prompt of 3 to 2000 characters",
    "audio": "set audio to a song file beside the request (mp3, wav, flac, ogg, m4a)",
    "mode": "use mode: music_video or mode: ad",
    "duration_s": f"give a length in seconds between {MIN_AUDIO_S:g} and {MAX_AUDIO_S:g}",
    "aspect": f"use one of {', '.join(repr(a) for a in ASPECT_SIZES)}",
    "style": "use free text of at most 500 characters",
    "flavor": f"use one of {', '.join(FLAVORS)}",
    "transitions": "use auto, cut, crossfade or fade",
    "budget_usd": "give a finite, non-negative number of US dollars within the operator's cap",
    "providers": "use offline, openai[:<model>] (planner, transcribe, voice) or "
                 "replicate[:<owner/model>] (images, video, music, lipsync); models are listed in "
                 "video_assets/providers/prices.json",
    "lipsync": "use true or false",
    "continuation": "use true or false",
    "webhook_url": "give an https:// URL whose host the operator lists in VIDEO_ASSETS_WEBHOOK_HOSTS",
    "lyrics": "set lyrics to a UTF-8 text file beside the request: plain lines, or LRC with "
              "[mm:ss.xx] times (e.g. lyrics: song.lrc)",
    "captions": "write captions: {source: auto | lyrics | transcript | voiceover | custom | off, "
                "style: karaoke | bold_pop | minimal | lower_third, and any style field to "
                "override, e.g. size: 0.05 or highlight: '#ff0080'}",
}


class RequestError(ValueError):
    """A bad request: ``field`` names what is wrong, the message says how to fix it."""

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = short(source, 120)
        self.field = short(field, 80)
        self.message = short(message, 1000)  # values in it are quoted short already
        super().__init__(f'request "{self.source}": {self.field}: {self.message}')

    def to_report(self) -> dict[str, str]:
        return {"request": self.source, "field": self.field, "error": self.message}


class AudioNotFound(RequestError):
    """The request names a file (its audio or its lyrics) that is not there (yet): the inbox
    retries for a grace period."""


MAX_NESTING = 16  # a request is a flat mapping with a providers mapping in it
JOB_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def slug(name: str) -> str:
    stem = PurePosixPath(name).name
    for suffix in (*REQUEST_SUFFIXES, *AUDIO_SUFFIXES):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    s = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    return (s or "job")[:40].strip("-") or "job"


def job_id_for(name: str, content: bytes) -> str:
    """``<slug of the file name>-<first 8 hex of the content hash>`` (PRODUCT.md)."""
    return f"{slug(name)}-{hashlib.sha256(content).hexdigest()[:8]}"


def request_job_id(name: str, content: bytes, audio_sha256: str, request_key: str,
                   lyrics_sha256: str = "") -> str:
    """The job id of an inbox request: its text, its song's content (and its lyrics', when it
    has lyrics) and where it lies in the inbox, so the same request with another song, other
    lyrics, or in another folder, is another job."""
    identity = {"request_sha256": hashlib.sha256(content).hexdigest(),
                "audio_sha256": audio_sha256, "key": request_key}
    if lyrics_sha256:  # only then: the ids of requests without lyrics stay what they were
        identity["lyrics_sha256"] = lyrics_sha256
    return job_id_for(name, json.dumps(identity, sort_keys=True).encode())


def render_job_id(request: Request, name: str, audio_sha256: str, lyrics_sha256: str = "") -> str:
    """The job id of a ``videogen render`` of the song ``name``: the request (its providers
    resolved, see ``resolve_providers``), the song's content hash and the lyrics' (when there
    are lyrics), not where the files lie: the same song, lyrics and request are one job, and one
    video, wherever the files are."""
    fields = request.model_dump(mode="json", exclude={"audio", "webhook_url", "lyrics"})
    # fields at their defaults are left out: the ids of requests made before they existed
    if fields.get("pacing") == "auto":
        del fields["pacing"]
    if request.captions == CaptionSettings():
        del fields["captions"]
    if lyrics_sha256:
        fields["lyrics_sha256"] = lyrics_sha256
    content = json.dumps({**fields, "audio_sha256": audio_sha256}, sort_keys=True).encode()
    return job_id_for(name, content)


def check_job_id(value: str, field: str = "job-id") -> str:
    """A job id chosen by hand follows the slug rule (it names a folder and a partition)."""
    if not JOB_ID_RE.fullmatch(value):
        raise RequestError("command line", field, f"{short(value, 80)!r} is not a job id: use 1 to "
                           "64 lowercase letters, digits and inner hyphens; fix: e.g. "
                           f"--job-id {slug(value) if slug(value) != 'job' else 'my-video'}")
    return value


def _check_nesting(text: str, source: str, is_json: bool) -> None:
    """Refuse requests nested deeper than ``MAX_NESTING`` and YAML anchors and aliases (an alias
    can multiply a small file into gigabytes), before any parser builds the document."""
    too_deep = RequestError(source, "file", f"nested more than {MAX_NESTING} levels deep; fix: "
                            "write a flat mapping of 'key: value' lines (providers is the one "
                            "nested mapping)")
    if is_json:
        depth, in_string, escaped = 0, False, False
        for char in text:
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
                continue
            if char == '"':
                in_string = True
            elif char in "[{":
                depth += 1
                if depth > MAX_NESTING:
                    raise too_deep
            elif char in "]}":
                depth -= 1
        return
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):  # events: no recursion, no aliases
        if isinstance(event, yaml.NodeEvent) and (isinstance(event, yaml.AliasEvent) or event.anchor):
            raise RequestError(source, "file", "YAML anchors and aliases (&name, *name) are not "
                               "allowed in a request; fix: write each value out")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                raise too_deep
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


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
    is_json = source.lower().endswith(".json")
    try:
        _check_nesting(text, source, is_json)
        data = json.loads(text) if is_json else yaml.safe_load(text)
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


NESTED = {"providers": Providers, "captions": CaptionSettings}  # the request's nested mappings
_NAMED = re.compile(r"([a-z_]+(?:\.[a-z_]+)*): (.+)", re.DOTALL)  # "captions.style: problem; fix"


def validate_request(data: dict, source: str) -> Request:
    try:
        return Request.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        field = ".".join(loc) or "request"
        top = loc[0] if loc else ""
        text = err["msg"].removeprefix("Value error, ")
        named = _NAMED.fullmatch(text)
        if named and named.group(1).split(".")[0] in Request.model_fields \
                and named.group(1).startswith(field if loc else ""):
            field, text = named.groups()  # a rule that names its own field (captions.style)
            top = field.split(".")[0]
        if err["type"] == "extra_forbidden":
            model = NESTED.get(top, Request) if len(loc) > 1 else Request
            known = ", ".join(model.model_fields)
            msg = f"unknown key {short(field)!r}; fix: remove it or use one of: {known}"
        elif err["type"] == "missing":
            msg = f"missing; fix: {FIXES.get(top, 'add it')}"
        elif isinstance(cause := (err.get("ctx") or {}).get("error"), WebhookUrlError):
            msg = f"{cause.problem}; fix: {cause.fix}"  # the URL is not quoted: it may hold a password
        elif "; fix: " in text:  # the rule says how to fix it itself
            msg = text
        else:
            raw = err.get("input")
            shown = f" (got {short(repr(raw))})" if raw is not None and not isinstance(raw, dict) \
                else ""
            msg = f"{text}{shown}; fix: {FIXES.get(top, 'correct the value')}"
        if not loc and not named:  # model-level rule (mode needs audio or duration_s)
            field = "audio"
            msg = f"{text}; fix: {FIXES['audio']}"
        raise RequestError(source, field, msg) from None


def check_audio(path: Path, source: str, field: str = "audio",
                shown: str | None = None) -> float | None:
    """Check the size, the container format (audio containers only) and the length of the audio
    from its container, without decoding it; returns its duration in seconds, or None when the
    container does not say (the run's bounded re-encode measures it and enforces the limits).
    ``shown`` is how the request named the file (the default: its file name)."""
    shown = short(shown if shown is not None else path.name)
    if not path.is_file():
        raise AudioNotFound(source, field, f'file "{shown}" not found beside the request; '
                           "fix: put the song next to the request file or fix the name")
    size = path.stat().st_size
    if size == 0:
        raise RequestError(source, field, f'"{shown}" is empty (0 bytes); fix: upload the '
                           "song again")
    if size > MAX_AUDIO_BYTES:
        raise RequestError(source, field, f'"{shown}" is {size / 2**20:.0f} MB, over the '
                           f"{MAX_AUDIO_BYTES // 2**20} MB limit; fix: use a compressed file "
                           "(e.g. mp3) or a shorter cut")
    try:
        duration_s = probe_audio(path).duration_s
        if duration_s is None:  # the container does not say: is there at least the minimum?
            head_s = decode_mono(path, sample_rate=8000, max_s=MIN_AUDIO_S + 1.0).duration_s
            if head_s > MIN_AUDIO_S:
                return None  # long enough to start; the run's bounded re-encode measures it
            duration_s = head_s
    except AudioError as exc:
        raise RequestError(source, field, str(exc)) from None
    if duration_s < MIN_AUDIO_S:
        raise RequestError(source, field, f'"{shown}" lasts {duration_s:.2f} s, under the '
                           f"{MIN_AUDIO_S:g} s minimum; fix: use a longer song")
    if duration_s > MAX_AUDIO_S:
        raise RequestError(source, field, f'"{shown}" lasts {duration_s / 60:.1f} min, over '
                           f"the {MAX_AUDIO_S / 60:g} min limit; fix: cut the song to 10 minutes "
                           "or less")
    return duration_s


# the files a request names beside itself: field -> (what the file is, an example name)
REQUEST_FILES = {"audio": ("the song", "song.mp3"), "lyrics": ("the lyrics file", "song.lrc")}


def resolve_request_file(request: Request, field: str, base_dir: Path, source: str) -> Path | None:
    """The local file a request's ``audio`` or ``lyrics`` names: a relative path that stays
    inside the request's folder, also after following links. Anything else is refused with one
    message, whether or not such a file exists."""
    ref = getattr(request, field)
    if not ref:
        return None
    what, example = REQUEST_FILES[field]
    if ref.startswith("s3://"):
        raise RequestError(source, field, f"s3:// {field} needs the S3 media store; fix: set "
                           "VIDEO_ASSETS_BUCKET (and AWS_ENDPOINT_URL for a non-AWS server) or "
                           f"put {what} beside the request")
    outside = RequestError(source, field, f"{short(ref)!r} is not a file inside the request's "
                           f"folder; fix: put {what} beside the request (or in a folder below "
                           f"it) and name it relatively, e.g. {field}: {example}")
    rel = PurePosixPath(ref)
    if rel.is_absolute() or ".." in rel.parts or "\\" in ref:
        raise outside
    base = base_dir.resolve()
    path = (base / rel).resolve()  # follows links: where the bytes really are
    if not path.is_relative_to(base):
        raise outside
    return path


def resolve_audio_path(request: Request, base_dir: Path, source: str) -> Path | None:
    """The local file a request's ``audio`` names (``resolve_request_file``)."""
    return resolve_request_file(request, "audio", base_dir, source)


def inbox_file_key(request: Request, field: str, request_key: str, bucket: str, source: str) -> str:
    """The store key in an S3 inbox of the file a request's ``audio`` or ``lyrics`` names:
    relative to the request's folder, or ``s3://<bucket>/inbox/<key>``. Nothing outside the
    inbox (another job's files) is reachable."""
    ref = getattr(request, field) or ""
    what = REQUEST_FILES[field][0]
    if ref.startswith("s3://"):
        other, _, key = ref[len("s3://"):].partition("/")
        if other != bucket:
            raise RequestError(source, field, f"{short(ref)!r} is in bucket {short(other, 63)!r}, "
                               f"not in {bucket!r}; fix: copy {what} into s3://{bucket}/{INBOX} "
                               "(beside the request is simplest)")
    else:
        key = posixpath.normpath(posixpath.join(posixpath.dirname(request_key), ref))
    if (not key.startswith(INBOX) or key.startswith(("/", "../")) or ".." in key.split("/")
            or key.endswith("/")):
        raise RequestError(source, field, f"{short(ref)!r} points outside the inbox; fix: name "
                           f"{what} beside the request or give s3://{bucket}/{INBOX}<key>")
    return key


def audio_key(request: Request, request_key: str, bucket: str, source: str) -> str:
    """The store key of the request's audio in an S3 inbox (``inbox_file_key``)."""
    return inbox_file_key(request, "audio", request_key, bucket, source)


def check_lyrics_size(size_bytes: int, source: str, shown: str) -> None:
    """Refuse a lyrics file over ``MAX_LYRICS_BYTES`` before it is read."""
    if size_bytes > MAX_LYRICS_BYTES:
        raise RequestError(source, "lyrics", f'"{short(shown)}" is {size_bytes / 1024:.0f} KiB, '
                           f"over the {MAX_LYRICS_BYTES // 1024} KiB limit for lyrics; fix: give "
                           "the song's words only, as plain text or LRC")


def lyrics_text(data: bytes, source: str, shown: str) -> str:
    """A lyrics file's text: at most ``MAX_LYRICS_BYTES``, UTF-8 (a byte-order mark is dropped),
    not blank. ``shown``: how the request named the file."""
    shown = short(shown)
    check_lyrics_size(len(data), source, shown)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(source, "lyrics", f'"{shown}" is not UTF-8 text (byte {exc.start} is '
                           f"0x{data[exc.start]:02x}); fix: save the lyrics as UTF-8 (e.g. iconv "
                           "-f latin1 -t utf-8, or your editor's 'save with encoding')") from None
    if "\x00" in text:
        raise RequestError(source, "lyrics", f'"{shown}" contains NUL bytes: it is not a text file; '
                           "fix: give the lyrics as a plain text or .lrc file")
    if not text.strip():
        raise RequestError(source, "lyrics", f'"{shown}" is empty; fix: write the words, one sung '
                           "line per line (LRC: [mm:ss.xx] before each), or remove lyrics")
    return text


def read_lyrics(path: Path | None, source: str, shown: str) -> str:
    """The text of a local lyrics file (``lyrics_text``); a missing one is ``AudioNotFound`` (the
    inbox waits for it as for a song)."""
    if path is None or not path.is_file():
        raise AudioNotFound(source, "lyrics", f'file "{short(shown)}" not found beside the request; '
                            "fix: put the lyrics file next to the request file or fix the name")
    check_lyrics_size(path.stat().st_size, source, shown)
    with open(path, "rb") as handle:  # bounded: a file that grows meanwhile is not read whole
        return lyrics_text(handle.read(MAX_LYRICS_BYTES + 1), source, shown)


def check_lyrics(request: Request, text: str, duration_s: float | None, source: str) -> None:
    """Lyrics the job can show: they parse (LRC, or plain lines; ``LyricsError`` names the line
    and the fix), no line starts after the song's end (``duration_s``; None: not known yet, the
    run checks it), and, where they are what the captions show, every line can be drawn in the
    caption style's font or an installed fallback (else the message names the font package)."""
    shown = short(request.lyrics or "lyrics")
    try:
        captions = parse_lyrics(text, duration_s or MAX_AUDIO_S, beats_s=(), name=f'"{shown}"')
    except LyricsError as exc:
        raise RequestError(source, "lyrics", str(exc)) from None
    if not captions:
        raise RequestError(source, "lyrics", f'"{shown}" has no line to show (every timed line is '
                           "blank); fix: write the words after their [mm:ss.xx] times")
    if request.captions.source in ("auto", "lyrics"):
        check_caption_fonts(request, "\n".join(c.text for c in captions), source, "lyrics")


def check_caption_font(request: Request, source: str) -> None:
    """A font the request names (``captions.font``) is installed: ``RequestError`` naming the
    package (the presets' font comes with the installation; it is checked with the words)."""
    from video_assets.media.fonts import FontCoverageError, face_for

    if request.captions.font is None or request.captions.source == "off":
        return
    try:
        face_for(request.captions.font)
    except FontCoverageError as exc:
        raise RequestError(source, "captions.font", str(exc)) from None


def check_caption_fonts(request: Request, text: str, source: str, field: str) -> None:
    """The caption style's font is installed, and ``text`` (one caption per line) can be drawn:
    ``RequestError`` on ``captions.font`` / ``captions.style``, or on ``field`` naming the Debian
    package that covers what no installed font does."""
    from video_assets.media.fonts import FontCoverageError, check_text_coverage, face_for
    from video_assets.media.subtitles import resolve_style

    style = resolve_style(request.captions, request.flavor, request.mode)
    try:
        face_for(style.font, style.bold)
    except FontCoverageError as exc:
        raise RequestError(source, "captions.font" if request.captions.font else "captions.style",
                           str(exc)) from None
    try:
        check_text_coverage(text, style.font, style.bold)
    except FontCoverageError as exc:
        raise RequestError(source, field, str(exc)) from None


def stage(
    store: MediaStore,
    job_id: str,
    request: Request,
    source_name: str,
    audio_path: Path | None,
    audio_duration_s: float | None,
    audio_sha256: str | None = None,
    lyrics: str | None = None,
) -> StoredRequest:
    """Copy the audio and the validated request to ``staged/<job_id>/`` for the job's run
    (``audio_sha256``: the audio's hash if already taken), and the request's ``lyrics`` (their
    text, checked: ``read_lyrics``, ``check_lyrics``) into the job's folder as its own copy
    (``layout.USER_LYRICS``).

    Providers left unset are decided here, once: real ones only when their key is set."""
    request = resolve_providers(request, source_name)
    check_caption_font(request, source_name)
    if lyrics is not None:
        store.put_bytes(job_key(job_id, USER_LYRICS), lyrics.encode("utf-8"))
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


def check_operator_limits(request: Request, source: str) -> None:
    """The operator's limits, judged when a request is admitted (a job already admitted is not
    judged again; its runs spend at most the cap in force, ``assets/budget.cap_usd``): a budget
    within ``VIDEO_ASSETS_MAX_BUDGET_USD``, and models beyond each capability's default only from
    ``VIDEO_ASSETS_ALLOWED_MODELS``."""
    from video_assets.providers.registry import DEFAULT_MODELS

    if request.webhook_url is not None:  # a listed host, and a secret to sign with
        try:
            check_webhook_url(request.webhook_url)
            webhook_secret()
        except WebhookUrlError as exc:
            raise RequestError(source, "webhook_url", f"{exc.problem}; fix: {exc.fix}") from None
        except WebhookConfigError as exc:
            raise RequestError(source, "webhook_url", f"{exc} (or remove webhook_url from the "
                               "request)") from None
    cap = max_budget_usd()
    if request.budget_usd is not None and request.budget_usd > cap:
        raise RequestError(source, "budget_usd", f"{request.budget_usd:g} is over this "
                           f"installation's cap of ${cap:g} per job; fix: ask for ${cap:g} or less, "
                           "or ask the operator to raise VIDEO_ASSETS_MAX_BUDGET_USD")
    allowed = allowed_models()
    for field in PROVIDER_CAPABILITIES:
        model = request.providers.model_for(field)
        choice = getattr(request.providers, field) or ""
        if allowed is None or ":" not in choice or model in (DEFAULT_MODELS[field], *allowed):
            continue
        named = ", ".join(repr(m) for m in [DEFAULT_MODELS[field], *sorted(allowed)])
        raise RequestError(source, f"providers.{field}", f"model {short(str(model), 80)!r} is not "
                           f"allowed here (the operator allows {named}); fix: name one of those, or "
                           "ask the operator to add it to VIDEO_ASSETS_ALLOWED_MODELS")


def resolve_providers(request: Request, source: str = "request") -> Request:
    """Unset providers become real ones only when their key is set (lip-sync only when asked
    for); a real provider named without its key is refused before anything is staged, as is a
    request over the operator's limits (``check_operator_limits``)."""
    check_operator_limits(request, source)
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

