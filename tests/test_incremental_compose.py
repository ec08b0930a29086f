"""Chunked composition (media/chunks.py): the edit encoded in chunks joined by stream copy, each
cached by what determines its frames; an edit re-encodes only the chunks showing what changed,
and the result is the render a cold cache gives, frame for frame."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import make_song
from tests.media_helpers import decode_frames
from video_assets.media.chunks import ChunkedRender, compose_chunked, plan_chunks, plan_encodes
from video_assets.media.compose import ComposeSettings, FramesTap, compose, plan_segments
from video_assets.media.ffmpeg_bin import FfmpegError, run_ffmpeg
from video_assets.media.probe import probe_video
from video_assets.media.quality import audio_offset_of, read_frames
from video_assets.store import sha256_file

SIZE = (180, 320)
SETTINGS = ComposeSettings(width=SIZE[0], height=SIZE[1])  # veryfast CRF 20: B-frames, as renders
LOSSLESS = ComposeSettings(width=SIZE[0], height=SIZE[1], crf=0)
EDGES_S = [0.0, 3.37, 6.81, 10.2, 13.5, 17.0, 20.3]  # 6 scenes
KINDS = ["crossfade", "cut", "fade", "crossfade", "cut"]  # every kind, cuts between soft ones
FPS = 30


class DirCache:
    """A ``ChunkCache`` in a folder, counting what is stored."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.stored: list[str] = []

    def lookup(self, key: str) -> Path | None:
        path = self.root / f"{key}.mov"
        return path if path.exists() else None

    def store(self, key: str, path: Path) -> None:
        self.stored.append(key)
        shutil.copyfile(path, self.root / f"{key}.mov")


LOOKS = ["null", "vflip,hue=h=120", "hflip,hue=h=240,negate", "hue=h=60", "vflip,negate",
         "hflip,hue=h=180", "negate,hue=h=300"]


def look_clip(path: Path, look: str) -> Path:
    """A 5 s clip whose every frame differs (a moving test pattern with a frame counter), in a
    look of its own (flips, hue turns, negation), losslessly encoded."""
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=s=180x320:r=30:d=5", "-vf", look,
                "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p",
                str(path)], what="making a test clip")
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    """Seven distinct clips (every frame differs; each clip has its own look) and a song."""
    folder = tmp_path_factory.mktemp("chunk_media")
    clips = [look_clip(folder / f"p{i}.mp4", look) for i, look in enumerate(LOOKS)]
    assert len({sha256_file(p) for p in clips}) == len(clips)
    return {"clips": clips, "song": make_song(folder / "song.wav", EDGES_S[-1])}


def segments():
    return plan_segments(list(zip(EDGES_S, EDGES_S[1:], strict=False)), KINDS, FPS, 8)


def render(clips: list[Path], out: Path, cache: DirCache | None, song: Path,
           settings: ComposeSettings = SETTINGS, in_s: list[float] | None = None,
           tap: bool = True, audio_digest: str | None = None) -> ChunkedRender:
    return compose_chunked(clips, [5.0] * len(clips), segments(), song, out, settings,
                           clip_in_s=in_s, clip_digests=[sha256_file(p) for p in clips],
                           audio_digest=audio_digest, cache=cache,
                           frames=FramesTap(out.with_suffix(".rgb")) if tap else None)


def packets(path: Path) -> list[tuple[int, int, bool]]:
    """(pts, dts, key frame) of every video packet, in file order (PyAV)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(p.pts, p.dts, p.is_keyframe) for p in container.demux(stream) if p.size]


def test_encodes_split_at_hard_cuts_and_around_each_soft_transition():
    """What one process encodes: a soft transition's blended frames, or one clip's solo
    stretch (the chunks cut these further: tests/test_chunk_context.py)."""
    segs = segments()
    chunks = plan_encodes(segs)
    assert chunks[0].first_frame == 0 and sum(c.n_frames for c in chunks) == segs[-1].cut_out_frame
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.first_frame + a.n_frames == b.first_frame
    starts = {c.first_frame for c in chunks}
    assert {s.cut_in_frame for s in segs[1:] if s.transition_in == "cut"} <= starts
    soft = [s for s in segs[1:] if s.transition_in != "cut"]
    assert soft
    for s in soft:  # every crossfade and fade is a chunk of the frames it blends, no more
        prev = segs[s.index - 1]
        first = s.cut_in_frame - max(s.half_in_frames, prev.fade_out_frames)
        last = s.cut_in_frame + max(s.half_in_frames, s.fade_in_frames)
        assert first in starts and last in starts
        assert not any(first < f < last for f in starts)
    for i in range(len(segs)):  # a clip shows in its own chunk and its transitions' at most
        assert 1 <= sum(any(p.clip == i for p in c.parts) for c in chunks) <= 3


def test_a_changed_clip_re_encodes_its_frames_and_its_transitions_only():
    """The frames of the chunks showing one clip: that clip's own frames, plus at most the
    frames its crossfades blend (2 x half on each side), never a neighbour's solo stretch."""
    segs = segments()
    chunks = plan_chunks(segs)
    for i, seg in enumerate(segs):
        showing = sum(c.n_frames for c in chunks if any(p.clip == i for p in c.parts))
        assert showing <= seg.cut_out_frame - seg.cut_in_frame + 2 * (
            seg.half_in_frames + seg.half_out_frames + seg.fade_in_frames + seg.fade_out_frames)


def test_chunk_joins_drop_or_repeat_no_frame(tmp_path, media):
    """Frame count exact, timestamps one frame apart from 0, decode order monotonic, each chunk
    starting on a key frame; and the frames are those of a single-pass render: its encoder's
    copy of its frames and the chunks' copies are the same bytes, and lossless encodes of both
    decode to the same pictures."""
    clips = media["clips"][:6]
    out, one = tmp_path / "chunked.mp4", tmp_path / "one.mp4"
    done = render(clips, out, None, media["song"], LOSSLESS)
    compose(clips, [5.0] * 6, segments(), media["song"], one, LOSSLESS,
            frames=FramesTap(one.with_suffix(".rgb")))
    n = round(EDGES_S[-1] * FPS)
    pk = packets(out)
    assert len(pk) == n == probe_video(out).n_frames
    pts = sorted(p for p, _, _ in pk)
    assert pts[0] == 0 and set(np.diff(pts)) == {512}  # 1/30 s at the 15360 timescale
    dts = [d for _, d, _ in pk]
    assert all(b > a for a, b in zip(dts, dts[1:], strict=False))
    keys = {p // 512 for p, _, k in pk if k}
    assert {c.first_frame for c in done.chunks} <= keys
    assert read_frames(out.with_suffix(".rgb")).tobytes() == read_frames(one.with_suffix(".rgb")).tobytes()
    a, b = decode_frames(out), decode_frames(one)
    assert len(a) == len(b) == n and np.array_equal(a, b)


def test_output_keeps_the_format_the_quality_checks_ask_for(tmp_path, media):
    out = tmp_path / "out.mp4"
    render(media["clips"][:6], out, None, media["song"], tap=False)
    probe = probe_video(out)
    assert (probe.width, probe.height, probe.fps) == (*SIZE, 30.0)
    assert probe.n_frames == round(EDGES_S[-1] * FPS)
    assert abs(probe.audio_duration_s - EDGES_S[-1]) <= 0.015  # the whole song, encoded once
    assert probe.video_codec == "h264" and probe.pix_fmt == "yuv420p"
    assert probe.audio_codec == "aac" and probe.faststart
    with av.open(str(out)) as container:
        assert container.streams.video[0].time_base.denominator == FPS * 512
        assert len(container.streams.video) == 1  # the taps stay in the chunks


def test_changing_one_clip_re_encodes_only_the_chunks_showing_it(tmp_path, media):
    clips = media["clips"][:6]
    cache = DirCache(tmp_path / "cache")
    first = render(clips, tmp_path / "v1.mp4", cache, media["song"])
    assert len(cache.stored) == len(first.chunks) and first.reused == ()
    edited = [*clips[:3], media["clips"][6], *clips[4:]]  # scene 4's clip replaced
    second = render(edited, tmp_path / "v2.mp4", cache, media["song"])
    showing = {k for k, c in enumerate(second.chunks) if any(p.clip == 3 for p in c.parts)}
    assert set(second.encoded) == showing and showing
    assert len(cache.stored) == len(first.chunks) + len(showing)  # the rest reused
    assert set(cache.stored[len(first.chunks):]) == {second.keys[k] for k in showing}
    again = render(edited, tmp_path / "v3.mp4", cache, media["song"])
    assert again.encoded == () and len(cache.stored) == len(first.chunks) + len(showing)


def test_an_edit_from_cached_chunks_is_the_cold_render_of_that_edit(tmp_path, media):
    clips = media["clips"][:6]
    cache = DirCache(tmp_path / "cache")
    render(clips, tmp_path / "v1.mp4", cache, media["song"])
    edited = [*clips[:1], media["clips"][6], *clips[2:]]
    warm = render(edited, tmp_path / "warm.mp4", cache, media["song"])
    assert 0 < len(warm.encoded) < len(warm.chunks)
    cold = render(edited, tmp_path / "cold.mp4", DirCache(tmp_path / "empty"), media["song"])
    assert len(cold.encoded) == len(cold.chunks)
    a, b = decode_frames(tmp_path / "warm.mp4"), decode_frames(tmp_path / "cold.mp4")
    assert len(a) == len(b) == round(EDGES_S[-1] * FPS) and np.array_equal(a, b)
    pw, pc = probe_video(tmp_path / "warm.mp4"), probe_video(tmp_path / "cold.mp4")
    assert pw.video_duration_s == pc.video_duration_s and pw.audio_duration_s == pc.audio_duration_s
    assert (tmp_path / "warm.rgb").read_bytes() == (tmp_path / "cold.rgb").read_bytes()


def test_in_point_shows_the_clip_from_its_frame(tmp_path, media):
    """Scene 2 (crossfaded in, split into 2 chunks) starts 1.5 s into its clip; scene 5 starts
    4 s into its 5 s clip and loops back to the clip's first frame; the single pass shows the
    same frames."""
    clips = media["clips"][:6]
    segs = segments()
    in_s = [0.0, 1.5, 0.0, 0.0, 4.0, 0.0]
    out = tmp_path / "slip.mp4"
    render(clips, out, None, media["song"], LOSSLESS, in_s=in_s)
    frames = decode_frames(out).astype(int)
    for scene, first in ((1, 45), (4, 120)):
        seg = segs[scene]
        source = decode_frames(clips[scene]).astype(int)
        solo = range(seg.start_frame + 2 * seg.half_in_frames + seg.fade_in_frames,
                     seg.start_frame + seg.n_frames - 2 * seg.half_out_frames - seg.fade_out_frames)
        for f in solo:
            k = (first + f - seg.start_frame) % len(source)  # the clip loops from its start
            diff = np.abs(frames[f] - source[k]).mean()
            assert diff < 3, (scene, f, k, diff)
            assert diff < np.abs(frames[f] - source[(k + 1) % len(source)]).mean()
    one = tmp_path / "one.mp4"
    compose(clips, [5.0] * 6, segs, media["song"], one, LOSSLESS,
            frames=FramesTap(one.with_suffix(".rgb")), clip_in_s=in_s)
    assert (tmp_path / "one.rgb").read_bytes() == out.with_suffix(".rgb").read_bytes()


def test_a_slip_re_encodes_only_the_slipped_scenes_chunks(tmp_path, media):
    clips = media["clips"][:6]
    cache = DirCache(tmp_path / "cache")
    render(clips, tmp_path / "plain.mp4", cache, media["song"])
    done = render(clips, tmp_path / "slip.mp4", cache, media["song"],
                  in_s=[0.0, 1.5, 0.0, 0.0, 0.0, 0.0])
    assert set(done.encoded) == {k for k, c in enumerate(done.chunks)
                                 if any(p.clip == 1 for p in c.parts)}
    seg = segments()[1]  # scene 2's frames and the crossfade it blends, no more
    assert sum(done.chunks[k].n_frames for k in done.encoded) <= \
        seg.cut_out_frame - seg.cut_in_frame + 2 * (seg.half_in_frames + seg.half_out_frames)


def test_mixed_transitions_measure_as_planned(tmp_path, media):
    from video_assets.assets.quality import measure

    out = tmp_path / "out.mp4"
    render(media["clips"][:6], out, None, media["song"])
    segs = segments()
    report = measure(out, media["song"], EDGES_S[-1], EDGES_S[1:-1], segs, FPS, SIZE,
                     frames=read_frames(out.with_suffix(".rgb")))
    assert report.frames_source == "encoder"  # the chunks' taps fit the file
    metrics = {m.metric: m for m in report.metrics}
    for name in ("duration_error_ms", "cut_to_beat_max_ms", "cut_to_boundary_max_ms",
                 "missed_cuts", "extra_cuts", "crossfade_centre_max_ms", "fade_black_max_ms",
                 "audio_offset_ms", "container_ok", "fps"):
        assert metrics[name].passed, metrics[name]
    planned = [s.cut_in_frame for s in segs[1:] if s.transition_in == "cut"]
    assert report.cut_frames == planned
    assert len(report.crossfade_centre_ms) == KINDS.count("crossfade")
    assert len(report.fade_black_ms) == KINDS.count("fade")


def test_caching_chunks_needs_the_clips_digests(tmp_path, media):
    with pytest.raises(ValueError, match="clip_digests"):
        compose_chunked(media["clips"][:6], [5.0] * 6, segments(), media["song"],
                        tmp_path / "o.mp4", SETTINGS, cache=DirCache(tmp_path / "c"))


def test_a_failing_chunk_leaves_no_output_and_caches_nothing_broken(tmp_path, media):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    clips = [*media["clips"][:2], broken, *media["clips"][3:6]]
    cache = DirCache(tmp_path / "cache")
    out = tmp_path / "out.mp4"
    with pytest.raises(FfmpegError, match="chunk"):
        render(clips, out, cache, media["song"])
    assert not out.exists() and not out.with_suffix(".rgb").exists()
    assert not list(tmp_path.glob(".chunks-*"))  # the scratch folder is gone
    good = [c for c in plan_chunks(segments()) if all(p.clip != 2 for p in c.parts)]
    assert len(cache.stored) <= len(good)
    for key in cache.stored:  # whatever was stored is a whole chunk without the broken clip
        assert len(packets(cache.root / f"{key}.mov")) in {c.n_frames for c in good}


def test_the_store_backed_cache_reuses_chunks_but_never_a_damaged_one(tmp_path, media):
    """``final_video``'s cache: chunks under ``cache/chunk/`` of the media store, reused by the
    next render; one damaged on disk is encoded again (its recorded digest no longer fits)."""
    from contextlib import ExitStack

    from video_assets.assets.final import StoreChunkCache
    from video_assets.store import LocalStore

    store, clips = LocalStore(tmp_path / "store"), media["clips"][:6]

    def render_through_store(out: Path) -> ChunkedRender:
        with ExitStack() as stack:
            return render(clips, out, StoreChunkCache(store, stack), media["song"])

    first = render_through_store(tmp_path / "first.mp4")
    assert len(store.list("cache/chunk/")) == len(first.chunks)
    damaged = store.path(StoreChunkCache.key(first.keys[2]))
    damaged.write_bytes(damaged.read_bytes()[:-100] + bytes(100))
    second = render_through_store(tmp_path / "second.mp4")
    assert second.encoded == (2,)
    assert np.array_equal(decode_frames(tmp_path / "first.mp4"), decode_frames(tmp_path / "second.mp4"))


def test_a_video_setting_re_encodes_every_chunk_and_an_audio_setting_none(tmp_path, media):
    from dataclasses import replace

    clips, cache = media["clips"][:6], DirCache(tmp_path / "cache")
    first = render(clips, tmp_path / "a.mp4", cache, media["song"])
    louder = render(clips, tmp_path / "b.mp4", cache, media["song"],
                    replace(SETTINGS, audio_bitrate="128k"))
    assert louder.encoded == ()  # the audio is encoded alone, beside the chunks
    sharper = render(clips, tmp_path / "c.mp4", cache, media["song"], replace(SETTINGS, crf=18))
    assert len(sharper.encoded) == len(sharper.chunks) == len(first.chunks)


def test_the_soundtrack_is_encoded_once_and_reused_by_an_edit(tmp_path, media):
    """With the audio's digest, the AAC soundtrack is cached like a chunk: the next render of
    the same song copies it (same audio packets), and a new bitrate encodes it again."""
    clips = media["clips"][:6]
    cache, digest = DirCache(tmp_path / "cache"), sha256_file(media["song"])
    first = render(clips, tmp_path / "v1.mp4", cache, media["song"], audio_digest=digest)
    assert first.soundtrack_encoded and len(cache.stored) == len(first.chunks) + 1
    edited = [*clips[:3], media["clips"][6], *clips[4:]]
    second = render(edited, tmp_path / "v2.mp4", cache, media["song"], audio_digest=digest)
    assert not second.soundtrack_encoded
    assert audio_packets(tmp_path / "v1.mp4") == audio_packets(tmp_path / "v2.mp4")
    louder = render(edited, tmp_path / "v3.mp4", cache, media["song"], audio_digest=digest,
                    settings=dataclasses.replace(SETTINGS, audio_bitrate="96k"))
    assert louder.soundtrack_encoded and louder.encoded == ()


def test_a_copied_soundtrack_keeps_the_song_in_time(tmp_path, media):
    """The soundtrack encoded alone and copied into the video starts with the video and lasts
    the song (its AAC priming kept out of the timeline), as the quality bars ask."""
    out = tmp_path / "out.mp4"
    render(media["clips"][:6], out, None, media["song"], tap=False)
    assert abs(audio_offset_of(out, media["song"])) <= 0.005
    assert abs(probe_video(out).audio_duration_s - EDGES_S[-1]) <= 0.015


def audio_packets(path: Path) -> list[tuple[int, bytes]]:
    """(pts, payload) of every audio packet (PyAV)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [(p.pts, bytes(p)) for p in container.demux(stream) if p.size]
