"""Chunks cut where a slot's frames stop depending on its neighbours (``chunks.context_splits``):
a scene moved to a slot as long as its own reuses its core chunk, and a run of chunks encoded
in one process gives each chunk the bytes it has when encoded alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import make_song
from tests.test_incremental_compose import LOOKS, SETTINGS, DirCache, look_clip
from video_assets.media.chunks import (
    chunk_args,
    chunk_key,
    compose_chunked,
    plan_chunks,
    plan_encodes,
    run_args,
)
from video_assets.media.compose import FramesTap, plan_segments, solo_span
from video_assets.media.ffmpeg_bin import ffmpeg_output, run_ffmpeg
from video_assets.store import sha256_file

FPS, HALF = 30, 8
SLOT_S = 2.0  # 60 frames: a core of 60 - 3 * 8 = 36 frames
EDGES_S = [0.0, 2.0, 4.0, 6.0, 8.0]


def layout(kinds: list[str]):
    return plan_segments(list(zip(EDGES_S, EDGES_S[1:], strict=False)), kinds, FPS, HALF)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("context_media")
    clips = [look_clip(folder / f"c{i}.mp4", look) for i, look in enumerate(LOOKS[:4])]
    return {"clips": clips, "song": make_song(folder / "song.wav", EDGES_S[-1])}


def test_chunks_cut_the_encodes_only_inside_solo_stretches():
    segs = layout(["crossfade", "cut", "crossfade"])
    chunks, encodes = plan_chunks(segs), plan_encodes(segs)
    starts = {c.first_frame for c in chunks}
    assert {w.first_frame for w in encodes} <= starts and len(chunks) > len(encodes)
    for f in starts - {w.first_frame for w in encodes}:
        inside = [s for s in segs if (span := solo_span(s)) and span[0] < f < span[1]]
        assert len(inside) == 1


@pytest.mark.parametrize("into, out_of", [("cut", "cut"), ("crossfade", "crossfade"),
                                          ("cut", "crossfade"), ("crossfade", "cut")])
def test_a_slots_core_is_the_same_chunk_whatever_its_neighbours(into, out_of):
    """Slot 2 (60 frames) shows clip "x"; with a cut or a crossfade on each side, the chunk of
    its core (frames 2H to L - H of the clip) has one key, the one a cut-cut slot gives."""
    def core_key(kinds_now: list[str]) -> str:
        segs = layout(kinds_now)
        digests = ["a", "x", "b", "c"]
        keys = {c.first_frame: chunk_key(c, digests, [5.0] * 4, [0] * 4, SETTINGS, (180, 320))
                for c in plan_chunks(segs)}
        core = [c for c in plan_chunks(segs) if [p.clip for p in c.parts] == [1]
                and c.n_frames == round(SLOT_S * FPS) - 3 * HALF]
        assert len(core) == 1, [(c.first_frame, c.n_frames) for c in plan_chunks(segs)]
        return keys[core[0].first_frame]

    assert core_key([into, out_of, "crossfade"]) == core_key(["cut", "cut", "crossfade"])


def packet_digests(path: Path, stream: int) -> str:
    return hashlib.sha256(ffmpeg_output(
        ["-i", str(path), "-map", f"0:v:{stream}", "-c", "copy", "-f", "framemd5", "pipe:"],
        what="reading packets", media_s=10)).hexdigest()


def test_a_run_gives_each_chunk_the_bytes_it_has_when_encoded_alone(media, tmp_path):
    """One decode, one encoder per chunk: every chunk's H.264 packets and tap are those of its
    own process (veryfast CRF 20 with B-frames: the encoder's state does not cross chunks)."""
    segs = layout(["crossfade", "cut", "crossfade"])
    clips, n = media["clips"], len(segs)
    encode = next(w for w in plan_encodes(segs) if w.n_frames > 40)
    inside = [c for c in plan_chunks(segs)
              if encode.first_frame <= c.first_frame < encode.first_frame + encode.n_frames]
    assert len(inside) >= 2
    ins = [0] * n
    outs = [tmp_path / f"run{k}.mov" for k in range(len(inside))]
    run_ffmpeg(run_args(encode, inside, clips, [5.0] * n, ins, SETTINGS, (180, 320), outs,
                        [None] * len(inside)), what="a run")
    for k, chunk in enumerate(inside):
        alone = tmp_path / f"alone{k}.mov"
        run_ffmpeg(chunk_args(chunk, clips, [5.0] * n, ins, SETTINGS, (180, 320), alone),
                   what="a chunk alone")
        assert packet_digests(outs[k], 0) == packet_digests(alone, 0)
        assert packet_digests(outs[k], 1) == packet_digests(alone, 1)


def test_scenes_swapped_between_slots_of_one_length_re_encode_edges_and_transitions_only(
        media, tmp_path):
    """Slots 2 and 3 swap clips: both cores come from the cache; what is encoded is their edges
    and the transitions around them, and the frames are those of a render from scratch."""
    segs = layout(["crossfade", "crossfade", "cut"])
    a, b, c, d = media["clips"]
    cache = DirCache(tmp_path / "cache")

    def render(clips: list[Path], name: str, with_cache: DirCache | None):
        out = tmp_path / f"{name}.mp4"
        return compose_chunked(clips, [5.0] * 4, segs, media["song"], out, SETTINGS,
                               clip_digests=[sha256_file(p) for p in clips], cache=with_cache,
                               frames=FramesTap(out.with_suffix(".rgb")))

    render([a, b, c, d], "before", cache)
    swapped = render([a, c, b, d], "swapped", cache)
    render([a, c, b, d], "cold", None)
    encoded_frames = sum(swapped.chunks[k].n_frames for k in swapped.encoded)
    moved_solo = sum(solo_span(s)[1] - solo_span(s)[0] for s in segs[1:3])
    cores = [k for k, ch in enumerate(swapped.chunks) if len(ch.parts) == 1
             and ch.parts[0].clip in (1, 2) and ch.n_frames == round(SLOT_S * FPS) - 3 * HALF]
    assert len(cores) == 2 and not set(cores) & set(swapped.encoded)
    assert 0 < encoded_frames < moved_solo  # the old chunks re-encoded both solo stretches
    assert (tmp_path / "swapped.rgb").read_bytes() == (tmp_path / "cold.rgb").read_bytes()
    assert packet_digests(tmp_path / "swapped.mp4", 0) == packet_digests(tmp_path / "cold.mp4", 0)

