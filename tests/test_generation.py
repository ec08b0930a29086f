"""The one cached-generation layer (``video_assets/generation.py``) and the scene core
(``scene_media.py``): cache keys hold only what a provider receives, a scene's take is reused
instead of regenerated when it fits its slot, and clips.json names each clip's source and image.

Real store and warehouse on tmp_path, offline providers, and the loopback fake Replicate where a
paid call would be made (its predictions are counted)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fake_replicate import FakeReplicate, serving
from video_assets.assets.budget import plan_items
from video_assets.generation import Stage, clip_cache_key, image_cache_key, ledger
from video_assets.layout import clip_key, storyboard_key
from video_assets.providers.offline import OfflineImages, OfflinePlanner, OfflineVideo
from video_assets.providers.replicate import ReplicateImages, ReplicateVideo
from video_assets.providers.replicate_api import ReplicateRunner
from video_assets.providers.retry import RetryPolicy
from video_assets.resources import PipelineSettings
from video_assets.scene_media import ClipJob, make_clips, storyboard_images
from video_assets.schemas import (
    BeatGrid,
    Boundary,
    CallRecord,
    Request,
    Script,
    StoredRequest,
    Style,
    Take,
)
from video_assets.store import LocalStore
from video_assets.warehouse import Warehouse

VIDEO, IMAGE = "kwaivgi/kling-v2.1", "black-forest-labs/flux-schnell"
SIZE = (270, 480)
STYLE = Style(palette_hex=["#1b1f3b", "#f25f5c", "#ffe066", "#223344", "#101820"],
              lighting="dim moonlight", mood="dreamy")


class Quiet:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def warning(self, msg: str) -> None:
        self.lines.append(msg)


def grid_for(cuts_s: list[float]) -> BeatGrid:
    """A 120 BPM grid whose boundaries are at ``cuts_s`` (the first 0, the last the end)."""
    end_s = cuts_s[-1]
    beats = [round(0.5 * i, 3) for i in range(int(end_s * 2))]
    return BeatGrid(duration_s=end_s, tempo_bpm=120.0, beats_s=beats, downbeats_s=beats[::4],
                    beat_energy=[0.5] * len(beats), method="beats", confidence=0.9, meter=4,
                    boundaries=[Boundary(start_s=a, end_s=b)
                                for a, b in zip(cuts_s, cuts_s[1:], strict=False)])


@dataclass
class Job:
    job_id: str
    media: LocalStore
    wh: Warehouse
    stored: StoredRequest
    grid: BeatGrid
    plan: Script


@pytest.fixture()
def job(tmp_path: Path) -> Job:
    """A 12 s job of three 4 s scenes (all cuts), planned offline; no files made yet."""
    request = Request(prompt="lanterns drifting over a dark lake", audio="song.wav", aspect="1:1",
                      transitions="cut")
    job_id = f"gen-{uuid.uuid4().hex[:8]}"
    stored = StoredRequest(job_id=job_id, request=request, source_name="test",
                           audio_key=f"jobs/{job_id}/audio.flac", audio_duration_s=12.0,
                           audio_sha256="0" * 64)
    grid = grid_for([0.0, 4.0, 8.0, 12.0])
    plan = OfflinePlanner().plan(request, grid, 42)
    return Job(job_id, LocalStore(tmp_path / "media"), Warehouse(tmp_path / "wh.duckdb"),
               stored, grid, plan)


def storyboard(job: Job, plan: Script) -> list:
    with ledger(job.wh) as calls:
        return storyboard_images(Stage(job.media, calls, job.job_id, "storyboard"),
                                 OfflineImages(), plan, job.stored.request.size, 2, Quiet())


def clips(job: Job, plan: Script, grid: BeatGrid, video) -> tuple[list, list[CallRecord]]:
    """The clip stage's core over ``plan``; returns the specs and the ledger rows."""
    with ledger(job.wh) as calls:
        specs, _ = make_clips(
            Stage(job.media, calls, job.job_id, "clips"),
            ClipJob(job.stored, grid, plan, video, OfflineImages(), None, 30, 8, 2), Quiet())
    return specs, list(calls)


@pytest.fixture()
def fake() -> Iterator[FakeReplicate]:
    with serving(FakeReplicate(token=f"r8_gen_{uuid.uuid4().hex}")) as server:
        yield server


def replicate_video() -> ReplicateVideo:
    return ReplicateVideo(VIDEO, ReplicateRunner(RetryPolicy(max_attempts=2, backoff_base_s=0.01,
                                                             poll_s=0.05)))


# ---------------------------------------------------------------------------------------------
# keys


def test_the_image_key_ignores_the_caption_and_the_scene_index(job: Job):
    scene = job.plan.scenes[1]
    elsewhere = scene.model_copy(update={"caption": "another caption", "index": 7,
                                         "start_s": 30.0, "end_s": 34.0})
    card = OfflineImages()
    assert image_cache_key(card, elsewhere, STYLE, SIZE) == image_cache_key(card, scene, STYLE, SIZE)


@pytest.mark.parametrize("change", [
    {"prompt": "a different prompt"}, {"seed": 12345}, {"camera": "static"}])
def test_the_image_key_changes_with_what_the_provider_receives(job: Job, change: dict):
    scene = job.plan.scenes[1]
    card = OfflineImages()
    before = image_cache_key(card, scene, STYLE, SIZE)
    assert image_cache_key(card, scene.model_copy(update=change), STYLE, SIZE) != before


def test_the_image_key_changes_with_the_style_and_the_size(job: Job):
    scene, card = job.plan.scenes[0], OfflineImages()
    before = image_cache_key(card, scene, STYLE, SIZE)
    assert image_cache_key(card, scene, STYLE.model_copy(update={"mood": "euphoric"}), SIZE) != before
    assert image_cache_key(card, scene, STYLE, (480, 270)) != before


def test_deleting_a_scene_renders_no_image_again(job: Job):
    first = storyboard(job, job.plan)
    assert not any(i.cache_hit for i in first)
    # scene 2 deleted: the others are renumbered and the plan is one scene shorter
    rest = [s.model_copy(update={"index": i})
            for i, s in enumerate([job.plan.scenes[0], job.plan.scenes[2]])]
    again = storyboard(job, job.plan.model_copy(update={"scenes": rest}))
    assert [i.key for i in again] == [first[0].key, first[2].key]
    assert all(i.cache_hit for i in again)


def test_the_offline_card_paints_the_prompt_not_the_caption(tmp_path: Path, job: Job):
    scene = job.plan.scenes[0]
    paths = []
    for n, change in enumerate([{}, {"caption": "a caption no one sees", "index": 2},
                                {"prompt": "a lighthouse in fog"}]):
        paths.append(tmp_path / f"{n}.png")
        OfflineImages().render(scene.model_copy(update=change), STYLE, SIZE, paths[-1])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_the_clip_key_holds_the_beats_for_the_animatic_only(job: Job):
    scene = job.plan.scenes[0]
    beats, moved = [0.5, 1.0, 1.5], [0.25, 0.75, 1.25]
    animatic = OfflineVideo()
    assert clip_cache_key(animatic, "ab" * 32, 5.0, scene, beats, SIZE) != \
        clip_cache_key(animatic, "ab" * 32, 5.0, scene, moved, SIZE)
    kling = ReplicateVideo(VIDEO, runner=None)  # type: ignore[arg-type]  # keys only, no calls
    assert clip_cache_key(kling, "ab" * 32, 5.0, scene, beats, SIZE) == \
        clip_cache_key(kling, "ab" * 32, 5.0, scene, moved, SIZE)


def test_every_image_and_video_provider_says_whether_it_is_paid_and_its_unit():
    kling = ReplicateVideo(VIDEO, runner=None)  # type: ignore[arg-type]
    flux = ReplicateImages(IMAGE, runner=None)  # type: ignore[arg-type]
    assert (OfflineImages.paid, OfflineImages.unit) == (False, "image")
    assert (OfflineVideo.paid, OfflineVideo.unit, OfflineVideo.receives_beats) == \
        (False, "video_s", True)
    assert (flux.paid, flux.unit) == (True, "image")
    assert (kling.paid, kling.unit, kling.receives_beats) == (True, "video_s", False)


# ---------------------------------------------------------------------------------------------
# takes


def with_takes(plan: Script, specs: list, grid: BeatGrid) -> Script:
    """``plan`` re-cut to ``grid``'s boundaries, each scene keeping its clip as a take."""
    return plan.model_copy(update={"scenes": [
        s.model_copy(update={"take": spec.take(), "start_s": b.start_s, "end_s": b.end_s})
        for s, spec, b in zip(plan.scenes, specs, grid.boundaries, strict=True)]})


def test_kept_takes_are_reused_and_only_a_slot_longer_than_its_take_is_generated(
        job: Job, fake: FakeReplicate):
    storyboard(job, job.plan)
    first, _ = clips(job, job.plan, job.grid, OfflineVideo())  # three 5 s animatics
    assert [s.clip_duration_s for s in first] == [5.0, 5.0, 5.0]
    # the first cut moves from 4 s to 6.5 s: scene 1 needs 6.5 s (more than its 5 s take, and
    # the model would make 10 s), scenes 2 and 3 need 2.5 s and 3 s (their takes cover them)
    grid = grid_for([0.0, 6.5, 9.0, 12.0])
    specs, rows = clips(job, with_takes(job.plan, first, grid), grid, replicate_video())
    assert len(fake.succeeded("video")) == fake.posts() == 1  # scene 1 only
    assert specs[0].provider == f"replicate:{VIDEO}" and specs[0].clip_duration_s == 10.0
    assert [s.source_key for s in specs[1:]] == [s.source_key for s in first[1:]]
    assert [s.provider for s in specs[1:]] == ["offline", "offline"]
    reused = [r for r in rows if r.scene_index in (1, 2)]
    assert [(r.cache_hit, r.cost_usd) for r in reused] == [(True, 0.0), (True, 0.0)]
    for spec in specs:  # each slot's file is its clip
        assert job.media.get_bytes(spec.key) == job.media.get_bytes(spec.source_key)


def test_a_users_clip_is_never_regenerated_even_for_a_longer_slot(job: Job, fake: FakeReplicate):
    storyboard(job, job.plan)
    first, _ = clips(job, job.plan, job.grid, OfflineVideo())
    upload = f"jobs/{job.job_id}/uploads/mine.mp4"  # not a cache key: the user's own file
    job.media.copy(first[0].key, upload)
    grid = grid_for([0.0, 6.5, 9.0, 12.0])
    plan = with_takes(job.plan, first, grid)
    mine = Take(clip_key=upload, clip_s=5.0, provider="user")
    plan.scenes[0] = plan.scenes[0].model_copy(update={"take": mine})
    specs, _ = clips(job, plan, grid, replicate_video())
    assert fake.posts() == 0
    assert (specs[0].provider, specs[0].source_key, specs[0].clip_duration_s) == ("user", upload, 5.0)


def test_a_users_clip_missing_from_the_store_is_an_error_naming_the_fix(job: Job):
    storyboard(job, job.plan)
    mine = Take(clip_key=f"jobs/{job.job_id}/uploads/gone.mp4", clip_s=5.0, provider="user")
    plan = job.plan.model_copy(update={"scenes": [
        job.plan.scenes[0].model_copy(update={"take": mine}), *job.plan.scenes[1:]]})
    with pytest.raises(ValueError, match=r"scene 1: take.clip_key: .*gone.mp4.*fix: replace"):
        clips(job, plan, job.grid, OfflineVideo())


def test_clips_name_their_source_their_image_and_their_in_point(job: Job):
    images = storyboard(job, job.plan)
    plan = job.plan.model_copy(update={"scenes": [
        job.plan.scenes[0].model_copy(update={"in_s": 0.5}), *job.plan.scenes[1:]]})
    specs, _ = clips(job, plan, job.grid, OfflineVideo())
    assert [s.in_s for s in specs] == [0.5, 0.0, 0.0]
    assert [s.image_key for s in specs] == [i.key for i in images]
    for spec in specs:
        assert job.media.cached(spec.source_key) and spec.source_key.startswith("cache/clip/")
        assert job.media.get_bytes(spec.key) == job.media.get_bytes(spec.source_key)
        assert job.media.get_bytes(spec.image_key) == \
            job.media.get_bytes(storyboard_key(job.job_id, spec.index))
    assert specs[0].key == clip_key(job.job_id, 0)


def test_the_budget_counts_a_kept_take_as_free(job: Job, fake: FakeReplicate):
    storyboard(job, job.plan)
    first, _ = clips(job, job.plan, job.grid, OfflineVideo())
    stored = job.stored.model_copy(update={"request": job.stored.request.model_copy(
        update={"providers": job.stored.request.providers.model_copy(
            update={"video": f"replicate:{VIDEO}"})})})
    grid = grid_for([0.0, 6.5, 9.0, 12.0])
    items = plan_items(job.job_id, stored, PipelineSettings(), job.media, job.wh, "video", grid,
                       with_takes(job.plan, first, grid))
    assert [label for label, _ in items] == [f"clip 1: 10 s ({VIDEO})"]
    assert fake.posts() == 0


def test_a_fallback_take_stays_a_fallback_when_its_slot_grows(job: Job, fake: FakeReplicate):
    storyboard(job, job.plan)
    first, _ = clips(job, job.plan, job.grid, OfflineVideo())
    grid = grid_for([0.0, 6.5, 9.0, 12.0])
    plan = with_takes(job.plan, first, grid)
    stood_in = plan.scenes[0].take.model_copy(update={"fallback": True})
    plan.scenes[0] = plan.scenes[0].model_copy(update={"take": stood_in})
    specs, _ = clips(job, plan, grid, replicate_video())
    assert fake.posts() == 0  # the real model is not tried again for it
    assert (specs[0].provider, specs[0].fallback, specs[0].clip_duration_s) == ("offline", True, 10.0)
