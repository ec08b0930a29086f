"""Captions burned into the chunked composition (media/chunks.py with media/subtitles.py): text
where and when the captions say and nowhere else, each chunk burning its own window on timeline
times so that the frames are those of one burn of the whole document, the quality tap left
caption-free, chunk keys that change only where a caption shows, and the soft subtitle track."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import make_song
from tests.media_helpers import pattern_clip
from tests.test_incremental_compose import DirCache
from video_assets.captions import Caption, CaptionStyle, CaptionWord, caption
from video_assets.media import chunks as chunks_module
from video_assets.media import ffmpeg_bin
from video_assets.media.chunks import ChunkedRender, compose_chunked, plan_encodes
from video_assets.media.compose import ComposeSettings, FramesTap, plan_segments
from video_assets.media.ffmpeg_bin import FfmpegError, ffmpeg_exe, ffmpeg_output
from video_assets.media.quality import read_frames
from video_assets.media.subtitles import (
    PRESETS,
    CaptionBurn,
    ass_document,
    ass_for_window,
    burn_windows,
    safe_area,
    srt_text,
)
from video_assets.store import sha256_file

SIZE = (180, 320)
FPS = 30
LOSSLESS = ComposeSettings(width=SIZE[0], height=SIZE[1], crf=0)
EDGES_S = [0.0, 1.5, 3.0, 4.5, 6.0]
KINDS = ["cut", "crossfade", "cut"]  # encodes [0,45) [45,82) [82,98) [98,135) [135,180)
STILL = CaptionStyle(**{**PRESETS["karaoke"].model_dump(), "animation": "none"})
ANIMATED = {"karaoke": PRESETS["karaoke"],  # fades, words lit at once
            "bold_pop": PRESETS["bold_pop"],  # a pop-in (a scale transform)
            "sweep": CaptionStyle(**{**PRESETS["karaoke"].model_dump(), "karaoke": "sweep"})}


def words(start_s: float, texts: list[str], step_s: float = 0.2) -> list[CaptionWord]:
    return [CaptionWord(start_s=start_s + i * step_s, end_s=start_s + (i + 1) * step_s, text=t)
            for i, t in enumerate(texts)]


def showing(chunks, caps) -> set[int]:
    """The chunks with a frame on which one of ``caps`` shows (frame f shows a caption from
    ``start_s`` to ``end_s`` when start_s <= f / FPS < end_s)."""
    return {k for k, c in enumerate(chunks) for cap in caps
            if math.ceil(cap.start_s * FPS) < c.first_frame + c.n_frames
            and math.ceil(cap.end_s * FPS) > c.first_frame}


def lyrics(first: str = "First") -> tuple[Caption, ...]:
    """A karaoke line inside the first encode's frames and one across the crossfade (its fade
    or pop-in over the first chunk boundary, its last word's sweep over the next); none in the
    last encode's."""
    return (caption(0.5, 1.2, words(0.5, [first, "line"])),
            caption(2.7, 3.3, words(2.7, ["Across", "the", "blend"])))


def segments():
    return plan_segments(list(zip(EDGES_S, EDGES_S[1:], strict=False)), KINDS, FPS, 8)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("burn_media")
    clips = [pattern_clip(folder / f"c{i}.mp4", 2.0, "180x320", look=i) for i in range(4)]
    return {"clips": clips, "song": make_song(folder / "song.wav", EDGES_S[-1])}


def render(media: dict, out: Path, captions: CaptionBurn | None = None, cache: DirCache | None = None,
           settings: ComposeSettings = LOSSLESS, **kw) -> ChunkedRender:
    clips = media["clips"]
    return compose_chunked(clips, [2.0] * 4, segments(), media["song"], out, settings,
                           clip_digests=[sha256_file(p) for p in clips], cache=cache,
                           frames=FramesTap(out.with_suffix(".rgb")), captions=captions, **kw)


def yuv_frames(path: Path, vf: str | None = None) -> np.ndarray:
    """Every frame decoded at full size as raw yuv420p bytes (no conversion), one row per frame."""
    raw = ffmpeg_output(["-i", str(path), *(["-vf", vf] if vf else []), "-f", "rawvideo",
                         "-pix_fmt", "yuv420p", "pipe:"], what="decoding a test render", media_s=6)
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE[0] * SIZE[1] * 3 // 2)


def luma(frames: np.ndarray) -> np.ndarray:
    return frames[:, : SIZE[0] * SIZE[1]].reshape(-1, SIZE[1], SIZE[0])


@pytest.fixture(scope="module")
def renders(media, tmp_path_factory) -> dict:
    """The same edit rendered losslessly without captions, with lyrics in each ``ANIMATED``
    style, and with still lyrics (no animation: text on every frame of its times)."""
    folder = tmp_path_factory.mktemp("burn_renders")
    styles = {**ANIMATED, "still": STILL}
    out = {name: folder / f"{name}.mp4" for name in ("clean", *styles)}
    done = {"clean": render(media, out["clean"]),
            **{name: render(media, out[name], CaptionBurn(lyrics(), style))
               for name, style in styles.items()}}
    return {"paths": out, "done": done, "folder": folder}


def test_burn_windows_give_the_unshifted_window_script_or_none_where_nothing_shows():
    caps, style = lyrics(), PRESETS["karaoke"]
    spans = [(c.first_frame, c.n_frames) for c in plan_encodes(segments())]
    assert spans == [(0, 45), (45, 37), (82, 16), (98, 37), (135, 45)]
    burns = burn_windows(CaptionBurn(caps, style), SIZE, FPS, spans)
    assert [b is not None for b in burns] == [True, True, True, True, False]
    for (first, n), b in zip(spans[:4], burns[:4], strict=True):
        assert b.ass == ass_for_window(caps, style, SIZE, first / FPS, (first + n) / FPS, shift=False)
        assert b.fonts and all(os.path.getsize(path) == size for path, size in b.fonts)
    # an event that ends before the window's first frame is drawn shows on none of its frames
    edge = burn_windows(CaptionBurn((caption(0.0, 1.49, text="gone"),), style), SIZE, FPS,
                        [(0, 45), (44, 10), (45, 10)])
    assert [b is not None for b in edge] == [True, True, False]


def test_captions_change_frames_only_inside_their_times_and_the_safe_area(renders):
    clean, still = yuv_frames(renders["paths"]["clean"]), yuv_frames(renders["paths"]["still"])
    assert clean.shape == still.shape == (round(EDGES_S[-1] * FPS), SIZE[0] * SIZE[1] * 3 // 2)
    inside = set(range(15, 36)) | set(range(81, 99))  # [0.5, 1.2) and [2.7, 3.3) s
    changed = {k for k in range(len(clean)) if not np.array_equal(clean[k], still[k])}
    assert changed == inside
    area = safe_area(SIZE)
    ys, xs = np.nonzero((luma(clean)[sorted(inside)] != luma(still)[sorted(inside)]).any(axis=0))
    assert area.x0 <= xs.min() and xs.max() < area.x1 and area.y0 <= ys.min() and ys.max() < area.y1
    assert len(xs) > 300  # words, not a stray pixel


@pytest.mark.parametrize("style", list(ANIMATED))
def test_a_captioned_chunked_render_is_one_burn_of_the_whole_document(style, renders, tmp_path):
    """Lossless encodes, so exact: the chunks each burning their window (fades, a pop-in,
    karaoke switches and sweeps, a line across three chunks) decode to the caption-free render
    burned once with the whole document, its frames carrying their timeline times as the
    chunks' do."""
    doc = tmp_path / "whole.ass"
    doc.write_text(ass_document(lyrics(), ANIMATED[style], SIZE), encoding="utf-8")
    whole = yuv_frames(renders["paths"]["clean"],
                       vf=f"settb=1/{FPS},setpts=N,ass=filename='{doc}',setpts=N")
    chunked = yuv_frames(renders["paths"][style])
    assert not np.array_equal(whole, yuv_frames(renders["paths"]["clean"]))
    assert np.array_equal(chunked, whole)


def test_the_quality_tap_stays_caption_free(renders):
    paths = renders["paths"]
    assert read_frames(paths["karaoke"].with_suffix(".rgb")).tobytes() == \
        read_frames(paths["clean"].with_suffix(".rgb")).tobytes()


def test_a_chunk_showing_no_caption_keeps_the_caption_free_key(renders):
    clean, karaoke = renders["done"]["clean"], renders["done"]["karaoke"]
    shown = showing(karaoke.chunks, lyrics())
    assert 0 < len(shown) < len(karaoke.chunks)
    assert [a == b for a, b in zip(clean.keys, karaoke.keys, strict=True)] == \
        [k not in shown for k in range(len(karaoke.chunks))]


def test_changing_one_captions_text_re_encodes_only_the_chunks_showing_it(media, tmp_path):
    cache = DirCache(tmp_path / "cache")
    first = render(media, tmp_path / "a.mp4", CaptionBurn(lyrics(), PRESETS["karaoke"]), cache)
    assert first.encoded == tuple(range(len(first.chunks)))
    edited = render(media, tmp_path / "b.mp4", CaptionBurn(lyrics("Second"), PRESETS["karaoke"]), cache)
    assert set(edited.encoded) == showing(edited.chunks, lyrics()[:1])
    moved = (lyrics()[0], caption(2.7, 3.3, words(2.7, ["Across", "the", "fade"])))
    again = render(media, tmp_path / "c.mp4", CaptionBurn(moved, PRESETS["karaoke"]), cache)
    assert set(again.encoded) == showing(again.chunks, moved[1:])


def test_the_soft_subtitle_track_carries_the_cues_and_the_rest_is_copied(media, tmp_path):
    cache, caps = DirCache(tmp_path / "cache"), lyrics("Déjà")
    srt = tmp_path / "captions.srt"
    srt.write_text(srt_text(caps), encoding="utf-8")
    plain = tmp_path / "plain.mp4"
    render(media, plain, CaptionBurn(caps, PRESETS["karaoke"]), cache)
    out = tmp_path / "soft.mp4"
    done = render(media, out, CaptionBurn(caps, PRESETS["karaoke"]), cache, subtitle_track=srt,
                  subtitle_language="eng")
    assert done.encoded == ()
    with av.open(str(out)) as container:
        (sub,) = container.streams.subtitles
        assert sub.codec_context.name == "mov_text" and sub.metadata.get("language") == "eng"
    cues = ffmpeg_output(["-i", str(out), "-map", "0:s", "-f", "srt", "pipe:"],
                         what="reading the subtitle track", media_s=6).decode()
    assert cues.replace("\r\n", "\n") == srt_text(caps)
    assert packets(out, "video") == packets(plain, "video")
    assert packets(out, "audio") == packets(plain, "audio")


def packets(path: Path, kind: str) -> list[tuple[int, bytes]]:
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [(p.pts, bytes(p)) for p in container.demux(stream) if p.size]


def test_the_subtitle_track_defaults_to_an_undetermined_language(media, tmp_path):
    srt = tmp_path / "c.srt"
    srt.write_text(srt_text(lyrics()), encoding="utf-8")
    out = tmp_path / "out.mp4"
    render(media, out, subtitle_track=srt)
    with av.open(str(out)) as container:
        assert container.streams.subtitles[0].metadata.get("language") == "und"


def test_captions_burn_from_a_folder_whose_name_ffmpeg_would_parse(media, renders, tmp_path):
    """The chunks' scripts live in the render's scratch folder beside the output: a name with
    the characters ffmpeg's filter graph and option syntax give a meaning (: ' \\ , ; [ ] =)."""
    folder = tmp_path / "it's a:b\\c,d;e[f]=g"
    folder.mkdir()
    out = folder / "out.mp4"
    render(media, out, CaptionBurn(lyrics(), STILL))
    assert np.array_equal(yuv_frames(out), yuv_frames(renders["paths"]["still"]))


def test_an_ffmpeg_without_libass_is_refused_naming_the_fix(media, tmp_path, monkeypatch):
    """An ffmpeg build without libass (this one, with its ``ass`` filter hidden from its list)."""
    fake = tmp_path / "ffmpeg"
    real = ffmpeg_exe()
    fake.write_text(f'#!/bin/sh\ncase " $* " in *" -filters "*) "{real}" "$@" | grep -v " ass "; '
                    f'exit 0;; esac\nexec "{real}" "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("VIDEO_ASSETS_FFMPEG", str(fake))
    ffmpeg_bin.ffmpeg_exe.cache_clear()
    chunks_module.ffmpeg_filters.cache_clear()
    try:
        assert "subtitles" in chunks_module.ffmpeg_filters()  # the list itself is read
        with pytest.raises(FfmpegError, match=r"no 'ass' filter.*fix: point VIDEO_ASSETS_FFMPEG"):
            render(media, tmp_path / "out.mp4", CaptionBurn(lyrics(), STILL))
        assert not (tmp_path / "out.mp4").exists()
        render(media, tmp_path / "plain.mp4")  # without captions, nothing needs libass
    finally:
        monkeypatch.undo()
        ffmpeg_bin.ffmpeg_exe.cache_clear()
        chunks_module.ffmpeg_filters.cache_clear()
