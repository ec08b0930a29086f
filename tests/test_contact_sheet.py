"""The storyboard's contact sheet: tiles kept in the cache by their image's digest, so an edit's
sheet shrinks only its new images, and looks exactly as one made from scratch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from video_assets.layout import storyboard_key
from video_assets.media.art import contact_sheet, sheet_tile
from video_assets.scene_media import TILE_WIDTH_PX, write_contact_sheet
from video_assets.store import LocalStore

JOB = "sheet-job"


def put_image(store: LocalStore, folder: Path, index: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path = folder / f"img{index}-{seed}.png"
    Image.fromarray(rng.integers(0, 255, (192, 108, 3), dtype=np.uint8)).save(path)
    store.put_file(storyboard_key(JOB, index), path)
    return path


def test_an_edited_storyboard_shrinks_only_its_new_image(tmp_path: Path):
    store = LocalStore(tmp_path / "media")
    paths = [put_image(store, tmp_path, i, seed=i) for i in range(3)]
    write_contact_sheet(store, JOB, 3)
    assert len(store.list("cache/tile/")) == 3
    paths[1] = put_image(store, tmp_path, 1, seed=99)  # scene 2's image changed
    sheet = write_contact_sheet(store, JOB, 3)
    assert len(store.list("cache/tile/")) == 4  # one new tile; two reused
    fresh = contact_sheet([sheet_tile(p, TILE_WIDTH_PX) for p in paths])
    assert sheet.tobytes() == fresh.tobytes()


def test_a_tile_keeps_its_image_aspect(tmp_path: Path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (1920, 1080), (200, 10, 10)).save(path)
    assert sheet_tile(path, 216).size == (216, 122)
