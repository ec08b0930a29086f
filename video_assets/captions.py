"""Words on screen: the caption model, its settings and the sources captions come from.

A ``Caption`` is one line (a phrase) with its span on the song's timeline and, where known, its
words' times (karaoke highlighting). Sources, each a pure function to ``list[Caption]``:

- ``parse_lrc``: the user's lyrics as LRC. ``[mm:ss.xx]`` line timestamps (several on one line
  repeat it; a blank timestamped line ends the previous one with nothing after it), enhanced LRC
  ``<mm:ss.xx>`` word timestamps, ``[offset:+/-ms]`` applied (positive: lyrics sooner, as the
  format says), other metadata tags (``[ar:]``, ``[ti:]``...) ignored. A line ends where the next
  one starts, the last at the song's end.
- ``spread_plain_lyrics``: lyrics without timestamps, one caption per non-blank line, the lines
  spread evenly over the vocal span (``vocal_span_s``: from the first section that is not an
  intro to the end of the last that is not an outro), each starting on the beat nearest to its
  even share. Rough by design: LRC or a transcript gives real timing.
- ``from_transcript``: transcribed words grouped into lines, a new line after a pause, after a
  sentence's end or when the line would pass ``max_chars``.
- ``from_voiceover``: an ad's spoken lines (their start and end or length).
- ``from_scenes``: each scene's own caption over the scene.

``parse_lyrics`` picks LRC or plain text from the file's content. ``CaptionSettings`` is what a
request says (``captions: {source, style, ...overrides}``); ``select_source`` turns ``auto`` into
the source that has words (a lyrics file, then the transcript, then the voiceover; the scenes'
custom captions only when asked for), or None: no captions. ``CaptionStyle`` is what a style is;
the presets and the ASS rendering live in ``media/subtitles.py``.

``build_track`` is the whole decision for one job, from what its stages made: the source, its
captions, the resolved style and the font check, as a ``CaptionTrack`` (``captions.json``, written
by the ``captions`` asset, ``assets/caption_track.py``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

CaptionSource = Literal["auto", "lyrics", "transcript", "voiceover", "custom", "off"]
Position = Literal["bottom", "lower_third", "center", "top"]
Animation = Literal["none", "fade", "pop"]
Karaoke = Literal["none", "switch", "sweep"]

TRANSCRIPT_PAUSE_S = 0.6  # a silence this long between two words starts a new line
TRANSCRIPT_MAX_CHARS = 42  # a transcript line (one or two lines on screen once wrapped)
TRANSCRIPT_LINGER_S = 1.0  # a line stays this long after its last word (less if the next starts)
SENTENCE_END = (".", "!", "?", "。", "！", "？", "؟")


class LyricsError(ValueError):
    """A lyrics file that cannot be read; the message names the line and the fix."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaptionWord(_Frozen):
    start_s: float = Field(ge=0)
    end_s: float
    text: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> CaptionWord:
        if self.end_s < self.start_s:
            raise ValueError(f"word {self.text!r} ends ({self.end_s}) before it starts ({self.start_s})")
        return self


class Caption(_Frozen):
    """One line on screen from ``start_s`` to ``end_s``; ``words``: its words' times, in order,
    within the line (empty: no karaoke). With words, ``text`` is their ``join_words``."""

    start_s: float = Field(ge=0)
    end_s: float
    text: str = Field(min_length=1)
    words: list[CaptionWord] = []

    @model_validator(mode="after")
    def _consistent(self) -> Caption:
        if self.end_s <= self.start_s:
            raise ValueError(f"caption {self.text!r} ends ({self.end_s}) at or before its start "
                             f"({self.start_s})")
        for a, b in zip(self.words, self.words[1:], strict=False):
            if b.start_s < a.start_s:
                raise ValueError(f"caption {self.text!r}: word {b.text!r} starts before {a.text!r}")
        return self


def is_wide(ch: str) -> bool:
    """CJK and other wide characters: written without spaces, wrapped per character."""
    return unicodedata.east_asian_width(ch) in ("W", "F")


def join_words(words: Sequence[str]) -> str:
    """Words as they read: a space between two words, none between two CJK characters."""
    out = ""
    for w in words:
        if out and not (is_wide(out[-1]) and is_wide(w[0])):
            out += " "
        out += w
    return out


def caption(start_s: float, end_s: float, words: Sequence[CaptionWord] = (), text: str = "") -> Caption:
    return Caption(start_s=start_s, end_s=end_s, words=list(words),
                   text=join_words([w.text for w in words]) if words else " ".join(text.split()))


# --- LRC --------------------------------------------------------------------------------------

_TIME = r"(\d{1,3}):(\d{1,2})(?:[.:](\d{1,3}))?"
_LINE_TAG = re.compile(r"\[([^\]]*)\]")
_TIMESTAMP = re.compile(rf"^{_TIME}$")
_WORD_TAG = re.compile(r"<([^>]*)>")
_META = re.compile(r"^([A-Za-z#][A-Za-z0-9#]*)\s*:(.*)$")
_LRC_FIX = "write line times as [mm:ss.xx] (e.g. [01:02.50]) and word times as <mm:ss.xx>"


def _seconds(tag: str, where: str) -> float:
    m = _TIMESTAMP.match(tag.strip())
    if not m:
        raise LyricsError(f"{where}: {tag!r} is not a time; fix: {_LRC_FIX}")
    minutes, seconds, frac = m.group(1), m.group(2), m.group(3) or "0"
    if int(seconds) >= 60:
        raise LyricsError(f"{where}: {tag!r} has {seconds} seconds (at most 59); fix: {_LRC_FIX}")
    return int(minutes) * 60 + int(seconds) + int(frac) / 10 ** len(frac)


def has_timestamps(text: str) -> bool:
    """Whether lyrics are LRC (some line starts with a ``[mm:ss`` tag) rather than plain text."""
    return any(re.match(r"\s*\[\d{1,3}:\d", line) for line in text.splitlines())


def parse_lrc(text: str, duration_s: float, name: str = "lyrics") -> list[Caption]:
    """Captions of an LRC file for a song of ``duration_s`` (see the module docstring)."""
    offset_s = 0.0
    starts: list[tuple[float, int, str, str]] = []  # (start, line number, body, where)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().lstrip("\ufeff")
        where = f"{name} line {number} ({raw.strip()[:60]!r})"
        if not line:
            continue
        times: list[float] = []
        rest = line
        while rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise LyricsError(f"{where}: '[' is never closed; fix: {_LRC_FIX}")
            tag = rest[1:end]
            meta = _META.match(tag)
            if meta and not tag[:1].isdigit():
                if meta.group(1).lower() == "offset":
                    try:
                        offset_s = int(meta.group(2).strip()) / 1000
                    except ValueError:
                        raise LyricsError(f"{where}: the offset is not whole milliseconds; fix: "
                                          "write it as [offset:+250] or [offset:-100]") from None
                if times:
                    raise LyricsError(f"{where}: a metadata tag after a time; fix: put [{tag}] "
                                      "on a line of its own")
                rest = ""
                break
            times.append(_seconds(tag, where))
            rest = rest[end + 1:].lstrip()
        if not times:
            if rest:
                raise LyricsError(f"{where}: the line has no [mm:ss.xx] time; fix: start it with "
                                  "its time, e.g. [01:02.50], or remove it")
            continue
        for t in times:
            starts.append((t, number, rest, where))
    if not starts:
        raise LyricsError(f"{name}: no timed line; fix: {_LRC_FIX}, or give plain text lyrics")
    starts.sort(key=lambda s: (s[0], s[1]))
    captions: list[Caption] = []
    for i, (t, _number, body, where) in enumerate(starts):
        start_s = max(0.0, t - offset_s)
        end_s = starts[i + 1][0] - offset_s if i + 1 < len(starts) else duration_s
        end_s = min(end_s, duration_s)
        if start_s >= duration_s:
            raise LyricsError(f"{where}: starts at {start_s:.2f} s, after the song's end "
                              f"({duration_s:.2f} s); fix: correct the time or use the matching song")
        if not body.strip() or end_s <= start_s:
            continue  # a blank timed line: the previous line ends here
        words = _lrc_words(body, start_s, end_s, offset_s, where)
        captions.append(caption(start_s, end_s, words, text=_WORD_TAG.sub(" ", body)))
    return captions


def _lrc_words(body: str, start_s: float, end_s: float, offset_s: float,
               where: str) -> list[CaptionWord]:
    """Enhanced LRC: ``<mm:ss.xx>`` before each word (the first may lean on the line's time), an
    optional last tag ending the last word; none: no word times."""
    if "<" not in body:
        return []
    pieces = _WORD_TAG.split(body)  # text, tag, text, tag, ..., text
    if any(">" in p or "<" in p for p in pieces[::2]):
        raise LyricsError(f"{where}: a '<' or '>' without its pair; fix: {_LRC_FIX}")
    marks: list[tuple[float, str]] = []
    if pieces[0].strip():
        marks.append((start_s, pieces[0]))
    for tag, after in zip(pieces[1::2], pieces[2::2], strict=True):
        t = _seconds(tag, where) - offset_s
        if marks and t < marks[-1][0] - 1e-9:
            raise LyricsError(f"{where}: word time <{tag}> comes before the word before it; "
                              "fix: word times must increase along the line")
        if t < start_s - 1e-6 or t > end_s + 1e-6:
            raise LyricsError(f"{where}: word time <{tag}> lies outside its line "
                              f"({start_s:.2f}-{end_s:.2f} s); fix: correct the time")
        marks.append((t, after))
    words: list[CaptionWord] = []
    for i, (t, piece) in enumerate(marks):
        tokens = piece.split()
        if not tokens:
            continue
        word_end = marks[i + 1][0] if i + 1 < len(marks) else end_s
        # several tokens between two tags share the span evenly
        step = (word_end - t) / len(tokens)
        for k, token in enumerate(tokens):
            words.append(CaptionWord(start_s=round(t + k * step, 3),
                                     end_s=round(t + (k + 1) * step, 3), text=token))
    return words


# --- plain text -------------------------------------------------------------------------------

class _TimedSection(Protocol):
    start_s: float
    end_s: float
    label: str


def vocal_span_s(sections: Sequence[_TimedSection], duration_s: float) -> tuple[float, float]:
    """Where the singing probably is: from the first section that is not an intro to the end of
    the last that is not an outro; the whole song when there are no such sections."""
    inner = [s for s in sections if s.label not in ("intro", "outro")]
    if not inner:
        return 0.0, duration_s
    return inner[0].start_s, inner[-1].end_s


def spread_plain_lyrics(text: str, beats_s: Sequence[float], span_s: tuple[float, float]) -> list[Caption]:
    """One caption per non-blank line of ``text``, spread evenly over ``span_s``: line ``i`` of
    ``n`` starts on the beat nearest to ``start + i * length / n`` (beats already taken are
    skipped, so no line is empty) and ends where the next starts, the last at the span's end."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    start_s, end_s = span_s
    if not lines or end_s <= start_s:
        return []
    beats = sorted(b for b in beats_s if start_s <= b < end_s)
    share_s = (end_s - start_s) / len(lines)
    starts: list[float] = []
    for i in range(len(lines)):
        target = start_s + i * share_s
        after = [b for b in beats if not starts or b > starts[-1] + 1e-6]
        near = min(after, key=lambda b: abs(b - target), default=None)
        starts.append(near if near is not None and abs(near - target) < share_s / 2 else target)
    out = []
    for i, line in enumerate(lines):
        line_end = starts[i + 1] if i + 1 < len(lines) else end_s
        if line_end > starts[i]:
            out.append(caption(round(starts[i], 3), round(line_end, 3), text=line))
    return out


def parse_lyrics(text: str, duration_s: float, beats_s: Sequence[float],
                 span_s: tuple[float, float] | None = None, name: str = "lyrics") -> list[Caption]:
    """A lyrics file's captions: LRC when it has timestamps, else plain text spread over
    ``span_s`` (default: the whole song)."""
    if has_timestamps(text):
        return parse_lrc(text, duration_s, name)
    return spread_plain_lyrics(text, beats_s, span_s or (0.0, duration_s))


# --- transcript, voiceover, scenes ------------------------------------------------------------

class _SungWord(Protocol):  # schemas.Word
    word: str
    start_s: float
    end_s: float


def from_transcript(words: Sequence[_SungWord], max_chars: int = TRANSCRIPT_MAX_CHARS,
                    pause_s: float = TRANSCRIPT_PAUSE_S,
                    linger_s: float = TRANSCRIPT_LINGER_S) -> list[Caption]:
    """Transcribed words as lines: a new line after a pause of ``pause_s``, after a word ending a
    sentence, or where the line would pass ``max_chars``. A line runs from its first word's start
    to its last word's end plus ``linger_s``, cut where the next line starts."""
    groups: list[list[CaptionWord]] = []
    for w in words:
        text = w.word.strip()
        if not text:
            continue
        word = CaptionWord(start_s=w.start_s, end_s=max(w.end_s, w.start_s), text=text)
        if groups:
            last = groups[-1]
            joined = join_words([x.text for x in last] + [text])
            if (word.start_s - last[-1].end_s < pause_s and len(joined) <= max_chars
                    and not last[-1].text.endswith(SENTENCE_END)):
                last.append(word)
                continue
        groups.append([word])
    out = []
    for i, group in enumerate(groups):
        end_s = group[-1].end_s + linger_s
        if i + 1 < len(groups):
            end_s = min(end_s, groups[i + 1][0].start_s)
        end_s = max(end_s, group[-1].end_s, group[0].start_s + 0.01)
        out.append(caption(group[0].start_s, round(end_s, 3), group))
    return out


def from_voiceover(lines: Iterable[Mapping[str, Any]]) -> list[Caption]:
    """An ad's spoken lines (``voiceover.json``'s ``lines``: ``start_s``, ``text`` and ``end_s`` or
    ``duration_s``), each shown while it is spoken; a line is cut where the next starts."""
    rows = sorted(lines, key=lambda x: float(x["start_s"]))
    out = []
    for i, row in enumerate(rows):
        start_s = float(row["start_s"])
        end_s = float(row["end_s"]) if "end_s" in row else start_s + float(row["duration_s"])
        if i + 1 < len(rows):
            end_s = min(end_s, float(rows[i + 1]["start_s"]))
        if str(row["text"]).strip() and end_s > start_s:
            out.append(caption(start_s, end_s, text=str(row["text"])))
    return out


class _CaptionedScene(Protocol):  # schemas.Scene
    start_s: float
    end_s: float
    caption: str


def from_scenes(scenes: Sequence[_CaptionedScene]) -> list[Caption]:
    """Each scene's own caption over the whole scene (scenes with no caption show nothing)."""
    return [caption(s.start_s, s.end_s, text=s.caption) for s in scenes
            if s.caption.strip() and s.end_s > s.start_s]


# --- style and settings -----------------------------------------------------------------------

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class CaptionStyle(_Frozen):
    """How captions look. Sizes are fractions of the frame height so that a style reads the same
    in every aspect; colours are ``#rrggbb``."""

    font: str  # a font family, e.g. "DejaVu Sans" (another installed font steps in per line
    # for scripts it lacks: media/fonts.py)
    bold: bool = True
    size: float = Field(gt=0.01, le=0.2)  # the font size (line height) over the frame height
    colour: str = "#ffffff"  # the text (karaoke: the words not sung yet)
    highlight: str = "#ffd400"  # karaoke: the words sung
    outline_colour: str = "#000000"  # the outline, or the box's colour
    outline: float = Field(default=0.004, ge=0, le=0.05)  # outline width (box: padding) / height
    box: bool = False  # an opaque box behind the text (ASS BorderStyle 3) instead of an outline
    box_opacity: float = Field(default=0.6, ge=0, le=1)
    shadow: float = Field(default=0.0, ge=0, le=0.05)  # shadow offset / height
    position: Position = "bottom"
    align: Literal["center", "left"] = "center"
    animation: Animation = "fade"
    animation_ms: int = Field(default=150, ge=0, le=2000)
    karaoke: Karaoke = "switch"  # where words have times: lit at once, or a colour sweep over each
    max_chars: int = Field(default=32, ge=8, le=120)  # per line on screen
    max_lines: int = Field(default=2, ge=1, le=4)  # lines on screen at once

    @field_validator("colour", "highlight", "outline_colour")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _COLOUR.fullmatch(value):
            raise ValueError(f"{value!r} is not a #rrggbb colour")
        return value.lower()


# every style field may be overridden by a request: the same names, each optional
_Overrides = create_model(  # type: ignore[call-overload]
    "CaptionStyleOverrides", __base__=_Frozen,
    **{name: (field.annotation | None, None) for name, field in CaptionStyle.model_fields.items()})


class CaptionSettings(_Overrides):  # type: ignore[misc,valid-type]
    """A request's ``captions``: where the words come from, the preset (None: the flavor's) and
    any style field overridden (``font``, ``size``, ``highlight``...)."""

    source: CaptionSource = "auto"
    style: str | None = None
    subtitle_track: bool = False  # also a soft subtitle track (mov_text) in the MP4

    @model_validator(mode="after")
    def _valid_style(self) -> CaptionSettings:
        from video_assets.media.subtitles import resolve_style

        resolve_style(self, "default")  # raises naming the preset or the field at fault
        return self

    def overrides(self) -> dict[str, Any]:
        return {name: value for name in CaptionStyle.model_fields
                if (value := getattr(self, name)) is not None}


def select_source(source: CaptionSource, *, lyrics_file: bool, transcript_words: bool,
                  voiceover_lines: bool) -> CaptionSource | None:
    """The source to caption from: an explicit one as it is (``off``: None); ``auto``: the user's
    lyrics file, else the transcript's words, else the voiceover's lines, else None (nothing is
    said or sung: no captions). The scenes' own captions are used only when asked for
    (``custom``): a planner writes them for every scene, sung or not."""
    if source == "off":
        return None
    if source != "auto":
        return source
    for name, present in (("lyrics", lyrics_file), ("transcript", transcript_words),
                          ("voiceover", voiceover_lines)):
        if present:
            return name  # type: ignore[return-value]
    return None


# --- the track ----------------------------------------------------------------------------------

class CaptionTrack(_Frozen):
    """``captions.json``: the job's words on screen. ``source`` None: no captions (``note`` says
    why); else the source they came from, the resolved style and the lines in time order."""

    source: CaptionSource | None
    style: CaptionStyle | None
    captions: list[Caption]
    subtitle_track: bool = False
    note: str = ""


_NO_WORDS = {
    "lyrics": "no lyrics file; set lyrics: <file> (videogen --lyrics FILE)",
    "transcript": "no transcribed words (offline there is no transcription: set OPENAI_API_KEY, "
                  "or give a lyrics file)",
    "voiceover": "no voiceover lines (only ads speak)",
    "custom": "no scene has a caption",
}


def build_track(settings: CaptionSettings, mode: str, flavor: str, *, lyrics_text: str | None,
                duration_s: float, beats_s: Sequence[float], sections: Sequence[_TimedSection],
                transcript_words: Sequence[_SungWord], voice_lines: Sequence[Mapping[str, Any]],
                scenes: Sequence[_CaptionedScene]) -> CaptionTrack:
    """The job's caption track: the source ``select_source`` picks from what exists (the user's
    lyrics, the transcript's words, the ad's spoken lines, the scenes' captions), its captions,
    the resolved style (the preset the settings or the flavor name, with the overrides) and a
    coverage check of every line against the installed fonts (``FontCoverageError`` naming the
    package to install: a planner's or a transcript's text is known only here). Raises
    ``LyricsError`` for lyrics that cannot be read."""
    from video_assets.media.fonts import check_text_coverage
    from video_assets.media.subtitles import resolve_style

    source = select_source(settings.source, lyrics_file=lyrics_text is not None,
                           transcript_words=any(w.word.strip() for w in transcript_words),
                           voiceover_lines=bool(voice_lines))
    if source is None:
        note = "captions: off" if settings.source == "off" else \
            "no words to caption (no lyrics file, transcript or voiceover)"
        return CaptionTrack(source=None, style=None, captions=[], note=note)
    style = resolve_style(settings, flavor, mode)
    if source == "lyrics":
        captions = [] if lyrics_text is None else parse_lyrics(
            lyrics_text, duration_s, beats_s, vocal_span_s(sections, duration_s))
    elif source == "transcript":
        captions = from_transcript(transcript_words,
                                   max_chars=min(TRANSCRIPT_MAX_CHARS, style.max_chars * style.max_lines))
    elif source == "voiceover":
        captions = from_voiceover(voice_lines)
    else:
        captions = from_scenes(scenes)
    captions = [c if c.end_s <= duration_s else c.model_copy(update={"end_s": duration_s})
                for c in captions if c.start_s < duration_s]  # the song's end ends every line
    if not captions:
        return CaptionTrack(source=None, style=None, captions=[], note=f"{source}: {_NO_WORDS[source]}")
    check_text_coverage("\n".join(c.text for c in captions), style.font, style.bold)
    return CaptionTrack(source=source, style=style, captions=captions,
                        subtitle_track=settings.subtitle_track)
