"""Replicate through the official client, made reliable: retries, deadlines, cancellation.

- ``POST /v1/models/{owner}/{name}/predictions`` with ``Prefer: wait``; the client does not retry a
  POST, so 429, 5xx and transport timeouts are retried here with exponential backoff and jitter,
  honouring ``Retry-After`` (read from the response by a small transport wrapper, since the
  client's error object does not carry headers). Other 4xx fail at once.
- A prediction still running is polled (``GET /v1/predictions/{id}``; the client retries GETs)
  until ``succeeded``/``failed``/``canceled`` or the per-call deadline, when it is cancelled. A
  prediction abandoned by an error, an interrupt or a cancelled run (``retry.cancel_calls``:
  polling waits on it) is cancelled too.
- Outputs are downloaded at once (Replicate deletes them after an hour), streamed to disk, bounded
  (``download``): https only; every host, the first and each redirect's (followed by hand, at
  most 5), is resolved and must be a public address (no private, loopback, link-local - cloud
  metadata at 169.254.169.254 among them - multicast or reserved ones), and the connection goes
  to the address that was checked; at most ``RetryPolicy.download_max_bytes`` (500 MB) per file
  and one deadline for the whole download (``download_deadline_s``, 300 s). A refused address or
  an oversized file fails the call for good; a slow or broken transfer is downloaded again (3
  tries), never predicted again. Nothing partial is left behind.
- Every attempt is one ledger row (``new_row``): an attempt costs units x price once its
  prediction succeeded with an output (whether or not the output could then be fetched: the
  provider was paid), else 0. ``VIDEO_ASSETS_ALLOW_LOOPBACK_HTTP=1`` also allows plain http to,
  and only to, loopback addresses: for the loopback test servers, never in production.
- Inside a cached generation the downloaded output is kept in the media store's cache (under its
  own key: the model and the inputs it was sent) before the provider processes it, so a worker
  killed while processing it (ffmpeg normalising a clip) costs no second prediction on retry: the
  retry processes the kept file (``store.Downloads``). A prediction's id is kept there too from
  its creation, so a worker killed while the prediction runs costs no second one either: the
  retry follows it (and its ledger row is the paid one the killed worker never wrote).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from video_assets.config import allow_loopback_http
from video_assets.providers.keys import api_key
from video_assets.providers.registry import ModelSpec
from video_assets.providers.retry import (  # noqa: F401  (re-exported for callers)
    RETRY_STATUSES,
    Failure,
    ProviderError,
    ProviderKeyMissing,
    RetryPolicy,
    call_with_retries,
    pause,
)
from video_assets.schemas import CallRecord
from video_assets.store import Downloads, kept_downloads

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
        """Predict until one attempt succeeds and its output is on disk at ``out_path``. Inside
        a cached generation (``store.kept_downloads``) the output is kept in the media store's
        cache before it is returned for processing, and an output kept by an earlier attempt at
        the same inputs (a worker killed while processing it) is used instead of a prediction:
        one ``cache_hit`` row that costs nothing."""
        kept = kept_downloads()
        key = "" if kept is None else \
            Downloads.key("replicate", spec.name, inputs, units, out_path.suffix.lstrip("."))
        if kept is not None and kept.restore(key, out_path):
            row = new_row()
            row.units, row.unit, row.unit_price_usd = units, spec.unit, spec.unit_price_usd
            row.cache_hit = True
            return

        # a prediction an earlier worker created and never saw end is followed, once
        follow = [kept.pending(key)] if kept is not None else []

        def attempt(row: CallRecord, started: float) -> None:
            row.units, row.unit, row.unit_price_usd = units, spec.unit, spec.unit_price_usd
            prediction_id, url = self._predict(
                spec, inputs, started, follow.pop() if follow else None,
                None if kept is None else lambda pid: kept.remember(key, pid))
            row.cost_usd = spec.cost_usd(units)  # the work is done, so it is paid, fetched or not
            self._fetch_output(prediction_id, url, out_path)

        with self.slots:
            call_with_retries(spec.name, self.policy, new_row, attempt, self._classify, self.token)
        if kept is not None:  # after its ledger row is written: the charge is never lost
            kept.keep(key, out_path)

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

    def _predict(self, spec: ModelSpec, inputs: dict[str, Any], started: float,
                 follow_id: str | None = None,
                 created: Callable[[str], None] | None = None) -> tuple[str, str]:
        """One prediction, polled to its end; ``(its id, its output's URL)`` once it succeeded.
        ``follow_id``: a prediction an earlier worker created for these inputs and never saw
        end, followed instead of creating one if the provider still has it; ``created`` is
        told the id of a prediction this call creates."""
        prediction = None
        if follow_id is not None:
            with contextlib.suppress(Exception):  # gone or unreadable: a new prediction
                prediction = self.client.predictions.get(follow_id)
            if prediction is not None and prediction.status in ("failed", "canceled"):
                prediction = None  # it ended without an output: predicted again
        if prediction is None:
            prediction = self.client.models.predictions.create(
                model=spec.name, input=inputs, wait=self.policy.wait_s)
            if created is not None:
                created(prediction.id)
        finished = False
        try:
            pause(0.0)  # cancelled while it was being created: cancel it now
            while prediction.status not in TERMINAL:
                if time.monotonic() - started > self.policy.deadline_s:
                    raise _PredictionFailed(f"prediction {prediction.id} still {prediction.status} "
                                            f"after {self.policy.deadline_s:g} s", retryable=False)
                pause(self.policy.poll_s)  # raises Cancelled when the run is stopped
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
        return prediction.id, url

    def _fetch_output(self, prediction_id: str, url: str, out_path: Path) -> None:
        """Download a finished prediction's output; a slow or broken transfer is tried again
        (``DOWNLOAD_TRIES`` in all, the same URL: a new prediction would be paid again), and a
        download that still fails fails the call for good."""
        for number in range(1, DOWNLOAD_TRIES + 1):
            try:
                download(url, out_path, self.policy.download_max_bytes,
                         self.policy.download_deadline_s)
                return
            except DownloadRefused as exc:
                if not exc.retryable or number == DOWNLOAD_TRIES:
                    tries = f" ({number} tries)" if number > 1 else ""
                    raise _PredictionFailed(f"prediction {prediction_id}: {exc}{tries}",
                                            retryable=False) from None
            pause(self.policy.backoff_s(number, None))


DOWNLOAD_TRIES = 3
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class DownloadRefused(Exception):
    """A provider's output that is not fetched (or not kept): where it points, its size, its time."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def download(url: str, out_path: Path, max_bytes: int, deadline_s: float) -> None:
    """Fetch a provider's output ``url`` to ``out_path``, bounded (see the module docstring);
    raises ``DownloadRefused`` and leaves nothing at (or beside) ``out_path`` when it fails."""
    allow_loopback = allow_loopback_http()
    ends = time.monotonic() + deadline_s
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.",
                                    suffix=".part")  # unique: never written through a link
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            _fetch(httpx.URL(url), handle, max_bytes, deadline_s, ends, allow_loopback)
        if tmp.stat().st_size == 0:
            raise DownloadRefused("the output file is empty", retryable=True)
        tmp.replace(out_path)
    except httpx.TimeoutException as exc:
        raise DownloadRefused(f"output download timed out ({type(exc).__name__}) within its "
                              f"deadline of {deadline_s:g} s", retryable=True) from None
    except httpx.HTTPError as exc:
        raise DownloadRefused(f"output download failed: {type(exc).__name__}: {exc}",
                              retryable=True) from None
    finally:
        tmp.unlink(missing_ok=True)


def _fetch(url: httpx.URL, handle, max_bytes: int, deadline_s: float, ends: float,
           allow_loopback: bool) -> None:
    # no Authorization header: output URLs are pre-signed, and the token stays with the API
    with httpx.Client(follow_redirects=False, trust_env=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            address = checked_address(url, allow_loopback)
            left_s = ends - time.monotonic()
            if left_s <= 0:
                raise DownloadRefused(f"output download passed its deadline of {deadline_s:g} s",
                                      retryable=True)
            # connect to the address that was checked (a second lookup could answer otherwise);
            # TLS still verifies the certificate for the host's name
            request = client.build_request(
                "GET", url.copy_with(host=address), headers={"Host": _host_header(url)},
                extensions={"sni_hostname": url.host},
                timeout=httpx.Timeout(min(30.0, left_s)))
            resp = client.send(request, stream=True)
            try:
                if resp.status_code in REDIRECTS and resp.headers.get("location"):
                    url = url.join(resp.headers["location"])
                    continue
                if resp.status_code != 200:
                    raise DownloadRefused(f"output download got HTTP {resp.status_code}",
                                          retryable=True)
                length = resp.headers.get("content-length", "")
                if length.isdigit() and int(length) > max_bytes:
                    raise DownloadRefused(f"output file is {int(length)} bytes, over the cap of "
                                          f"{max_bytes} bytes (download_max_bytes)")
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadRefused(f"output file passed the cap of {max_bytes} bytes "
                                              "(download_max_bytes)")
                    pause(0.0)  # raises Cancelled when the run is being stopped
                    if time.monotonic() > ends:
                        raise DownloadRefused(f"output download passed its deadline of "
                                              f"{deadline_s:g} s after {size} bytes",
                                              retryable=True)
                    handle.write(chunk)
                return
            finally:
                resp.close()
    raise DownloadRefused(f"output download was redirected more than {MAX_REDIRECTS} times")


def _host_header(url: httpx.URL) -> str:
    default = {"http": 80, "https": 443}.get(url.scheme)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return host if url.port in (None, default) else f"{host}:{url.port}"


def checked_address(url: httpx.URL, allow_loopback: bool) -> str:
    """The address to connect to for ``url``: its scheme must be https (http only to loopback,
    when allowed), and every address its host resolves to must be public (loopback only when
    allowed). Raises ``DownloadRefused`` (not retryable) naming the host and the address."""
    if url.scheme not in ("https", "http"):
        raise DownloadRefused(f"output URL scheme {url.scheme!r} is not https")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DownloadRefused(f"output host {url.host!r} does not resolve ({exc})",
                              retryable=True) from None
    addresses = [info[4][0] for info in infos]
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:  # ::ffff:a.b.c.d
            ip = ip.ipv4_mapped
        if ip.is_loopback and allow_loopback:
            continue
        if not ip.is_global or ip.is_multicast:
            kind = ("a link-local (metadata)" if ip.is_link_local else
                    "a loopback" if ip.is_loopback else "a private" if ip.is_private else
                    "a non-public")
            raise DownloadRefused(f"output host {url.host!r} resolves to {ip}, {kind} address; "
                                  "provider outputs are only fetched from public addresses")
    if url.scheme == "http" and not (allow_loopback and all(
            ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses)):
        raise DownloadRefused(f"output URL {url.scheme}://{url.host} is not https; provider "
                              "outputs are only fetched over https")
    return addresses[0].split("%", 1)[0]


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
