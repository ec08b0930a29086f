"""Retries for paid calls, shared by every real provider: one ledger row per attempt.

429, 5xx and transport timeouts are retried with exponential backoff and "equal jitter",
honouring ``Retry-After``; other errors fail at once. All attempts of one call share a deadline.
An attempt is charged by the caller (units x price) once the provider did the work; a failed
attempt keeps that charge (0 when the provider did nothing billable).
Every error text goes through ``keys.redact`` before it reaches a row or an exception; an
exception that is not a provider failure but quotes a key is replaced by a redacted
``ProviderError``.

Cancellation (Ctrl-C, SIGTERM, ``videogen cancel``): ``cancel_calls()`` sets one process-wide
event. Every wait of a call (backoff, polling) waits on it instead of sleeping, so each call in
flight stops within moments, raises ``Cancelled`` (not a ``ProviderError``: nothing falls back to
an animatic) and cancels what it started at the provider; its ledger row says ``cancelled``, as
does the row of an attempt interrupted by ``KeyboardInterrupt`` or Dagster's interrupt. Calls
made after it fail at once until ``reset_cancel()``. ``stop_on_signals()`` sets it the moment
SIGINT or SIGTERM arrives, whoever handles the signal in Python (Dagster installs its own handlers
while it executes a run), and says which signal it was.
"""

from __future__ import annotations

import contextlib
import random
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
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


class Cancelled(Exception):  # noqa: N818  (what happened, as KeyboardInterrupt says)
    """The run is being stopped (a signal, ``videogen cancel``): no retry, no fallback."""


_CANCEL = threading.Event()


def cancel_calls() -> None:
    """Stop every provider call of this process (see the module docstring)."""
    _CANCEL.set()


def reset_cancel() -> None:
    """Allow provider calls again (a new run in this process)."""
    _CANCEL.clear()


def calls_cancelled() -> bool:
    return _CANCEL.is_set()


class SignalWatch:
    """The first stopping signal a process received (``signum``), if any."""

    STOPPING = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None

    def saw(self, data: bytes) -> None:
        for number in data:
            if number in self.STOPPING:
                self.signum = self.signum or number
                cancel_calls()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[SignalWatch]:
    """For a command running a job in this process (call it from the main thread): SIGINT and
    SIGTERM cancel every provider call at once and raise ``KeyboardInterrupt`` (Dagster's own
    handlers, while it executes, raise its interrupt instead); the watch says which signal came.
    The C-level handler writes each signal's number to a wakeup socket, read by a thread here.
    Off the main thread (where signals cannot be handled) it watches nothing."""
    watch = SignalWatch()
    if threading.current_thread() is not threading.main_thread():
        yield watch
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    reader.setblocking(False)
    done = threading.Event()

    def interrupt(signum: int, _frame) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def read() -> None:
        while not done.is_set():
            if select.select([reader], [], [], 0.2)[0]:
                with contextlib.suppress(OSError):
                    watch.saw(reader.recv(64))

    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    old = {s: signal.signal(s, interrupt) for s in SignalWatch.STOPPING}
    thread = threading.Thread(target=read, name="stop-on-signals", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        for number, handler in old.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(old_fd)
        done.set()
        thread.join()
        with contextlib.suppress(OSError):  # what arrived since the thread's last read
            watch.saw(reader.recv(64))
        reader.close()
        writer.close()
        reset_cancel()


def pause(seconds: float) -> None:
    """Sleep ``seconds`` unless the calls are cancelled first (then raise ``Cancelled``)."""
    if _CANCEL.wait(max(0.0, seconds)):
        raise Cancelled("the run was cancelled (interrupt, SIGTERM or videogen cancel)")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    deadline_s: float = 900.0  # per call, all attempts included
    wait_s: int = 5  # Replicate: Prefer: wait=N on create (short: a stopped run frees it soon)
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
        pause(0.0)  # cancelled: no new attempt (and no row for one)
        row = new_row()
        row.attempt = number
        t0 = time.perf_counter()
        try:
            result = attempt(row, started)
        except Cancelled as exc:
            _cancelled(row, t0, str(exc), finish)
            raise
        except Exception as exc:
            failure = classify(exc)
            row.status = "error"  # its cost stays what the attempt charged (0 unless it was paid)
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
            wait_s = policy.backoff_s(number, failure.retry_after)
            if time.monotonic() - started + wait_s > policy.deadline_s:
                last_error += f" (deadline of {policy.deadline_s:g} s reached)"
                break
            pause(wait_s)
        except BaseException as exc:  # KeyboardInterrupt, Dagster's interrupt: every call stops
            cancel_calls()
            _cancelled(row, t0, f"interrupted ({type(exc).__name__})", finish)
            raise
        else:
            row.status = "ok"
            row.latency_s = round(time.perf_counter() - t0, 4)
            finish(row)
            return result
    raise ProviderError(f"{label}: {redact(last_error, secret)}")


def _cancelled(row: CallRecord, t0: float, why: str, finish: Callable[[CallRecord], None]) -> None:
    row.status, row.error = "cancelled", why[:500]  # the cost: what the attempt charged
    row.latency_s = round(time.perf_counter() - t0, 4)
    finish(row)
