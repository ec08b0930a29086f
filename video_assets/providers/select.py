"""Choosing a job's providers: the request's ``providers`` field (resolved at admission).

Runners (client, retry policy, per-provider semaphore) are shared per process and configuration,
so the concurrency bound holds across all the threads of a run.
"""

from __future__ import annotations

import functools
import os

from video_assets.providers.keys import api_key
from video_assets.providers.offline import OfflineImages, OfflinePlanner, OfflineVideo
from video_assets.providers.registry import DEFAULT_MODELS
from video_assets.providers.replicate import (
    ReplicateImages,
    ReplicateLipsync,
    ReplicateMusic,
    ReplicateVideo,
)
from video_assets.providers.replicate_api import ReplicateRunner
from video_assets.providers.retry import RetryPolicy
from video_assets.schemas import Providers


@functools.cache
def _replicate(token: str, base_url: str, policy: RetryPolicy, concurrency: int) -> ReplicateRunner:
    return ReplicateRunner(policy, max_concurrency=concurrency)


@functools.cache
def _openai(key: str, base_url: str, policy: RetryPolicy, concurrency: int):
    from video_assets.providers.openai import OpenAIRunner

    return OpenAIRunner(policy, max_concurrency=concurrency)


def replicate_runner(policy: RetryPolicy, concurrency: int) -> ReplicateRunner:
    return _replicate(api_key("replicate"),
                      os.environ.get("REPLICATE_BASE_URL", ""), policy, concurrency)


def openai_runner(policy: RetryPolicy, concurrency: int):
    return _openai(api_key("openai"), os.environ.get("OPENAI_BASE_URL", ""),
                   policy, concurrency)


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


def planner(providers: Providers, policy: RetryPolicy, concurrency: int):
    model = providers.model_for("planner")
    if model is None:
        return OfflinePlanner()
    from video_assets.providers.openai import OpenAIPlanner

    return OpenAIPlanner(model, openai_runner(policy, concurrency))


def transcriber(providers: Providers, policy: RetryPolicy, concurrency: int):
    """The transcription provider, or None offline (no speech recognition ships offline)."""
    model = providers.model_for("transcribe")
    if model is None:
        return None
    from video_assets.providers.openai import OpenAITranscriber

    return OpenAITranscriber(model, openai_runner(policy, concurrency))


def voice(providers: Providers, policy: RetryPolicy, concurrency: int):
    """The text-to-speech provider, or None offline (no voiceover)."""
    model = providers.model_for("voice")
    if model is None:
        return None
    from video_assets.providers.openai import OpenAIVoice

    return OpenAIVoice(model, openai_runner(policy, concurrency))


def music(providers: Providers, policy: RetryPolicy, concurrency: int):
    """The music provider, or None offline (a synthesized bed)."""
    model = providers.model_for("music")
    return None if model is None else ReplicateMusic(model, replicate_runner(policy, concurrency))


def lipsync(providers: Providers, policy: RetryPolicy, concurrency: int):
    """The lip-sync provider, or None (no lip-sync)."""
    model = providers.model_for("lipsync")
    return None if model is None else ReplicateLipsync(model, replicate_runner(policy, concurrency))
