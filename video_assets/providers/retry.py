"""Retries for paid calls, shared by every real provider: one ledger row per attempt.

429, 5xx and transport timeouts are retried with exponential backoff and "equal jitter",
honouring ``Retry-After``; other errors fail at once. All attempts of one call share a deadline.
A failed attempt costs 0; the attempt that succeeds is charged by the caller (units x price).
Every error text goes through ``keys.redact`` before it reaches a row or an exception; an
exception that is not a provider failure but quotes a key is replaced by a redacted
``ProviderError``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from video_assets.providers.keys import redact
from video_assets.schemas import CallRecord

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


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
    wait_s: int = 60  # Replicate: Prefer: wait=N on create
    poll_s: float = 1.0
    download_max_bytes: int = 500 * 2**20  # per output file (a video); more is refused
    download_deadline_s: float = 300.0  # per output file, redirects included

    def backoff_s(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.backoff_max_s, max(0.0, float(retry_after)))
            except ValueError:
                pass
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Failure:
    """How one failed attempt is treated: its message, whether to retry, the server's wait."""

    message: str
    retryable: bool
    retry_after: str | None = None


def call_with_retries(
    label: str,
    policy: RetryPolicy,
    new_row: Callable[[], CallRecord],
    attempt: Callable[[CallRecord, float], T],
    classify: Callable[[Exception], Failure | None],
    secret: str = "",
) -> T:
    """Run ``attempt(row, started_monotonic)`` until it returns; each attempt gets a fresh ledger
    row (the attempt sets units and cost on success). ``classify`` turns a provider's exception
    into a ``Failure``; anything it returns ``None`` for is not a provider failure and is re-raised
    (its row marked as an error)."""
    started = time.monotonic()
    last_error = "no attempt made"
    finish = getattr(new_row, "finish", lambda row: None)  # write the row now (see CallLog)
    for number in range(1, policy.max_attempts + 1):
        row = new_row()
        row.attempt = number
        t0 = time.perf_counter()
        try:
            result = attempt(row, started)
        except Exception as exc:
            failure = classify(exc)
            row.status, row.cost_usd = "error", 0.0
            row.latency_s = round(time.perf_counter() - t0, 4)
            if failure is None:
                text = f"{type(exc).__name__}: {exc}"
                clean = redact(text, secret)
                row.error = clean[:500]
                finish(row)
                if clean == text:
                    raise
                last_error = clean  # it quotes a key: only the redacted text goes on (below,
                break  # outside this handler, so the original is not chained to it)
            last_error = failure.message
            row.error = redact(last_error, secret)[:500]
            finish(row)
            if not failure.retryable or number == policy.max_attempts:
                break
            pause = policy.backoff_s(number, failure.retry_after)
            if time.monotonic() - started + pause > policy.deadline_s:
                last_error += f" (deadline of {policy.deadline_s:g} s reached)"
                break
            time.sleep(pause)
        else:
            row.status = "ok"
            row.latency_s = round(time.perf_counter() - t0, 4)
            finish(row)
            return result
    raise ProviderError(f"{label}: {redact(last_error, secret)}")
