"""A storyboard image that fails for good (after its retries) is replaced by the offline procedural
card for that scene, flagged, and the render completes, as a failing clip falls back to the
animatic. Through the official replicate client against ``tests/fake_replicate.py``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import make_song
from tests.fake_replicate import FakeReplicate, serving
from video_assets.admission import check_audio, stage, validate_request
from video_assets.store import LocalStore, sha256_file

TOKEN = f"r8_fallback_{uuid.uuid4().hex}"
IMAGE, VIDEO = "black-forest-labs/flux-schnell", "kwaivgi/kling-v2.1"


@pytest.fixture()
def fake(home: Path) -> Iterator[FakeReplicate]:
    with serving(FakeReplicate(token=TOKEN), OPENAI_API_KEY=None) as server:
        yield server


def run_job(home: Path, song: Path, job_id: str):
    """Stage the job and run the render job in this process, one image at a time and two attempts
    per call, so the first image call is the one whose attempts all fail."""
    from dagster import DagsterInstance

    from video_assets.definitions import RUN_JOB_NAME, defs
    from video_assets.partitions import JOBS_PARTITION_NAME

    request = validate_request({"prompt": "lanterns drifting over a dark lake", "aspect": "1:1",
                                "transitions": "cut", "audio": song.name,
                                "providers": {"images": f"replicate:{IMAGE}",
                                              "video": f"replicate:{VIDEO}"}}, "test")
    stage(LocalStore(home / "media"), job_id, request, song.name, song,
          check_audio(song, "test"), sha256_file(song))
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(JOBS_PARTITION_NAME, [job_id])
    settings = {"clip_workers": 1, "provider_attempts": 2, "provider_backoff_s": 0.01,
                "provider_poll_s": 0.05}
    return defs.resolve_job_def(RUN_JOB_NAME).execute_in_process(
        instance=instance, partition_key=job_id, raise_on_error=False,
        run_config={"resources": {"settings": {"config": settings}}})


@pytest.mark.slow
def test_a_failing_storyboard_image_falls_back_to_the_procedural_card(
        fake: FakeReplicate, home: Path, tmp_path: Path):
    fake.next_statuses = [500, 500]  # both attempts of the first image call
    song = make_song(tmp_path / "lanterns.wav", 9.4, tempo_bpm=116.0)
    job_id = f"fallback-{uuid.uuid4().hex[:8]}"
    result = run_job(home, song, job_id)
    assert result.success
    meta = {e.step_materialization_data.materialization.asset_key.to_user_string():
            e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert meta["storyboard"]["fallback_scenes"].value == "1"
    n = meta["storyboard"]["n_images"].value
    assert (home / "media" / "jobs" / job_id / "final.mp4").stat().st_size > 0

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    rows = con.execute("SELECT scene_index, provider, status, cost_usd FROM provider_calls "
                       "WHERE job_id = ? AND asset = 'storyboard' ORDER BY started_at",
                       [job_id]).fetchall()
    con.close()
    # the failed call's attempts stay in the ledger (free), the card is an offline row
    assert [r for r in rows if r[0] == 0] == [(0, "replicate", "error", 0.0)] * 2 + \
        [(0, "offline", "ok", 0.0)]
    assert sorted(r[0] for r in rows if r[1] == "replicate" and r[2] == "ok") == list(range(1, n))
    # the clips, every scene's included, came from the video model
    assert len(fake.succeeded("video")) == n
    assert len(fake.succeeded("image")) == n - 1
