"""Webhooks: URL rules at admission, signed delivery with retries to a real loopback receiver, and
the run-status sensors delivering the end of real runs of render_job."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context

from tests.conftest import free_port, make_song, scoped_env
from video_assets.admission import RequestError, check_audio, stage, validate_request
from video_assets.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookUrlError,
    address_refusal,
    check_webhook_url,
    check_webhook_url_form,
    deliver,
    payload,
)

SECRET = "test-secret-5f0c2a9e7d3b41c8a6e2"
HOSTS = "127.0.0.1"


class Receiver:
    """A loopback HTTP server that checks each POST's signature with its own HMAC computation and
    answers with the next status of ``statuses`` (then 200)."""

    def __init__(self, secret: str, statuses: list[int] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.secret, self.statuses, self.extra = secret, list(statuses or []), headers or {}
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                timestamp = self.headers.get(TIMESTAMP_HEADER, "")
                expected = hmac.new(receiver.secret.encode(), timestamp.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
                valid = hmac.compare_digest(self.headers.get(SIGNATURE_HEADER, ""),
                                            f"sha256={expected}")
                receiver.received.append({"path": self.path, "body": body, "valid": valid,
                                          "timestamp": timestamp,
                                          "content_type": self.headers.get("Content-Type")})
                code = receiver.statuses.pop(0) if receiver.statuses else 200
                if not valid:
                    code = 401
                self.send_response(code)
                for key, value in receiver.extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/video"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def body_of(job_id: str = "song-1234abcd", status: str = "done") -> bytes:
    return payload(job_id=job_id, run_id="r1", status=status, failed_stage=None,
                   final_video_url=None, thumbnail_url=None, duration_s=10.0, cost_usd=0.0,
                   checks={"format": True})


# --- delivery ----------------------------------------------------------------------------------
def test_delivery_is_signed_so_the_receiver_verifies_it():
    body = body_of()
    with Receiver(SECRET) as receiver:
        attempts = deliver(receiver.url, body, SECRET)
    (got,) = receiver.received
    assert got["valid"] and got["content_type"] == "application/json"
    assert got["body"] == body and got["path"] == "/hooks/video"
    assert got["timestamp"].isdigit()
    assert [(a.attempt, a.status_code, a.ok, a.error) for a in attempts] == [(1, 200, True, None)]


def test_a_wrong_secret_fails_the_receivers_check_and_is_not_retried():
    with Receiver(SECRET) as receiver:
        attempts = deliver(receiver.url, body_of(), "another-secret-of-enough-length", backoff_s=0.01)
    assert [r["valid"] for r in receiver.received] == [False]
    assert len(attempts) == 1 and attempts[0].status_code == 401 and not attempts[0].ok


def test_a_receiver_failing_twice_gets_three_attempts_and_the_delivery():
    with Receiver(SECRET, statuses=[500, 500]) as receiver:
        attempts = deliver(receiver.url, body_of(), SECRET, backoff_s=0.05)
    assert [a.status_code for a in attempts] == [500, 500, 200]
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert attempts[-1].ok and attempts[0].error == "HTTP 500"
    assert all(r["valid"] for r in receiver.received) and len(receiver.received) == 3
    # each attempt is signed afresh with its own timestamp
    assert all(a.delivered_at and a.latency_s >= 0 for a in attempts)


def test_429_is_retried_after_retry_after():
    with Receiver(SECRET, statuses=[429], headers={"Retry-After": "1"}) as receiver:
        waits: list[float] = []
        attempts = deliver(receiver.url, body_of(), SECRET, backoff_s=0.01, sleep=waits.append)
    assert [a.status_code for a in attempts] == [429, 200] and waits == [1.0]


def test_a_refused_connection_is_retried_with_doubling_backoff():
    waits: list[float] = []
    attempts = deliver(f"http://127.0.0.1:{free_port()}/x", body_of(), SECRET, attempts=4,
                       backoff_s=0.1, sleep=waits.append)
    assert [a.status_code for a in attempts] == [None] * 4
    assert all("no answer from 127.0.0.1" in a.error for a in attempts)
    assert waits == [0.1, 0.2, 0.4]


def test_a_redirect_is_not_followed():
    with Receiver(SECRET) as elsewhere, \
            Receiver(SECRET, statuses=[302], headers={"Location": "PLACEHOLDER"}) as first:
        first.extra["Location"] = elsewhere.url
        attempts = deliver(first.url, body_of(), SECRET, backoff_s=0.01)
    assert len(attempts) == 1 and attempts[0].status_code == 302
    assert "redirect" in attempts[0].error and elsewhere.received == []


def test_the_secret_is_in_no_attempt_record_nor_log(caplog):
    caplog.set_level(logging.DEBUG)
    with Receiver(SECRET, statuses=[503, 500]) as receiver:
        attempts = deliver(receiver.url, body_of(), SECRET, backoff_s=0.01)
    text = json.dumps([a.to_dict() for a in attempts]) + caplog.text
    assert len(attempts) == 3 and SECRET not in text
    assert hmac.new(SECRET.encode(), b"x", hashlib.sha256).hexdigest()[:8] not in text


# --- which URLs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "words"), [
    ("ftp://127.0.0.1/hook", "scheme 'ftp'"),
    ("javascript:alert(1)", "scheme 'javascript'"),
    ("https://user:hunter2pass@127.0.0.1/hook", "credentials"),
    ("https://127.0.0.1/" + "a" * 2000, "over 2000"),
    ("https://127.0.0.1/a b", "space"),
])
def test_a_malformed_webhook_url_is_refused_naming_the_field(url, words):
    with pytest.raises(WebhookUrlError) as caught:
        check_webhook_url_form(url)
    assert str(caught.value).startswith("webhook_url: ") and words in str(caught.value)
    assert "; fix: " in str(caught.value) and "hunter2pass" not in str(caught.value)


def test_a_host_not_listed_is_refused_naming_the_variable():
    with pytest.raises(WebhookUrlError) as caught:
        check_webhook_url("https://hooks.example.org/x", hosts=["hooks.example.com"])
    message = str(caught.value)
    assert message.startswith("webhook_url: host 'hooks.example.org' is not allowed")
    assert "VIDEO_ASSETS_WEBHOOK_HOSTS" in message and "hooks.example.com" in message


def test_loopback_is_refused_unless_listed():
    with scoped_env({"VIDEO_ASSETS_WEBHOOK_HOSTS": "hooks.example.com"}), \
            pytest.raises(WebhookUrlError, match="host '127.0.0.1' is not allowed"):
        check_webhook_url("http://127.0.0.1:8080/x")
    with scoped_env({"VIDEO_ASSETS_WEBHOOK_HOSTS": " HOOKS.example.com , 127.0.0.1 "}):
        assert check_webhook_url("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x"
        assert check_webhook_url("https://hooks.example.com./x")


def test_a_listed_name_resolving_to_loopback_is_refused():
    assert "loopback" in address_refusal("hooks.example.com", ["93.184.216.34", "127.0.0.1"])
    assert "link-local" in address_refusal("hooks.example.com", ["169.254.169.254"])
    assert address_refusal("hooks.example.com", ["93.184.216.34"]) is None
    assert address_refusal("localhost", ["127.0.0.1"]) is None
    assert address_refusal("::1", ["::1"]) is None


def test_admission_reports_a_bad_webhook_url_without_quoting_its_password():
    with pytest.raises(RequestError) as caught:
        validate_request({"prompt": "a kite", "audio": "a.wav",
                          "webhook_url": "https://me:hunter2pass@127.0.0.1/x"}, "req.yaml")
    report = caught.value.to_report()
    assert report["field"] == "webhook_url" and "credentials" in report["error"]
    assert "hunter2pass" not in json.dumps(report)


def test_admission_refuses_an_unlisted_host_and_a_missing_secret(home, tmp_path):
    from video_assets.admission import resolve_providers

    request = validate_request({"prompt": "a kite", "audio": "a.wav",
                                "webhook_url": "https://hooks.example.com/x"}, "req.yaml")
    with scoped_env({"VIDEO_ASSETS_WEBHOOK_HOSTS": "127.0.0.1",
                     "VIDEO_ASSETS_WEBHOOK_SECRET": SECRET}), \
            pytest.raises(RequestError, match="webhook_url: host 'hooks.example.com' is not allowed"):
        resolve_providers(request, "req.yaml")
    with scoped_env({"VIDEO_ASSETS_WEBHOOK_HOSTS": "hooks.example.com",
                     "VIDEO_ASSETS_WEBHOOK_SECRET": None}), \
            pytest.raises(RequestError, match="webhook_url: VIDEO_ASSETS_WEBHOOK_SECRET is not set"):
        resolve_providers(request, "req.yaml")


def test_the_inbox_rejects_an_unlisted_webhook_host_with_a_report(home, tmp_path):
    from video_assets.resources import StoreResource
    from video_assets.sensors import scan_inbox
    from video_assets.store import LocalStore

    inbox_root = tmp_path / "box"
    (inbox_root / "inbox").mkdir(parents=True)
    make_song(inbox_root / "inbox" / "tune.wav", 9.5)
    (inbox_root / "inbox" / "hook.yaml").write_text(
        "prompt: a red kite\naudio: tune.wav\nwebhook_url: https://evil.example.net/x\n")
    with scoped_env({"VIDEO_ASSETS_WEBHOOK_HOSTS": "127.0.0.1",
                     "VIDEO_ASSETS_WEBHOOK_SECRET": SECRET}):
        tick = scan_inbox(LocalStore(inbox_root), StoreResource().get(), {}, grace_s=0)
    assert tick.admitted == []
    report = json.loads((inbox_root / "rejected" / "hook.yaml.error.json").read_text())
    assert report["field"] == "webhook_url" and "evil.example.net" in report["error"]
    assert "VIDEO_ASSETS_WEBHOOK_HOSTS" in report["error"]


# --- the run-status sensors on real runs --------------------------------------------------------
@contextlib.contextmanager
def webhook_env() -> Iterator[None]:
    with scoped_env({"VIDEO_ASSETS_WEBHOOK_HOSTS": HOSTS, "VIDEO_ASSETS_WEBHOOK_SECRET": SECRET}):
        yield


def staged_job(job_id: str, song: Path, url: str):
    from video_assets.resources import StoreResource

    request = validate_request({"prompt": "a kite over the hills", "audio": str(song),
                                "webhook_url": url}, "t")
    return stage(StoreResource().get(), job_id, request, song.name, song, check_audio(song, "t"))


def run_sensor(sensor_name: str, run_id: str, event_type: DagsterEventType):
    from video_assets.resources import StoreResource, WarehouseResource
    from video_assets.webhook_sensor import webhook_sensors

    instance = DagsterInstance.get()
    run = instance.get_run_by_id(run_id)
    (event,) = [r.event_log_entry.dagster_event for r in instance.get_records_for_run(
        run_id, of_type=event_type).records]
    context = build_run_status_sensor_context(
        sensor_name=sensor_name, dagster_event=event, dagster_instance=instance, dagster_run=run,
        resources={"store": StoreResource(), "warehouse": WarehouseResource()})
    (sensor,) = [s for s in webhook_sensors if s.name == sensor_name]
    sensor(context)


def deliveries(home: Path, job_id: str) -> list[dict]:
    return json.loads((home / "media" / "jobs" / job_id / "webhooks.json").read_text())


def test_a_failed_run_is_delivered_as_failed_with_its_stage(home, tmp_path, capfd):
    from video_assets.cli import execute_job
    from video_assets.resources import StoreResource

    song = make_song(tmp_path / "gone.wav", 9.0)
    with webhook_env(), Receiver(SECRET, statuses=[500, 500]) as receiver:
        staged = staged_job("hook-gone-0001", song, receiver.url)
        StoreResource().get().delete(staged.audio_key)  # the run's first stage then fails
        summary = execute_job("hook-gone-0001")
        assert summary["status"] == "failed"
        run_sensor("webhook_on_failure", summary["run_id"], DagsterEventType.RUN_FAILURE)
    assert [r["valid"] for r in receiver.received] == [True, True, True]
    sent = json.loads(receiver.received[-1]["body"])
    assert sent["job_id"] == "hook-gone-0001" and sent["run_id"] == summary["run_id"]
    assert sent["status"] == "failed" and sent["failed_stage"] == "job_request"
    assert sent["final_video_url"] is None and sent["cost_usd"] == 0.0
    (delivery,) = deliveries(home, "hook-gone-0001")
    assert delivery["delivered"] and delivery["host"] == "127.0.0.1"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    log = capfd.readouterr().err  # the sensor's log
    assert "webhook (failed) to 127.0.0.1: attempt 1: HTTP 500 in " in log
    assert "attempt 3: delivered (HTTP 200)" in log
    assert SECRET not in json.dumps(delivery) + log
    from video_assets.resources import WarehouseResource

    with WarehouseResource().get().connect(read_only=True) as con:
        rows = con.execute("SELECT attempt, http_status, delivered, host FROM webhook_deliveries "
                           "WHERE job_id = 'hook-gone-0001' ORDER BY attempt").fetchall()
    assert rows == [(1, 500, False, "127.0.0.1"), (2, 500, False, "127.0.0.1"),
                    (3, 200, True, "127.0.0.1")]


def test_a_host_removed_from_the_list_after_admission_is_not_called(home, tmp_path):
    from video_assets.cli import execute_job
    from video_assets.resources import StoreResource

    song = make_song(tmp_path / "gone.wav", 9.0)
    with Receiver(SECRET) as receiver:
        with webhook_env():
            staged = staged_job("hook-gone-0002", song, receiver.url)
        StoreResource().get().delete(staged.audio_key)
        summary = execute_job("hook-gone-0002")
        with scoped_env({"VIDEO_ASSETS_WEBHOOK_HOSTS": "hooks.example.com",
                         "VIDEO_ASSETS_WEBHOOK_SECRET": SECRET}):
            run_sensor("webhook_on_failure", summary["run_id"], DagsterEventType.RUN_FAILURE)
    assert receiver.received == []
    (delivery,) = deliveries(home, "hook-gone-0002")
    assert not delivery["delivered"] and "not sent: webhook_url: host '127.0.0.1'" in \
        delivery["attempts"][0]["error"]


@pytest.mark.slow
def test_a_rendered_job_is_delivered_as_done_with_its_video(home, tmp_path):
    from video_assets.cli import execute_job

    song = make_song(tmp_path / "hook.wav", 9.6, tempo_bpm=120.0)
    with webhook_env(), Receiver(SECRET) as receiver:
        staged_job("hook-done-0001", song, receiver.url)
        summary = execute_job("hook-done-0001")
        assert summary["status"] == "done", summary
        run_sensor("webhook_on_success", summary["run_id"], DagsterEventType.RUN_SUCCESS)
    (got,) = receiver.received
    assert got["valid"]
    sent = json.loads(got["body"])
    assert sent["status"] == "done" and sent["failed_stage"] is None
    assert sent["run_id"] == summary["run_id"] and sent["cost_usd"] == 0.0
    assert sent["checks"] == summary["checks"] and all(sent["checks"].values())
    assert sent["duration_s"] == summary["duration_s"] and sent["version"] == 1
    assert sent["final_video_url"] == Path(summary["final_video"]).as_uri()
    assert sent["thumbnail_url"] == Path(summary["thumbnail"]).as_uri()
    assert deliveries(home, "hook-done-0001")[0]["delivered"]


def test_a_job_without_webhook_url_sends_nothing(home, tmp_path):
    from video_assets.cli import execute_job
    from video_assets.resources import StoreResource

    song = make_song(tmp_path / "gone.wav", 9.0)
    request = validate_request({"prompt": "no hook here", "audio": str(song)}, "t")
    staged = stage(StoreResource().get(), "hook-none-0001", request, song.name, song,
                   check_audio(song, "t"))
    StoreResource().get().delete(staged.audio_key)
    summary = execute_job("hook-none-0001")
    run_sensor("webhook_on_failure", summary["run_id"], DagsterEventType.RUN_FAILURE)
    assert not (home / "media" / "jobs" / "hook-none-0001" / "webhooks.json").exists()


def test_sensor_ticks_deliver_each_run_end_once(home, tmp_path):
    """The sensor as the daemon evaluates it (its cursor over the instance's run ends): the first
    tick starts the cursor, the next delivers the failed run, the one after sends nothing more."""
    from dagster import Definitions, build_sensor_context

    from video_assets.cli import execute_job
    from video_assets.resources import StoreResource, WarehouseResource
    from video_assets.webhook_sensor import webhook_sensors

    (sensor,) = [s for s in webhook_sensors if s.name == "webhook_on_failure"]
    defs = Definitions(sensors=[sensor], resources={"store": StoreResource(),
                                                    "warehouse": WarehouseResource()})
    instance = DagsterInstance.get()

    def tick(cursor: str | None) -> str | None:
        context = build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                       resources={"store": StoreResource(),
                                                  "warehouse": WarehouseResource()})
        sensor.evaluate_tick(context)
        return context.cursor

    cursor = tick(None)
    song = make_song(tmp_path / "gone.wav", 9.0)
    with webhook_env(), Receiver(SECRET) as receiver:
        staged = staged_job("hook-tick-0001", song, receiver.url)
        StoreResource().get().delete(staged.audio_key)
        summary = execute_job("hook-tick-0001")
        cursor = tick(cursor)
        assert len(receiver.received) == 1
        tick(cursor)
    assert len(receiver.received) == 1
    sent = json.loads(receiver.received[0]["body"])
    assert (sent["run_id"], sent["status"]) == (summary["run_id"], "failed")


def test_a_run_end_already_delivered_is_not_sent_again(home, tmp_path):
    from video_assets.cli import execute_job
    from video_assets.resources import StoreResource

    song = make_song(tmp_path / "gone.wav", 9.0)
    with webhook_env(), Receiver(SECRET, statuses=[400]) as receiver:
        staged = staged_job("hook-twice-0001", song, receiver.url)
        StoreResource().get().delete(staged.audio_key)
        summary = execute_job("hook-twice-0001")
        for _ in range(3):  # refused once (HTTP 400, not retried), then delivered, then not again
            run_sensor("webhook_on_failure", summary["run_id"], DagsterEventType.RUN_FAILURE)
    assert len(receiver.received) == 2
    assert [d["delivered"] for d in deliveries(home, "hook-twice-0001")] == [False, True]
