"""Webhooks: when a job ends, a signed JSON POST to the ``webhook_url`` its request names.

Plain Python (no Dagster): the run-status sensors in ``webhook_sensor.py`` call this.

- **Who may be called.** ``webhook_url`` is an ``https://`` (or ``http://``) URL of at most 2000
  characters without credentials in it (``check_webhook_url_form``: part of the request's schema),
  whose host the operator lists in ``VIDEO_ASSETS_WEBHOOK_HOSTS`` (comma-separated exact host
  names, judged at admission: ``check_webhook_url``). Loopback addresses are reached only when
  listed as such (``127.0.0.1``, ``::1``, ``localhost``): a listed name that resolves to a
  loopback, link-local or unspecified address is refused when the call is made.
- **What is sent.** ``payload``: ``job_id``, ``run_id``, ``status`` (``done`` | ``failed`` |
  ``checks_failed`` | ``cancelled``), ``failed_stage``, the final video's and thumbnail's links,
  ``duration_s``, ``cost_usd``, ``checks``, ``version``, ``ended_at``.
- **How it is signed.** ``X-Video-Assets-Timestamp: <unix seconds>`` and
  ``X-Video-Assets-Signature: sha256=<hex>``, the HMAC-SHA256 of ``<timestamp>.<body>`` keyed
  with ``VIDEO_ASSETS_WEBHOOK_SECRET`` (``sign``). Each attempt is signed afresh with its own
  timestamp, so a receiver may refuse old timestamps (replays).
- **Delivery.** ``deliver``: a short timeout per attempt, retried with exponential backoff on
  connection errors, timeouts, 429 and 5xx (``Retry-After`` honoured up to the backoff cap);
  redirects are never followed; every attempt is returned as an ``Attempt`` (no secret, no
  signature, no body in it).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

FIELD = "webhook_url"
HOSTS_ENV = "VIDEO_ASSETS_WEBHOOK_HOSTS"
SECRET_ENV = "VIDEO_ASSETS_WEBHOOK_SECRET"
MAX_URL_CHARS = 2000
MIN_SECRET_CHARS = 16
SCHEMES = ("https", "http")
STATUSES = ("done", "failed", "checks_failed", "cancelled")
TIMESTAMP_HEADER = "X-Video-Assets-Timestamp"
SIGNATURE_HEADER = "X-Video-Assets-Signature"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
USER_AGENT = "video-assets-webhook/1"
MAX_BACKOFF_S = 30.0
ERROR_EXCERPT_CHARS = 200


class WebhookUrlError(ValueError):
    """A ``webhook_url`` that may not be called: ``problem`` and ``fix`` (the URL itself is never
    quoted whole: it may carry credentials)."""

    def __init__(self, problem: str, fix: str) -> None:
        self.field = FIELD
        self.problem = problem
        self.fix = fix
        super().__init__(f"{FIELD}: {problem}; fix: {fix}")


class WebhookConfigError(RuntimeError):
    """The installation cannot send webhooks (no secret): names the variable and the fix."""


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def allowed_hosts() -> frozenset[str]:
    """``VIDEO_ASSETS_WEBHOOK_HOSTS``: comma-separated exact host names (empty: none)."""
    raw = os.environ.get(HOSTS_ENV, "")
    return frozenset(h for h in (_norm_host(p) for p in raw.split(",")) if h)


def webhook_secret() -> str:
    """``VIDEO_ASSETS_WEBHOOK_SECRET`` (stripped); ``WebhookConfigError`` when unset or short.
    The value is never part of any message."""
    secret = os.environ.get(SECRET_ENV, "").strip()
    if not secret:
        raise WebhookConfigError(
            f"{SECRET_ENV} is not set, so no webhook can be signed; fix: export a random secret "
            "(e.g. python -c 'import secrets; print(secrets.token_hex(32))') where the jobs are "
            "admitted and where the Dagster daemon runs, and give it to the receiver")
    if len(secret) < MIN_SECRET_CHARS:
        raise WebhookConfigError(
            f"{SECRET_ENV} is {len(secret)} characters long, under {MIN_SECRET_CHARS}; fix: use "
            "a random secret of at least 32 characters (secrets.token_hex(32))")
    return secret


def url_host(url: str) -> str:
    """The URL's host, or ``?`` (for messages and records: never the whole URL)."""
    try:
        return _norm_host(urlsplit(url).hostname or "?")
    except ValueError:
        return "?"


def check_webhook_url_form(url: str) -> str:
    """The request schema's rules, independent of the operator's settings: a string of at most
    2000 characters, ``https`` or ``http``, a host, a valid port, no credentials, no whitespace
    or control characters. Returns the URL unchanged."""
    if not isinstance(url, str):
        raise WebhookUrlError(f"must be a URL string, not {type(url).__name__}",
                              "write webhook_url: https://<host>/<path>")
    if len(url) > MAX_URL_CHARS:
        raise WebhookUrlError(f"the URL is {len(url)} characters long, over {MAX_URL_CHARS}",
                              "use a shorter URL")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise WebhookUrlError("the URL contains a space or a control character",
                              "percent-encode it (%20) or remove it")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise WebhookUrlError("not a valid URL (its host or port cannot be read)",
                              "write webhook_url: https://<host>[:<port>]/<path>") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = scheme[:20] or "none"
        raise WebhookUrlError(f"scheme {shown!r} is not allowed",
                              "use an https:// URL (or http://)")
    if "@" in parts.netloc:
        raise WebhookUrlError(
            "the URL carries credentials (user:password@ before the host)",
            f"remove them: every request is signed ({SIGNATURE_HEADER}, with the installation's "
            f"{SECRET_ENV}); verify that signature instead")
    if not parts.hostname:
        raise WebhookUrlError("the URL has no host", "write webhook_url: https://<host>/<path>")
    return url


def check_webhook_url(url: str, hosts: Collection[str] | None = None) -> str:
    """``check_webhook_url_form``, and the host is listed in ``hosts`` (default:
    ``VIDEO_ASSETS_WEBHOOK_HOSTS``) exactly. Returns the URL unchanged."""
    check_webhook_url_form(url)
    listed = allowed_hosts() if hosts is None else frozenset(_norm_host(h) for h in hosts)
    host = url_host(url)
    if host not in listed:
        allows = (f"it allows {', '.join(sorted(listed))}" if listed
                  else f"{HOSTS_ENV} is empty: webhooks are off")
        raise WebhookUrlError(
            f"host {host[:100]!r} is not allowed by this installation ({allows})",
            f"use a listed host, or ask the operator to add {host[:100]} to {HOSTS_ENV}")
    return url


def address_refusal(host: str, addresses: Collection[str]) -> str | None:
    """Why ``host`` may not be called at ``addresses`` (what it resolved to), or None. A loopback,
    link-local or unspecified address is reached only through a host listed as such (a literal
    address or ``localhost``), never through another name that resolves to it."""
    host = _norm_host(host)
    try:
        ipaddress.ip_address(host)
        return None  # a literal address: it was listed itself
    except ValueError:
        pass
    if host in LOOPBACK_NAMES:
        return None
    for raw in addresses:
        ip = ipaddress.ip_address(raw.split("%", 1)[0])
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
            return (f"host {host[:100]!r} resolves to {ip}, a loopback, link-local or unspecified "
                    f"address; fix: list that address itself in {HOSTS_ENV} if it is meant")
    return None


def _resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def payload(job_id: str, run_id: str, status: str, failed_stage: str | None,
            final_video_url: str | None, thumbnail_url: str | None, duration_s: float | None,
            cost_usd: float, checks: dict[str, bool], version: int | None = None,
            ended_at: datetime | None = None) -> bytes:
    """The JSON body (UTF-8, keys sorted): what a receiver learns when a job ends."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not a job's end; use one of {', '.join(STATUSES)}")
    body = {
        "job_id": job_id, "run_id": run_id, "status": status, "failed_stage": failed_stage,
        "final_video_url": final_video_url, "thumbnail_url": thumbnail_url,
        "duration_s": duration_s, "cost_usd": round(float(cost_usd), 6),
        "checks": dict(sorted(checks.items())), "version": version,
        "ended_at": (ended_at or datetime.now(UTC)).isoformat(),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(body: bytes, timestamp: int, secret: str) -> str:
    """Hex HMAC-SHA256 of ``<timestamp>.<body>`` keyed with ``secret``."""
    return hmac.new(secret.encode(), f"{int(timestamp)}.".encode() + body,
                    hashlib.sha256).hexdigest()


def verify(body: bytes, timestamp: str, signature: str, secret: str,
           max_age_s: float = 300.0, now_s: float | None = None) -> bool:
    """What a receiver checks: the signature header (``sha256=<hex>``) is ``sign``'s, in constant
    time, and the timestamp is at most ``max_age_s`` old."""
    if not timestamp.isdigit() or not signature.startswith("sha256="):
        return False
    now_s = time.time() if now_s is None else now_s
    if abs(now_s - int(timestamp)) > max_age_s:
        return False
    return hmac.compare_digest(signature.removeprefix("sha256="), sign(body, int(timestamp), secret))


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt (nothing secret: no signature, no body, the host only)."""

    attempt: int
    status_code: int | None  # the receiver's HTTP status, None when no answer came
    error: str | None  # None when delivered
    latency_s: float
    delivered_at: str  # when the attempt was sent (ISO 8601, UTC)
    ok: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's
        return None  # urllib then raises HTTPError with the 3xx status


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirects())


def _retry_after_s(headers) -> float | None:  # noqa: ANN001 - an email.message.Message
    value = (headers.get("Retry-After") or "").strip() if headers is not None else ""
    return float(value) if value.isdigit() else None


def _excerpt(data: bytes) -> str:
    text = data[:ERROR_EXCERPT_CHARS].decode("utf-8", "replace")
    return " ".join(text.split())


def deliver(url: str, body: bytes, secret: str, attempts: int = 5, backoff_s: float = 0.5,
            timeout_s: float = 5.0, deadline_s: float = 45.0,
            sleep: Callable[[float], None] = time.sleep) -> list[Attempt]:
    """POST ``body`` to ``url``, signed, until a 2xx answer or ``attempts`` attempts (or
    ``deadline_s`` of waiting) are spent; retried on connection errors, timeouts, 429 and 5xx
    after ``backoff_s``, doubled each time (``Retry-After`` honoured, at most 30 s). Any other
    answer (3xx: redirects are not followed; 4xx) ends the delivery. Returns every attempt."""
    records: list[Attempt] = []
    started = time.monotonic()
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        refusal = address_refusal(host, _resolve(host, parts.port or (
            443 if parts.scheme.lower() == "https" else 80)))
    except OSError:
        refusal = None  # unresolvable now: the attempts say so (and are retried)
    if refusal:
        return [Attempt(1, None, refusal, 0.0, datetime.now(UTC).isoformat())]
    opener = _opener()
    for n in range(1, max(1, attempts) + 1):
        timestamp = int(time.time())
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: f"sha256={sign(body, timestamp, secret)}"})
        sent_at = datetime.now(UTC).isoformat()
        t0 = time.monotonic()
        code: int | None = None
        retry_after = None
        try:
            with opener.open(request, timeout=timeout_s) as response:
                code = response.status
                response.read(64 * 1024)
            error, retryable = None, False
        except urllib.error.HTTPError as exc:
            code = exc.code
            retry_after = _retry_after_s(exc.headers)
            text = _excerpt(exc.read(ERROR_EXCERPT_CHARS) if exc.fp else b"")
            if 300 <= code < 400:
                error = (f"HTTP {code}: a redirect, which is not followed; fix: give the final URL "
                         "as webhook_url")
            else:
                error = f"HTTP {code}" + (f": {text}" if text else "")
            retryable = code == 429 or code >= 500
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            error = f"no answer from {url_host(url)[:100]}: {type(reason).__name__}: {reason}"[:300]
            retryable = True
        latency_s = round(time.monotonic() - t0, 4)
        records.append(Attempt(n, code, error, latency_s, sent_at, ok=error is None))
        if error is None or not retryable or n >= attempts:
            break
        pause_s = min(MAX_BACKOFF_S, retry_after if retry_after is not None
                      else backoff_s * 2 ** (n - 1))
        if time.monotonic() - started + pause_s > deadline_s:
            break
        sleep(pause_s)
    return records


def delivered(records: list[Attempt]) -> bool:
    return bool(records) and records[-1].ok
