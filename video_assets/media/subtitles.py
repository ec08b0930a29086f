"""Captions as ASS (burned in by libass through ffmpeg's ``ass`` filter), SRT and WebVTT.

Presets (``PRESETS``): ``karaoke``, ``bold_pop``, ``minimal`` and ``lower_third``; a flavor picks
one (``default_style``) and a request may override any field (``resolve_style``).

Layout. The script's resolution is the frame's (``PlayResX/Y``), so every number is a pixel. The
text stays inside the platform-safe area of the frame's aspect (``SAFE_MARGINS``; 9:16 keeps clear
of the bottom 20 % where short-video apps put the caption and of the right-hand 12 % button
column). Lines are wrapped here, not by libass (``WrapStyle: 2``, explicit ``\\N``): by the width
measured with Pillow (raqm: the same HarfBuzz shaping and bidi as libass) in the very face libass
will draw (``fonts.covering_face``, named per event with ``\\fn``), at the size libass uses (font
size over the face's Windows ascent + descent). Words are broken between words, CJK between any
two characters. The style's Encoding is -1: libass then orders the whole line by the Unicode
bidi algorithm (direction from its first strong character) instead of each run of one colour
on its own, so Arabic karaoke keeps its word order while the words change colour. A line
longer than the style's ``max_lines`` is shown page by page (split at word
times where there are any, else in proportion to the characters).

Timing. Events are in centiseconds (ASS's unit: within a third of a frame at 30 fps), every time
rounded from the absolute seconds, never summed, so nothing drifts. Karaoke: each word starts in
the text colour and a ``\\t`` transform turns it to the highlight colour at its own time (``switch``:
at once; ``sweep``: over the word's length), which libass applies on the first frame at or after
that time. (``\\k`` tags would do the same from durations, but a window that clips a line would
need zero-length syllables there, which libass draws with slightly different outlines: the
transform keeps a chunk's frames identical to a whole render's.) An event shows while its line is
sung; the fade-in or pop-in starts with it, and a fade-out is used only before a gap (two lines
back to back cut, so the next never waits for the fade).

``ass_for_window`` gives the events of one window of the timeline (shifted to start at 0, or on
timeline times). Animations and karaoke are written relative to the (possibly clipped) event
start, so a line split across two windows looks as it does in one piece. The same inputs always
give the same text (no dates, no randomness): it can be hashed into a chunk's cache key.

Burning (``CaptionBurn``, ``burn_windows``): each chunk of an incremental composition
(``chunks.compose_chunked``) burns the unshifted script of its own window, its frames carrying
their timeline times through the ``ass`` filter, so its frames are those of one burn of the
whole document; a chunk on which no caption shows burns nothing and stays the caption-free
render's chunk.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import ImageFont

from video_assets.captions import Caption, CaptionSettings, CaptionStyle, is_wide
from video_assets.media.fonts import FontFace, covering_face, line_height_em

PRESETS: dict[str, CaptionStyle] = {
    # lyric videos: two lines low in the frame, each word lit as it is sung
    "karaoke": CaptionStyle(font="DejaVu Sans", bold=True, size=0.042, colour="#ffffff",
                            highlight="#ffd400", outline=0.004, shadow=0.002, position="bottom",
                            animation="fade", karaoke="switch", max_chars=28, max_lines=2),
    # short-form: big words in the middle, popping in
    "bold_pop": CaptionStyle(font="DejaVu Sans", bold=True, size=0.06, colour="#ffffff",
                             highlight="#39ff88", outline=0.007, shadow=0.003, position="center",
                             animation="pop", animation_ms=120, karaoke="switch", max_chars=16,
                             max_lines=2),
    # unobtrusive subtitles
    "minimal": CaptionStyle(font="DejaVu Sans", bold=False, size=0.032, colour="#ffffff",
                            highlight="#ffffff", outline=0.002, shadow=0.0015, position="bottom",
                            animation="fade", animation_ms=200, karaoke="none", max_chars=40,
                            max_lines=2),
    # ads: a boxed line on the left of the lower third
    "lower_third": CaptionStyle(font="DejaVu Sans", bold=True, size=0.036, colour="#ffffff",
                                highlight="#ffd400", outline_colour="#111111", outline=0.008,
                                box=True, box_opacity=0.7, shadow=0.0, position="lower_third",
                                align="left", animation="fade", karaoke="none", max_chars=32,
                                max_lines=2),
}
FLAVOR_STYLES = {"default": "karaoke", "cinematic": "minimal", "energetic": "bold_pop",
                 "minimal": "minimal"}
AD_FLAVOR_STYLES = {"default": "lower_third", "cinematic": "minimal", "energetic": "bold_pop",
                    "minimal": "minimal"}

# the platform-safe area: (left, top, right, bottom) margins as fractions of the frame
SAFE_MARGINS: dict[str, tuple[float, float, float, float]] = {
    "9:16": (0.06, 0.10, 0.12, 0.20),  # Shorts/Reels/TikTok: caption, buttons and top bar
    "16:9": (0.05, 0.05, 0.05, 0.08),  # title-safe, clear of a player's progress bar
    "1:1": (0.06, 0.08, 0.06, 0.12),  # feeds: the overlaid caption strip at the bottom
}
ASPECT_RATIOS = {"9:16": 9 / 16, "16:9": 16 / 9, "1:1": 1.0}
LOWER_THIRD_UP = 0.25  # lower_third: the text's bottom at least this fraction of the height up
WIDTH_SLACK = 0.97  # measured widths are kept this far inside the room (rounding, hinting)
POP_FROM = 70  # pop-in grows from this percentage to 100 (never above: the layout stays valid)


def default_style(flavor: str, mode: str = "music_video") -> str:
    """The preset a flavor uses (ads: a boxed lower third by default)."""
    return (AD_FLAVOR_STYLES if mode == "ad" else FLAVOR_STYLES).get(flavor, "karaoke")


def resolve_style(settings: CaptionSettings, flavor: str, mode: str = "music_video") -> CaptionStyle:
    """The preset the settings name (else the flavor's) with the settings' overrides applied."""
    name = settings.style or default_style(flavor, mode)
    if name not in PRESETS:
        raise ValueError(f"captions.style: {name!r} is not a preset; fix: use one of "
                         f"{', '.join(PRESETS)}")
    return CaptionStyle(**{**PRESETS[name].model_dump(), **settings.overrides()})


@dataclass(frozen=True)
class Box:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def aspect_of(size: tuple[int, int]) -> str:
    w, h = size
    return min(ASPECT_RATIOS, key=lambda a: abs(math.log(ASPECT_RATIOS[a] * h / w)))


def safe_area(size: tuple[int, int]) -> Box:
    """The pixels captions may cover in a frame of ``size`` (its aspect's ``SAFE_MARGINS``)."""
    w, h = size
    left, top, right, bottom = SAFE_MARGINS[aspect_of(size)]
    return Box(math.ceil(left * w), math.ceil(top * h), w - math.ceil(right * w),
               h - math.ceil(bottom * h))


@dataclass(frozen=True)
class Metrics:
    """A style's numbers in pixels for one frame size."""

    font_px: int
    outline_px: float
    shadow_px: float
    area: Box

    @property
    def pad_px(self) -> int:
        """How far the outline or box reaches beyond the glyphs, plus the shadow."""
        return math.ceil(self.outline_px + self.shadow_px) + 1

    @property
    def text_width_px(self) -> float:
        return (self.area.width - 2 * self.pad_px) * WIDTH_SLACK

    @property
    def lines_fit(self) -> int:
        return max(1, (self.area.height - 2 * self.pad_px) // self.font_px)


def metrics(style: CaptionStyle, size: tuple[int, int]) -> Metrics:
    h = size[1]
    return Metrics(font_px=max(8, round(style.size * h)), outline_px=round(style.outline * h, 1),
                   shadow_px=round(style.shadow * h, 1), area=safe_area(size))


@functools.cache
def pillow_font(face: FontFace, font_px: int) -> ImageFont.FreeTypeFont:
    """``face`` in Pillow (raqm shaping) at the size libass draws a ``font_px`` line with."""
    return ImageFont.truetype(face.path, size=font_px / line_height_em(face), index=face.index,
                              layout_engine=ImageFont.Layout.RAQM)


def text_width_px(text: str, face: FontFace, font_px: int) -> float:
    """The advance width of ``text`` (shaped) in ``face`` at ASS font size ``font_px``."""
    return pillow_font(face, font_px).getlength(text)


# --- layout -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    """A unit that is never split across lines: a word, or one CJK character."""

    text: str
    space_before: bool
    start_s: float | None = None  # karaoke: when it is sung
    end_s: float | None = None


@dataclass(frozen=True)
class Page:
    """One event: the lines on screen at once, from ``start_s`` to ``end_s``."""

    start_s: float
    end_s: float
    lines: tuple[tuple[Token, ...], ...]
    face: FontFace
    karaoke: bool
    gap_after: bool  # nothing follows at once: fade out


def tokens_of(cap: Caption) -> list[Token]:
    """A caption's units of wrapping: its timed words, else its words with CJK split per character."""
    out: list[Token] = []
    if cap.words:
        for w in cap.words:
            space = bool(out) and not (is_wide(out[-1].text[-1]) and is_wide(w.text[0]))
            out.extend(_split_wide(w.text, space, w.start_s, w.end_s))
        return out
    for i, word in enumerate(cap.text.split()):
        out.extend(_split_wide(word, i > 0, None, None))
    return out


def _split_wide(word: str, space: bool, start_s: float | None, end_s: float | None) -> list[Token]:
    """``word`` as tokens: runs of narrow characters together, each wide character alone; the
    first carries the word's time (the others light up with it)."""
    parts: list[str] = []
    for ch in word:
        if parts and not is_wide(ch) and not is_wide(parts[-1][-1]):
            parts[-1] += ch
        else:
            parts.append(ch)
    return [Token(p, space and i == 0, start_s if i == 0 else None, end_s if i == 0 else None)
            for i, p in enumerate(parts)]


def line_text(tokens: Sequence[Token]) -> str:
    return "".join((" " if t.space_before and i else "") + t.text for i, t in enumerate(tokens))


def wrap(tokens: Sequence[Token], face: FontFace, m: Metrics, max_chars: int) -> list[tuple[Token, ...]]:
    """Greedy lines: as many tokens as fit both the measured width and ``max_chars``."""
    lines: list[list[Token]] = []
    for token in tokens:
        if lines:
            candidate = line_text([*lines[-1], token])
            if len(candidate) <= max_chars and text_width_px(candidate, face, m.font_px) <= m.text_width_px:
                lines[-1].append(token)
                continue
        for piece in _fit_token(token, face, m):
            lines.append([piece])
    return [tuple(line) for line in lines]


def _fit_token(token: Token, face: FontFace, m: Metrics) -> list[Token]:
    """A token too wide for a line alone, cut into pieces that fit (the first keeps the time)."""
    if text_width_px(token.text, face, m.font_px) <= m.text_width_px:
        return [Token(token.text, False, token.start_s, token.end_s)]
    pieces, current = [], ""
    for ch in token.text:
        if current and text_width_px(current + ch, face, m.font_px) > m.text_width_px:
            pieces.append(current)
            current = ""
        current += ch
    pieces.append(current)
    return [Token(p, False, token.start_s if i == 0 else None, token.end_s if i == 0 else None)
            for i, p in enumerate(pieces)]


def layout(captions: Sequence[Caption], style: CaptionStyle, size: tuple[int, int]) -> list[Page]:
    """The events of ``captions``: each line in the face that covers it, wrapped, cut into pages
    of at most ``max_lines`` lines; a caption ends no later than the next one starts."""
    m = metrics(style, size)
    per_page = min(style.max_lines, m.lines_fit)
    ordered = sorted(captions, key=lambda c: (c.start_s, c.end_s))
    pages: list[Page] = []
    for i, cap in enumerate(ordered):
        end_s = min(cap.end_s, ordered[i + 1].start_s) if i + 1 < len(ordered) else cap.end_s
        if end_s <= cap.start_s:
            continue
        face = covering_face(cap.text, style.font, style.bold)
        lines = wrap(tokens_of(cap), face, m, style.max_chars)
        groups = [lines[k:k + per_page] for k in range(0, len(lines), per_page)]
        starts = _page_starts(cap.start_s, end_s, groups)
        follows = i + 1 < len(ordered) and ordered[i + 1].start_s - end_s < 0.05
        karaoke = style.karaoke != "none" and bool(cap.words)
        for k, group in enumerate(groups):
            page_end = starts[k + 1] if k + 1 < len(groups) else end_s
            if page_end > starts[k]:
                pages.append(Page(starts[k], page_end, tuple(group), face, karaoke,
                                  gap_after=k + 1 == len(groups) and not follows))
    return pages


def _page_starts(start_s: float, end_s: float, groups: list[list[tuple[Token, ...]]]) -> list[float]:
    """Each page starts with its first timed word; untimed, in proportion to the characters."""
    sizes = [sum(len(line_text(line)) for line in g) for g in groups]
    total = sum(sizes) or 1
    starts, done = [], 0
    for g, n in zip(groups, sizes, strict=True):
        timed = [t.start_s for line in g for t in line if t.start_s is not None]
        share = start_s + (end_s - start_s) * done / total
        starts.append(start_s if not starts else max(starts[-1], timed[0] if timed else share))
        done += n
    return starts


# --- ASS --------------------------------------------------------------------------------------

def _colour(hex_rgb: str, alpha: float = 0.0) -> str:
    """``#rrggbb`` as ASS ``&HAABBGGRR`` (alpha 0: opaque)."""
    r, g, b = hex_rgb[1:3], hex_rgb[3:5], hex_rgb[5:7]
    return f"&H{round(alpha * 255):02X}{b}{g}{r}".upper()


def _alignment(style: CaptionStyle) -> int:
    row = {"bottom": 0, "lower_third": 0, "center": 3, "top": 6}[style.position]
    return row + (1 if style.align == "left" else 2)


def _margin_v(style: CaptionStyle, size: tuple[int, int], m: Metrics) -> int:
    h = size[1]
    if style.position == "top":
        return m.area.y0 + m.pad_px
    bottom = h - m.area.y1 + m.pad_px
    if style.position == "lower_third":
        return max(bottom, round(h * LOWER_THIRD_UP))
    return bottom


def _header(style: CaptionStyle, size: tuple[int, int]) -> str:
    w, h = size
    m = metrics(style, size)
    margin_l = m.area.x0 + m.pad_px
    margin_r = w - m.area.x1 + m.pad_px
    margin_v = _margin_v(style, size, m)
    bold = -1 if style.bold else 0
    if style.box:
        border, outline_colour, back = 3, _colour(style.outline_colour, 1 - style.box_opacity), \
            _colour(style.outline_colour, 1 - style.box_opacity)
    else:
        border, outline_colour, back = 1, _colour(style.outline_colour), _colour("#000000", 0.5)
    fields = (f"{m.font_px},{{primary}},{{secondary}},{outline_colour},{back},{bold},0,0,0,100,100,"
              f"0,0,{border},{m.outline_px:g},{m.shadow_px:g},{_alignment(style)},{margin_l},"
              f"{margin_r},{margin_v},-1")
    plain = fields.format(primary=_colour(style.colour), secondary=_colour(style.colour))
    return "\n".join([
        "[Script Info]",
        "ScriptType: v4.00+",
        f"PlayResX: {w}",
        f"PlayResY: {h}",
        "WrapStyle: 2",
        "ScaledBorderAndShadow: yes",
        "YCbCr Matrix: None",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
        "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
        "Shadow, Alignment, MarginL, MarginR, MarginV, Encoding",
        f"Style: Caption,{style.font},{plain}",
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ])


def _cs(t_s: float) -> int:
    return round(t_s * 100 + 1e-9)


def _timestamp(cs: int) -> str:
    h, rest = divmod(cs, 360000)
    m, rest = divmod(rest, 6000)
    s, c = divmod(rest, 100)
    return f"{h}:{m:02d}:{s:02d}.{c:02d}"


def _escape(text: str) -> str:
    """User text as ASS text: a backslash never starts an escape (a word joiner follows it), and
    braces, which would open an override block, become parentheses."""
    return text.replace("\\", "\\\u2060").replace("{", "(").replace("}", ")")


def _event(page: Page, style: CaptionStyle, shift_s: float, t0_cs: int, t1_cs: int) -> str:
    """One Dialogue line shown from ``t0_cs`` to ``t1_cs`` (window time); the animations and the
    karaoke are timed from the page's own start, which may lie before ``t0_cs``."""
    start_ms = (_cs(page.start_s - shift_s) - t0_cs) * 10  # <= 0 when the window clips the start
    end_ms = (_cs(page.end_s - shift_s) - t0_cs) * 10
    tags = [f"\\fn{page.face.family}"]
    if page.face.family.lower() != style.font.lower() or page.face.bold != style.bold:
        tags.append(f"\\b{1 if page.face.bold else 0}")
    anim = style.animation_ms
    fade_out = anim if page.gap_after else 0
    if style.animation in ("fade", "pop") and anim:
        fade_in = anim if style.animation == "fade" else max(1, anim // 2)
        tags.append(f"\\fade(255,0,255,{start_ms},{start_ms + fade_in},"
                    f"{end_ms - fade_out},{end_ms})")
    if style.animation == "pop" and anim:
        t1, t2 = _transform_span(start_ms, start_ms + anim)
        tags.append(f"\\fscx{POP_FROM}\\fscy{POP_FROM}\\t({t1},{t2},\\fscx100\\fscy100)")
    text = "{" + "".join(tags) + "}"
    if page.karaoke:
        lit_at = _lit_times_ms(page, shift_s, t0_cs)
        sweep = style.karaoke == "sweep"
        highlight, base = _colour(style.highlight), _colour(style.colour)
    k = 0
    for n, line in enumerate(page.lines):
        if n:
            text += "\\N"
        for i, token in enumerate(line):
            piece = (" " if token.space_before and i else "") + _escape(token.text)
            if page.karaoke:
                t1, t2 = lit_at[k] if sweep else (lit_at[k][0], lit_at[k][0])
                t1, t2 = _transform_span(t1, t2)
                # each word from the base colour (tags carry over to the words after them)
                text += f"{{\\1c{base}\\t({t1},{t2},\\1c{highlight})}}{piece}"
            else:
                text += piece
            k += 1
    return f"Dialogue: 0,{_timestamp(t0_cs)},{_timestamp(t1_cs)},Caption,,0,0,0,,{text}"


def _lit_times_ms(page: Page, shift_s: float, t0_cs: int) -> list[tuple[int, int]]:
    """When each token of a karaoke page starts and ends being sung, in ms from the event start
    (negative: before it); a token without a time goes with the one before it."""
    starts: list[int] = []
    for token in (token for line in page.lines for token in line):
        if token.start_s is not None:
            starts.append(_cs(token.start_s - shift_s) - t0_cs)
        else:
            starts.append(starts[-1] if starts else _cs(page.start_s - shift_s) - t0_cs)
    page_end = _cs(page.end_s - shift_s) - t0_cs
    ends = [max(a, b) for a, b in zip(starts, [*starts[1:], page_end], strict=True)]
    return [(10 * a, 10 * b) for a, b in zip(starts, ends, strict=True)]


def _transform_span(t1_ms: int, t2_ms: int) -> tuple[int, int]:
    """``\\t`` times with the same meaning in libass, which reads an end of 0 as "the event's
    end": a transform over at 0 is written as one over at -1 (done at every time >= 0)."""
    return (-1, -1) if t2_ms == 0 else (t1_ms, t2_ms)


def _window_pages(pages: Sequence[Page], start_s: float, end_s: float,
                  origin_s: float) -> list[tuple[Page, int, int]]:
    """The pages overlapping ``[start_s, end_s)`` with their times cut to it, in centiseconds
    from ``origin_s``. A page cut at the window's start begins at the centisecond at or before
    it (rounded, a start at frame 44 of 30 fps, 1.4667 s, would be 1.47 s, and that frame would
    lose the line the whole document shows on it)."""
    out = []
    for page in pages:
        if page.end_s <= start_s or page.start_s >= end_s:
            continue
        t0 = _cs(page.start_s - origin_s) if page.start_s >= start_s \
            else math.floor((start_s - origin_s) * 100 + 1e-6)
        t1 = _cs(min(page.end_s, end_s) - origin_s)
        if t1 > t0:
            out.append((page, t0, t1))
    return out


def _document(pages: Sequence[Page], style: CaptionStyle, size: tuple[int, int],
              start_s: float, end_s: float, origin_s: float) -> str:
    """The events of ``[start_s, end_s)``, cut to it, with times measured from ``origin_s``."""
    lines = [_header(style, size)]
    lines += [_event(page, style, origin_s, t0, t1)
              for page, t0, t1 in _window_pages(pages, start_s, end_s, origin_s)]
    return "\n".join(lines) + "\n"


def ass_document(captions: Sequence[Caption], style: CaptionStyle, size: tuple[int, int]) -> str:
    """The whole timeline's captions as an ASS script for a ``size`` (w, h) frame."""
    return _document(layout(captions, style, size), style, size, 0.0, math.inf, 0.0)


def ass_for_window(captions: Sequence[Caption], style: CaptionStyle, size: tuple[int, int],
                   start_s: float, end_s: float, *, shift: bool = True) -> str:
    """The events overlapping ``[start_s, end_s)``, cut to it; ``shift``: times moved so that
    ``start_s`` is 0 (for frames timed from the window's start), else kept on the timeline (for
    frames carrying their timeline times). Deterministic: its text can be hashed into a cache key.

    Shifted, word highlights and lines land on the same frames as in ``ass_document`` (within a
    frame when the window does not start on a centisecond), but the fades and the pop-in, which
    libass interpolates from its millisecond clock, can differ slightly on their few frames. Not
    shifted, with the frames' timestamps on the timeline around the ``ass`` filter (e.g.
    ``settb=1/fps,setpts=N+<first frame>`` before it and ``setpts=N`` after), a window's frames
    are identical to the whole document's."""
    if end_s <= start_s:
        raise ValueError(f"window [{start_s}, {end_s}) is empty")
    return _document(layout(captions, style, size), style, size, start_s, end_s,
                     start_s if shift else 0.0)


# --- burning into a chunked composition ------------------------------------------------------

@dataclass(frozen=True)
class CaptionBurn:
    """Captions to burn into a composition (``chunks.compose_chunked``): the timeline's captions
    and the style they are drawn in (``resolve_style``)."""

    captions: tuple[Caption, ...]
    style: CaptionStyle


@dataclass(frozen=True)
class WindowBurn:
    """What one window of frames burns: its ASS script on timeline times (``ass_for_window``,
    unshifted) and the font files it draws with (path, bytes)."""

    ass: str
    fonts: tuple[tuple[str, int], ...]

    @property
    def sha256(self) -> str:
        """A digest of everything that sets the burned pixels besides the frames and ffmpeg
        (libass is part of its build): the script and the fonts' files."""
        spec = json.dumps({"ass": self.ass, "fonts": [list(f) for f in self.fonts]}, sort_keys=True)
        return hashlib.sha256(spec.encode()).hexdigest()


def _shown_on_a_frame(t0_cs: int, t1_cs: int, first_frame: int, n_frames: int, fps: int) -> bool:
    """Whether an event from ``t0_cs`` to ``t1_cs`` (timeline) covers a frame of the window:
    libass draws it at ``t0 <= t < t1`` (ms), ffmpeg's ``ass`` filter asking for frame ``k`` at
    ``k * 1000 / fps`` ms truncated; a millisecond of slack either way (an event drawn on no
    frame only costs a burn that changes nothing)."""
    k = max(first_frame, math.ceil((10 * t0_cs - 1) * fps / 1000))
    return k < first_frame + n_frames and k * 1000 / fps < 10 * t1_cs + 1


def burn_windows(burn: CaptionBurn, size: tuple[int, int], fps: int,
                 windows: Sequence[tuple[int, int]]) -> list[WindowBurn | None]:
    """Per window ``(first_frame, n_frames)`` of the timeline, the captions it burns: the events
    of ``[first_frame / fps, (first_frame + n_frames) / fps)`` as ``ass_for_window(...,
    shift=False)`` writes them for a ``size`` frame, or None when no caption shows on any of its
    frames (it burns nothing: its frames are the caption-free render's). The layout is done once
    for all windows."""
    pages = layout(burn.captions, burn.style, size)
    out: list[WindowBurn | None] = []
    for first, n in windows:
        start_s, end_s = first / fps, (first + n) / fps
        shown = [(page, t0, t1) for page, t0, t1 in _window_pages(pages, start_s, end_s, 0.0)
                 if _shown_on_a_frame(t0, t1, first, n, fps)]
        if not shown:
            out.append(None)
            continue
        faces = sorted({page.face.path for page, _, _ in shown})
        out.append(WindowBurn(_document(pages, burn.style, size, start_s, end_s, 0.0),
                              tuple((path, os.path.getsize(path)) for path in faces)))
    return out


# --- SRT and WebVTT -------------------------------------------------------------------------

def _clock(t_s: float, sep: str) -> str:
    ms = round(t_s * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cues(captions: Sequence[Caption]) -> list[tuple[float, float, str]]:
    ordered = sorted(captions, key=lambda c: (c.start_s, c.end_s))
    out = []
    for i, cap in enumerate(ordered):
        end_s = min(cap.end_s, ordered[i + 1].start_s) if i + 1 < len(ordered) else cap.end_s
        if end_s > cap.start_s:
            out.append((cap.start_s, end_s, cap.text))
    return out


def srt_text(captions: Sequence[Caption]) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, a blank line after each."""
    return "".join(f"{i}\n{_clock(a, ',')} --> {_clock(b, ',')}\n{text}\n\n"
                   for i, (a, b, text) in enumerate(_cues(captions), start=1))


def vtt_text(captions: Sequence[Caption]) -> str:
    """WebVTT: the header, then cues ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` (``-->`` in the text is
    written ``--&gt;``, and ``&``/``<`` escaped, as the format requires)."""
    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "WEBVTT\n\n" + "".join(f"{_clock(a, '.')} --> {_clock(b, '.')}\n{esc(text)}\n\n"
                                  for a, b, text in _cues(captions))
