"""Captions measured from the finished file: found, inside the safe area, legible, lit on time.

The text is found by comparing frames of the output with the same frames without captions (the
encoder's caption-free copy, ``compose.FramesTap``: every frame at 108x192): a decoded frame is
scaled to the copy's size the way the copy was (bilinear) and the pixels that differ by more
than the encoder's noise, after an opening that removes isolated specks, are text (``text_mask``).
The pictures under the captions therefore never look like text, however busy they are.

Only a bounded sample of frames is decoded (PyAV, in this process): a frame of up to
``SAMPLED_PAGES`` caption pages (after their fade or pop-in), and the frames around up to
``SAMPLED_WORDS`` karaoke word times. A frame is decoded from the keyframe before it (found from
the packets, nothing decoded), so the samples are chosen cheapest first (a page's frame just
after a keyframe, or on a stretch already decoded; spread out on ties) while the frames decoded
stay within ``DECODE_BUDGET_FRAMES`` (half of it for the pages): the sample leans towards
keyframes, i.e. cuts and chunk starts. A 60 s 1080x1920 video with keyframes 250 frames apart
(x264's longest) gets 12 pages and 14 words from 288 frames decoded, in 2.7 CPU seconds (2 to
2.8 s on a busy 2-core machine); an edit with cuts has keyframes closer together and gets more
for the same budget.

Measures (``CaptionMeasures``):

- ``captions_present``: the fraction of the sampled pages whose frame shows text.
- ``caption_safe_area``: the fraction of the text's pixels inside ``subtitles.safe_area``. Found at
  the copy's resolution (10 px of a 1080x1920 frame), whose bilinear downscale mixes each pixel
  from the full frame's within one pixel of the copy around it: a pixel counts as outside only
  when none of those is inside, so a caption less than about 1.5 such pixels (15 px of a
  1080x1920 frame) outside is not seen.
- ``caption_contrast_min``: the lowest WCAG 2.x contrast ratio, over the sampled pages, between
  the text's fill (the pixels of the style's text or highlight colour where the caption-free
  picture had nothing of that colour, near the text found; their median luminance) and its
  immediate surroundings (the ring from 2 px out to the outline's or box's width, at least 2
  px: the outline, the box, or the picture where there is neither; its 10th percentile, so
  that a tenth of the surroundings may be worse). Decoded at full resolution around the text
  only. A thin outline (below 2 px: the presets at frames under ~1000 px high) is mostly
  skipped as the fill's anti-aliasing, so the picture beyond it is measured.
- ``highlight_error_max_frames``: karaoke (``switch``: the frame a word turns; ``sweep``: the
  frame its colour passes half-way, expected half-way between its start and the next word's,
  over which ``subtitles`` sweeps it): for each sampled word,
  the first frame where at least half of the word's pixels (text colour before its window,
  highlight colour at its end) are nearer to the highlight than to the text colour, minus the
  first frame at or after the word's time (``compose.cut_frame``), within ``REACH_FRAMES`` of
  it; a word whose change is not seen there counts as ``REACH_FRAMES + 1``. Words lit while
  their page fades or pops in (their colour is mixed with the picture), words with another
  word lit within ``REACH_FRAMES`` (which of the two changed cannot be told) and sweeps longer
  than ``MAX_SWEEP_FRAMES`` (at the window's ends still far from both colours) are not sampled.
  None: no word was measured.
- ``words_without_caption``: of the sampled karaoke words, how many frames at the word's time
  show no text.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_assets.captions import Caption, CaptionStyle
from video_assets.media.art import hex_to_rgb
from video_assets.media.compose import cut_frame
from video_assets.media.subtitles import Box, Page, layout, metrics, safe_area

SAMPLED_PAGES = 24  # pages whose frame is decoded (the cheapest to reach first, spread on ties)
SAMPLED_WORDS = 40  # karaoke words whose highlight is timed
REACH_FRAMES = 4  # a word's highlight is looked for this many frames either side of its time
# a longer sweep is still far from both colours at the ends of the window: not timed
MAX_SWEEP_FRAMES = 4 * REACH_FRAMES
DECODE_BUDGET_FRAMES = 300  # frames decoded at most (at least one page's, whatever it costs)
# text vs the caption-free copy, per pixel of the copy (max over r, g, b): an encode at CRF 20
# differs from its input by 1-4 levels there, up to ~10 on sharp edges of a busy picture
TEXT_DIFF = 16
MIN_TEXT_PIXELS = 12  # a group of fewer pixels of the copy is not text (a speck of noise)
COLOUR_TOLERANCE = 64  # a pixel is of a style colour within this many levels (max over r, g, b)
COLOUR_MARGIN = 24  # ...and nearer to it by this much than the caption-free picture there was
MIN_FILL_PIXELS = 20  # fewer pixels of the text's colour: no fill found
CONTRAST_PERCENTILE = 10  # of the surroundings' contrast with the fill


@dataclass(frozen=True)
class CaptionMeasures:
    """What ``measure_captions`` found (see the module docstring for each measure)."""

    captions_present: float
    caption_safe_area: float
    caption_contrast_min: float
    highlight_error_max_frames: float | None  # None: no karaoke word was measured
    words_without_caption: int
    pages_sampled: int
    pages_found: int
    words_sampled: int
    contrast_by_page: tuple[float, ...]  # of the pages where text was found
    highlight_errors_frames: tuple[int, ...]  # measured frame minus expected, per word
    frames_decoded: int
    measure_s: float


# --- colour -----------------------------------------------------------------------------------

def rgb_of(hex_rgb: str) -> np.ndarray:
    return np.array(hex_to_rgb(hex_rgb), np.float32)


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG 2.x relative luminance of sRGB ``rgb`` (0-255, last axis r, g, b)."""
    c = np.asarray(rgb, np.float32) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def contrast_ratio(l1: np.ndarray | float, l2: np.ndarray | float) -> np.ndarray:
    """WCAG 2.x contrast ratio of two relative luminances (1 to 21)."""
    hi, lo = np.maximum(l1, l2), np.minimum(l1, l2)
    return (hi + 0.05) / (lo + 0.05)


def _distance(rgb: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The largest difference of r, g or b from ``colour``."""
    d = np.abs(rgb.astype(np.float32) - colour)
    return np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2])


# --- masks ------------------------------------------------------------------------------------

def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """``mask`` grown by a (2r+1)-square (separable: rows, then columns)."""
    out = mask.copy()
    for axis in (0, 1):
        grown = out.copy()
        n = out.shape[axis]
        for k in range(1, min(r, n - 1) + 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(0, n - k), slice(k, n)
            grown[tuple(lo)] |= out[tuple(hi)]
            grown[tuple(hi)] |= out[tuple(lo)]
        out = grown
    return out


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    return ~_dilate(~mask, r)


def text_mask(frame_small: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Where ``frame_small`` (a decoded frame at the copy's size) shows something the caption-free
    ``clean`` does not: differing by more than ``TEXT_DIFF``, opened by a 2x2 square (a speck
    of one pixel is noise; a stroke of text covers at least two pixels each way), without
    sparse specks (``_without_specks``). (The encoder's ringing reaches up to ~10 levels a
    pixel or two past a caption's edge: it stays below ``TEXT_DIFF``.)"""
    diff = np.abs(frame_small.astype(np.int16) - clean.astype(np.int16)).max(axis=2)
    strong = diff > TEXT_DIFF
    # opening by a 2x2 square: kept where some 2x2 block containing the pixel is all strong
    block = strong[:-1, :-1] & strong[1:, :-1] & strong[:-1, 1:] & strong[1:, 1:]
    opened = np.zeros_like(strong)
    for dy in (0, 1):
        for dx in (0, 1):
            opened[dy:dy + block.shape[0], dx:dx + block.shape[1]] |= block
    return _without_specks(opened)


def _without_specks(mask: np.ndarray, reach: int = 3) -> np.ndarray:
    """``mask`` without the pixels that have fewer than ``MIN_TEXT_PIXELS`` of it within
    ``reach`` (encoder noise around a fast-moving edge can pass the opening; text is dense)."""
    padded = np.pad(mask.astype(np.int32), ((reach + 1, reach), (reach + 1, reach)))
    total = padded.cumsum(0).cumsum(1)
    k = 2 * reach + 1
    h, w = mask.shape
    count = (total[k:k + h, k:k + w] - total[:h, k:k + w] - total[k:k + h, :w] + total[:h, :w])
    return mask & (count >= MIN_TEXT_PIXELS)


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


# --- decoding ---------------------------------------------------------------------------------

def _to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 limited-range yuv (ffmpeg's default for untagged video) as float rgb 0-255."""
    y = (y.astype(np.float32) - 16.0) * (255.0 / 219.0)
    u, v = u.astype(np.float32) - 128.0, v.astype(np.float32) - 128.0
    rgb = np.stack([y + 1.596 * v, y - 0.392 * u - 0.813 * v, y + 2.017 * u], axis=-1)
    return np.clip(rgb, 0, 255, out=rgb)


@dataclass(frozen=True)
class _Crop:
    """A box of a decoded frame at full resolution, kept as its yuv420p planes (copies)."""

    y: np.ndarray  # (h, w)
    u: np.ndarray  # (h + 1) // 2 + 1, (w + 1) // 2 + 1: the chroma rows/columns over the box
    v: np.ndarray
    oy: int  # the box's first row/column within the chroma's 2x2 cell
    ox: int

    def rgb(self) -> np.ndarray:
        h, w = self.y.shape
        up = [c.repeat(2, 0).repeat(2, 1)[self.oy:self.oy + h, self.ox:self.ox + w] for c in (self.u, self.v)]
        return _to_rgb(self.y, *up)

    def rgb_at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """The rgb of the pixels (``ys``, ``xs``) of the box, shape (k, 3)."""
        cy, cx = (ys + self.oy) // 2, (xs + self.ox) // 2
        return _to_rgb(self.y[ys, xs], self.u[cy, cx], self.v[cy, cx])


class _Decoded:
    """A decoded frame (PyAV, yuv420p): at the caption-free copy's size, and boxes of it at full
    resolution, each converted only when asked for."""

    def __init__(self, frame, small_size: tuple[int, int]) -> None:
        self._frame = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
        self._small_size = small_size
        self._small: np.ndarray | None = None

    @property
    def small(self) -> np.ndarray:
        """(h, w, 3) rgb24 at the copy's size, scaled bilinearly as the copy was."""
        if self._small is None:
            tw, th = self._small_size
            self._small = self._frame.reformat(width=tw, height=th, format="rgb24",
                                               interpolation="BILINEAR").to_ndarray()
        return self._small

    def _plane(self, k: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        p = self._frame.planes[k]
        return np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[y0:y1, x0:x1].copy()

    def crop(self, box: tuple[int, int, int, int]) -> _Crop:
        y0, y1, x0, x1 = box
        chroma = (y0 // 2, (y1 + 1) // 2, x0 // 2, (x1 + 1) // 2)
        return _Crop(self._plane(0, y0, y1, x0, x1), self._plane(1, *chroma), self._plane(2, *chroma),
                     y0 % 2, x0 % 2)


def _keyframes(container, stream, fps: int) -> tuple[dict[int, int], int]:
    """The keyframes' frame numbers with their pts (from the packets: nothing is decoded), and
    the stream's start pts."""
    start = stream.start_time or 0
    keys = {}
    for packet in container.demux(stream):
        if packet.size and packet.is_keyframe and packet.pts is not None:
            keys[round(float((packet.pts - start) * stream.time_base) * fps)] = packet.pts
    return keys, start


def _decode(video: Path, plan: _Plan, needed: set[int], fps: int,
            small_size: tuple[int, int]) -> Iterator[tuple[int, _Decoded]]:
    """The ``needed`` frames, in order, each run of ``plan`` decoded from its keyframe (seeking
    in between)."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        key_pts, start = _keyframes(container, stream, fps)
        stream.thread_type = "AUTO"
        tb = stream.time_base
        for key, last in sorted(plan.runs.items()):
            container.seek(key_pts.get(key, start), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                n = round(float((frame.pts - start) * tb) * fps)
                if n > last:
                    break
                if n in needed:
                    yield n, _Decoded(frame, small_size)


def keyframe_numbers(video: Path, fps: int) -> list[int]:
    """The frame numbers of the video's keyframes (read from its packets, nothing decoded)."""
    return _stream_facts(video, fps)[0]


def _stream_facts(video: Path, fps: int) -> tuple[list[int], int]:
    """The keyframes' frame numbers and the number of frames (the container's count, else the
    packets'), from the packets only."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        count = stream.frames
        keys, _ = _keyframes(container, stream, fps)
        if not count:
            container.seek(0)
            count = sum(1 for p in container.demux(stream) if p.size)
    return sorted(keys) or [0], count


class _Plan:
    """What is decoded: from keyframes to the last frame needed after each (``runs``)."""

    def __init__(self, keys: Sequence[int]) -> None:
        self.keys = list(keys)
        self.runs: dict[int, int] = {}  # keyframe: the last frame decoded after it

    def key(self, f: int) -> int:
        return self.keys[max(0, bisect.bisect_right(self.keys, f) - 1)]

    def cost(self, frames: Iterable[int]) -> int:
        """How many more frames decoding ``frames`` too takes."""
        ends: dict[int, int] = {}
        for f in frames:
            k = self.key(f)
            ends[k] = max(ends.get(k, f), f)
        return sum(max(0, last - self.runs.get(k, k - 1)) for k, last in ends.items())

    def add(self, frames: Iterable[int]) -> None:
        for f in frames:
            k = self.key(f)
            self.runs[k] = max(self.runs.get(k, f), f)

    @property
    def frames(self) -> int:
        return sum(last - k + 1 for k, last in self.runs.items())


# --- sampling ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Word:
    expected: int  # the frame it should be lit on
    first: int  # the window looked at: [first, last]
    last: int

    @property
    def frames(self) -> range:
        return range(self.first - 1, self.last + 1)  # and the frame before, unlit


def _fade_in_s(style: CaptionStyle) -> float:
    return style.animation_ms / 1000 if style.animation in ("fade", "pop") else 0.0


def _steady_span(page: Page, style: CaptionStyle, fps: int, n_frames: int) -> tuple[int, int]:
    """The frames [a, b] of a page after its fade or pop-in and before its fade-out."""
    a = cut_frame(page.start_s + _fade_in_s(style), fps) + 1
    out = _fade_in_s(style) if page.gap_after else 0.0
    b = min(cut_frame(page.end_s - out, fps) - 2, n_frames - 1)
    if b < a:  # a page shorter than its animations: its middle
        a = b = min(cut_frame((page.start_s + page.end_s) / 2, fps), n_frames - 1)
    return a, b


def _word_candidates(pages: Sequence[Page], style: CaptionStyle, fps: int, n_frames: int) -> list[_Word]:
    """The karaoke words that can be timed: lit after their page's animation, with no other word
    lit within ``REACH_FRAMES``, their window inside the page."""
    if style.karaoke == "none" or style.highlight == style.colour:
        return []
    lit: list[tuple[int, Page]] = []  # (frame the word turns, its page)
    for page in pages:
        if not page.karaoke:
            continue
        timed = [t.start_s for line in page.lines for t in line if t.start_s is not None]
        for k, start_s in enumerate(timed):
            at_s = start_s
            if style.karaoke == "sweep":  # half-way through its sweep, which lasts until the next
                end_s = max(start_s, timed[k + 1] if k + 1 < len(timed) else page.end_s)
                if (end_s - start_s) * fps > MAX_SWEEP_FRAMES:
                    continue
                at_s = (start_s + end_s) / 2
            lit.append((cut_frame(max(at_s, page.start_s), fps), page))
    words = []
    for j, (f, page) in enumerate(lit):
        steady_from = cut_frame(page.start_s + _fade_in_s(style), fps) + 1
        last = min(n_frames - 1, f + REACH_FRAMES, cut_frame(page.end_s, fps) - 2)
        crowded = any(abs(g - f) <= REACH_FRAMES for k, (g, _) in enumerate(lit) if k != j)
        if f - REACH_FRAMES < steady_from or last < f + 1 or crowded:
            continue
        words.append(_Word(f, f - REACH_FRAMES, last))
    return words


def _cheapest_first(options: list[tuple[int, list[int]]], plan: _Plan, limit: int,
                    budget: int) -> list[int]:
    """Of ``options`` (a time, the frames it needs), up to ``limit`` chosen one at a time: the
    cheapest to decode with what is already planned, on ties the farthest from those chosen;
    the first always, the others while the plan stays within ``budget`` frames."""
    chosen: list[int] = []
    left = list(range(len(options)))
    if len(left) > 4 * limit:  # an even spread of them is enough to choose from
        left = sorted({round(i * (len(options) - 1) / (4 * limit - 1)) for i in range(4 * limit)})
    while left and len(chosen) < limit:
        def rank(i: int) -> tuple[int, float]:
            at = options[i][0]
            return plan.cost(options[i][1]), -min((abs(at - options[c][0]) for c in chosen), default=0)

        best = min(left, key=rank)
        if chosen and plan.frames + plan.cost(options[best][1]) > budget:
            break
        plan.add(options[best][1])
        chosen.append(best)
        left.remove(best)
    return sorted(chosen)


def _page_frame(span: tuple[int, int], plan: _Plan) -> int:
    """The frame of ``span`` cheapest to decode with ``plan`` (nearest the middle on ties)."""
    a, b = span
    mid = (a + b) / 2
    candidates = {a, b, round(mid)} | {k for k in plan.keys if a <= k <= b} \
        | {min(last, b) for last in plan.runs.values() if a <= last}
    return min((f for f in candidates if a <= f <= b), key=lambda f: (plan.cost([f]), abs(f - mid)))


# --- measuring --------------------------------------------------------------------------------

def _footprint_inside(mask: np.ndarray, size: tuple[int, int], area: Box) -> tuple[int, int]:
    """How many of the mask's pixels are made from some pixel of the full frame inside ``area``
    (the bilinear downscale averages a pixel of the copy from the full frame's pixels within
    one pixel of the copy around its centre), of how many."""
    th, tw = mask.shape
    sx, sy = size[0] / tw, size[1] / th
    ys, xs = np.nonzero(mask)
    inside = (((xs + 1.5) * sx > area.x0) & ((xs - 0.5) * sx < area.x1)
              & ((ys + 1.5) * sy > area.y0) & ((ys - 0.5) * sy < area.y1))
    return int(inside.sum()), len(xs)


def _full_box(mask: np.ndarray, size: tuple[int, int], pad_px: int) -> tuple[int, int, int, int] | None:
    """The full-frame box (y0, y1, x0, x1) the mask's pixels stand for, grown by ``pad_px``."""
    b = _bounds(mask)
    if b is None:
        return None
    th, tw = mask.shape
    sx, sy = size[0] / tw, size[1] / th
    y0, y1, x0, x1 = b
    return (max(0, math.floor(y0 * sy) - pad_px), min(size[1], math.ceil(y1 * sy) + pad_px),
            max(0, math.floor(x0 * sx) - pad_px), min(size[0], math.ceil(x1 * sx) + pad_px))


def _mask_over(mask: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """The copy-sized ``mask`` over ``box`` of the full frame (each pixel stands for its area)."""
    th, tw = mask.shape
    y0, y1, x0, x1 = box
    iy = np.minimum(np.arange(y0, y1) * th // size[1], th - 1)
    ix = np.minimum(np.arange(x0, x1) * tw // size[0], tw - 1)
    return mask[np.ix_(iy, ix)]


def _of_colour(rgb: np.ndarray, clean_small: np.ndarray, box: tuple[int, int, int, int],
               size: tuple[int, int], colour: np.ndarray) -> np.ndarray:
    """Pixels of ``colour`` where the caption-free picture had nothing as near it: nearer by
    ``COLOUR_MARGIN`` than any pixel of the copy around (3x3: the copy is blurred by its
    downscale, a sharp edge of the picture in that colour must not count)."""
    d = _distance(rgb, colour)
    clean_d = _distance(clean_small, colour)
    clean_min = clean_d.copy()
    h, w = clean_d.shape
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            shifted = clean_d[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            target = clean_min[max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
            np.minimum(target, shifted, out=target)
    return (d <= COLOUR_TOLERANCE) & (_mask_over(clean_min, box, size) >= d + COLOUR_MARGIN)


def _contrast(decoded: _Decoded, clean_small: np.ndarray, mask: np.ndarray, style: CaptionStyle,
              size: tuple[int, int]) -> float | None:
    """The text's contrast with its immediate surroundings on one frame (None: no fill found)."""
    ring_px = max(2, round(style.outline * size[1]))
    box = _full_box(mask, size, ring_px + 2)
    if box is None:
        return None
    rgb = decoded.crop(box).rgb()
    near_text = _mask_over(_dilate(mask, 1), box, size)
    fill = near_text & (_of_colour(rgb, clean_small, box, size, rgb_of(style.colour))
                        | _of_colour(rgb, clean_small, box, size, rgb_of(style.highlight)))
    if fill.sum() < MIN_FILL_PIXELS:
        return None
    core = _erode(fill, 1)  # the fill past its anti-aliased edge, unless the strokes are thinner
    core = core if core.sum() >= MIN_FILL_PIXELS else fill
    ring = _dilate(fill, ring_px) & ~_dilate(fill, 1)
    if not ring.any():
        return None
    l_fill = float(np.median(relative_luminance(rgb[core])))
    ratios = contrast_ratio(l_fill, relative_luminance(rgb[ring]))
    return float(np.percentile(ratios, CONTRAST_PERCENTILE))


@dataclass
class _Window:
    """A word's frames, kept as crops of the box its page's text covers."""

    box: tuple[int, int, int, int]
    near_text: np.ndarray  # over the box
    clean_last: np.ndarray  # the caption-free copy of the window's last frame
    crops: dict[int, _Crop]


def _lit_frame(window: _Window, word: _Word, style: CaptionStyle, size: tuple[int, int]) -> int | None:
    """The first frame of the word's window where at least half of the pixels that turn from the
    text colour (before the window) to the highlight colour (at its end) are nearer to the
    highlight than to the text colour (a sweep: past half-way). Only the word turns in its
    window, and a picture of the highlight's colour moving under the text was not of the
    text's colour before; an encoder may take a few frames to reach the new colour exactly,
    hence "nearer". None: fewer than ``MIN_FILL_PIXELS`` pixels turn."""
    highlight, base = rgb_of(style.highlight), rgb_of(style.colour)
    before, after = window.crops[word.first - 1].rgb(), window.crops[word.last].rgb()
    to_base, to_highlight = _distance(before, base), _distance(before, highlight)
    unlit = (to_base <= COLOUR_TOLERANCE) & (to_base + COLOUR_MARGIN / 2 < to_highlight)
    to_base, to_highlight = _distance(after, base), _distance(after, highlight)
    lit = (to_highlight + COLOUR_MARGIN / 2 < to_base) \
        & _of_colour(after, window.clean_last, window.box, size, highlight)
    ys, xs = np.nonzero(window.near_text & unlit & lit)
    if len(ys) < MIN_FILL_PIXELS:
        return None
    for f in range(word.first, word.last + 1):
        rgb = window.crops[f].rgb_at(ys, xs)
        if (_distance(rgb, highlight) < _distance(rgb, base)).sum() * 2 >= len(ys):
            return f
    return None


def measure_captions(video: Path, clean_frames: np.ndarray, captions: Sequence[Caption],
                     style: CaptionStyle, size: tuple[int, int], fps: int) -> CaptionMeasures:
    """Measure the captions burned into ``video`` (``size``, ``fps``) against ``clean_frames``,
    the same frames without captions at the copy's size ((n, h, w, 3) rgb24), knowing the
    ``captions`` and ``style`` rendered only to say where to look (see the module docstring)."""
    started = time.perf_counter()
    n_frames = len(clean_frames)
    th, tw = clean_frames.shape[1:3]
    keys, file_frames = _stream_facts(video, fps)
    if clean_frames.ndim != 4 or clean_frames.shape[3] != 3 or n_frames != file_frames:
        raise ValueError(
            f"clean_frames: {n_frames} frames of shape {clean_frames.shape[1:]} for "
            f"{video.name} of {file_frames} frames; fix: pass the caption-free copy of this "
            "video's every frame, (n, h, w, 3) rgb24 (compose.FramesTap), or measure no captions")
    pages = [p for p in layout(captions, style, size) if cut_frame(p.start_s, fps) < n_frames]
    plan = _Plan(keys)
    spans = [_steady_span(p, style, fps, n_frames) for p in pages]
    chosen = _cheapest_first([(a, [_page_frame((a, b), plan)]) for a, b in spans], plan,
                             SAMPLED_PAGES, DECODE_BUDGET_FRAMES // 2)
    # each page's frame again, with the plan now made (a run another page asked for may reach it)
    page_frames = {}
    for i in chosen:
        page_frames[_page_frame(spans[i], plan)] = i
    plan.add(page_frames)
    candidates = _word_candidates(pages, style, fps, n_frames)
    words = [candidates[i] for i in _cheapest_first(
        [(w.expected, list(w.frames)) for w in candidates], plan, SAMPLED_WORDS,
        DECODE_BUDGET_FRAMES)]
    needed = set(page_frames) | {f for w in words for f in w.frames}

    area = safe_area(size)
    pad = metrics(style, size).pad_px
    masks: dict[int, np.ndarray] = {}
    contrasts: list[float] = []
    inside = total = 0
    windows: dict[int, _Window | None] = {}
    errors: list[int] = []
    for n, decoded in _decode(video, plan, needed, fps, (tw, th)):
        clean = clean_frames[n]
        mine = [w for w in words if w.first - 1 <= n <= w.last]
        if n in page_frames or any(n in (w.first - 1, w.expected) for w in mine):
            masks[n] = text_mask(decoded.small, clean)
        if n in page_frames and masks[n].sum() >= MIN_TEXT_PIXELS:
            k, m = _footprint_inside(masks[n], size, area)
            inside, total = inside + k, total + m
            if (c := _contrast(decoded, clean, masks[n], style, size)) is not None:
                contrasts.append(c)
        for w in mine:
            if n == w.first - 1:  # where the page's text is, from the window's first frame
                near = _dilate(masks[n], 1)
                box = _full_box(near, size, pad)
                windows[w.expected] = _Window(box, _mask_over(near, box, size),
                                              clean_frames[w.last], {}) if box else None
            if (window := windows[w.expected]) is None:
                continue
            window.crops[n] = decoded.crop(window.box)
            if n == w.last:
                at = _lit_frame(window, w, style, size)
                errors.append(REACH_FRAMES + 1 if at is None else at - w.expected)
                windows[w.expected] = None
    errors += [REACH_FRAMES + 1] * (len(words) - len(errors))  # windows with no text at their start
    found = [f for f in page_frames if masks.get(f) is not None and masks[f].sum() >= MIN_TEXT_PIXELS]
    missing = sum(1 for w in words if masks[w.expected].sum() < MIN_TEXT_PIXELS)
    return CaptionMeasures(
        captions_present=len(found) / len(page_frames) if page_frames else 1.0,
        caption_safe_area=inside / total if total else 1.0,
        caption_contrast_min=min(contrasts) if contrasts else 1.0,
        highlight_error_max_frames=float(max(abs(e) for e in errors)) if errors else None,
        words_without_caption=missing,
        pages_sampled=len(page_frames), pages_found=len(found), words_sampled=len(words),
        contrast_by_page=tuple(round(c, 2) for c in contrasts),
        highlight_errors_frames=tuple(errors),
        frames_decoded=plan.frames,
        measure_s=round(time.perf_counter() - started, 3),
    )
