"""Captions measured from the finished file: found, inside the safe area, legible, lit on time.

The text is found by comparing frames of the output with the same frames without captions (the
encoder's caption-free copy, ``compose.FramesTap``: every frame at 108x192): a decoded frame is
scaled to the copy's size the way the copy was (bilinear) and the pixels that differ by more
than the encoder's noise, after an opening that removes isolated specks, are text (``text_mask``).
The pictures under the captions therefore never look like text, however busy they are.

Only a bounded sample of frames is decoded (PyAV, in this process): one frame of each of up to
``SAMPLED_PAGES`` caption pages, and the frames around up to ``SAMPLED_WORDS`` karaoke word times.
Frames are decoded from the keyframe before them, so every sample is chosen where it costs least
to reach (a page's frame just after a keyframe, or on a stretch already decoded), within
``DECODE_BUDGET_FRAMES``; nothing else of the file is decoded.

Measures (``CaptionMeasures``):

- ``captions_present``: the fraction of the sampled pages whose frame shows text.
- ``caption_safe_area``: the fraction of the text's pixels inside ``subtitles.safe_area``. Found at
  the copy's resolution (10 px of a 1080x1920 frame), whose bilinear downscale mixes each pixel
  from the full frame's within one pixel of the copy around it: a pixel counts as outside only
  when none of those is inside, so a caption less than about 1.5 such pixels (15 px of a
  1080x1920 frame) outside is not seen.
- ``caption_contrast_min``: the lowest WCAG 2.x contrast ratio, over the sampled pages, between
  the text's fill (the pixels of the style's text or highlight colour that were not that colour
  without captions; their median luminance) and its immediate surroundings (the ring as wide as
  the outline or box around the fill, at least 2 px, past 1 px of anti-aliasing: the outline, the
  box, or the picture where there is neither; its 10th percentile, so that a tenth of the
  surroundings may be worse). Decoded at full resolution around the text only.
- ``highlight_error_max_frames``: karaoke (``switch``: the frame a word turns; ``sweep``: the
  frame its colour passes half-way, expected at the middle of the word): for each sampled word,
  the first frame where the highlight colour grows by at least half of what the word adds, minus
  the first frame at or after the word's time (``compose.cut_frame``), in the frames within
  ``REACH_FRAMES`` of it; a word whose change is not seen there counts as ``REACH_FRAMES + 1``.
  Words lit while their page fades or pops in (their colour is mixed with the picture), and
  words with another word lit within ``REACH_FRAMES`` (which of the two changed cannot be told)
  are not sampled. None: no word was measured.
- ``words_without_caption``: of the sampled karaoke words, how many frames at the word's time
  show no text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_assets.captions import Caption, CaptionStyle
from video_assets.media.compose import cut_frame
from video_assets.media.subtitles import Box, Page, layout, metrics, safe_area

SAMPLED_PAGES = 24  # pages whose frame is decoded (spread evenly over the video)
SAMPLED_WORDS = 40  # karaoke words whose highlight is timed
REACH_FRAMES = 4  # a word's highlight is looked for this many frames either side of its time
DECODE_BUDGET_FRAMES = 600  # frames decoded at most for the words (pages come first, any cost)
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
    return np.array([int(hex_rgb[i:i + 2], 16) for i in (1, 3, 5)], np.float32)


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

class _Decoded:
    """A decoded frame (PyAV, yuv420p): at the caption-free copy's size, and parts of it at full
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
        return np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[y0:y1, x0:x1]

    def rgb(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The full-resolution rgb of ``[y0:y1, x0:x1]`` (float; BT.601 limited range, ffmpeg's
        default for untagged video; chroma repeated over its 2x2 pixels)."""
        y = (self._plane(0, y0, y1, x0, x1).astype(np.float32) - 16.0) * (255.0 / 219.0)
        oy, ox = y0 % 2, x0 % 2

        def chroma(k: int) -> np.ndarray:
            c = self._plane(k, y0 // 2, (y1 + 1) // 2, x0 // 2, (x1 + 1) // 2)
            c = c.repeat(2, 0).repeat(2, 1)[oy:oy + y1 - y0, ox:ox + x1 - x0]
            return c.astype(np.float32) - 128.0

        u, v = chroma(1), chroma(2)
        rgb = np.stack([y + 1.596 * v, y - 0.392 * u - 0.813 * v, y + 2.017 * u], axis=-1)
        return np.clip(rgb, 0, 255, out=rgb)


def _keyframes(container, stream, fps: int) -> tuple[dict[int, int], int]:
    """The keyframes' frame numbers with their pts (from the packets: nothing is decoded), and
    the stream's start pts."""
    start = stream.start_time or 0
    keys = {}
    for packet in container.demux(stream):
        if packet.size and packet.is_keyframe and packet.pts is not None:
            keys[round(float((packet.pts - start) * stream.time_base) * fps)] = packet.pts
    return keys, start


def _runs(needed: Sequence[int], keys: Sequence[int]) -> list[tuple[int, int]]:
    """The stretches to decode: from each needed frame's keyframe to the last needed frame that
    keyframe leads to."""
    runs: dict[int, int] = {}
    for f in needed:
        k = keys[max(0, np.searchsorted(keys, f, side="right") - 1)]
        runs[k] = max(runs.get(k, f), f)
    return sorted(runs.items())


def _decode(video: Path, needed: set[int], fps: int,
            small_size: tuple[int, int]) -> Iterator[tuple[int, _Decoded]]:
    """The ``needed`` frames, in order, each decoded from its keyframe (seeking in between)."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        key_pts, start = _keyframes(container, stream, fps)
        keys = sorted(key_pts) or [0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        for key, last in _runs(sorted(needed), keys):
            container.seek(key_pts.get(key, start), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                n = round(float((frame.pts - start) * tb) * fps)
                if n > last:
                    break
                if n in needed:
                    yield n, _Decoded(frame, small_size)


def frames_decoded(needed: Sequence[int], keys: Sequence[int]) -> int:
    return sum(last - key + 1 for key, last in _runs(sorted(needed), keys))


def _keyframe_numbers(video: Path, fps: int) -> list[int]:
    import av

    with av.open(str(video)) as container:
        keys, _ = _keyframes(container, container.streams.video[0], fps)
    return sorted(keys) or [0]


# --- sampling ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Word:
    page: int
    expected: int  # the frame it should be lit on
    first: int  # the window looked at: [first, last]
    last: int


def _fade_in_s(style: CaptionStyle) -> float:
    return style.animation_ms / 1000 if style.animation in ("fade", "pop") else 0.0


def _steady_span(page: Page, style: CaptionStyle, fps: int) -> tuple[int, int]:
    """The frames [a, b] of a page after its fade or pop-in and before its fade-out."""
    a = cut_frame(page.start_s + _fade_in_s(style), fps) + 1
    out = _fade_in_s(style) if page.gap_after else 0.0
    b = cut_frame(page.end_s - out, fps) - 2
    if b < a:  # a page shorter than its animations: its middle
        a = b = cut_frame((page.start_s + page.end_s) / 2, fps)
    return a, b


def _spread(items: list, k: int) -> list:
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)] if k > 1 else items[:1]


def _word_candidates(pages: Sequence[Page], style: CaptionStyle, fps: int, n_frames: int) -> list[_Word]:
    if style.karaoke == "none" or style.highlight == style.colour:
        return []
    lit: list[tuple[int, int]] = []  # (frame the word turns, page)
    for i, page in enumerate(pages):
        if not page.karaoke:
            continue
        for token in (t for line in page.lines for t in line):
            if token.start_s is None:
                continue
            at_s = token.start_s
            if style.karaoke == "sweep" and token.end_s is not None:
                at_s = (token.start_s + token.end_s) / 2
            lit.append((cut_frame(max(at_s, page.start_s), fps), i))
    words = []
    for j, (f, i) in enumerate(lit):
        page = pages[i]
        steady_from = cut_frame(page.start_s + _fade_in_s(style), fps) + 1
        last = min(n_frames - 1, f + REACH_FRAMES, cut_frame(page.end_s, fps) - 2)
        crowded = any(abs(g - f) <= REACH_FRAMES for k, (g, _) in enumerate(lit) if k != j)
        if f - REACH_FRAMES < steady_from or last < f + 1 or crowded:
            continue
        words.append(_Word(i, f, f - REACH_FRAMES, last))
    return words


def _choose_words(words: list[_Word], keys: list[int], taken: set[int]) -> list[_Word]:
    """Up to ``SAMPLED_WORDS``, spread over the video, the cheapest to decode first, within the
    budget."""
    chosen: list[_Word] = []
    needed = set(taken)
    base = frames_decoded(sorted(needed), keys) if needed else 0
    for w in sorted(_spread(words, SAMPLED_WORDS * 3),
                    key=lambda w: frames_decoded([*needed, w.last], keys) - base):
        more = needed | set(range(w.first - 1, w.last + 1))
        cost = frames_decoded(sorted(more), keys)
        if cost > DECODE_BUDGET_FRAMES + base:
            continue
        chosen.append(w)
        needed = more
        if len(chosen) == SAMPLED_WORDS:
            break
    return sorted(chosen, key=lambda w: w.expected)


def _page_frame(span: tuple[int, int], keys: list[int], needed: set[int]) -> int:
    """The frame of ``span`` cheapest to decode along with ``needed`` (nearest the middle on ties)."""
    a, b = span
    base = frames_decoded(sorted(needed), keys) if needed else 0
    mid = (a + b) / 2
    candidates = {a, b, round(mid)} | {k for k in keys if a <= k <= b} | {f for f in needed if a <= f <= b}
    return min(candidates, key=lambda f: (frames_decoded(sorted(needed | {f}), keys) - base, abs(f - mid)))


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
    rgb = decoded.rgb(*box)
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


def _lit(decoded: _Decoded, clean_small: np.ndarray, near_text: np.ndarray,
         box: tuple[int, int, int, int], style: CaptionStyle,
         size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of the pixels of ``box`` near the text: those nearer to the highlight colour than to the
    text colour; those of the highlight colour where the caption-free picture had nothing of
    it; those of the text colour (nearer to it than to the highlight)."""
    rgb = decoded.rgb(*box)
    highlight, base = rgb_of(style.highlight), rgb_of(style.colour)
    to_highlight, to_base = _distance(rgb, highlight), _distance(rgb, base)
    nearer = near_text & (to_highlight + COLOUR_MARGIN / 2 < to_base)
    lit = nearer & _of_colour(rgb, clean_small, box, size, highlight)
    unlit = near_text & (to_base + COLOUR_MARGIN / 2 < to_highlight) & (to_base <= COLOUR_TOLERANCE)
    return nearer, lit, unlit


def _lit_frame(nearer: dict[int, np.ndarray], turned: np.ndarray, word: _Word) -> int | None:
    """The first frame of the word's window where at least half of ``turned`` (the pixels of the
    text colour before the window and of the highlight colour at its end: the word's, as no
    other word turns in the window and a picture moving under the text was not of the text's
    colour) is nearer to the highlight than to the text colour (an encoder may take a few frames
    to reach the new colour exactly); None: fewer than ``MIN_FILL_PIXELS`` turn."""
    if turned.sum() < MIN_FILL_PIXELS:
        return None
    for f in range(word.first, word.last + 1):
        if (nearer[f] & turned).sum() * 2 >= turned.sum():
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
    pages = [p for p in layout(captions, style, size) if cut_frame(p.start_s, fps) < n_frames]
    keys = _keyframe_numbers(video, fps)
    sampled = _spread(list(range(len(pages))), SAMPLED_PAGES)
    page_frames: dict[int, int] = {}
    needed: set[int] = set()
    for i in sampled:
        a, b = _steady_span(pages[i], style, fps)
        f = _page_frame((min(a, n_frames - 1), min(b, n_frames - 1)), keys, needed)
        page_frames[i] = f
        needed.add(f)
    words = _choose_words(_word_candidates(pages, style, fps, n_frames), keys, needed)
    for w in words:
        needed.update(range(w.first - 1, w.last + 1))

    area = safe_area(size)
    masks: dict[int, np.ndarray] = {}
    nearer: dict[tuple[int, int], np.ndarray] = {}  # (word, frame): pixels nearer the highlight
    turned: dict[int, np.ndarray] = {}  # word: its pixels that turned over its window
    contrasts: list[float] = []
    inside = total = 0
    word_boxes: dict[int, tuple[tuple[int, int, int, int], np.ndarray] | None] = {}
    page_of_frame = {f: i for i, f in page_frames.items()}
    pad = metrics(style, size).pad_px
    for n, decoded in _decode(video, needed, fps, (tw, th)):
        clean = clean_frames[n]
        windows = [w for w in words if w.first - 1 <= n <= w.last]
        if n in page_of_frame or any(n in (w.first - 1, w.expected) for w in windows):
            masks[n] = text_mask(decoded.small, clean)
        if n in page_of_frame and masks[n].sum() >= MIN_TEXT_PIXELS:
            k, m = _footprint_inside(masks[n], size, area)
            inside, total = inside + k, total + m
            c = _contrast(decoded, clean, masks[n], style, size)
            if c is not None:
                contrasts.append(c)
        for w in windows:
            if n == w.first - 1:  # where the page's text is, from the window's first frame
                near = _dilate(masks[n], 1)
                box = _full_box(near, size, pad)
                word_boxes[w.expected] = (box, _mask_over(near, box, size)) if box else None
            if (where := word_boxes[w.expected]) is not None:
                nearer[w.expected, n], lit, unlit = _lit(decoded, clean, where[1], where[0], style, size)
                if n == w.first - 1:
                    turned[w.expected] = unlit & ~lit
                elif n == w.last:
                    turned[w.expected] &= lit
    found = [i for i, f in page_frames.items() if masks.get(f) is not None
             and masks[f].sum() >= MIN_TEXT_PIXELS]
    errors = []
    for w in words:
        frames = range(w.first - 1, w.last + 1)
        at = _lit_frame({f: nearer[w.expected, f] for f in frames}, turned[w.expected], w) \
            if all((w.expected, f) in nearer for f in frames) else None
        errors.append(REACH_FRAMES + 1 if at is None else at - w.expected)
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
        frames_decoded=frames_decoded(sorted(needed), keys) if needed else 0,
        measure_s=round(time.perf_counter() - started, 3),
    )
