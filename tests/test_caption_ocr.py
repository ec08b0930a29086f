"""Burned captions read back from the output: the words of a karaoke line in each preset and
aspect by OCR (Debian's tesseract, run as a process: ``--psm 6`` on the text cut out of the
decoded frame, binarised), accented Latin with the French data; for CJK, Arabic and emoji (no OCR
data needed) the glyphs drawn are compared with the same text drawn by Pillow in the face
``fonts.covering_face`` picks, and with the font's .notdef boxes: the burned text must look like
the glyphs, not like the boxes.

Each video is made as in tests/test_caption_quality.py (the ``ass`` filter over testsrc2 made grey
and darker, x264 as compositions encode), one frame is decoded at the caption's time, and the
text is what differs from the same background frame without captions and has one of the style's
text colours."""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from tests.test_caption_quality import BACKGROUNDS, FPS, karaoke_line, render
from video_assets.captions import Caption, caption
from video_assets.media.ffmpeg_bin import ffmpeg_output
from video_assets.media.fonts import FontCoverageError, covering_face
from video_assets.media.subtitles import PRESETS, ass_document, layout, line_text, metrics, pillow_font
from video_assets.schemas import ASPECT_SIZES

TESSERACT = shutil.which("tesseract")
LYRIC = "Sing every word of this song tonight"
AT_S = 2.0  # the frame read: four words lit, three not yet
# testsrc2 made grey and darker: moving, detailed, but nothing of the text's colours (on its
# bright colour bars a yellow word over the yellow bar is legible only by its outline, and
# cutting the fill out by colour loses it)
BACKGROUND = "dim"

needs_tesseract = pytest.mark.skipif(
    TESSERACT is None, reason="tesseract is not installed; fix: apt-get install tesseract-ocr "
                              "tesseract-ocr-eng tesseract-ocr-fra (.ci/run installs them)")


def frame_at(video: Path, n: int, size: tuple[int, int]) -> np.ndarray:
    """Frame ``n`` of ``video``, decoded, rgb24."""
    w, h = size
    raw = ffmpeg_output(["-i", str(video), "-vf", f"select=eq(n\\,{n})", "-frames:v", "1",
                         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
                        what="decoding a frame for OCR", media_s=n / FPS + 1)
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


def background_at(n: int, size: tuple[int, int], duration_s: float) -> np.ndarray:
    """Frame ``n`` of the test background as it was before captions and encoding."""
    w, h = size
    raw = ffmpeg_output(["-f", "lavfi", "-i", BACKGROUNDS[BACKGROUND].format(w=w, h=h, fps=FPS, d=duration_s),
                         "-vf", f"select=eq(n\\,{n})", "-frames:v", "1", "-f", "rawvideo",
                         "-pix_fmt", "rgb24", "pipe:"], what="rendering a background frame",
                        media_s=duration_s)
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


def text_pixels(frame: np.ndarray, clean: np.ndarray, colours: list[str]) -> np.ndarray:
    """Pixels the captions changed that have one of ``colours`` (the text's fill)."""
    changed = np.abs(frame.astype(int) - clean.astype(int)).max(axis=2) > 60
    near = np.zeros(frame.shape[:2], bool)
    for hex_rgb in colours:
        rgb = np.array([int(hex_rgb[i:i + 2], 16) for i in (1, 3, 5)])
        near |= np.abs(frame.astype(int) - rgb).max(axis=2) <= 90
    return changed & near


def ocr(mask: np.ndarray, tmp_path: Path, lang: str = "eng") -> str:
    """tesseract's reading of the text pixels: cut out with a margin, black on white."""
    ys, xs = np.nonzero(mask)
    assert len(xs) > 100, "no text was found in the frame"
    pad = 24
    y0, y1 = max(0, ys.min() - pad), min(mask.shape[0], ys.max() + pad)
    x0, x1 = max(0, xs.min() - pad), min(mask.shape[1], xs.max() + pad)
    picture = np.where(mask[y0:y1, x0:x1], 0, 255).astype(np.uint8)
    path = tmp_path / "text.png"
    Image.fromarray(picture).save(path)
    assert TESSERACT is not None
    out = subprocess.run([TESSERACT, str(path), "stdout", "-l", lang, "--psm", "6"],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


def words_of(text: str) -> list[str]:
    return re.findall(r"\w+", unicodedata.normalize("NFC", text).lower())


def match_ratio(expected: str, read: str) -> tuple[float, list[str]]:
    """The share of ``expected``'s words that were read (each read word counts once), and the
    words missed."""
    want, got = Counter(words_of(expected)), Counter(words_of(read))
    missed = list((want - got).elements())
    return 1 - len(missed) / sum(want.values()), missed


def shown_at(caps: list[Caption], preset: str, size: tuple[int, int], at_s: float) -> str:
    """The words on screen at ``at_s``: those of the page shown then (``subtitles.layout``)."""
    page = next(p for p in layout(caps, PRESETS[preset], size) if p.start_s <= at_s < p.end_s)
    return " ".join(line_text(line) for line in page.lines)


def burned_text(tmp_path: Path, cap: Caption, preset: str, size: tuple[int, int], at_s: float,
                duration_s: float) -> np.ndarray:
    style = PRESETS[preset]
    video, _ = render(tmp_path, preset, ass_document([cap], style, size), size, duration_s, BACKGROUND)
    n = round(at_s * FPS)
    return text_pixels(frame_at(video, n, size), background_at(n, size, duration_s),
                       [style.colour, style.highlight])


@needs_tesseract
@pytest.mark.parametrize("aspect", list(ASPECT_SIZES))
@pytest.mark.parametrize("preset", list(PRESETS))
def test_karaoke_words_are_read_back_in_every_preset_and_aspect(preset, aspect, tmp_path):
    cap, size = karaoke_line(0.2, 3.2, LYRIC), ASPECT_SIZES[aspect]
    mask = burned_text(tmp_path, cap, preset, size, AT_S, 3.2)
    read = ocr(mask, tmp_path)
    shown = shown_at([cap], preset, size, AT_S)  # a line too long for one page shows in parts
    ratio, missed = match_ratio(shown, read)
    assert ratio >= 0.8, f"read {read!r}: missed {missed}"


@needs_tesseract
def test_latin_with_accents_is_read_back_with_its_accents(tmp_path):
    text = "Café déjà vu à côté"
    mask = burned_text(tmp_path, caption(0.0, 1.0, text=text), "karaoke", ASPECT_SIZES["9:16"],
                       0.5, 1.0)
    read = ocr(mask, tmp_path, "fra")
    ratio, missed = match_ratio(text, read)
    assert ratio >= 0.8, f"read {read!r}: missed {missed}"


# --- scripts without OCR data: glyphs, not boxes ------------------------------------------------

def _ink(mask: np.ndarray, shape: tuple[int, int] = (48, 240)) -> np.ndarray:
    """``mask`` cut to its ink, blurred (2 px) and scaled to ``shape`` (rows, columns): a 1 px
    difference in where a stroke falls or how thick it is changes little."""
    ys, xs = np.nonzero(mask)
    assert len(xs) > 30, "nothing was drawn"
    cut = Image.fromarray((mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1] * 255).astype(np.uint8))
    cut = cut.filter(ImageFilter.GaussianBlur(2)).resize(shape[::-1], Image.Resampling.BOX)
    return np.asarray(cut, np.float32)


def _likeness(a: np.ndarray, b: np.ndarray) -> float:
    """The correlation of two inks (1: the same shapes; about 0 or below: unrelated)."""
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _drawn(text: str, size: tuple[int, int], style_font_px: int, face) -> np.ndarray:
    """``text`` drawn by Pillow (raqm shaping, as libass) in ``face`` at the ASS size."""
    font = pillow_font(face, style_font_px)
    canvas = Image.new("L", (size[0] * 2, style_font_px * 3), 0)
    ImageDraw.Draw(canvas).text((10, style_font_px // 2), text, fill=255, font=font)
    return np.asarray(canvas) > 127


NOTDEF = "\U000F0000"  # a private-use code point: no face has it; every face draws its .notdef


@pytest.mark.parametrize(("text", "package"), [("你好世界", "fonts-noto-cjk"),
                                                ("مرحبا بالعالم", "fonts-dejavu-core"),
                                                ("🔥🎵🎤", "fonts-symbola")])
def test_other_scripts_are_burned_as_their_glyphs_not_as_boxes(text, package, tmp_path):
    """The burned text looks like the text drawn by Pillow in the face ``covering_face`` picks
    (the same outlines) and not like as many .notdef boxes of that face."""
    try:
        face = covering_face(text, "DejaVu Sans")
    except FontCoverageError:
        pytest.skip(f"no installed font covers {text!r}; fix: apt-get install {package}")
    size = ASPECT_SIZES["16:9"]
    style = PRESETS["minimal"]
    burned = _ink(burned_text(tmp_path, caption(0.0, 1.0, text=text), "minimal", size, 0.5, 1.0))
    font_px = metrics(style, size).font_px
    glyphs = _ink(_drawn(text, size, font_px, face))
    boxes = _ink(_drawn(" ".join(NOTDEF * len(w) for w in text.split()), size, font_px, face))
    like_glyphs, like_boxes = _likeness(burned, glyphs), _likeness(burned, boxes)
    # measured: CJK 0.87 / -0.22, Arabic 0.98 / -0.27, emoji 0.97 / -0.03
    assert like_glyphs >= 0.7 and like_boxes < 0.4, (like_glyphs, like_boxes)


def test_characters_no_font_has_are_burned_as_boxes_and_the_check_sees_it(tmp_path):
    """The check above can fail: Adlam letters, which no installed font has, put into the script
    unchecked, burn as .notdef boxes, and look like boxes rather than like their glyphs."""
    text, stand_in = "\U0001e900\U0001e901\U0001e902\U0001e903", "QQQQ"
    size, style = ASPECT_SIZES["16:9"], PRESETS["minimal"]
    doc = ass_document([caption(0.0, 1.0, text=stand_in)], style, size)
    assert doc.count("}" + stand_in + "\n") == 1
    doc = doc.replace("}" + stand_in + "\n", "}" + text + "\n")
    video, _ = render(tmp_path, "adlam", doc, size, 1.0, BACKGROUND)
    n = round(0.5 * FPS)
    burned = _ink(text_pixels(frame_at(video, n, size), background_at(n, size, 1.0), [style.colour]))
    face = covering_face(stand_in, "DejaVu Sans")
    font_px = metrics(style, size).font_px
    boxes = _ink(_drawn(NOTDEF * len(text), size, font_px, face))
    assert _likeness(burned, boxes) >= 0.7, _likeness(burned, boxes)  # measured: 0.95
