"""Caption quality measured from the output (video_assets/media/caption_quality.py) and its
non-blocking check (assets/quality.py): videos made here with the real ffmpeg, a synthetic
background burned with ``subtitles.ass_document`` through the ``ass`` filter and encoded with the
product's x264 settings, the caption-free copy scaled from the same background as
``compose.FramesTap`` scales it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetCheckSeverity

from video_assets.assets.quality import BARS, CAPTIONS_BAR, caption_metrics, check_results
from video_assets.captions import Caption, CaptionStyle, CaptionWord, caption
from video_assets.media.caption_quality import (
    DECODE_BUDGET_FRAMES,
    contrast_ratio,
    keyframe_numbers,
    measure_captions,
    relative_luminance,
)
from video_assets.media.compose import ComposeSettings, FramesTap, x264_options
from video_assets.media.ffmpeg_bin import run_ffmpeg
from video_assets.media.quality import read_frames
from video_assets.media.subtitles import PRESETS, ass_document
from video_assets.schemas import QualityMetric, QualityReport

FPS = 30
SIZE = (540, 960)
TAP = FramesTap(Path()).size
BACKGROUNDS = {"busy": "testsrc2=s={w}x{h}:r={fps}:d={d}",  # colour bars, moving lines, noise
               "grey": "color=c=0x7a7a7a:s={w}x{h}:r={fps}:d={d}",
               # the same, grey and darker: nothing of the text's colours (OCR)
               "dim": "testsrc2=s={w}x{h}:r={fps}:d={d},hue=s=0,lutrgb=r=val*0.6:g=val*0.6:b=val*0.6"}
WORDS = "Sing every word right now"


def render(folder: Path, name: str, doc: str | None, size: tuple[int, int], duration_s: float,
           background: str = "busy") -> tuple[Path, np.ndarray]:
    """``name``.mp4: the background with ``doc`` (an ASS script; None: nothing) burned in by
    ffmpeg's ``ass`` filter, encoded as compositions are (x264 veryfast, CRF 20, yuv420p), and
    the caption-free copy of the same frames at the tap's size (bilinear, rgb24)."""
    w, h = size
    source = BACKGROUNDS[background].format(w=w, h=h, fps=FPS, d=duration_s)
    burn = "null"
    if doc is not None:
        ass = folder / f"{name}.ass"
        ass.write_text(doc, encoding="utf-8")
        burn = f"ass=filename='{ass}'"
    video, copy = folder / f"{name}.mp4", folder / f"{name}.rgb"
    x264 = x264_options(ComposeSettings(width=w, height=h, fps=FPS))
    run_ffmpeg(["-y", "-f", "lavfi", "-i", source, "-filter_complex",
                f"[0]split[a][b];[a]{burn},format=yuv420p[v];"
                f"[b]scale={TAP[0]}:{TAP[1]}:flags=bilinear,format=rgb24[t]",
                "-map", "[v]", "-c:v", str(x264["c:v"]), "-preset", str(x264["preset:v"]),
                "-crf", str(x264["crf:v"]), "-pix_fmt", "yuv420p", str(video),
                "-map", "[t]", "-f", "rawvideo", str(copy)],
               what="rendering a captioned test video", media_s=duration_s)
    return video, np.asarray(read_frames(copy, *TAP))


def karaoke_line(start_s: float = 0.2, end_s: float = 3.4, text: str = WORDS,
                 first_s: float = 0.3) -> Caption:
    """The words 0.5 s (15 frames) apart, the first ``first_s`` in."""
    words = [CaptionWord(start_s=start_s + first_s + 0.5 * i, end_s=start_s + first_s + 0.4 + 0.5 * i,
                         text=t) for i, t in enumerate(text.split())]
    return Caption(start_s=start_s, end_s=end_s, text=text, words=words)


def style_of(preset: str, **overrides) -> CaptionStyle:
    return CaptionStyle(**{**PRESETS[preset].model_dump(), **overrides})


def test_wcag_contrast_of_black_on_white_is_21_and_of_a_colour_on_itself_1():
    white, black = relative_luminance(np.array([255, 255, 255])), relative_luminance(np.array([0, 0, 0]))
    assert float(contrast_ratio(white, black)) == pytest.approx(21.0, abs=1e-3)
    grey = relative_luminance(np.array([119, 119, 119]))  # #777777 on white: WCAG's 4.48
    assert float(contrast_ratio(white, grey)) == pytest.approx(4.48, abs=0.01)
    assert float(contrast_ratio(grey, grey)) == 1.0


def test_burned_captions_are_found_on_every_page_and_at_every_word(tmp_path):
    caps = [karaoke_line(0.2, 3.4), caption(3.4, 5.0, text="And the second line")]
    style = PRESETS["karaoke"]
    video, clean = render(tmp_path, "found", ass_document(caps, style, SIZE), SIZE, 5.0)
    m = measure_captions(video, clean, caps, style, SIZE, FPS)
    assert m.pages_sampled == 2 and m.captions_present == 1.0
    assert m.words_sampled >= 3 and m.words_without_caption == 0


def test_captions_missing_from_the_video_are_counted_missing(tmp_path):
    """The same measurement on a video where only the first line was burned."""
    caps = [karaoke_line(0.2, 3.4), karaoke_line(3.4, 6.6)]
    style = PRESETS["karaoke"]
    video, clean = render(tmp_path, "half", ass_document(caps[:1], style, SIZE), SIZE, 6.6)
    m = measure_captions(video, clean, caps, style, SIZE, FPS)
    assert m.pages_sampled == 2 and m.captions_present == 0.5
    assert m.words_without_caption >= 3  # every sampled word of the second line


def test_a_video_without_text_shows_no_text(tmp_path):
    """Encoder noise on a busy moving picture is not taken for text."""
    caps = [karaoke_line(0.2, 3.4)]
    video, clean = render(tmp_path, "none", None, SIZE, 3.4)
    m = measure_captions(video, clean, caps, PRESETS["karaoke"], SIZE, FPS)
    assert m.captions_present == 0.0 and m.words_without_caption == m.words_sampled > 0


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_stay_inside_the_safe_area(preset, tmp_path):
    long = ("Every single word of this rather long line has to stay inside the safe area of the "
            "frame")
    caps = [caption(0.0, 2.0, text=long)]
    style = PRESETS[preset]
    video, clean = render(tmp_path, preset, ass_document(caps, style, SIZE), SIZE, 2.0)
    m = measure_captions(video, clean, caps, style, SIZE, FPS)
    assert m.captions_present == 1.0 and m.caption_safe_area == 1.0


def test_a_caption_placed_outside_the_safe_area_fails(tmp_path):
    """9:16 keeps the bottom 20 % clear (the apps' own caption): the line is moved to the bottom
    edge with ``\\pos`` (its script otherwise as rendered)."""
    caps = [caption(0.0, 2.0, text="Down where the app writes")]
    style = PRESETS["karaoke"]
    doc = ass_document(caps, style, SIZE)
    assert "{\\fnDejaVu Sans" in doc
    doc = doc.replace("{\\fnDejaVu Sans", f"{{\\an2\\pos({SIZE[0] // 2},{SIZE[1] - 10})\\fnDejaVu Sans")
    video, clean = render(tmp_path, "outside", doc, SIZE, 2.0)
    m = measure_captions(video, clean, caps, style, SIZE, FPS)
    assert m.captions_present == 1.0
    assert m.caption_safe_area < 0.1, m.caption_safe_area
    check = {r.check_name: r for r in check_results(report_with(caption_metrics(m)))}[CAPTIONS_BAR]
    assert not check.passed and "caption_safe_area" in check.description


def test_grey_text_without_outline_on_grey_fails_the_contrast_bar(tmp_path):
    style = style_of("bold_pop", colour="#a0a0a0", highlight="#a0a0a0", outline=0.0, shadow=0.0,
                     karaoke="none", animation="none")
    caps = [caption(0.0, 2.0, text="Hard to read")]
    video, clean = render(tmp_path, "grey", ass_document(caps, style, SIZE), SIZE, 2.0, "grey")
    m = measure_captions(video, clean, caps, style, SIZE, FPS)
    assert m.captions_present == 1.0 and len(m.contrast_by_page) == 1  # found, and measured
    # #a0a0a0 on #7a7a7a: 1.57:1 by WCAG's formula
    assert m.caption_contrast_min == pytest.approx(1.57, abs=0.2)
    assert not next(x for x in caption_metrics(m) if x.metric == "caption_contrast_min").passed


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_pass_the_contrast_bar_on_a_busy_background_at_1080x1920(preset, tmp_path):
    size = (1080, 1920)
    caps = [karaoke_line(0.2, 2.4)]
    style = PRESETS[preset]
    video, clean = render(tmp_path, preset, ass_document(caps, style, size), size, 2.4)
    m = measure_captions(video, clean, caps, style, size, FPS)
    assert m.captions_present == 1.0 and m.contrast_by_page
    assert m.caption_contrast_min >= 4.5, m.contrast_by_page


def _late(doc: str, word_ms: int, late_ms: int) -> str:
    """``doc`` with the highlight of the word lit ``word_ms`` after its event's start moved."""
    tag = f"\\t({word_ms},{word_ms},"
    assert doc.count(tag) == 1
    return doc.replace(tag, f"\\t({word_ms + late_ms},{word_ms + late_ms},")


@pytest.mark.parametrize("preset", ["karaoke", "bold_pop"])
def test_highlights_on_their_word_times_are_within_a_frame(preset, tmp_path):
    caps = [karaoke_line()]
    style = PRESETS[preset]
    video, clean = render(tmp_path, "on_time", ass_document(caps, style, SIZE), SIZE, 3.4)
    m = measure_captions(video, clean, caps, style, SIZE, FPS)
    assert m.words_sampled >= 3
    assert m.highlight_error_max_frames is not None and m.highlight_error_max_frames <= 1


def test_a_highlight_three_frames_late_is_measured_three_frames_late(tmp_path):
    """The third word ("word", at 1.5 s: 1300 ms into its event) lit 100 ms (3 frames) late."""
    caps = [karaoke_line()]
    style = PRESETS["karaoke"]
    doc = _late(ass_document(caps, style, SIZE), 1300, 100)
    video, clean = render(tmp_path, "late", doc, SIZE, 3.4)
    m = measure_captions(video, clean, caps, style, SIZE, FPS)
    assert m.highlight_error_max_frames == 3.0
    assert sorted(m.highlight_errors_frames)[-1] == 3 and sorted(m.highlight_errors_frames)[-2] <= 1
    failed = [x.metric for x in caption_metrics(m) if not x.passed]
    assert failed == ["highlight_error_max_frames"]


def test_a_long_video_is_measured_from_a_bounded_sample(tmp_path):
    """30 lines over 45 s, x264's keyframes 250 frames apart (a frame costs the frames from its
    keyframe): the pages and words cheapest to reach are measured, within the decode budget."""
    caps = [karaoke_line(1.5 * i, 1.5 * i + 1.5, "Sing every word", 0.3 - 0.1 * (i % 2))
            for i in range(30)]
    style = PRESETS["karaoke"]
    video, clean = render(tmp_path, "long", ass_document(caps, style, SIZE), SIZE, 45.0)
    assert len(keyframe_numbers(video, FPS)) == 6
    m = measure_captions(video, clean, caps, style, SIZE, FPS)
    assert m.frames_decoded <= DECODE_BUDGET_FRAMES < len(clean) / 4
    assert m.pages_sampled >= 6 and m.captions_present == 1.0  # at least a page per keyframe
    assert m.words_sampled >= 6 and m.highlight_error_max_frames is not None \
        and m.highlight_error_max_frames <= 1


# --- the check --------------------------------------------------------------------------------

def report_with(extra: list[QualityMetric]) -> QualityReport:
    """A report whose other bars all pass (their metrics at 0 with a passing flag) plus ``extra``."""
    others = [QualityMetric(metric=name, value=0.0, threshold=1.0, passed=True)
              for bar in BARS if bar.name != CAPTIONS_BAR for name in bar.metrics]
    return QualityReport(job_id="j", measured_at=datetime.now(UTC),
                         metrics=[*others, *extra], container={}, n_frames=0, cut_frames=[],
                         cut_to_beat_ms=[], cut_to_boundary_ms=[], crossfade_centre_ms=[],
                         crossfades_unmeasurable=0, fade_black_ms=[], audio_offset_ms=0.0,
                         loudness_lufs=-14.0, source_loudness_lufs=-14.0, black_ratio=0.0,
                         frozen_ratio=0.0, clip_sharpness=[], clip_brightness=[], luma_mean=0.0)


def test_a_video_without_captions_passes_the_check_saying_no_captions():
    assert caption_metrics(None) == []
    results = {r.check_name: r for r in check_results(report_with(caption_metrics(None)))}
    check = results[CAPTIONS_BAR]
    assert check.passed and check.description == "no captions"
    assert all(r.passed for r in results.values())


def test_failing_captions_warn_without_blocking(tmp_path):
    """A page without its caption fails the bar as a warning (the video is still delivered)."""
    caps = [karaoke_line(0.2, 3.4), karaoke_line(3.4, 6.6)]
    style = PRESETS["karaoke"]
    video, clean = render(tmp_path, "warn", ass_document(caps[:1], style, SIZE), SIZE, 6.6)
    metrics = caption_metrics(measure_captions(video, clean, caps, style, SIZE, FPS))
    check = {r.check_name: r for r in check_results(report_with(metrics))}[CAPTIONS_BAR]
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert "captions_present = 0.5 (limit 1)" in check.description
    assert not next(b for b in BARS if b.name == CAPTIONS_BAR).blocking


@pytest.mark.parametrize("preset", ["karaoke", "bold_pop"])
def test_sweeping_highlights_pass_half_way_within_a_frame_of_their_middle(preset, tmp_path):
    """``sweep`` colours a word from its start until the next word's: measured where it is
    half-way."""
    caps = [karaoke_line()]
    style = style_of(preset, karaoke="sweep")
    video, clean = render(tmp_path, "sweep", ass_document(caps, style, SIZE), SIZE, 3.4)
    m = measure_captions(video, clean, caps, style, SIZE, FPS)
    assert m.words_sampled >= 3
    assert m.highlight_error_max_frames is not None and m.highlight_error_max_frames <= 1


def test_a_caption_free_copy_of_other_frames_is_refused(tmp_path):
    caps = [karaoke_line()]
    style = PRESETS["karaoke"]
    video, clean = render(tmp_path, "short", ass_document(caps, style, SIZE), SIZE, 3.4)
    with pytest.raises(ValueError, match="clean_frames: 101 frames .* of 102 frames; fix: "):
        measure_captions(video, clean[1:], caps, style, SIZE, FPS)


def test_a_chunked_composition_with_karaoke_lyrics_passes_the_captions_bar(tmp_path):
    """The product's own path: ``compose_chunked`` burns the lyrics in its chunks and writes the
    caption-free tap; measured from its output, every caption bar passes."""
    from tests.conftest import make_song
    from tests.media_helpers import pattern_clip
    from video_assets.media.chunks import compose_chunked
    from video_assets.media.compose import plan_segments
    from video_assets.media.subtitles import CaptionBurn

    edges_s = [0.0, 2.0, 4.0, 6.0]
    clips = [pattern_clip(tmp_path / f"c{i}.mp4", 2.0, f"{SIZE[0]}x{SIZE[1]}", look=i) for i in range(3)]
    song = make_song(tmp_path / "song.wav", edges_s[-1])
    segments = plan_segments(list(zip(edges_s, edges_s[1:], strict=False)), ["cut", "crossfade"], FPS, 8)
    caps = (karaoke_line(0.2, 3.2, "Sing every word tonight"),
            karaoke_line(3.2, 6.0, "And the next line too"))
    style = PRESETS["karaoke"]
    tap, out = FramesTap(tmp_path / "frames.rgb"), tmp_path / "final.mp4"
    compose_chunked(clips, [2.0] * 3, segments, song, out, ComposeSettings(width=SIZE[0], height=SIZE[1]),
                    frames=tap, captions=CaptionBurn(captions=caps, style=style))
    m = measure_captions(out, np.asarray(read_frames(tap.path, *tap.size)), caps, style, SIZE, FPS)
    assert m.pages_found == m.pages_sampled == 2 and m.words_sampled >= 4, m
    assert all(x.passed for x in caption_metrics(m)), caption_metrics(m)
