"""Provider output downloads are bounded: https only (plain http to loopback only when
``VIDEO_ASSETS_ALLOW_LOOPBACK_HTTP=1``, as here), public addresses only after every redirect, a
byte cap and one deadline per file; a failure leaves no partial file. Through the official client
against the loopback Replicate server (``tests/fake_replicate.py``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import scoped_env
from tests.fake_replicate import FakeReplicate, serving
from video_assets.assets.common import row_factory
from video_assets.providers.registry import registry
from video_assets.providers.replicate_api import ReplicateRunner
from video_assets.providers.retry import ProviderError, RetryPolicy
from video_assets.schemas import CallRecord

TOKEN = f"r8_downloads_{uuid.uuid4().hex}"
IMAGE = "black-forest-labs/flux-schnell"
PRICE = registry().get(IMAGE, "image").cost_usd(1)


@pytest.fixture()
def fake() -> Iterator[FakeReplicate]:
    with serving(FakeReplicate(token=TOKEN)) as server:
        yield server


def predict(tmp_path: Path, calls: list[CallRecord] | None = None, **policy: object) -> list:
    """One image prediction into ``tmp_path/out/image.png``; the ledger rows of its attempts
    (appended to ``calls``)."""
    calls = [] if calls is None else calls
    runner = ReplicateRunner(RetryPolicy(**{"backoff_base_s": 0.001, **policy}))
    new_row = row_factory(calls, job_id="unit", asset="storyboard", provider="replicate",
                          model=IMAGE)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    runner.run(registry().get(IMAGE, "image"), {"prompt": "a lake"}, 1, out / "image.png", new_row)
    return calls


def downloads(fake: FakeReplicate) -> list[dict]:
    with fake.lock:
        return [r for r in fake.requests if r["path"].startswith("/files/")]


def left_behind(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "out").iterdir())


def test_a_plain_output_downloads(fake: FakeReplicate, tmp_path: Path):
    calls = predict(tmp_path)
    assert [c.status for c in calls] == ["ok"] and left_behind(tmp_path) == ["image.png"]


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/iam/",
                                    "https://10.0.0.7/internal", "http://[fe80::1]/x",
                                    "https://0.0.0.0/x", "file:///etc/passwd"])
def test_an_output_redirected_to_a_non_public_address_is_refused_once(
        fake: FakeReplicate, tmp_path: Path, target: str):
    fake.file_redirect = target
    t0 = time.monotonic()
    with pytest.raises(ProviderError, match="public addresses|not https") as caught:
        predict(tmp_path, max_attempts=3)
    assert time.monotonic() - t0 < 5  # refused before connecting, not after a connect timeout
    assert target.split("/")[2].strip("[]") in str(caught.value) or "file" in str(caught.value)
    assert len(fake.succeeded("image")) == 1  # not retried: another prediction would be paid
    assert left_behind(tmp_path) == []


def test_plain_http_is_refused_without_the_loopback_allowance(fake: FakeReplicate,
                                                              tmp_path: Path):
    with scoped_env({"VIDEO_ASSETS_ALLOW_LOOPBACK_HTTP": None}), \
            pytest.raises(ProviderError, match="loopback address|not https"):
        predict(tmp_path, max_attempts=2)
    assert len(fake.succeeded("image")) == 1 and left_behind(tmp_path) == []


def test_an_endless_redirect_chain_is_refused(fake: FakeReplicate, tmp_path: Path):
    fake.file_redirect = f"{fake.base_url}/files/loop.png"
    fake.files["loop.png"] = b"never served"
    with pytest.raises(ProviderError, match="redirected more than 5 times"):
        predict(tmp_path, max_attempts=1)
    assert left_behind(tmp_path) == []


@pytest.mark.parametrize("hide_length", [False, True], ids=["announced", "unannounced"])
def test_an_output_over_the_byte_cap_is_refused_without_a_partial_file(
        fake: FakeReplicate, tmp_path: Path, hide_length: bool):
    fake.file_bytes, fake.file_hide_length = 3 * 2**20, hide_length
    calls: list[CallRecord] = []
    with pytest.raises(ProviderError, match=r"cap of 1048576 bytes"):
        predict(tmp_path, calls, max_attempts=3, download_max_bytes=2**20)
    assert len(fake.succeeded("image")) == 1  # a bigger file is not a transient problem
    assert len(downloads(fake)) == 1
    # the prediction was made, so it was paid: the ledger says so
    assert [(c.status, c.cost_usd) for c in calls] == [("error", PRICE)]
    assert left_behind(tmp_path) == []


def test_a_trickling_output_fails_at_the_whole_download_deadline(fake: FakeReplicate,
                                                                 tmp_path: Path):
    fake.file_bytes, fake.file_trickle_s = 40, 0.2  # 8 s in all, each byte well inside any read
    calls: list[CallRecord] = []                    # timeout
    t0 = time.monotonic()
    with pytest.raises(ProviderError, match="deadline of 1 s.*3 tries"):
        predict(tmp_path, calls, max_attempts=2, download_deadline_s=1.0)
    elapsed_s = time.monotonic() - t0
    assert elapsed_s < 6, elapsed_s  # three downloads, each stopped at its 1 s deadline
    # the download is tried again, the (paid) prediction is not made again
    assert len(fake.succeeded("image")) == 1 and len(downloads(fake)) == 3
    assert [(c.status, c.cost_usd) for c in calls] == [("error", PRICE)]
    assert left_behind(tmp_path) == []
