"""Dagster resources: the media store, the warehouse and the pipeline's tunable settings."""

from __future__ import annotations

from dagster import ConfigurableResource

from video_assets.config import media_root, s3_bucket, url_expiry_s, warehouse_path
from video_assets.media.boundaries import BoundaryLimits
from video_assets.media.compose import ComposeSettings
from video_assets.store import LocalStore, MediaStore
from video_assets.warehouse import Warehouse


class StoreResource(ConfigurableResource):
    """The media store: ``s3://$VIDEO_ASSETS_BUCKET/`` when that is set (through dagster-aws's
    S3Resource; ``AWS_ENDPOINT_URL`` for S3-compatible servers), else a local folder
    (``$DAGSTER_HOME/media`` by default)."""

    root: str = ""
    bucket: str = ""

    def get(self) -> MediaStore:
        bucket = self.bucket or s3_bucket()
        if bucket:
            from video_assets.store_s3 import S3Store

            return S3Store(bucket, url_expiry_s=url_expiry_s())
        return LocalStore(self.root or media_root())


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse (``$DAGSTER_HOME/warehouse.duckdb`` or ``VIDEO_ASSETS_WAREHOUSE``)."""

    path: str = ""

    def get(self) -> Warehouse:
        return Warehouse(self.path or warehouse_path())


class PipelineSettings(ConfigurableResource):
    """Timing and encoding knobs, with the defaults PRODUCT.md describes."""

    min_clip_s: float = 3.0
    max_clip_s: float = 7.0
    min_clips: int = 3
    target_clip_s: float = 4.0
    fps: int = 30
    transition_half_frames: int = 8  # a crossfade lasts 2 * 8 frames, centred on its beat
    crf: int = 20
    preset: str = "veryfast"
    clip_workers: int = 2  # parallel generations (storyboard images, clips) inside one run
    compose_workers: int = 2  # chunks of the final video encoded at once (one x264 thread each)
    inbox_grace_s: float = 120.0  # how long a request in the inbox may wait for its audio
    default_budget_usd: float = 5.0  # cap for paid calls when the request sets no budget_usd
    provider_concurrency: int = 4  # calls in flight per provider, per run
    provider_attempts: int = 5  # per call, retries included
    provider_backoff_s: float = 0.5  # first retry pause (doubles, with jitter; Retry-After wins)
    provider_deadline_s: float = 900.0  # per call, all attempts included
    provider_poll_s: float = 1.0
    # each provider output file: at most this many bytes, fetched within this time (https only,
    # public addresses only; VIDEO_ASSETS_ALLOW_LOOPBACK_HTTP=1 lets tests use a loopback server)
    provider_download_max_bytes: int = 500 * 2**20
    provider_download_deadline_s: float = 300.0

    def retry_policy(self):
        from video_assets.providers.replicate_api import RetryPolicy

        return RetryPolicy(max_attempts=self.provider_attempts,
                           backoff_base_s=self.provider_backoff_s,
                           deadline_s=self.provider_deadline_s, poll_s=self.provider_poll_s,
                           download_max_bytes=self.provider_download_max_bytes,
                           download_deadline_s=self.provider_download_deadline_s)

    def limits(self) -> BoundaryLimits:
        return BoundaryLimits(min_len_s=self.min_clip_s, max_len_s=self.max_clip_s,
                              min_clips=self.min_clips, target_len_s=self.target_clip_s)

    def compose_settings(self, size: tuple[int, int]) -> ComposeSettings:
        return ComposeSettings(width=size[0], height=size[1], fps=self.fps, crf=self.crf,
                               preset=self.preset)
