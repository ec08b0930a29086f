"""A job's versions in the store (``video_assets/versions.py``): kept whole, undone and redone by
their own bytes, a render that changed nothing adds none, a failed run leaves the current one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from video_assets import layout
from video_assets.schemas import ClipSpec
from video_assets.store import LocalStore, cache_key, job_key
from video_assets.versions import (
    HistoryError,
    PendingEdit,
    commit_version,
    load_history,
    redo,
    restore_current,
    restore_takes,
    undo,
)

JOB = "song-1234abcd"


def write_version(media: LocalStore, n_scenes: int, tag: str) -> None:
    """The files a run leaves in the job's folder (their content says which run made them)."""
    media.put_json(job_key(JOB, layout.REQUEST), {"run": tag})
    media.put_json(job_key(JOB, layout.SCRIPT), {"scenes": [{"tag": tag}] * n_scenes})
    media.put_json(job_key(JOB, layout.CLIPS_MANIFEST), [{"tag": tag}] * n_scenes)
    for i in range(n_scenes):
        media.put_bytes(layout.clip_key(JOB, i), f"clip {i} {tag}".encode())
        media.put_bytes(layout.storyboard_key(JOB, i), f"image {i} {tag}".encode())
    media.put_bytes(job_key(JOB, layout.FINAL), f"video {tag}".encode())
    media.put_bytes(job_key(JOB, layout.QUALITY), b"{}")


@pytest.fixture()
def media(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "media")


def test_first_render_becomes_version_1_with_its_own_copy(media):
    write_version(media, 3, "a")
    history, added = commit_version(media, JOB, None, "done", 0, 0.0)
    assert added and history.current == 1
    assert media.get_bytes(layout.version_key(JOB, 1, layout.FINAL)) == b"video a"
    assert media.exists(layout.version_key(JOB, 1, "clips", "03.mp4"))


def test_an_edit_adds_a_version_and_undo_restores_the_same_bytes(media):
    write_version(media, 3, "a")
    commit_version(media, JOB, None, "done", 0, 0.0)
    write_version(media, 3, "b")
    history, added = commit_version(media, JOB, PendingEdit(operation="prompt", scene=2,
                                                            changed_scenes=[2]), "done", 2, 0.4)
    assert added and history.current == 2
    assert (history.get(2).paid_calls, history.get(2).changed_scenes) == (2, [2])
    history = undo(media, JOB)
    assert history.current == 1 and history.redo == [2]
    assert media.get_bytes(job_key(JOB, layout.FINAL)) == b"video a"
    assert media.get_bytes(layout.clip_key(JOB, 1)) == b"clip 1 a"
    history = redo(media, JOB)
    assert history.current == 2 and media.get_bytes(job_key(JOB, layout.FINAL)) == b"video b"


def test_a_deleted_scene_leaves_no_clip_in_its_version_and_undo_brings_it_back(media):
    write_version(media, 3, "a")
    commit_version(media, JOB, None, "done", 0, 0.0)
    write_version(media, 2, "b")  # scene 3's files of version 1 are still in the folder
    commit_version(media, JOB, PendingEdit(operation="delete", scene=3), "done", 0, 0.0)
    assert not media.exists(layout.clip_key(JOB, 2))
    assert not media.exists(layout.version_key(JOB, 2, "clips", "03.mp4"))
    undo(media, JOB)
    assert media.get_bytes(layout.clip_key(JOB, 2)) == b"clip 2 a"


def test_rendering_again_unchanged_adds_no_version(media):
    write_version(media, 3, "a")
    commit_version(media, JOB, None, "done", 0, 0.0)
    media.put_bytes(job_key(JOB, layout.FINAL), b"re-encoded")  # same script and clips
    history, added = commit_version(media, JOB, None, "done", 0, 0.0)
    assert not added and history.current == 1 and len(history.versions) == 1
    assert media.get_bytes(job_key(JOB, layout.FINAL)) == b"video a"


def test_a_new_edit_after_undo_clears_redo_and_keeps_every_version(media):
    write_version(media, 3, "a")
    commit_version(media, JOB, None, "done", 0, 0.0)
    write_version(media, 3, "b")
    commit_version(media, JOB, PendingEdit(operation="reroll", scene=1), "done", 2, 0.1)
    undo(media, JOB)
    write_version(media, 3, "c")
    history, _ = commit_version(media, JOB, PendingEdit(operation="slip", scene=2), "done", 0, 0)
    assert history.current == 3 and history.redo == [] and history.get(3).parent == 1
    assert [v.version for v in history.versions] == [1, 2, 3]
    with pytest.raises(HistoryError):
        redo(media, JOB)


def test_a_failed_run_is_rolled_back_to_the_current_version(media):
    write_version(media, 3, "a")
    commit_version(media, JOB, None, "done", 0, 0.0)
    write_version(media, 3, "half")  # a run that wrote some files, then failed
    media.put_json(job_key(JOB, "edit.json"), {"operation": "prompt"})
    assert restore_current(media, JOB) == 1
    assert media.get_bytes(job_key(JOB, layout.FINAL)) == b"video a"
    assert json.loads(media.get_bytes(job_key(JOB, layout.SCRIPT)))["scenes"][0]["tag"] == "a"
    assert not media.exists(job_key(JOB, "edit.json"))


def test_undo_of_the_first_version_or_an_unknown_job_is_refused(media):
    with pytest.raises(HistoryError, match="no rendered version"):
        undo(media, JOB)
    write_version(media, 3, "a")
    commit_version(media, JOB, None, "done", 0, 0.0)
    with pytest.raises(HistoryError, match="nothing to undo"):
        undo(media, JOB)
    assert load_history(media, JOB).current == 1


def test_on_s3_every_file_of_a_version_lives_as_long_as_finals():
    from video_assets.store_s3 import object_kind

    assert object_kind("jobs/j/history.json") == "final"
    assert object_kind("jobs/j/versions/3/final.mp4") == "final"
    assert object_kind("jobs/j/versions/3/quality.json") == "final"
    assert object_kind("jobs/j/versions/3/clips/01.mp4") == "final"
    assert object_kind("jobs/j/versions/3/storyboard/01.png") == "final"
    assert object_kind("jobs/j/versions/3/script.json") == "final"
    assert object_kind("jobs/j/beat_grid.json") == "final"
    assert object_kind("jobs/j/storyboard/01.png") == "intermediate"
    assert object_kind("cache/clip/ab/abcd.mp4") == "intermediate"
    assert object_kind("warehouse/provider_calls/job_id=j/1-a.parquet") == "final"


def test_takes_an_expired_cache_lost_are_put_back_from_their_version(media):
    """An expired cache (S3's lifecycle) loses the takes' images and clips; the version's own
    copies bring them back under their keys, except a lip-synced clip (not its take). A cache
    that does not expire restores nothing."""
    write_version(media, 2, "a")
    commit_version(media, JOB, None, "done", 0, 0.0)
    keys = [{"image": cache_key("image", ".png", n=i), "clip": cache_key("clip", ".mp4", n=i)}
            for i in range(2)]
    specs = [ClipSpec(index=i, key=layout.clip_key(JOB, i), clip_duration_s=5.0,
                      segment_start_s=5.0 * i, segment_duration_s=5.0, provider="offline",
                      lipsync=i == 1, source_key=keys[i]["clip"], image_key=keys[i]["image"])
             for i in range(2)]
    # a local cache does not expire: a missing entry was damaged, and the version's copy is a
    # hard link to the same bytes: it is made again, not restored
    assert restore_takes(media, JOB, 1, specs) == 0 and not media.exists(keys[0]["image"])
    media.cache_expires = True  # as on S3, whose lifecycle expires the cache
    assert restore_takes(media, JOB, 1, specs) == 3
    assert media.get_bytes(keys[0]["image"]) == b"image 0 a"
    assert media.get_bytes(keys[0]["clip"]) == b"clip 0 a"
    assert media.get_bytes(keys[1]["image"]) == b"image 1 a"
    assert not media.exists(keys[1]["clip"])  # lip-synced: the version has no copy of its take
    assert all(media.cached(keys[i]["image"]) for i in range(2)) and media.cached(keys[0]["clip"])
    assert restore_takes(media, JOB, 1, specs) == 0  # held now: nothing to do
