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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from video_assets.providers.keys import api_key
from video_assets.providers.registry import ModelSpec
from video_assets.providers.retry import (  # noqa: F401  (re-exported for callers)
    RETRY_STATUSES,
    Failure,
    ProviderError,
    ProviderKeyMissing,
    RetryPolicy,
    call_with_retries,
)
from video_assets.schemas import CallRecord

TERMINAL = frozenset({"succeeded", "failed", "canceled"})


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


class ReplicateRunner:
    """Runs predictions for one API token (``REPLICATE_API_TOKEN``, read and checked by
    ``keys.api_key``) and base URL (``REPLICATE_BASE_URL``, read by the official client)."""

    def __init__(self, policy: RetryPolicy | None = None, max_concurrency: int = 4) -> None:
        import replicate

        self.token = api_key("replicate")
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

        def attempt(row: CallRecord, started: float) -> None:
            row.units, row.unit, row.unit_price_usd = units, spec.unit, spec.unit_price_usd
            self._attempt(spec, inputs, out_path, started)
            row.cost_usd = spec.cost_usd(units)

        with self.slots:
            call_with_retries(spec.name, self.policy, new_row, attempt, self._classify, self.token)

    def _classify(self, exc: Exception) -> Failure | None:
        from replicate.exceptions import ReplicateError

        if isinstance(exc, ReplicateError):
            return Failure(f"HTTP {exc.status}: {exc.detail or exc.title or ''}".strip(),
                           exc.status in RETRY_STATUSES, self.transport.take_retry_after())
        if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
            return Failure(f"{type(exc).__name__}: {exc}", True)
        if isinstance(exc, _PredictionFailed):
            return Failure(str(exc), exc.retryable)
        return None

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
