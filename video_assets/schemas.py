"""Pydantic models at every boundary: the request, the beat grid, the script, clips and the ledger.

Times are float seconds (``*_s``), frame counts are ints (``*_frames`` / ``n_frames``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from video_assets.captions import CaptionSettings

Aspect = Literal["9:16", "16:9", "1:1"]
Mode = Literal["music_video", "ad"]
Transition = Literal["cut", "crossfade", "fade"]
TransitionChoice = Literal["auto", "cut", "crossfade", "fade"]

ASPECT_SIZES: dict[str, tuple[int, int]] = {
    "9:16": (1080, 1920),
    "16:9": (1920, 1080),
    "1:1": (1080, 1080),
}

FLAVORS = ("default", "cinematic", "energetic", "minimal")
PROVIDER_CAPABILITIES = ("planner", "transcribe", "voice", "images", "video", "music", "lipsync")
# who can serve each capability besides offline, and the environment variable each needs
REAL_PROVIDERS = {"planner": "openai", "transcribe": "openai", "voice": "openai",
                  "images": "replicate", "video": "replicate", "music": "replicate",
                  "lipsync": "replicate"}
PROVIDER_KEYS = {"openai": "OPENAI_API_KEY", "replicate": "REPLICATE_API_TOKEN"}  # env variables

MIN_AUDIO_S = 2.0
MAX_AUDIO_S = 600.0
MAX_AUDIO_BYTES = 100 * 1024 * 1024
MAX_REQUEST_BYTES = 1024 * 1024  # a request is a few lines of YAML or JSON


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Providers(Frozen):
    """Which implementation serves each capability: ``offline``, the real provider (``openai`` /
    ``replicate``, its default model) or ``<provider>:<model>`` from the registry. Capabilities
    left out are decided at admission: the real provider when its key is set, else offline
    (lip-sync stays offline, i.e. off, unless asked for)."""

    planner: str | None = None
    transcribe: str | None = None
    voice: str | None = None
    images: str | None = None
    video: str | None = None
    music: str | None = None
    lipsync: str | None = None

    @field_validator(*PROVIDER_CAPABILITIES)
    @classmethod
    def _known(cls, value: str | None, info) -> str | None:
        if value is None or value == "offline":
            return value
        real = REAL_PROVIDERS[info.field_name]
        provider, _, model = value.partition(":")
        if provider != real:
            raise ValueError(f"{value!r} cannot serve {info.field_name}; use offline, {real} or "
                             f"{real}:<model>")
        if model:
            from video_assets.providers.registry import CAPABILITY, registry

            try:
                spec = registry().get(model, CAPABILITY[info.field_name])
            except KeyError as exc:
                raise ValueError(str(exc).strip("'\"")) from None
            if spec.provider != provider:
                raise ValueError(f"model {model!r} is served by {spec.provider}, not {provider}")
        return value

    def model_for(self, capability: str) -> str | None:
        """The registry model a real provider uses for ``capability``, or None when offline."""
        from video_assets.providers.registry import DEFAULT_MODELS

        choice = getattr(self, capability)
        if choice in (None, "offline"):
            return None
        return choice.split(":", 1)[1] if ":" in choice else DEFAULT_MODELS[capability]


MAX_AUDIO_NAME_CHARS = 1024  # a path; each of its parts at most 255 (the file systems' limit)
MAX_LYRICS_BYTES = 256 * 1024  # a song's lyrics are a few KB of text


class Request(Frozen):
    """A job request as a user writes it (YAML or JSON). Unknown keys are rejected."""

    prompt: str = Field(min_length=3, max_length=2000)
    audio: str | None = None
    mode: Mode = "music_video"
    duration_s: float | None = Field(default=None, ge=MIN_AUDIO_S, le=MAX_AUDIO_S)
    aspect: Aspect = "9:16"
    style: str | None = Field(default=None, max_length=500)
    flavor: str = "default"
    transitions: TransitionChoice = "auto"
    pacing: Literal["calm", "auto", "energetic"] = Field(
        default="auto",
        description="how fast the edit cuts: auto (shot lengths follow each song section's "
        "energy: long in intros, verses, breaks and outros, short in choruses and drops), calm "
        "(longer shots everywhere) or energetic (shorter ones); always within the clip limits")
    budget_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    providers: Providers = Providers()
    lipsync: bool = False  # lip-sync the scenes where words are sung (providers.lipsync)
    continuation: bool = False  # each scene starts from the previous clip's last frame
    # POSTed to when the job ends (video_assets/webhooks.py); its host is judged at admission
    webhook_url: str | None = None
    # the words on screen: the user's lyrics (plain text or LRC), a file beside the request as
    # audio is, and where captions come from and how they look (captions.CaptionSettings)
    lyrics: str | None = None
    captions: CaptionSettings = CaptionSettings()

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        from video_assets.webhooks import check_webhook_url_form

        return None if value is None else check_webhook_url_form(value)

    @field_validator("prompt")
    @classmethod
    def _strip_prompt(cls, value: str) -> str:
        value = value.strip()
        if len(value) < 3:
            raise ValueError("prompt must have at least 3 non-blank characters")
        return value

    @field_validator("audio", "lyrics")
    @classmethod
    def _file_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("the name contains a control character (a NUL byte, a newline...)")
        if len(value) > MAX_AUDIO_NAME_CHARS or any(len(p.encode()) > 255 for p in value.split("/")):
            raise ValueError(f"the name is {len(value)} characters long: at most "
                             f"{MAX_AUDIO_NAME_CHARS}, and 255 bytes between slashes")
        return value

    @field_validator("flavor")
    @classmethod
    def _flavor(cls, value: str) -> str:
        if value not in FLAVORS:
            raise ValueError(f"{value!r} is not a flavor; use one of {', '.join(FLAVORS)}")
        return value

    @model_validator(mode="after")
    def _audio_or_length(self) -> Request:
        if self.mode == "music_video" and not self.audio:
            raise ValueError("music_video mode needs 'audio' (a song file beside the request)")
        if self.mode == "ad" and not self.audio and self.duration_s is None:
            raise ValueError("ad mode needs 'audio' or 'duration_s' (target length in seconds)")
        return self

    @model_validator(mode="after")
    def _caption_source_exists(self) -> Request:
        """A source asked for by name must be one the job can have (``field: problem; fix``)."""
        if self.captions.source == "lyrics" and not self.lyrics:
            raise ValueError("captions.source: 'lyrics' needs a lyrics file; fix: set lyrics: "
                             "<a .lrc or .txt file beside the request> (videogen: --lyrics FILE), "
                             "or use source auto")
        if self.captions.source == "voiceover" and self.mode != "ad":
            raise ValueError("captions.source: 'voiceover' captions an ad's spoken lines, and a "
                             "music video has none; fix: use mode: ad, or source lyrics, "
                             "transcript or auto")
        return self

    @property
    def size(self) -> tuple[int, int]:
        return ASPECT_SIZES[self.aspect]


class StoredRequest(Frozen):
    """What ``request.json`` holds: the request plus what admission measured."""

    job_id: str
    request: Request
    source_name: str
    audio_key: str
    audio_duration_s: float
    audio_sha256: str
    synthesized_audio: bool = False
    admitted_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Boundary(Frozen):
    start_s: float
    end_s: float

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


SectionLabel = Literal["intro", "verse", "chorus", "bridge", "break", "drop", "outro"]
SECTION_LABELS: tuple[str, ...] = get_args(SectionLabel)


class Section(Frozen):
    """A part of the song (``media.sections``): its span, what it is, and its loudness relative to
    the loudest section (0..1)."""

    start_s: float
    end_s: float
    label: SectionLabel
    energy: float = Field(ge=0, le=1)


class BeatGrid(Frozen):
    """``beat_grid.json``: tempo, beats, downbeats, energy and clip boundaries covering the audio;
    ``sections`` in order, covering it too (empty in grids written before sections existed)."""

    duration_s: float
    tempo_bpm: float
    beats_s: list[float]
    downbeats_s: list[float]
    beat_energy: list[float]  # onset strength at each beat, scaled to 0..1
    method: Literal["beats", "tempo_fallback"]
    confidence: float = Field(ge=0, le=1)
    meter: int
    n_filled_beats: int = 0  # grid beats added where the tracker left gaps
    boundaries: list[Boundary]
    sections: list[Section] = []


class Style(Frozen):
    palette_hex: list[str] = Field(min_length=3, max_length=6)
    lighting: str
    mood: str

    @field_validator("palette_hex")
    @classmethod
    def _hex(cls, value: list[str]) -> list[str]:
        for colour in value:
            if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
                raise ValueError(f"{colour!r} is not a #rrggbb colour")
        return value


class Character(Frozen):
    name: str
    description: str


class Take(Frozen):
    """The media a scene already has, carried by an edit into the scene's next version so that it
    is reused, not generated (and paid for) again. Set by edits only, never by a planner."""

    image_key: str | None = None  # cache key of the scene's storyboard image
    clip_key: str  # cache key of its clip as generated (before lip-sync), or of the user's file
    clip_s: float = Field(gt=0)  # the clip's length
    provider: str  # who made the clip: "offline", "replicate:<model>", or "user" (a replacement)
    fallback: bool = False  # the offline animatic standing in for a failed real clip


class Scene(Frozen):
    index: int
    start_s: float
    end_s: float
    prompt: str  # the visual description
    caption: str
    camera: Literal["push_in", "pull_out", "pan_left", "pan_right", "tilt_up", "tilt_down", "static"]
    motion: str
    transition: Transition  # into the next scene ("cut" for the last one)
    energy: float = Field(ge=0, le=1)
    seed: int
    lipsync: bool = False  # the clip's mouth movement is synced to this scene's audio
    in_s: float = Field(default=0.0, ge=0)  # where in its clip the scene starts (a slip edit)
    take: Take | None = None  # media kept from the version before an edit (reused as it is)


class Script(Frozen):
    """``script.json``: the plan an offline planner or an LLM fills in, one scene per boundary."""

    summary: str
    archetype: str
    style: Style
    characters: list[Character]
    scenes: list[Scene]


class Word(Frozen):
    word: str
    start_s: float
    end_s: float


class Lyrics(Frozen):
    """``lyrics.json``: the words sung in the audio with their times (empty when not transcribed)."""

    provider: str
    model: str
    language: str = ""
    text: str = ""
    words: list[Word] = []
    note: str = ""  # why there are no words, when there are none

    def words_between(self, start_s: float, end_s: float) -> list[Word]:
        return [w for w in self.words if start_s <= (w.start_s + w.end_s) / 2 < end_s]


class ClipSpec(Frozen):
    """What composition needs to know about one generated clip."""

    index: int
    key: str  # media-store key of the clip file
    clip_duration_s: float  # what the provider produced (an allowed length)
    segment_start_s: float  # where the clip's first frame sits on the timeline
    segment_duration_s: float  # how much of the timeline the clip must fill
    provider: str = "offline"  # who made it, e.g. replicate:kwaivgi/kling-v2.1
    fallback: bool = False  # the real provider failed; this is the offline animatic instead
    lipsync: bool = False  # the mouths were synced to the song (lip-sync provider)
    source_key: str = ""  # cache key of the clip as generated, before lip-sync (or a user's file)
    image_key: str | None = None  # cache key of the storyboard image the clip was made from
    in_s: float = 0.0  # where in the clip the segment starts (Scene.in_s)

    def take(self) -> Take:
        """This clip as a take a later version of its scene may reuse."""
        return Take(image_key=self.image_key, clip_key=self.source_key or self.key,
                    clip_s=self.clip_duration_s,
                    provider="offline" if self.provider == "offline" else self.provider,
                    fallback=self.fallback)


class CallRecord(BaseModel):
    """One row of ``provider_calls``: every provider call, offline ones included."""

    job_id: str
    asset: str
    scene_index: int | None = None
    provider: str
    model: str
    units: float = 0.0
    unit: str = "call"
    unit_price_usd: float = 0.0
    cost_usd: float = 0.0
    input_units: float | None = None  # token models: tokens in (units = in + out)
    output_units: float | None = None  # token models: tokens out
    latency_s: float = 0.0
    cache_hit: bool = False
    attempt: int = 1
    status: Literal["ok", "error", "cancelled"] = "ok"
    error: str | None = None
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class QualityMetric(BaseModel):
    """One ``quality_metrics`` row: a measured value against its bar."""

    metric: str
    value: float
    threshold: float | None
    passed: bool


class QualityReport(BaseModel):
    """``quality.json``: what the finished file measures, independently of the plan."""

    job_id: str
    measured_at: datetime
    metrics: list[QualityMetric]
    container: dict[str, int | float | str | bool | None]  # size, fps, frames, codecs, faststart
    n_frames: int  # measured
    # "encoder": the frames composition encoded (compose.FramesTap), checked against the file;
    # "file": decoded from the file
    frames_source: Literal["encoder", "file"] = "file"
    cut_frames: list[int]  # detected hard cuts
    cut_to_beat_ms: list[float]  # per detected cut, to the nearest beat
    cut_to_boundary_ms: list[float]  # per detected cut, to the nearest planned cut or fade
    crossfade_centre_ms: list[float]  # per visible crossfade, measured centre to the nearest beat
    crossfades_unmeasurable: int  # too faint to locate (e.g. between near-identical shots)
    fallback_scenes: list[int] = []  # 1-based scenes whose real clip failed (animatic instead)
    fade_black_ms: list[float]  # per fade, measured black frame to the nearest beat
    audio_offset_ms: float  # signed: positive = the video's audio is late
    loudness_lufs: float
    source_loudness_lufs: float
    black_ratio: float
    frozen_ratio: float
    clip_sharpness: list[float]
    clip_brightness: list[float]
    luma_mean: float
