"""Replicate through the official client, made reliable: retries, deadlines, cancellation.

- ``POST /v1/models/{owner}/{name}/predictions`` with ``Prefer: wait``; the client does not retry a
  POST, so 429, 5xx and transport timeouts are retried here with exponential backoff and jitter,
  honouring ``Retry-After`` (read from the response by a small transport wrapper, since the
  client's error object does not carry headers). Other 4xx fail at once.
- A prediction still running is polled (``GET /v1/predictions/{id}``; the client retries GETs)
  until ``succeeded``/``failed``/``canceled`` or the per-call deadline, when it is cancelled. A
  prediction abandoned by an error or an interrupt is cancelled too.
- Outputs are downloaded at once (Replicate deletes them after an hour), streamed to disk.
- Every attempt is one ledger row (``new_row``): failures cost 0, a success costs units x price.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from video_assets.providers.registry import ModelSpec
from video_assets.schemas import CallRecord

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TERMINAL = frozenset({"succeeded", "failed", "canceled"})


class ProviderError(RuntimeError):
    """A provider call that failed for good (after its retries)."""


class ProviderKeyMissing(ProviderError):
    pass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    deadline_s: float = 900.0  # per call, all attempts included
    wait_s: int = 60  # Prefer: wait=N on create
    poll_s: float = 1.0

    def backoff_s(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.backoff_max_s, max(0.0, float(retry_after)))
            except ValueError:
                pass
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # "equal jitter"


class _RetryAfterTransport(httpx.BaseTransport):
    """Remembers (per thread) the ``Retry-After`` of the last retryable response."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.local = threading.local()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if response.status_code in RETRY_STATUSES:
            self.local.retry_after = response.headers.get("retry-after")
        return response

    def take_retry_after(self) -> str | None:
        value = getattr(self.local, "retry_after", None)
        self.local.retry_after = None
        return value

    def close(self) -> None:
        self.inner.close()


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


class ReplicateRunner:
    """Runs predictions for one API token (``REPLICATE_API_TOKEN``) and base URL
    (``REPLICATE_BASE_URL``, read by the official client)."""

    def __init__(self, policy: RetryPolicy | None = None, max_concurrency: int = 4) -> None:
        import replicate

        self.token = os.environ.get("REPLICATE_API_TOKEN", "")
        if not self.token:
            raise ProviderKeyMissing("REPLICATE_API_TOKEN is not set; fix: export it, or use "
                                     "providers: {images: offline, video: offline}")
        self.policy = policy or RetryPolicy()
        self.transport = _RetryAfterTransport()
        self.client = replicate.Client(api_token=self.token, transport=self.transport)
        self.slots = threading.BoundedSemaphore(max_concurrency)  # per provider, per process

    def run(self, spec: ModelSpec, inputs: dict[str, Any], units: float, out_path: Path,
            new_row: Callable[[], CallRecord]) -> None:
        """Predict until one attempt succeeds and its output is on disk at ``out_path``."""
        from replicate.exceptions import ReplicateError

        started = time.monotonic()
        last_error = "no attempt made"
        with self.slots:
            for attempt in range(1, self.policy.max_attempts + 1):
                row = new_row()
                row.attempt, row.units, row.unit = attempt, units, spec.unit
                row.unit_price_usd = spec.unit_price_usd
                t0 = time.perf_counter()
                retry_after = None
                try:
                    self._attempt(spec, inputs, out_path, started)
                except ReplicateError as exc:
                    retry_after = self.transport.take_retry_after()
                    last_error = f"HTTP {exc.status}: {exc.detail or exc.title or ''}".strip()
                    retryable = exc.status in RETRY_STATUSES
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    last_error, retryable = f"{type(exc).__name__}: {exc}", True
                except _PredictionFailed as exc:
                    last_error, retryable = str(exc), exc.retryable
                else:
                    row.status, row.cost_usd = "ok", spec.cost_usd(units)
                    row.latency_s = round(time.perf_counter() - t0, 4)
                    return
                row.status, row.cost_usd = "error", 0.0
                row.error = _redact(last_error, self.token)[:500]
                row.latency_s = round(time.perf_counter() - t0, 4)
                elapsed = time.monotonic() - started
                if not retryable or attempt == self.policy.max_attempts:
                    break
                pause = self.policy.backoff_s(attempt, retry_after)
                if elapsed + pause > self.policy.deadline_s:
                    last_error += f" (deadline of {self.policy.deadline_s:g} s reached)"
                    break
                time.sleep(pause)
        raise ProviderError(f"{spec.name}: {_redact(last_error, self.token)}")

    def _attempt(self, spec: ModelSpec, inputs: dict[str, Any], out_path: Path,
                 started: float) -> None:
        prediction = self.client.models.predictions.create(
            model=spec.name, input=inputs, wait=self.policy.wait_s)
        finished = False
        try:
            while prediction.status not in TERMINAL:
                if time.monotonic() - started > self.policy.deadline_s:
                    raise _PredictionFailed(f"prediction {prediction.id} still {prediction.status} "
                                            f"after {self.policy.deadline_s:g} s", retryable=False)
                time.sleep(self.policy.poll_s)
                prediction.reload()
            finished = True
        finally:
            if not finished:  # abandoned (deadline, error, interrupt): stop paying for it
                with contextlib.suppress(Exception):  # best effort; the original error matters
                    prediction.cancel()
        if prediction.status != "succeeded":
            raise _PredictionFailed(f"prediction {prediction.id} {prediction.status}: "
                                    f"{str(prediction.error or '')[:300]}", retryable=True)
        url = _first_url(prediction.output)
        if url is None:
            raise _PredictionFailed(f"prediction {prediction.id} succeeded without a file URL in "
                                    f"its output ({str(prediction.output)[:100]!r})", retryable=True)
        self._download(url, out_path)

    def _download(self, url: str, out_path: Path) -> None:
        tmp = out_path.with_name(out_path.name + ".part")
        # no Authorization header: output URLs are pre-signed, and the token stays with the API
        with httpx.stream("GET", url, timeout=60.0, follow_redirects=True) as resp:
            if resp.status_code != 200:
                raise _PredictionFailed(f"output download got HTTP {resp.status_code}",
                                        retryable=True)
            with open(tmp, "wb") as handle:
                for chunk in resp.iter_bytes(1 << 20):
                    handle.write(chunk)
        if tmp.stat().st_size == 0:
            tmp.unlink()
            raise _PredictionFailed("the output file is empty", retryable=True)
        tmp.replace(out_path)


class _PredictionFailed(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _first_url(output: Any) -> str | None:
    if isinstance(output, str) and output.startswith(("http://", "https://")):
        return output
    if isinstance(output, list) and output:
        return _first_url(output[0])
    return None


def data_uri(path: Path, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
