"""Webhooks the Dagster way: run-status sensors that, when a job's run ends, POST the job's end to
the ``webhook_url`` of its request (``webhooks.py`` signs and delivers).

Three sensors, one per end a run can have: ``webhook_on_success`` (the job is ``done``),
``webhook_on_failure`` (``failed``, or ``checks_failed`` when the final video was made but a
blocking check failed) and ``webhook_on_cancel`` (``cancelled``). They watch every run of the
instance (``monitor_all_code_locations``: also the runs ``videogen render`` and the ingest worker
execute in process, which belong to no code location), so they deliver wherever the run ran, as
long as a daemon evaluates them (``dagster dev`` / ``videogen dev``). A run counts when it is a
job's (it has a partition) and the job's request has a ``webhook_url``.

At delivery the URL's host is judged again against ``VIDEO_ASSETS_WEBHOOK_HOSTS`` (an operator
may have removed it since admission) and ``VIDEO_ASSETS_WEBHOOK_SECRET`` must be set; either
refusal is recorded like a failed attempt. Every delivery (its attempts: number, HTTP status,
error, latency, time; no secret, no signature, no body, the URL's host only) goes to ``record``:
by default appended to ``jobs/<job_id>/webhooks.json`` in the media store
(``record_in_store``); each attempt is also a row of the warehouse's ``webhook_deliveries`` and
a line of the sensor's log. A sensor tick is
evaluated at least once per run end; a run whose end ``webhooks.json`` records as delivered is not
sent again, but a tick that fails between the delivery and the record may send it twice, so a
receiver should treat ``run_id`` as the delivery's identity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    SensorDefinition,
    run_status_sensor,
)

from video_assets.layout import FINAL, REQUEST, THUMBNAIL
from video_assets.resources import StoreResource, WarehouseResource
from video_assets.store import MediaStore, job_key
from video_assets.warehouse import Warehouse
from video_assets.webhooks import (
    Attempt,
    WebhookConfigError,
    WebhookUrlError,
    check_webhook_url,
    deliver,
    payload,
    url_host,
    webhook_secret,
)

WEBHOOKS = "webhooks.json"  # jobs/<job_id>/webhooks.json: the job's deliveries, oldest first
DELIVERY_DEADLINE_S = 20.0  # per delivery, retries included: a sensor tick must stay short
PARTITION_TAG = "dagster/partition"


@dataclass(frozen=True)
class Delivery:
    """One job end sent (or refused): what ``record`` receives."""

    job_id: str
    run_id: str
    status: str  # the job's end that was sent: done | failed | checks_failed | cancelled
    host: str  # the webhook URL's host (never the whole URL: its path may hold a token)
    delivered: bool
    attempts: list[Attempt] = field(default_factory=list)
    recorded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_dict(self) -> dict:
        return asdict(self)


Recorder = Callable[[MediaStore, Delivery], None]


def record_in_store(media: MediaStore, delivery: Delivery) -> None:
    """Append the delivery to ``jobs/<job_id>/webhooks.json`` (only these sensors write it)."""
    key = job_key(delivery.job_id, WEBHOOKS)
    earlier = media.get_json(key) if media.exists(key) else []
    media.put_json(key, [*earlier, delivery.to_dict()])


def delivered_before(media: MediaStore, job_id: str, run_id: str) -> bool:
    """Whether ``jobs/<job_id>/webhooks.json`` records a delivered end of run ``run_id`` (a sensor
    tick evaluated again, or a run also notified by another process, sends nothing twice)."""
    key = job_key(job_id, WEBHOOKS)
    return media.exists(key) and any(d.get("run_id") == run_id and d.get("delivered")
                                     for d in media.get_json(key))


def stored_request(media: MediaStore, job_id: str):
    """The job's request: its ``request.json``, or while its run has not written one (a run that
    failed in its first stage) the staged one; None when neither is there."""
    from video_assets.admission import staged_key
    from video_assets.schemas import StoredRequest

    for key in (job_key(job_id, REQUEST), staged_key(job_id)):
        if media.exists(key):
            return StoredRequest.model_validate(media.get_json(key))
    return None


def job_end_body(instance: DagsterInstance, run, media: MediaStore, warehouse: Warehouse,
                 status: str, failed_stage: str | None) -> bytes:
    """The webhook body for the job of ``run``, which ended with ``status``: links to the final
    video and thumbnail when the run made them (presigned on S3, valid
    ``VIDEO_ASSETS_URL_EXPIRY_S``), the video's length, the job's cost so far, the checks the
    run evaluated and the version it made."""
    from video_assets.job_status import final_video_metadata, run_checks

    job_id = run.tags[PARTITION_TAG]
    made = status in ("done", "checks_failed") and media.exists(job_key(job_id, FINAL))
    meta = final_video_metadata(instance, job_id) if made else {}
    record = instance.get_run_record_by_id(run.run_id)
    ended_at = datetime.fromtimestamp(record.end_time, UTC) if record and record.end_time else None
    return payload(
        job_id=job_id, run_id=run.run_id, status=status, failed_stage=failed_stage,
        final_video_url=media.url(job_key(job_id, FINAL)) if made else None,
        thumbnail_url=media.url(job_key(job_id, THUMBNAIL))
        if made and media.exists(job_key(job_id, THUMBNAIL)) else None,
        duration_s=meta.get("duration_s"), cost_usd=warehouse.job_cost_usd(job_id),
        checks=run_checks(instance, run.run_id), version=meta.get("version"), ended_at=ended_at)


def notify_run_end(instance: DagsterInstance, run, media: MediaStore, warehouse: Warehouse,
                   record: Recorder = record_in_store,
                   log: Callable[[str], None] | None = None) -> Delivery | None:
    """Deliver the end of ``run`` to its job's ``webhook_url`` and ``record`` the delivery;
    None (nothing sent) when the run is not a job's, has not ended, its request names no
    ``webhook_url``, or its end was delivered already (``delivered_before``)."""
    from video_assets.job_status import ENDED_STATUSES, run_outcome

    job_id = run.tags.get(PARTITION_TAG)
    stored = stored_request(media, job_id) if job_id else None
    if stored is None or stored.request.webhook_url is None:
        return None
    status, failed_stage, _ = run_outcome(instance, run)
    if status not in ENDED_STATUSES or delivered_before(media, job_id, run.run_id):
        return None
    url = stored.request.webhook_url
    host = url_host(url)
    try:
        check_webhook_url(url)  # the operator's list as it is now
        secret = webhook_secret()
    except (WebhookUrlError, WebhookConfigError) as exc:
        attempts = [Attempt(1, None, f"not sent: {exc}", 0.0, datetime.now(UTC).isoformat())]
    else:
        body = job_end_body(instance, run, media, warehouse, status, failed_stage)
        attempts = deliver(url, body, secret, deadline_s=DELIVERY_DEADLINE_S)
    delivery = Delivery(job_id=job_id, run_id=run.run_id, status=status, host=host,
                        delivered=bool(attempts) and attempts[-1].ok, attempts=attempts)
    if log is not None:
        for a in attempts:
            outcome = f"delivered (HTTP {a.status_code})" if a.ok else a.error or "not delivered"
            log(f"job {job_id}: webhook ({status}) to {host}: attempt {a.attempt}: {outcome} "
                f"in {a.latency_s:.2f} s")
    record(media, delivery)
    warehouse.record_webhook([{
        "job_id": job_id, "run_id": run.run_id, "status": status, "host": host,
        "attempt": a.attempt, "http_status": a.status_code, "error": a.error,
        "latency_s": a.latency_s, "delivered": a.ok,
        "sent_at": datetime.fromisoformat(a.delivered_at)} for a in attempts])
    return delivery


RUN_ENDS = {DagsterRunStatus.SUCCESS: "webhook_on_success",
            DagsterRunStatus.FAILURE: "webhook_on_failure",
            DagsterRunStatus.CANCELED: "webhook_on_cancel"}


def build_webhook_sensors(record: Recorder = record_in_store) -> list[SensorDefinition]:
    """One run-status sensor per end a run can have, each delivering through ``record``."""

    def build(run_status: DagsterRunStatus, name: str) -> SensorDefinition:
        @run_status_sensor(run_status=run_status, name=name, monitor_all_code_locations=True,
                           default_status=DefaultSensorStatus.RUNNING,
                           description=f"POST the job's end to its request's webhook_url when a "
                           f"run ends in {run_status.value} (video_assets/webhook_sensor.py)")
        def webhook(context: RunStatusSensorContext, store: StoreResource,
                    warehouse: WarehouseResource) -> None:
            notify_run_end(context.instance, context.dagster_run, store.get(), warehouse.get(),
                           record=record, log=context.log.info)

        return webhook

    return [build(status, name) for status, name in RUN_ENDS.items()]


webhook_sensors = build_webhook_sensors()
