"""API keys from the environment: stripped once where read, refused when malformed, and never
shown anywhere (ledger, exceptions, stderr, the Dagster log, files), escaped or not."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from pathlib import Path

import pytest

from tests.conftest import make_song, scoped_env
from tests.fake_replicate import FakeReplicate
from tests.test_providers import assert_nowhere
from video_assets.assets.common import row_factory
from video_assets.cli import main
from video_assets.providers.keys import api_key, redact
from video_assets.providers.registry import registry
from video_assets.providers.replicate_api import ReplicateRunner
from video_assets.providers.retry import ProviderError, RetryPolicy
from video_assets.schemas import CallRecord

IMAGE = "black-forest-labs/flux-schnell"


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["\n", "\r"])
def test_a_replicate_token_with_a_trailing_newline_works_and_never_leaks(
        ending: str, home: Path, tmp_path: Path, capfd):
    canary = f"r8_canary_{uuid.uuid4().hex}"
    server = FakeReplicate(token=canary)  # the provider knows the token without the newline
    base = server.start()
    try:
        with scoped_env({"REPLICATE_API_TOKEN": canary + ending, "REPLICATE_BASE_URL": base,
                         "OPENAI_API_KEY": None, "VIDEO_ASSETS_ALLOW_LOOPBACK_HTTP": "1"}):
            song = make_song(tmp_path / f"newline{len(ending)}{ord(ending[-1])}.wav", 6.4,
                             tempo_bpm=120.0)
            code = main(["render", "--audio", str(song), "--prompt", "a key with a newline",
                         "--aspect", "1:1", "--json"])
    finally:
        server.stop()
    out = capfd.readouterr()
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert_nowhere(canary, home, out.out + out.err, summary.get("job_id"))
    assert code == 0, summary
    assert server.succeeded("video")  # the stripped token was accepted by the provider


@pytest.mark.parametrize("raw", ["KEY\n", "KEY\r", "KEY\r\n", "  KEY \t", "\nKEY"])
def test_api_key_strips_surrounding_whitespace_once(raw: str):
    with scoped_env({"OPENAI_API_KEY": raw.replace("KEY", "sk-abc123")}):
        assert api_key("openai") == "sk-abc123"


def test_a_blank_key_counts_as_unset():
    with scoped_env({"REPLICATE_API_TOKEN": " \r\n"}):
        assert api_key("replicate") == ""


def test_a_token_with_whitespace_inside_is_refused_without_quoting_it(home: Path, tmp_path: Path,
                                                                      capfd):
    canary = f"r8_canary_{uuid.uuid4().hex}"
    with scoped_env({"REPLICATE_API_TOKEN": canary[:12] + "\n" + canary[12:],
                     "OPENAI_API_KEY": None}):
        song = make_song(tmp_path / "inner.wav", 4.0)
        code = main(["render", "--audio", str(song), "--prompt", "a broken key",
                     "--video", "replicate"])
    out = capfd.readouterr()
    assert code == 2
    assert "REPLICATE_API_TOKEN" in out.err and "fix:" in out.err
    assert canary[:12] not in out.out + out.err and canary[12:] not in out.out + out.err


def test_a_provider_error_echoing_the_authorization_header_is_redacted(tmp_path: Path):
    """A server (or proxy) that quotes the request's Authorization header in its error body: the
    ledger rows and the exception carry no trace of the token."""
    canary = f"r8_canary_{uuid.uuid4().hex}"
    server = FakeReplicate(token=canary, echo_auth_errors=True)
    server.next_statuses = [500, 500]
    base = server.start()
    calls: list[CallRecord] = []
    try:
        with scoped_env({"REPLICATE_API_TOKEN": canary + "\n", "REPLICATE_BASE_URL": base}):
            runner = ReplicateRunner(RetryPolicy(max_attempts=2, backoff_base_s=0.001))
            new_row = row_factory(calls, job_id="unit", asset="storyboard",
                                  provider="replicate", model=IMAGE)
            with pytest.raises(ProviderError) as caught:
                runner.run(registry().get(IMAGE, "image"), {"prompt": "x"}, 1,
                           tmp_path / "x.png", new_row)
    finally:
        server.stop()
    assert "HTTP 500" in str(caught.value)
    assert canary not in str(caught.value) and canary not in repr(caught.value)
    assert len(calls) == 2 and all(c.error and canary not in c.error for c in calls)
    assert all("Bearer ***" in c.error for c in calls)  # said what it was, not what it is


@pytest.mark.parametrize("form", [
    "Authorization: Bearer {key}", "headers={{'Authorization': 'Token {key}'}}",
    "{key!r}", "illegal header value b'Bearer {key}\\n'", "token={quoted}", "token={plus}",
    "{json}", "Bearer {key}\r\n",
])
def test_redact_hides_the_key_in_every_escaped_form(form: str):
    key = "sk-canary" + uuid.uuid4().hex + "\n"
    text = form.format(key=key, quoted=urllib.parse.quote(key), plus=urllib.parse.quote_plus(key),
                       json=json.dumps({"key": key}))
    with scoped_env({"OPENAI_API_KEY": key}):
        out = redact(text)
    assert key.strip() not in out
    assert urllib.parse.quote(key.strip()) not in out


def test_redact_hides_bearer_values_it_was_not_told_about():
    assert redact("401: header Authorization: Bearer abc123def456ghi789 refused") == \
        "401: header Authorization: Bearer *** refused"
    assert redact("Token r8_0123456789abcdef was rejected") == "Token *** was rejected"
    assert redact("token limit reached: 4096 tokens") == "token limit reached: 4096 tokens"


def test_redaction_hides_lowercase_schemes_and_leaves_plain_words():
    text = "Token validation failed; bearer r8_abc123XYZdef; token sk-0123456789abc"
    assert redact(text) == "Token validation failed; bearer ***; token ***"
