"""``videogen cache prune`` removes old composition chunks and contact-sheet tiles (remade at no
cost) and never a paid generation."""

from __future__ import annotations

import json
import os
import time

import pytest

from video_assets.cli import main
from video_assets.cli_cache import prune
from video_assets.store import LocalStore, cache_key

DAY_S = 86400.0


@pytest.fixture
def media(tmp_path, monkeypatch):
    """A media store under its own DAGSTER_HOME, with an old and a new entry of each kind."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VIDEO_ASSETS_BUCKET", raising=False)
    store = LocalStore(tmp_path / "home" / "media")
    now = time.time()
    for kind, ext in (("chunk", "mov"), ("tile", "png"), ("clip", "mp4"), ("image", "png")):
        for age_days in (30, 1):
            key = cache_key(kind, ext, age_days=age_days)
            store.put_bytes(key, b"x" * 1000)
            stamp = now - age_days * DAY_S
            os.utime(store.path(key), (stamp, stamp))
    return store


def kinds_left(store: LocalStore) -> list[str]:
    return sorted(e.key.split("/")[1] for e in store.list("cache/"))


def test_prune_removes_old_chunks_and_tiles_and_keeps_paid_generations(media):
    done = prune(media, 7 * DAY_S)
    assert (done.n_files, done.n_bytes) == (2, 2000)
    assert kinds_left(media) == ["chunk", "clip", "clip", "image", "image", "tile"]


def test_prune_dry_run_counts_and_removes_nothing(media):
    before = kinds_left(media)
    assert prune(media, 7 * DAY_S, dry_run=True).n_files == 2
    assert kinds_left(media) == before


def test_prune_refuses_a_paid_kind(media):
    with pytest.raises(ValueError, match="clip cannot be pruned"):
        prune(media, 0.0, kinds=("clip",))
    assert len(kinds_left(media)) == 8


def test_cache_prune_command_reports_what_it_removed(media, capsys):
    assert main(["cache", "prune", "--older-than-days", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["files"] == 4
    assert kinds_left(media) == ["clip", "clip", "image", "image"]


def test_cache_prune_command_refuses_a_negative_age(media, capsys):
    assert main(["cache", "prune", "--older-than-days", "-1"]) == 2
    assert "--older-than-days" in capsys.readouterr().err
    assert len(kinds_left(media)) == 8
