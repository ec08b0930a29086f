"""Captions burned by the real ffmpeg + libass (video_assets/media/subtitles.py): text only inside
the safe area in every preset and aspect, karaoke highlight on the word's frame, a window's ASS
burning the same frames as the whole document, wrapping by measured width, CJK and Arabic drawn
with real glyphs, and the SRT/WebVTT sidecars."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from video_assets.captions import Caption, CaptionStyle, CaptionWord, caption, parse_lrc
from video_assets.media.compose import cut_frame
from video_assets.media.ffmpeg_bin import ffmpeg_output
from video_assets.media.fonts import FontCoverageError, covering_face
from video_assets.media.subtitles import (
    PRESETS,
    ass_document,
    ass_for_window,
    layout,
    line_text,
    metrics,
    safe_area,
    srt_text,
    text_width_px,
    vtt_text,
)
from video_assets.schemas import ASPECT_SIZES

GREY = 128
FPS = 30
LONG = ("Every single word of this rather long line has to stay inside the safe area of the frame, "
        "whatever its aspect")
CJK = "我们一起唱歌吧直到天亮你好世界我们一起跳舞吧"
ARABIC = "مرحبا بالعالم نغني معا حتى الصباح"


def burn(doc: str, size: tuple[int, int], duration_s: float, tmp_path: Path,
         frames: tuple[int, int] | None = None, timeline_frame: int | None = None) -> np.ndarray:
    """The frames (n, h, w, 3) of a grey video with ``doc`` burned in by ffmpeg's ``ass`` filter;
    ``frames``: only [first, last) of them; ``timeline_frame``: the first frame carries the
    timestamp of that frame of the timeline while it is burned."""
    w, h = size
    path = tmp_path / f"captions-{abs(hash(doc))}.ass"
    path.write_text(doc, encoding="utf-8")
    chain = f"format=rgb24,ass=filename='{path}'"
    if timeline_frame is not None:
        chain = f"format=rgb24,settb=1/{FPS},setpts=N+{timeline_frame},ass=filename='{path}',setpts=N"
    if frames:
        chain += f",trim=start_frame={frames[0]}:end_frame={frames[1]}"
    raw = ffmpeg_output(["-f", "lavfi", "-i", f"color=c=0x808080:s={w}x{h}:r={FPS}:d={duration_s}",
                         "-vf", chain, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
                        what="burning captions for a test", media_s=duration_s)
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def ink(frame: np.ndarray) -> np.ndarray:
    """Where the captions drew: pixels that are not the grey background."""
    return np.abs(frame.astype(int) - GREY).max(axis=2) > 6


def near(frame: np.ndarray, hex_rgb: str, tol: int = 40) -> np.ndarray:
    rgb = np.array([int(hex_rgb[i:i + 2], 16) for i in (1, 3, 5)])
    return np.abs(frame.astype(int) - rgb).max(axis=2) < tol


def _needs(text: str, package: str) -> None:
    try:
        covering_face(text, "DejaVu Sans")
    except FontCoverageError:
        pytest.skip(f"no installed font covers {text[:8]!r}; fix: apt-get install {package} "
                    "(.ci/run installs it)")


@pytest.mark.parametrize("aspect", list(ASPECT_SIZES))
@pytest.mark.parametrize("preset", list(PRESETS))
def test_text_lands_inside_the_safe_area_and_only_there(preset, aspect, tmp_path):
    size = ASPECT_SIZES[aspect]
    doc = ass_document([caption(0.0, 2.0, text=LONG)], PRESETS[preset], size)
    frame = burn(doc, size, 1.0, tmp_path, frames=(15, 16))[0]  # 0.5 s: animations are over
    ys, xs = np.nonzero(ink(frame))
    area = safe_area(size)
    assert len(xs) > 2000, "no caption was drawn"
    assert area.x0 <= xs.min() and xs.max() < area.x1, (xs.min(), xs.max(), area)
    assert area.y0 <= ys.min() and ys.max() < area.y1, (ys.min(), ys.max(), area)


@pytest.mark.parametrize(("text", "package"), [(CJK, "fonts-noto-cjk"), (ARABIC, "fonts-dejavu-core"),
                                               ("Ça déjà vu 🔥🎵 naïve façade", "fonts-symbola")])
def test_other_scripts_stay_inside_the_safe_area(text, package, tmp_path):
    _needs(text, package)
    size = ASPECT_SIZES["9:16"]
    doc = ass_document([caption(0.0, 2.0, text=text)], PRESETS["bold_pop"], size)
    frame = burn(doc, size, 1.0, tmp_path, frames=(15, 16))[0]
    ys, xs = np.nonzero(ink(frame))
    area = safe_area(size)
    assert len(xs) > 2000
    assert area.x0 <= xs.min() and xs.max() < area.x1 and area.y0 <= ys.min() and ys.max() < area.y1


def test_karaoke_highlights_each_word_on_its_frame(tmp_path):
    size = (270, 480)
    times = [0.5, 1.03, 1.47, 2.2]
    words = [CaptionWord(start_s=t, end_s=t + 0.3, text=w)
             for t, w in zip(times, ["Sing", "every", "word", "now"], strict=True)]
    style = PRESETS["karaoke"]
    doc = ass_document([Caption(start_s=0.2, end_s=2.8, text="Sing every word now", words=words)],
                       style, size)
    frames = burn(doc, size, 3.0, tmp_path)
    lit = np.array([near(f, style.highlight).sum() for f in frames])
    assert lit[cut_frame(0.5) - 1] == 0, "a word was lit before it was sung"
    for t in times:
        f = cut_frame(t, FPS)
        assert lit[f] > lit[f - 1] + 20, f"the word at {t} s is not lit on frame {f}"
        assert lit[f - 1] == lit[f - 2], f"something changed the frame before the word at {t} s"


def test_arabic_karaoke_lights_the_first_word_on_the_right(tmp_path):
    _needs(ARABIC, "fonts-dejavu-core")
    size = (540, 960)
    words = [CaptionWord(start_s=0.2 + 0.4 * i, end_s=0.6 + 0.4 * i, text=w)
             for i, w in enumerate(["مرحبا", "بالعالم", "نغني"])]
    style = CaptionStyle(**{**PRESETS["karaoke"].model_dump(), "animation": "none"})
    doc = ass_document([Caption(start_s=0.0, end_s=1.6, text=" ".join(w.text for w in words),
                                words=words)], style, size)
    frame = burn(doc, size, 1.0, tmp_path, frames=(12, 13))[0]  # 0.4 s: the first word only
    lit_x = np.nonzero(near(frame, style.highlight))[1]
    ink_x = np.nonzero(ink(frame))[1]
    assert len(lit_x) > 50
    assert lit_x.min() > np.median(ink_x), "the first word sung is not at the right"


def test_a_windows_ass_burns_the_same_frames_as_the_whole_document(tmp_path):
    size = (270, 480)
    caps = parse_lrc("[00:00.30]<00:00.30>Over <00:00.80>the <00:01.20>line <00:02.40>\n"
                     "[00:02.40]<00:02.40>and <00:02.70>on\n", duration_s=3.0)
    for preset in ("karaoke", "bold_pop"):  # fade, and pop-in (a scale animation)
        style = PRESETS[preset]
        whole = burn(ass_document(caps, style, size), size, 3.0, tmp_path)
        pieces = [burn(ass_for_window(caps, style, size, a, a + 1.0), size, 1.0, tmp_path)
                  for a in (0.0, 1.0, 2.0)]
        assert np.array_equal(np.concatenate(pieces), whole), preset


def test_an_unshifted_window_burned_at_timeline_times_matches_the_whole_document(tmp_path):
    size = (270, 480)
    caps = parse_lrc("[00:00.30]<00:00.30>Over <00:00.80>the <00:01.04>line <00:02.40>\n"
                     "[00:02.40]<00:02.40>and <00:02.70>on\n", duration_s=3.0)
    cuts = [0, 31, 73, 90]  # windows starting on frames, not on centiseconds, one in a pop-in
    for preset in ("karaoke", "bold_pop"):
        style = PRESETS[preset]
        whole = burn(ass_document(caps, style, size), size, 3.0, tmp_path)
        pieces = [burn(ass_for_window(caps, style, size, a / FPS, b / FPS, shift=False), size,
                       (b - a) / FPS, tmp_path, timeline_frame=a) for a, b in pairwise(cuts)]
        assert np.array_equal(np.concatenate(pieces), whole), preset


def test_a_window_holds_only_its_events_shifted_to_start_at_zero():
    caps = [caption(0.0, 1.0, text="before"), caption(1.0, 3.5, text="across"),
            caption(3.5, 6.0, text="after")]
    style = PRESETS["minimal"]
    text = ass_for_window(caps, style, (1080, 1920), 2.0, 3.0)
    events = [line for line in text.splitlines() if line.startswith("Dialogue:")]
    assert len(events) == 1 and events[0].endswith("across")
    assert events[0].startswith("Dialogue: 0,0:00:00.00,0:00:01.00,")
    assert text == ass_for_window(list(caps), style, (1080, 1920), 2.0, 3.0)


@pytest.mark.parametrize("aspect", list(ASPECT_SIZES))
def test_wrapping_keeps_every_line_within_the_measured_width(aspect):
    size = ASPECT_SIZES[aspect]
    for preset, style in PRESETS.items():
        m = metrics(style, size)
        for page in layout([caption(0, 9, text=LONG + " Supercalifragilisticexpialidociousness" * 2)],
                           style, size):
            for line in page.lines:
                shown = line_text(line)
                assert text_width_px(shown, page.face, m.font_px) <= m.text_width_px, (preset, shown)
                assert len(shown) <= style.max_chars or len(line) == 1
            assert len(page.lines) <= style.max_lines


def test_cjk_wraps_between_characters():
    _needs(CJK, "fonts-noto-cjk")
    style = CaptionStyle(**{**PRESETS["karaoke"].model_dump(), "max_chars": 8, "max_lines": 4})
    pages = layout([caption(0, 4, text=CJK)], style, ASPECT_SIZES["9:16"])
    lines = [line_text(line) for page in pages for line in page.lines]
    assert "".join(lines) == CJK  # no space put between CJK characters
    assert len(lines) == 3 and all(len(line) <= 8 for line in lines)


def test_a_line_too_long_for_one_page_is_shown_page_by_page_at_its_word_times():
    words = [CaptionWord(start_s=i * 0.5, end_s=i * 0.5 + 0.4, text=f"word{i}") for i in range(12)]
    style = CaptionStyle(**{**PRESETS["karaoke"].model_dump(), "max_chars": 12, "max_lines": 1})
    cap = Caption(start_s=0.0, end_s=6.5, text=" ".join(w.text for w in words), words=words)
    pages = layout([cap], style, ASPECT_SIZES["16:9"])
    assert [p.start_s for p in pages] == [p.lines[0][0].start_s for p in pages]
    assert pages[0].start_s == 0.0 and pages[-1].end_s == 6.5
    assert all(a.end_s == b.start_s for a, b in zip(pages, pages[1:], strict=False))


def _glyph_masks(texts: list[str], tmp_path: Path, *, unchecked: bool = False) -> list[np.ndarray]:
    """Each text burned alone (0.2 s each, a frame from the middle), cropped to its ink.
    ``unchecked``: the texts go into the script as they are, in DejaVu Sans, unchecked."""
    size = (360, 640)
    style = CaptionStyle(**{**PRESETS["minimal"].model_dump(), "size": 0.08, "animation": "none",
                            "outline": 0.0, "shadow": 0.0})
    shown = [f"Q{i}" for i in range(len(texts))] if unchecked else texts
    caps = [caption(i * 0.2, (i + 1) * 0.2, text=t) for i, t in enumerate(shown)]  # 6 frames each
    doc = ass_document(caps, style, size)
    if unchecked:
        for placeholder, text in zip(shown, texts, strict=True):
            doc = doc.replace("}" + placeholder + "\n", "}" + text + "\n")
    frames = burn(doc, size, len(texts) * 0.2, tmp_path)
    masks = []
    for frame in frames[3::6]:
        ys, xs = np.nonzero(ink(frame))
        assert len(xs) > 30, "nothing was drawn"
        masks.append(ink(frame)[ys.min():ys.max() + 1, xs.min():xs.max() + 1])
    return masks


def _distinct(masks: list[np.ndarray]) -> bool:
    """No two masks are the same picture (missing glyphs are all the same empty box)."""
    for i, a in enumerate(masks):
        for b in masks[i + 1:]:
            if a.shape == b.shape and (a != b).mean() < 0.1:
                return False
    return True


@pytest.mark.parametrize(("chars", "package"), [("你好世界", "fonts-noto-cjk"),
                                                ("مرعك", "fonts-dejavu-core"),
                                                ("🔥🎵🎤", "fonts-symbola")])
def test_scripts_render_with_real_glyphs(chars, package, tmp_path):
    _needs(chars, package)
    assert _distinct(_glyph_masks(list(chars), tmp_path))


def test_characters_no_font_has_draw_the_same_box(tmp_path):
    """The check above can fail: characters without a glyph all draw the font's empty box."""
    masks = _glyph_masks(["\U0001e900", "\U0001e901", "\U0001e902"], tmp_path, unchecked=True)
    assert not _distinct(masks)


def test_srt_text_is_exact():
    caps = [caption(61.5, 63.25, text="Second"), caption(0.0, 70.0, text="First  one"),
            caption(3725.001, 3726.0, text="Hour")]
    assert srt_text(caps) == ("1\n00:00:00,000 --> 00:01:01,500\nFirst one\n\n"
                              "2\n00:01:01,500 --> 00:01:03,250\nSecond\n\n"
                              "3\n01:02:05,001 --> 01:02:06,000\nHour\n\n")


def test_vtt_text_is_exact_and_escaped():
    caps = [caption(1.0, 2.5, text="Rock & roll <3 --> forever"), caption(2.5, 4.0, text="你好")]
    assert vtt_text(caps) == ("WEBVTT\n\n00:00:01.000 --> 00:00:02.500\n"
                              "Rock &amp; roll &lt;3 --&gt; forever\n\n"
                              "00:00:02.500 --> 00:00:04.000\n你好\n\n")


def test_a_window_starting_after_a_centisecond_shows_a_running_line_on_its_first_frame(tmp_path):
    """Frame 44 at 30 fps is at 1.4667 s, which rounds up to 1.47: the window's event must start
    no later than its first frame, or that frame loses the line the whole document shows."""
    size = (270, 480)
    caps = [caption(0.2, 2.0, text="Still on screen")]
    style = PRESETS["minimal"]
    whole = burn(ass_document(caps, style, size), size, 2.0, tmp_path)
    pieces = [burn(ass_for_window(caps, style, size, a / FPS, b / FPS, shift=False), size,
                   (b - a) / FPS, tmp_path, timeline_frame=a) for a, b in pairwise([0, 44, 60])]
    assert ink(whole[44]).any()
    assert np.array_equal(np.concatenate(pieces), whole)
