"""An edit's video is measured again only where its frames changed: the windows of frames the
quality measurement saw before are reused by their frames' digest (``quality.WindowMemo``), with
the same results as measuring everything."""

from __future__ import annotations

import numpy as np
import pytest

from video_assets.media import quality

FPS, SCENE = 30, 120  # 4 s scenes
HEIGHT, WIDTH = 192, 108
HALF = 8


def scenes(n_scenes: int, seed: int = 3) -> list[np.ndarray]:
    """``n_scenes`` shots of ``SCENE`` frames, each a texture of its own drifting a pixel a frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    out = []
    for _ in range(n_scenes):
        waves = [np.sin(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / length + phase)
                 for a, length, phase in rng.uniform((0, 120, 0), (np.pi, 240, 2 * np.pi), (3, 3))]
        texture = (127.5 + 120 * np.stack(waves, axis=-1)).astype(np.uint8)
        out.append(np.stack([np.roll(texture, t, axis=1) for t in range(SCENE)]))
    return out


def edit(shots: list[np.ndarray]) -> np.ndarray:
    """The shots joined: a crossfade into the 2nd, hard cuts elsewhere."""
    frames = np.concatenate(shots)
    a, b = shots[0][-HALF:].astype(np.float32), shots[1][:HALF].astype(np.float32)
    ramp = (np.arange(1, HALF + 1) / (HALF + 1))[:, None, None, None]
    frames[SCENE - HALF // 2 : SCENE + HALF // 2] = ((1 - ramp) * a + ramp * b)[:HALF].astype(np.uint8)
    return frames


def requests(n_scenes: int) -> dict:
    cuts = [SCENE * k for k in range(1, n_scenes)]
    return {"crossfades": [(SCENE, HALF // 2)], "cuts_at": cuts[1:],
            "sharpness_at": [SCENE * k + SCENE // 2 for k in range(n_scenes)],
            "spans": [(SCENE * k, SCENE * (k + 1)) for k in range(n_scenes)]}


def measured(frames: np.ndarray, memo: quality.WindowMemo | None = None) -> quality.FrameMeasures:
    return quality.measure_frames(quality.frame_chunks(frames, 64), len(frames),
                                  **requests(len(frames) // SCENE), memo=memo)


def same(a: quality.FrameMeasures, b: quality.FrameMeasures) -> bool:
    return (a.n_frames == b.n_frames and a.cuts == b.cuts
            and a.crossfade_centres == b.crossfade_centres and a.same_picture == b.same_picture
            and np.array_equal(a.black, b.black) and np.array_equal(a.frozen, b.frozen)
            and np.allclose(a.sharpness, b.sharpness) and np.allclose(a.brightness, b.brightness))


@pytest.fixture(scope="module")
def shots() -> list[np.ndarray]:
    return scenes(6)


def test_measuring_again_with_the_memo_measures_nothing_and_finds_the_same(shots):
    frames = edit(shots)
    first = quality.WindowMemo()
    plain = measured(frames)
    assert same(measured(frames, first), plain)
    assert first.misses == -(-len(frames) // 64) and first.hits == 0
    again = quality.WindowMemo(first.kept)
    assert same(measured(frames, again), plain)
    assert again.hits == first.misses and again.misses == 0
    # really measured: the hard cuts into scenes 3-6, the crossfade into scene 2 near its centre
    assert [c for c in plain.cuts if c > SCENE + HALF] == [240, 360, 480, 600]
    assert abs(plain.crossfade_centres[0] - SCENE) <= 1


def test_after_two_scenes_swap_only_their_windows_are_measured_again(shots):
    before = quality.WindowMemo()
    measured(edit(shots), before)
    swapped = edit([*shots[:3], shots[4], shots[3], shots[5]])  # scenes 4 and 5 trade places
    memo = quality.WindowMemo(before.kept)
    found = measured(swapped, memo)
    assert same(found, measured(swapped))
    # frames 360-600 changed; the 64-frame chunks within the margin (crossfade: 3 * 4 + 4 = 16
    # frames) of them are frames 320-640: chunks 5 to 9 measured again, the other 7 reused
    assert (memo.misses, memo.hits) == (5, 7)


def test_a_memo_entry_in_another_format_is_measured_again(shots):
    frames = edit(shots[:2])
    first = quality.WindowMemo()
    measured(frames, first)
    damaged = {key: {"unknown_field": 1} for key in first.kept}
    memo = quality.WindowMemo(damaged)
    assert same(measured(frames, memo), measured(frames))
    assert memo.hits == 0 and memo.misses == len(first.kept)


def test_a_damaged_memo_file_is_an_empty_memo(tmp_path):
    from video_assets.assets.final import load_window_memo
    from video_assets.store import LocalStore

    media = LocalStore(tmp_path)
    media.put_bytes("jobs/j/frame_measures.json", b"{not json")
    memo = load_window_memo(media, "jobs/j/frame_measures.json")
    assert memo.previous == {} and memo.get("anything") is None
    assert load_window_memo(media, "jobs/j/missing.json").previous == {}
