"""A paid clip is paid once, even when its worker dies after the download: the provider's output
is kept in the media store's cache before it is normalised, so a retry normalises the kept file.

The clip is made in a child process through ``generation.generate_clip`` with the Replicate video
provider against the loopback Replicate server (``tests/fake_replicate.py``, which counts the
predictions); the child is SIGKILLed (with its ffmpeg) while ffmpeg normalises the downloaded clip.
The retry then runs the same generation in this process. Real store, real DuckDB ledger, real
ffmpeg."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.fake_replicate import FakeReplicate, serving
from video_assets.generation import Stage, clip_cache_key, generate_clip, ledger
from video_assets.media.ffmpeg_bin import FfmpegError
from video_assets.providers.offline import OfflineImages, OfflinePlanner
from video_assets.providers.replicate import ReplicateVideo
from video_assets.providers.replicate_api import ReplicateRunner
from video_assets.providers.retry import RetryPolicy
from video_assets.schemas import BeatGrid, Boundary, Request, Scene
from video_assets.store import LocalStore, sha256_file
from video_assets.warehouse import DuckDBWarehouse

REPO = Path(__file__).resolve().parents[1]
VIDEO = "kwaivgi/kling-v2.1"
SIZE = (1080, 1920)  # the clip's size: a full-size normalisation takes long enough to be caught
CLIP_S = 5.0
JOB = "repay-after-kill"


def scene_and_image(media_root: Path) -> tuple[Scene, Path]:
    """The job's first scene (planned offline) and its storyboard image, made once."""
    request = Request(prompt="a paper boat on a flooded street", audio="song.wav", aspect="9:16",
                      transitions="cut")
    beats = [round(0.5 * i, 3) for i in range(10)]
    grid = BeatGrid(duration_s=5.0, tempo_bpm=120.0, beats_s=beats, downbeats_s=beats[::4],
                    beat_energy=[0.5] * len(beats), method="beats", confidence=0.9, meter=4,
                    boundaries=[Boundary(start_s=0.0, end_s=5.0)])
    scene = OfflinePlanner().plan(request, grid, 42).scenes[0]
    image = media_root.parent / "scene.png"
    if not image.exists():
        OfflineImages().render(scene, OfflinePlanner().plan(request, grid, 42).style, (540, 960),
                               image, lambda: None)
    return scene, image


def make_clip(media_root: Path, warehouse: Path) -> tuple[str, bool]:
    """The scene's paid clip through the one cached-generation step (cache key, cache hit)."""
    scene, image = scene_and_image(media_root)
    video = ReplicateVideo(VIDEO, ReplicateRunner(RetryPolicy(max_attempts=1, poll_s=0.05)))
    with ledger(DuckDBWarehouse(warehouse)) as calls:
        return generate_clip(Stage(LocalStore(media_root), calls, JOB, "clips"), video, image,
                             sha256_file(image), scene, CLIP_S, [], SIZE)


def normalising(pgid: int) -> bool:
    """Whether an ffmpeg of process group ``pgid`` is normalising a downloaded clip."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        group = int(stat.rsplit(")", 1)[1].split()[2])  # after the name: state, ppid, pgrp
        if group == pgid and any(b"ffmpeg" in part for part in cmdline[:1]) \
                and any(part.endswith(b".download.mp4") for part in cmdline):
            return True
    return False


def kill_child_when(media_root: Path, warehouse: Path, ready, what: str) -> None:
    """Make the clip in a child process and SIGKILL it (and its ffmpeg) once ``ready(pgid)``."""
    code = ("import sys; from pathlib import Path; from tests.test_repay_after_kill import make_clip; "
            "make_clip(Path(sys.argv[1]), Path(sys.argv[2]))")
    child = subprocess.Popen([sys.executable, "-c", code, str(media_root), str(warehouse)],
                             cwd=REPO, start_new_session=True, stderr=subprocess.PIPE)
    try:
        ends = time.monotonic() + 120
        while not ready(child.pid):
            assert child.poll() is None, f"the child ended before {what}: " \
                f"{child.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < ends, f"the child never reached {what}"
            time.sleep(0.005)
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stderr.close()


def kill_while_normalising(media_root: Path, warehouse: Path) -> None:
    """SIGKILL the clip's child while ffmpeg normalises the downloaded clip."""
    kill_child_when(media_root, warehouse, normalising, "normalising its clip")


def paid_rows(warehouse: Path) -> list[tuple]:
    with DuckDBWarehouse(warehouse).connect(read_only=True) as con:
        return con.execute("SELECT status, cost_usd FROM provider_calls WHERE job_id = ? "
                           "AND cost_usd > 0", [JOB]).fetchall()


def reused_rows(warehouse: Path) -> int:
    with DuckDBWarehouse(warehouse).connect(read_only=True) as con:
        return con.execute("SELECT count(*) FROM provider_calls WHERE job_id = ? AND cache_hit "
                           "AND cost_usd = 0", [JOB]).fetchone()[0]


def test_a_clip_killed_while_normalising_is_not_paid_again_on_retry(tmp_path: Path):
    media_root, warehouse = tmp_path / "media", tmp_path / "wh.duckdb"
    fake = FakeReplicate(token=f"r8_repay_{uuid.uuid4().hex}")
    with serving(fake):
        kill_while_normalising(media_root, warehouse)
        scene, image = scene_and_image(media_root)
        video = ReplicateVideo(VIDEO, ReplicateRunner())
        key = clip_cache_key(video, sha256_file(image), CLIP_S, scene, [], SIZE)
        assert not LocalStore(media_root).exists(key), "the kill came after the clip was cached"
        assert len(paid_rows(warehouse)) == 1  # the killed worker's charge is in the ledger

        retried_key, hit = make_clip(media_root, warehouse)

    assert (retried_key, hit) == (key, False)
    assert [model for model, _ in fake.created] == [VIDEO]  # one prediction, not two
    assert paid_rows(warehouse) == [("ok", 0.05 * CLIP_S)]
    assert reused_rows(warehouse) == 1  # the retry's row: the kept download, at no cost
    assert LocalStore(media_root).cached(key)
    assert LocalStore(media_root).list("cache/download/") == []  # kept until the clip was cached


def test_a_download_that_cannot_be_normalised_is_dropped_so_the_retry_asks_again(tmp_path: Path):
    media_root, warehouse = tmp_path / "media", tmp_path / "wh.duckdb"
    fake = FakeReplicate(token=f"r8_repay_{uuid.uuid4().hex}", file_bytes=4096)  # not a video
    with serving(fake):
        with pytest.raises(FfmpegError):
            make_clip(media_root, warehouse)
        assert LocalStore(media_root).list("cache/download/") == []
        fake.file_bytes = 0  # the model's next output is a real clip
        make_clip(media_root, warehouse)

    assert [model for model, _ in fake.created] == [VIDEO, VIDEO]


def test_a_download_the_store_cannot_keep_still_makes_the_clip(tmp_path: Path):
    media_root, warehouse = tmp_path / "media", tmp_path / "wh.duckdb"
    (media_root / "cache").mkdir(parents=True)
    (media_root / "cache" / "download").write_text("a file where the folder would go")
    fake = FakeReplicate(token=f"r8_repay_{uuid.uuid4().hex}")
    with serving(fake):
        key, hit = make_clip(media_root, warehouse)

    assert not hit and LocalStore(media_root).cached(key)
    assert [model for model, _ in fake.created] == [VIDEO]


def kill_while_predicting(media_root: Path, warehouse: Path, fake: FakeReplicate) -> None:
    """SIGKILL the clip's child while its prediction is running (polled for 0.3 s)."""
    created_at: list[float] = []

    def polling(_pgid: int) -> bool:
        if fake.created and not created_at:
            created_at.append(time.monotonic())
        return bool(created_at) and time.monotonic() - created_at[0] > 0.3

    kill_child_when(media_root, warehouse, polling, "its prediction")


def test_a_worker_killed_while_its_prediction_runs_is_not_paid_again_on_retry(tmp_path: Path):
    """The retry follows the prediction the killed worker started (its id was kept in the cache
    when it was created) instead of creating and paying for another; the ledger gets the one
    paid row the killed worker never wrote."""
    media_root, warehouse = tmp_path / "media", tmp_path / "wh.duckdb"
    fake = FakeReplicate(token=f"r8_repay_{uuid.uuid4().hex}", slow_models={VIDEO},
                         finish_after_s=3.0)
    with serving(fake):
        kill_while_predicting(media_root, warehouse, fake)
        [(_, pid)] = fake.created
        assert fake.predictions[pid]["status"] in ("starting", "processing")  # killed mid-way
        key, hit = make_clip(media_root, warehouse)

    assert not hit and LocalStore(media_root).cached(key)
    assert [model for model, _ in fake.created] == [VIDEO]  # one prediction, not two
    assert paid_rows(warehouse) == [("ok", 0.05 * CLIP_S)]
    assert LocalStore(media_root).list("cache/prediction/") == []  # forgotten once cached
