"""The content cache cannot be corrupted: copies never write through a hard link, and a cache entry
is checked (its size and the sha256 recorded when it was written) before it is reused."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import duckdb
import pytest

from tests.conftest import make_song
from video_assets.cli import main
from video_assets.store import LocalStore, cache_key


def entry(store: LocalStore, name: str, data: bytes) -> str:
    key = cache_key("clip", "mp4", name=name)
    src = store.root.parent / f"{name}.src"
    src.write_bytes(data)
    store.put_file(key, src)
    return key


def test_copy_does_not_write_through_a_temporary_name_linked_to_another_entry(
        tmp_path: Path, monkeypatch):
    store = LocalStore(tmp_path / "media")
    a = entry(store, "a", b"A" * 1000)
    b = entry(store, "b", b"B" * 1000)
    dst = "jobs/j1/clips/01.mp4"
    real_link = os.link
    raced = []

    def link_racing_another_copy(src, tmp, *args, **kwargs):
        # another copy of entry b into the same destination linked its temporary file under
        # this very name an instant before this one (two runs of one job; a killed run's leftover)
        if not raced:
            raced.append(tmp)
            real_link(store.path(b), tmp)
        return real_link(src, tmp, *args, **kwargs)

    monkeypatch.setattr(os, "link", link_racing_another_copy)
    store.copy(a, dst)
    assert raced
    assert store.path(b).read_bytes() == b"B" * 1000  # the other entry is untouched
    assert store.path(dst).read_bytes() == b"A" * 1000
    assert store.cached(a) and store.cached(b)


def test_concurrent_copies_into_one_destination_leave_every_entry_intact(tmp_path: Path):
    store = LocalStore(tmp_path / "media")
    sources = {entry(store, n, n.encode() * 4096): n.encode() * 4096 for n in "abcd"}
    dst = "jobs/j1/clips/01.mp4"
    errors: list[BaseException] = []

    def hammer(key: str) -> None:
        try:
            for _ in range(300):
                store.copy(key, dst)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(k,)) for k in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for key, data in sources.items():
        assert store.path(key).read_bytes() == data, key
    assert store.path(dst).read_bytes() in sources.values()
    # no temporary names left behind
    assert sorted(p.name for p in store.path(dst).parent.iterdir()) == ["01.mp4"]


def test_copying_onto_a_destination_already_linked_to_the_entry_leaves_no_temporary(
        tmp_path: Path):
    store = LocalStore(tmp_path / "media")
    a = entry(store, "a", b"A" * 10)
    store.copy(a, "jobs/j1/x.mp4")
    store.copy(a, "jobs/j1/x.mp4")  # rename onto the same inode is a no-op in POSIX
    assert sorted(p.name for p in store.path("jobs/j1/x.mp4").parent.iterdir()) == ["x.mp4"]


def test_put_file_onto_a_hard_linked_job_file_leaves_the_cache_entry_alone(tmp_path: Path):
    store = LocalStore(tmp_path / "media")
    a = entry(store, "a", b"A" * 100)
    store.copy(a, "jobs/j1/x.mp4")
    other = tmp_path / "other"
    other.write_bytes(b"Z" * 7)
    store.put_file("jobs/j1/x.mp4", other)
    assert store.path(a).read_bytes() == b"A" * 100 and store.cached(a)
    assert store.path("jobs/j1/x.mp4").read_bytes() == b"Z" * 7


def test_a_truncated_entry_is_not_reused_and_is_removed(tmp_path: Path):
    store = LocalStore(tmp_path / "media")
    a = entry(store, "a", os.urandom(5000))
    assert store.cached(a)
    with open(store.path(a), "r+b") as fh:
        fh.truncate(1200)
    assert not store.cached(a)
    assert not store.exists(a)  # removed, so the caller regenerates it


def test_an_entry_with_overwritten_bytes_of_the_same_size_is_not_reused(tmp_path: Path):
    store = LocalStore(tmp_path / "media")
    a = entry(store, "a", b"\x00" * 5000)
    with open(store.path(a), "r+b") as fh:
        fh.seek(2500)
        fh.write(b"\x01" * 10)
    assert not store.cached(a) and not store.exists(a)


def test_an_entry_written_before_digests_were_recorded_is_reused_then_checked(tmp_path: Path):
    store = LocalStore(tmp_path / "media")
    key = cache_key("image", "png", name="old")
    path = store.path(key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"old entry")  # as the store wrote entries before this change
    assert store.cached(key)  # reused, and its digest recorded now
    path.write_bytes(b"old entrY")
    assert not store.cached(key)


def test_an_empty_entry_without_a_digest_is_a_miss(tmp_path: Path):
    store = LocalStore(tmp_path / "media")
    key = cache_key("image", "png", name="empty")
    store.path(key).parent.mkdir(parents=True)
    store.path(key).write_bytes(b"")
    assert not store.cached(key) and not store.exists(key)


def test_a_missing_entry_is_a_miss_and_listing_shows_no_digest_files(tmp_path: Path):
    store = LocalStore(tmp_path / "media")
    assert not store.cached(cache_key("clip", "mp4", name="none"))
    a = entry(store, "a", b"abc")
    assert [o.key for o in store.list("cache/")] == [a]
    store.delete(a)
    assert list(store.path(a).parent.iterdir()) == []  # its digest went with it


def ledger_rows(home: Path, job_id: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    rows = con.execute("SELECT asset, scene_index, cache_hit FROM provider_calls WHERE job_id = ? "
                       "ORDER BY started_at", [job_id]).fetchall()
    con.close()
    return rows


@pytest.mark.slow
def test_a_corrupted_cache_entry_is_regenerated_by_the_next_render(home: Path, tmp_path: Path,
                                                                   capsys):
    song = make_song(tmp_path / "corrupt.wav", 9.1, tempo_bpm=112.0)
    args = ["render", "--audio", str(song), "--prompt", "a kite over salt flats", "--aspect", "1:1",
            "--transitions", "cut", "--json"]
    assert main(args) == 0
    job_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["job_id"]
    media = LocalStore(home / "media")
    job = home / "media" / "jobs" / job_id
    card, clip = job / "storyboard" / "02.png", job / "clips" / "01.mp4"
    good_card, good_clip = card.read_bytes(), clip.read_bytes()
    first = len(ledger_rows(home, job_id))
    # the job's files are hard links to their cache entries: damage the entries through them
    with open(card, "r+b") as fh:
        fh.truncate(len(good_card) // 2)
    with open(clip, "r+b") as fh:
        fh.seek(len(good_clip) // 2)
        fh.write(bytes(255 - x for x in good_clip[len(good_clip) // 2:][:64]))
    assert main(args) == 0
    capsys.readouterr()
    again = ledger_rows(home, job_id)[first:]
    regenerated = {(a, i) for a, i, hit in again if not hit and a in ("storyboard", "clips")}
    assert regenerated == {("storyboard", 1), ("clips", 0)}, again
    assert card.read_bytes() == good_card and clip.read_bytes() == good_clip
    assert all(media.cached(o.key) for o in media.list("cache/"))
