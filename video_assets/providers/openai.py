"""OpenAI through the official client: the planner, transcription and voice.

- Planner: chat completions with a strict JSON-schema response format (structured outputs) into
  ``PlanDraft``, assembled with the beat grid into the same ``Script`` the offline planner
  fills, and validated. The schema says what the instructions ask (3 to 6 ``#rrggbb`` colours,
  exactly one scene per segment). Cosmetic details are coerced, never paid for twice: the first
  6 valid colours (``#fff`` and ``ff8800`` written out, names dropped, fewer than 3 padded from
  the defaults), captions clipped at a word to ``CAPTION_MAX_CHARS``, other free text clipped to
  ``TEXT_MAX_CHARS``. A structural problem (the scene count, a camera move or transition that
  does not exist, an empty prompt) gets one repair round (the model is told what is wrong), then
  a clear error. When the beat grid has the song's sections, the brief lists them (label, start,
  end, energy), each segment names its section, and the instructions ask for a shared visual motif
  in the repeated ones (every chorus) and for transitions that follow the music; at a cut into a
  section the music's change decides the transition (``offline.plan_transitions``), as it does for
  the offline planner. A brief without sections is the one sent before sections existed.
- Transcription: ``whisper-1``, ``verbose_json`` with word timestamps -> ``Lyrics``.
- Voice: text-to-speech (``tts-1``) to WAV.

``OPENAI_API_KEY`` is read (stripped, checked) by ``keys.api_key`` and given to the client;
``OPENAI_BASE_URL`` is read from the environment by the client. The
client's own retries are off: ours make one ledger row per attempt and share the job's policy.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from video_assets.media.ffmpeg_bin import run_ffmpeg
from video_assets.providers.keys import api_key
from video_assets.providers.registry import ModelSpec, registry
from video_assets.providers.retry import (
    RETRY_STATUSES,
    Failure,
    ProviderError,
    ProviderKeyMissing,
    RetryPolicy,
    call_with_retries,
)
from video_assets.schemas import (
    BeatGrid,
    CallRecord,
    Character,
    Lyrics,
    Request,
    Scene,
    Script,
    Style,
    Word,
)

Camera = Literal["push_in", "pull_out", "pan_left", "pan_right", "tilt_up", "tilt_down", "static"]


class OpenAIRunner:
    """Calls for one API key; at most ``max_concurrency`` in flight per process."""

    def __init__(self, policy: RetryPolicy | None = None, max_concurrency: int = 4) -> None:
        import openai

        self.key = api_key("openai")
        if not self.key:
            raise ProviderKeyMissing("OPENAI_API_KEY is not set; fix: export it, or use "
                                     "providers: {planner: offline, transcribe: offline, "
                                     "voice: offline}")
        self.policy = policy or RetryPolicy()
        self.client = openai.OpenAI(api_key=self.key, max_retries=0,
                                    timeout=min(300.0, self.policy.deadline_s))
        self.slots = threading.BoundedSemaphore(max_concurrency)

    def call(self, label: str, new_row: Callable[[], CallRecord],
             attempt: Callable[[CallRecord, float], Any]) -> Any:
        with self.slots:
            return call_with_retries(label, self.policy, new_row, attempt, _classify, self.key)


def _classify(exc: Exception) -> Failure | None:
    import openai

    if isinstance(exc, openai.APIStatusError):
        return Failure(f"HTTP {exc.status_code}: {exc.message}", exc.status_code in RETRY_STATUSES,
                       exc.response.headers.get("retry-after"))
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return Failure(f"{type(exc).__name__}: {exc}", True)
    if isinstance(exc, openai.OpenAIError):
        return Failure(f"{type(exc).__name__}: {exc}", False)
    return None


def _charge(row: CallRecord, spec: ModelSpec, units: float, output_units: float | None = None):
    row.unit = spec.unit
    if output_units is None:
        row.units, row.unit_price_usd = units, spec.unit_price_usd
        row.cost_usd = spec.cost_usd(units)
        return
    row.input_units, row.output_units = units, output_units
    row.units = units + output_units
    row.cost_usd = spec.cost_usd(units, output_units)
    row.unit_price_usd = round(row.cost_usd / row.units, 12) if row.units else spec.unit_price_usd


# ---------------------------------------------------------------------------------------------
# planner


PALETTE_MIN, PALETTE_MAX = 3, 6  # what the instructions ask and schemas.Style allows
HEX_PATTERN = "^#[0-9a-fA-F]{6}$"
DEFAULT_PALETTE = ("#1b1f3b", "#f2aa4c", "#e8e8e8")  # pads a palette with too few colours
CAPTION_MAX_CHARS = 120  # an on-screen line: the card wraps 4 lines, the voiceover speaks 120
TEXT_MAX_CHARS = 400  # summary, archetype, lighting, mood, motion, characters


def clip_text(text: str, limit: int) -> str:
    """``text`` stripped and, when longer than ``limit``, cut at the last word that fits (+ "…")."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit - 1].rsplit(" ", 1)[0] if " " in text[:limit - 1] else text[:limit - 1]
    return cut.rstrip(" ,;:-") + "…"


def coerce_palette(value: object) -> list[str]:
    """The model's colours as ``#rrggbb``: the first ``PALETTE_MAX`` valid ones (``#abc`` and
    ``aabbcc`` written out, anything else dropped), padded from ``DEFAULT_PALETTE`` to
    ``PALETTE_MIN``. Cosmetic: never a reason to ask (and pay) again."""
    colours: list[str] = []
    for item in value if isinstance(value, list) else []:
        raw = str(item).strip().lstrip("#")
        if re.fullmatch(r"[0-9a-fA-F]{3}", raw):
            raw = "".join(c * 2 for c in raw)
        if re.fullmatch(r"[0-9a-fA-F]{6}", raw) and f"#{raw}" not in colours:
            colours.append(f"#{raw}")
    colours = colours[:PALETTE_MAX]
    for pad in DEFAULT_PALETTE:
        if len(colours) >= PALETTE_MIN:
            break
        if pad not in colours:
            colours.append(pad)
    return colours


class DraftStyle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    palette_hex: list[str] = Field(json_schema_extra={
        "minItems": PALETTE_MIN, "maxItems": PALETTE_MAX,
        "items": {"type": "string", "pattern": HEX_PATTERN}})
    lighting: str
    mood: str

    @field_validator("palette_hex", mode="before")
    @classmethod
    def _palette(cls, value: object) -> list[str]:
        return coerce_palette(value)

    @field_validator("lighting", "mood", mode="before")
    @classmethod
    def _free_text(cls, value: object) -> object:
        return clip_text(value, TEXT_MAX_CHARS) if isinstance(value, str) else value


class DraftCharacter(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Character")
    name: str
    description: str

    @field_validator("name", "description", mode="before")
    @classmethod
    def _free_text(cls, value: object) -> object:
        return clip_text(value, TEXT_MAX_CHARS) if isinstance(value, str) else value


class DraftScene(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str
    caption: str
    camera: Camera
    motion: str
    transition: Literal["cut", "crossfade", "fade"]

    @field_validator("caption", mode="before")
    @classmethod
    def _caption(cls, value: object) -> object:
        return clip_text(value, CAPTION_MAX_CHARS) if isinstance(value, str) else value

    @field_validator("motion", mode="before")
    @classmethod
    def _free_text(cls, value: object) -> object:
        return clip_text(value, TEXT_MAX_CHARS) if isinstance(value, str) else value


class PlanDraft(BaseModel):
    """What the model writes; timings, seeds and energies come from the beat grid."""

    model_config = ConfigDict(extra="forbid")
    summary: str
    archetype: str
    style: DraftStyle
    characters: list[DraftCharacter]
    scenes: list[DraftScene]

    @field_validator("summary", "archetype", mode="before")
    @classmethod
    def _free_text(cls, value: object) -> object:
        return clip_text(value, TEXT_MAX_CHARS) if isinstance(value, str) else value


def plan_schema(n_scenes: int) -> dict:
    """The response format sent: ``PlanDraft``'s JSON schema, strict (every object closed, every
    property required: ``extra="forbid"`` and no defaults give that), with exactly ``n_scenes``
    scenes."""
    schema = PlanDraft.model_json_schema()
    schema["properties"]["scenes"].update(minItems=n_scenes, maxItems=n_scenes)
    return {"type": "json_schema", "json_schema": {"name": "plan", "strict": True,
                                                   "schema": schema}}


INSTRUCTIONS = """You plan short music videos and ads as a sequence of scenes, one per segment.
Return JSON only, following the schema. For each segment, in order, write one scene:
- prompt: a concrete visual description for an image/video model (subject, setting, framing,
  light); keep characters and style consistent across scenes; no text overlays.
- caption: a short on-screen line, at most 120 characters (music videos: the words sung in the
  segment if any).
- camera: one of push_in, pull_out, pan_left, pan_right, tilt_up, tilt_down, static.
- motion: what moves, matching the segment's energy (0 calm .. 1 intense).
- transition: into the next scene: cut on loud boundaries, crossfade on middling ones, fade on
  quiet ones (the last scene: cut).
style.palette_hex: 3 to 6 colours as #rrggbb. Write exactly as many scenes as there are segments."""
SECTION_INSTRUCTIONS = """
The song's sections are listed in "sections" (index, label, start_s, end_s, energy 0..1); each
segment names the section it is in ("section": its index). Let the story follow the song:
- every section of a repeated kind (each chorus, each verse, each drop) shares one visual motif
  (the same recurring image, place or prop), named in the prompt of each of its scenes;
- intros, verses, breaks and outros are calmer, wider and slower; choruses and drops are closer,
  faster and brighter;
- transition into a section: cut into a chorus, a drop or a big rise in energy; crossfade into an
  intro, a break or a big fall in energy; fade into the outro."""
PACING_INSTRUCTIONS = """
"pacing" is the edit's pace the user asked for (calm: slower motion everywhere; energetic: more
motion everywhere)."""


def plan_brief(request: Request, grid: BeatGrid, lyrics: Lyrics | None) -> dict:
    """The job as the model sees it: the prompt and one entry per segment (times, energy, words,
    and its section when the grid has sections), the song's sections, and the pacing unless it
    is ``auto``. (Keys are added only when there is something to say, so the brief of a grid
    without sections, and the cache key of its plan, are as they were.)"""
    from video_assets.providers.offline import relative_energy, scene_energy, section_at

    energies = relative_energy([scene_energy(grid, b.start_s, b.end_s) for b in grid.boundaries])
    segments = []
    for i, (b, e) in enumerate(zip(grid.boundaries, energies, strict=True)):
        seg: dict[str, Any] = {"index": i, "start_s": round(b.start_s, 2),
                               "end_s": round(b.end_s, 2), "energy": round(e, 2)}
        if lyrics and lyrics.words:
            seg["words"] = " ".join(w.word for w in lyrics.words_between(b.start_s, b.end_s))
        if grid.sections:
            seg["section"] = section_at(grid.sections, (b.start_s + b.end_s) / 2)
        segments.append(seg)
    brief = {"prompt": request.prompt, "style": request.style, "mode": request.mode,
             "flavor": request.flavor, "aspect": request.aspect,
             "tempo_bpm": round(grid.tempo_bpm, 1), "transitions": request.transitions,
             "n_scenes": len(segments), "segments": segments}
    if grid.sections:
        brief["sections"] = [{"index": k, "label": s.label, "start_s": round(s.start_s, 2),
                              "end_s": round(s.end_s, 2), "energy": round(s.energy, 2)}
                             for k, s in enumerate(grid.sections)]
    if request.pacing != "auto":
        brief["pacing"] = request.pacing
    return brief


def assemble(draft: PlanDraft, request: Request, grid: BeatGrid, job_seed: int) -> Script:
    """The model's draft on the beat grid's timeline; raises ValueError saying what is wrong."""
    from video_assets.providers.offline import (
        plan_transitions,
        relative_energy,
        scene_energy,
        section_entries,
        section_transition,
        stable_seed,
    )

    n = len(grid.boundaries)
    if len(draft.scenes) != n:
        raise ValueError(f"scenes: {len(draft.scenes)} scenes for {n} segments; write exactly {n}")
    energies = relative_energy([scene_energy(grid, b.start_s, b.end_s) for b in grid.boundaries])
    # a cut into a section where the music changes gets the music's transition, as offline
    ends_s = [b.end_s for b in grid.boundaries]
    by_music = plan_transitions(grid, ends_s, request.transitions, request.flavor)
    musical = {i for i, k in section_entries(grid.sections, ends_s[:-1]).items()
               if section_transition(grid.sections[k - 1], grid.sections[k]) is not None}
    scenes = []
    for i, (d, b) in enumerate(zip(draft.scenes, grid.boundaries, strict=True)):
        transition = d.transition if request.transitions == "auto" else request.transitions
        if i in musical:
            transition = by_music[i]
        scenes.append(Scene(index=i, start_s=b.start_s, end_s=b.end_s, prompt=d.prompt.strip(),
                            caption=d.caption.strip(), camera=d.camera, motion=d.motion.strip(),
                            transition="cut" if i == n - 1 else transition,
                            energy=round(min(1.0, max(0.0, energies[i])), 4),
                            seed=stable_seed(job_seed, i)))
        if not scenes[-1].prompt:
            raise ValueError(f"scenes[{i}].prompt: empty; describe the scene")
    return Script(summary=draft.summary, archetype=draft.archetype,
                  style=Style(**draft.style.model_dump()),
                  characters=[Character(**c.model_dump()) for c in draft.characters],
                  scenes=scenes)


class PlanInvalid(ProviderError):
    """The model's plan failed validation twice."""


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
    return str(exc)


class OpenAIPlanner:
    name = "openai"
    paid = True

    def __init__(self, model: str, runner: OpenAIRunner) -> None:
        self.spec = registry().get(model, "plan")
        self.model, self.version, self.runner = model, "1", runner
        self.unit = self.spec.unit

    def max_output_tokens(self, n_scenes: int) -> int:
        return 600 + 350 * n_scenes

    def messages(self, brief: dict) -> list[dict]:
        instructions = INSTRUCTIONS + (SECTION_INSTRUCTIONS if "sections" in brief else "") \
            + (PACING_INSTRUCTIONS if "pacing" in brief else "")
        return [{"role": "system", "content": instructions},
                {"role": "user", "content": json.dumps(brief, ensure_ascii=False)}]

    def estimate_usd(self, n_scenes: int) -> float:
        """An upper bound for the plan and its repair round: a token is at least one character
        (instructions, those on sections and pacing included, + about 400 characters per segment,
        its section's entry included), the output is capped at ``max_output_tokens``, and the
        repair round re-sends the first answer."""
        prompt_chars = len(INSTRUCTIONS) + len(SECTION_INSTRUCTIONS) + len(PACING_INSTRUCTIONS) \
            + 600 + 400 * n_scenes
        out = self.max_output_tokens(n_scenes)
        return self.spec.cost_usd(2 * prompt_chars + out + 300, 2 * out)

    def plan(self, request: Request, grid: BeatGrid, job_seed: int, lyrics: Lyrics | None,
             new_row: Callable[[], CallRecord]) -> Script:
        messages = self.messages(plan_brief(request, grid, lyrics))
        n = len(grid.boundaries)
        for round_no in (1, 2):
            content = self._complete(messages, n, job_seed, new_row)
            try:
                return assemble(PlanDraft.model_validate_json(content), request, grid, job_seed)
            except (ValidationError, ValueError) as exc:
                problem = _problem(exc)
            if round_no == 2:
                raise PlanInvalid(f"planner {self.model} returned an invalid plan twice ({problem});"
                                  " fix: render again, choose another providers.planner model, or "
                                  "use planner: offline")
            messages = [*messages, {"role": "assistant", "content": content},
                        {"role": "user", "content": f"That plan is invalid: {problem}. Return the "
                         f"whole corrected plan as JSON with exactly {n} scenes."}]
        raise AssertionError("unreachable")

    def _complete(self, messages: list[dict], n: int, seed: int,
                  new_row: Callable[[], CallRecord]) -> str:
        def attempt(row: CallRecord, _started: float) -> str:
            resp = self.runner.client.chat.completions.create(
                model=self.model, messages=messages, response_format=plan_schema(n),
                max_completion_tokens=self.max_output_tokens(n), seed=seed % 2**31)
            usage = resp.usage
            _charge(row, self.spec, float(usage.prompt_tokens if usage else 0),
                    float(usage.completion_tokens if usage else 0))
            message = resp.choices[0].message
            if message.refusal:  # paid for, but not a plan: the repair round says so
                return json.dumps({"refusal": message.refusal})
            return message.content or ""

        return self.runner.call(f"planner {self.model}", new_row, attempt)


# ---------------------------------------------------------------------------------------------
# transcription and voice


class OpenAITranscriber:
    name = "openai"
    paid = True

    def __init__(self, model: str, runner: OpenAIRunner) -> None:
        self.spec = registry().get(model, "transcribe")
        self.model, self.version, self.runner = model, "1", runner
        self.unit = self.spec.unit

    def estimate_usd(self, duration_s: float) -> float:
        return self.spec.cost_usd(round(duration_s / 60.0, 6))

    def transcribe(self, audio_path: Path, duration_s: float, scratch: Path,
                   new_row: Callable[[], CallRecord]) -> Lyrics:
        # mono 16 kHz MP3: whisper's own rate, and far under the API's 25 MB limit (10 min ~ 5 MB)
        small = scratch / "speech.mp3"
        run_ffmpeg(["-y", "-i", str(audio_path), "-vn", "-ac", "1", "-ar", "16000",
                    "-c:a", "libmp3lame", "-b:a", "64k", str(small)], what="preparing the audio "
                   "for transcription")

        def attempt(row: CallRecord, _started: float):
            with open(small, "rb") as handle:
                resp = self.runner.client.audio.transcriptions.create(
                    file=handle, model=self.model, response_format="verbose_json",
                    timestamp_granularities=["word"])
            _charge(row, self.spec, round(duration_s / 60.0, 6))
            return resp

        resp = self.runner.call(f"transcription {self.model}", new_row, attempt)
        words = [Word(word=w.word.strip(), start_s=round(float(w.start), 3),
                      end_s=round(float(w.end), 3)) for w in (resp.words or []) if w.word.strip()]
        return Lyrics(provider=self.name, model=self.model, language=resp.language or "",
                      text=(resp.text or "").strip(), words=words,
                      note="" if words else "no words were recognised")


class OpenAIVoice:
    name = "openai"
    paid = True

    def __init__(self, model: str, runner: OpenAIRunner) -> None:
        self.spec = registry().get(model, "voice")
        self.model, self.version, self.runner = model, "1", runner
        self.unit = self.spec.unit
        self.voice = str(self.spec.fixed_inputs.get("voice", "alloy"))

    def estimate_usd(self, n_chars: int) -> float:
        return self.spec.cost_usd(n_chars)

    def speak(self, text: str, out_path: Path, new_row: Callable[[], CallRecord]) -> None:
        def attempt(row: CallRecord, _started: float) -> None:
            resp = self.runner.client.audio.speech.create(model=self.model, voice=self.voice,
                                                          input=text, response_format="wav")
            data = resp.content
            if len(data) < 64:
                raise ProviderError(f"{self.model} returned {len(data)} bytes of audio")
            out_path.write_bytes(data)
            _charge(row, self.spec, len(text))

        self.runner.call(f"voice {self.model}", new_row, attempt)
