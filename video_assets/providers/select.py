"""Choosing a job's providers: the request's ``providers`` field (resolved at admission)."""

from __future__ import annotations

import functools
import os

from video_assets.providers.offline import OfflineImages, OfflineVideo
from video_assets.providers.registry import DEFAULT_MODELS
from video_assets.providers.replicate import ReplicateImages, ReplicateVideo
from video_assets.providers.replicate_api import ReplicateRunner, RetryPolicy


@functools.cache
def _runner(token: str, base_url: str, policy: RetryPolicy, concurrency: int) -> ReplicateRunner:
    # one runner (client, semaphore) per process and configuration: the per-provider
    # concurrency bound holds across all the clip threads of a run
    return ReplicateRunner(policy, max_concurrency=concurrency)


def replicate_runner(policy: RetryPolicy, concurrency: int) -> ReplicateRunner:
    return _runner(os.environ.get("REPLICATE_API_TOKEN", ""),
                   os.environ.get("REPLICATE_BASE_URL", ""), policy, concurrency)


def _model(choice: str, capability: str) -> str:
    return choice.split(":", 1)[1] if ":" in choice else DEFAULT_MODELS[capability]


def image_provider(choice: str | None, policy: RetryPolicy, concurrency: int):
    if choice in (None, "offline"):
        return OfflineImages()
    return ReplicateImages(_model(choice, "images"), replicate_runner(policy, concurrency))


def video_provider(choice: str | None, policy: RetryPolicy, concurrency: int):
    if choice in (None, "offline"):
        return OfflineVideo()
    return ReplicateVideo(_model(choice, "video"), replicate_runner(policy, concurrency))
