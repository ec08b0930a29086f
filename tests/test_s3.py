"""S3 as the product's home, against a real S3 API: moto's server mode on 127.0.0.1, reached through
``AWS_ENDPOINT_URL`` (no in-process patching of boto3)."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import duckdb
import pytest

from tests.conftest import free_port, make_song, scoped_env
from video_assets.cli import main
from video_assets.media.probe import probe_video
from video_assets.resources import StoreResource
from video_assets.sensors import scan_inbox
from video_assets.store_s3 import KIND_TAG, S3Store

BUCKET = "video-assets-test"
OTHER_BUCKET = "someone-elses"


@pytest.fixture(scope="module")
def s3_env(home: Path) -> Iterator[str]:
    """A moto S3 server on loopback and the environment that points the product at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "VIDEO_ASSETS_BUCKET": BUCKET}
    try:
        with scoped_env(env):
            client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
            for name in (BUCKET, OTHER_BUCKET):
                client.create_bucket(Bucket=name)
            yield env["AWS_ENDPOINT_URL"]
    finally:
        server.stop()


@pytest.fixture()
def client(s3_env: str):
    return boto3.client("s3", endpoint_url=s3_env)


@pytest.fixture()
def clean_inbox(client) -> None:
    """Empty inbox/ and rejected/ before a test (the bucket is shared by the module)."""
    for prefix in ("inbox/", "rejected/"):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=BUCKET, Key=obj["Key"])


def put(client, key: str, body: bytes | str | Path, bucket: str = BUCKET) -> None:
    if isinstance(body, Path):
        client.upload_file(str(body), bucket, key)
    else:
        client.put_object(Bucket=bucket, Key=key,
                          Body=body.encode() if isinstance(body, str) else body)


def test_store_contract_streams_and_signs(s3_env: str, client, tmp_path: Path):
    store = StoreResource().get()
    assert isinstance(store, S3Store)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * 2**20))  # over the 8 MB multipart threshold
    store.put_file("jobs/j1/clips/01.mp4", big)
    head = client.head_object(Bucket=BUCKET, Key="jobs/j1/clips/01.mp4")
    assert head["ContentLength"] == 20 * 2**20 and "-" in head["ETag"]  # a multipart upload
    tags = client.get_object_tagging(Bucket=BUCKET, Key="jobs/j1/clips/01.mp4")["TagSet"]
    assert tags == [{"Key": KIND_TAG, "Value": "intermediate"}]
    store.copy("jobs/j1/clips/01.mp4", "jobs/j1/final.mp4")
    tags = client.get_object_tagging(Bucket=BUCKET, Key="jobs/j1/final.mp4")["TagSet"]
    assert tags == [{"Key": KIND_TAG, "Value": "final"}]
    assert store.uri("jobs/j1/final.mp4") == f"s3://{BUCKET}/jobs/j1/final.mp4"
    with urllib.request.urlopen(store.url("jobs/j1/final.mp4"), timeout=30) as resp:
        assert resp.read() == big.read_bytes()
    with store.local_path("jobs/j1/final.mp4") as local:
        assert local.read_bytes() == big.read_bytes()
    assert not local.exists()  # the download is removed after the block
    assert [o.key for o in store.list("jobs/j1/")] == ["jobs/j1/clips/01.mp4", "jobs/j1/final.mp4"]
    store.put_json("jobs/j1/x.json", {"a": 1})
    assert store.get_json("jobs/j1/x.json") == {"a": 1} and store.size("jobs/j1/x.json") > 0
    store.delete("jobs/j1/x.json")
    assert not store.exists("jobs/j1/x.json")
    with pytest.raises(FileNotFoundError, match="no s3://"):
        store.get_bytes("jobs/j1/x.json")


def test_s3_setup_applies_lifecycle_and_blocks_public_access(s3_env: str, client, capsys):
    assert main(["s3", "setup", "--final-days", "5", "--json"]) == 0
    state = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert state["public_access_blocked"] is True
    rules = {r["ID"]: r for r in
             client.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]}
    assert rules["video_assets-intermediates-24h"]["Expiration"]["Days"] == 1
    assert rules["video_assets-finals-5d"]["Expiration"]["Days"] == 5
    assert main(["s3", "setup", "--bucket", "no-such-bucket"]) == 2
    assert "no-such-bucket" in capsys.readouterr().err


def test_drop_request_and_song_then_ingest_renders_into_the_bucket(
        s3_env: str, client, clean_inbox, home: Path, tmp_path: Path, capsys):
    song = make_song(tmp_path / "road.wav", 9.6, tempo_bpm=120.0)
    put(client, "inbox/road.wav", song)
    put(client, "inbox/road.yaml", "prompt: a night drive through neon rain\naudio: road.wav\n"
        "aspect: '1:1'\n")
    assert main(["ingest", "--once", "--wait", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "done" and all(summary["checks"].values()), summary
    key = f"jobs/{summary['job_id']}/final.mp4"
    assert summary["final_video"] == f"s3://{BUCKET}/{key}"
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    uri, url, status = con.execute("SELECT final_uri, final_url, status FROM jobs WHERE job_id = ?",
                                   [summary["job_id"]]).fetchone()
    con.close()
    assert (uri, status) == (f"s3://{BUCKET}/{key}", "done")
    assert url is None  # a presigned link expires: none is stored, one is signed when asked for
    # `videogen link` signs a fresh one, which downloads a video that meets the bars
    assert main(["link", summary["job_id"]]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith(s3_env) and expires_s(url) == 3600
    local = tmp_path / "final.mp4"
    with urllib.request.urlopen(url, timeout=60) as resp:
        local.write_bytes(resp.read())
    probe = probe_video(local)
    assert (probe.width, probe.height, probe.fps, probe.video_codec) == (1080, 1080, 30.0, "h264")
    assert abs(probe.video_duration_s - 9.6) <= 1 / 30 and probe.faststart
    for name in ("thumbnail.jpg", "quality.json", "beat_grid.json", "clips/01.mp4"):
        client.head_object(Bucket=BUCKET, Key=f"jobs/{summary['job_id']}/{name}")
    # no media written locally, and nothing of the user's inbox changed
    assert not (home / "media" / "jobs" / summary["job_id"]).exists()
    assert client.get_object(Bucket=BUCKET, Key="inbox/road.yaml")["Body"].read().startswith(b"prompt")
    # again: nothing new is launched
    assert main(["ingest", "--once", "--wait", "--json"]) == 0
    assert capsys.readouterr().out.strip() == ""


def expires_s(url: str) -> int:
    """A presigned link's lifetime: SigV4's ``X-Amz-Expires``, or SigV2's ``Expires`` instant."""
    query = parse_qs(urlparse(url).query)
    if "X-Amz-Expires" in query:
        return int(query["X-Amz-Expires"][0])
    return round((int(query["Expires"][0]) - time.time()) / 10) * 10


def test_links_last_an_hour_by_default_and_at_most_seven_days(s3_env: str, client, capsys):
    put(client, "jobs/linked/final.mp4", b"not really a video")
    assert expires_s(StoreResource().get().url("jobs/linked/final.mp4")) == 3600
    with scoped_env({"VIDEO_ASSETS_URL_EXPIRY_S": "604800"}):
        assert expires_s(StoreResource().get().url("jobs/linked/final.mp4")) == 604800
    with scoped_env({"VIDEO_ASSETS_URL_EXPIRY_S": "604801"}), \
            pytest.raises(ValueError, match="VIDEO_ASSETS_URL_EXPIRY_S=604801 is outside"):
        StoreResource().get()


def test_link_signs_a_fresh_url_on_demand(s3_env: str, client, capsys):
    put(client, "jobs/linked/final.mp4", b"the final video")
    assert main(["link", "linked", "--expires-s", "120"]) == 0
    url = capsys.readouterr().out.strip()
    assert expires_s(url) == 120
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == b"the final video"
    assert main(["link", "linked", "--expires-s", "604801"]) == 2
    assert "--expires-s=604801 is outside" in capsys.readouterr().err
    assert main(["link", "no-such-job"]) == 2
    err = capsys.readouterr().err
    assert "no-such-job" in err and "has no final video" in err and "fix:" in err


def test_a_cache_entry_carries_its_digest_and_a_damaged_one_is_removed(s3_env: str, client,
                                                                        tmp_path: Path):
    store = StoreResource().get()
    src = tmp_path / "clip.mp4"
    src.write_bytes(os.urandom(5000))
    key = "cache/clip/ab/abc.mp4"
    store.put_file(key, src)
    meta = client.head_object(Bucket=BUCKET, Key=key)["Metadata"]
    assert meta == {"sha256": hashlib.sha256(src.read_bytes()).hexdigest(), "size-bytes": "5000"}
    assert store.cached(key)
    # the object replaced by a shorter one under the same digest (an interrupted writer's copy)
    client.put_object(Bucket=BUCKET, Key=key, Body=src.read_bytes()[:1000], Metadata=meta)
    assert not store.cached(key) and not store.exists(key)  # removed: it will be generated again
    client.put_object(Bucket=BUCKET, Key=key, Body=b"")  # empty, from before digests
    assert not store.cached(key) and not store.exists(key)
    client.put_object(Bucket=BUCKET, Key=key, Body=b"written before digests were recorded")
    assert store.cached(key)


def media_and_inbox() -> tuple[S3Store, S3Store]:
    store = StoreResource().get()
    return store, store


def test_same_object_twice_is_one_job_and_a_changed_one_is_new(s3_env, client, clean_inbox,
                                                                 tmp_path):
    put(client, "inbox/tune.wav", make_song(tmp_path / "tune.wav", 4.0))
    put(client, "inbox/a.yaml", "prompt: kites over a beach\naudio: tune.wav\n")
    inbox, media = media_and_inbox()
    first = scan_inbox(inbox, media, {})
    assert len(first.admitted) == 1
    again = scan_inbox(inbox, media, first.cursor)
    assert again.admitted == [] and again.rejected == []
    put(client, "inbox/a.yaml", "prompt: kites over a stormy beach\naudio: tune.wav\n")
    changed = scan_inbox(inbox, media, again.cursor)
    assert len(changed.admitted) == 1
    assert changed.admitted[0][0] != first.admitted[0][0]  # a new job
    assert changed.admitted[0][1] != first.admitted[0][1]  # run key = object key + ETag
    assert changed.admitted[0][1].startswith("inbox/a.yaml:")


def test_audio_arriving_a_tick_late_is_waited_for(s3_env, client, clean_inbox, tmp_path):
    put(client, "inbox/late.yaml", "prompt: a paper lantern rising\naudio: late.wav\n")
    inbox, media = media_and_inbox()
    tick = scan_inbox(inbox, media, {}, grace_s=300)
    assert tick.waiting == ["inbox/late.yaml"] and not tick.admitted and not tick.rejected
    put(client, "inbox/late.wav", make_song(tmp_path / "late.wav", 4.0))
    tick = scan_inbox(inbox, media, tick.cursor, grace_s=300)
    assert len(tick.admitted) == 1 and not tick.waiting
    assert scan_inbox(inbox, media, tick.cursor, grace_s=300).admitted == []


def test_bad_requests_each_get_a_report_and_none_crash_the_sensor(s3_env, client, clean_inbox,
                                                                   tmp_path):
    put(client, "inbox/songs/tune.wav", make_song(tmp_path / "tune.wav", 4.0))
    put(client, "tune.wav", make_song(tmp_path / "other.wav", 4.0), bucket=OTHER_BUCKET)
    put(client, "jobs/j9/audio.wav", make_song(tmp_path / "j9.wav", 4.0))
    cases = {  # request key -> (body, the field its report must name)
        "inbox/malformed.yaml": ("prompt: [unclosed\n", "file"),
        "inbox/malformed.json": ('{"prompt": ', "file"),
        "inbox/no-prompt.yaml": (f"audio: s3://{BUCKET}/inbox/songs/tune.wav\n", "prompt"),
        "inbox/missing-audio.yaml": ("prompt: a ghost song\naudio: nowhere.wav\n", "audio"),
        "inbox/other-bucket.yaml": (f"prompt: a borrowed song\naudio: s3://{OTHER_BUCKET}/tune.wav\n",
                                    "audio"),
        "inbox/escape.yaml": ("prompt: climbing out\naudio: ../../../etc/passwd\n", "audio"),
        "inbox/other-job.yaml": (f"prompt: another job's song\naudio: s3://{BUCKET}/jobs/j9/audio.wav\n",
                                 "audio"),
        "inbox/other-job-rel.yaml": ("prompt: another job's song\naudio: ../jobs/j9/audio.wav\n",
                                     "audio"),
        "inbox/../traversal.yaml": (f"prompt: a sneaky key\naudio: s3://{BUCKET}/inbox/songs/tune.wav\n",
                                    "file"),
        "inbox/empty.yaml": ("", "file"),
        "inbox/huge.yaml": (b"#" * (150 * 2**20), "file"),
    }
    for key, (body, _) in cases.items():
        put(client, key, body)
    put(client, "inbox/fine.yaml", "prompt: a good one among them\n"
        f"audio: s3://{BUCKET}/inbox/songs/tune.wav\n")
    inbox, media = media_and_inbox()
    tick = scan_inbox(inbox, media, {}, grace_s=0)
    assert [k for _, _, k in tick.admitted] == ["inbox/fine.yaml"]
    listed = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="inbox/")["Contents"]}
    traversal = next(k for k in listed if "traversal" in k)  # as the server stored that key
    expected = {k if "traversal" not in k else traversal for k in cases}
    assert {k for k, _ in tick.rejected} == expected
    for key, (_, field) in cases.items():
        name = key.rsplit("/", 1)[-1]
        report = json.loads(client.get_object(
            Bucket=BUCKET, Key=f"rejected/{name}.error.json")["Body"].read())
        assert report["field"] == field, (key, report)
        assert "fix:" in report["error"], report
    # the users' files are all still there, unchanged
    assert listed >= {k for k in expected} | {"inbox/fine.yaml"}


def test_a_burst_of_200_requests_is_200_runs_in_bounded_ticks(s3_env, client, clean_inbox,
                                                              tmp_path):
    from dagster import DagsterInstance, build_sensor_context

    from video_assets.definitions import defs
    from video_assets.resources import PipelineSettings
    from video_assets.sensors import inbox_sensor

    put(client, "inbox/songs/burst.wav", make_song(tmp_path / "burst.wav", 3.0))
    for i in range(200):
        put(client, f"inbox/burst-{i:03d}.yaml",
            f"prompt: burst number {i}\naudio: s3://{BUCKET}/inbox/songs/burst.wav\naspect: '1:1'\n")
    instance = DagsterInstance.get()
    cursor, run_keys, partitions, ticks = None, [], [], 0
    while True:
        result = inbox_sensor(build_sensor_context(instance=instance, definitions=defs,
                                                   cursor=cursor),
                              store=StoreResource(), settings=PipelineSettings())
        ticks += 1
        run_keys += [r.run_key for r in result.run_requests]
        for req in result.dynamic_partitions_requests:
            partitions += list(req.partition_keys)
        cursor = result.cursor
        if not result.run_requests:
            break
        assert len(result.run_requests) <= 50  # bounded batches
    assert ticks == 5  # four batches of 50, then an empty tick
    assert len(run_keys) == len(set(run_keys)) == 200
    assert len(partitions) == len(set(partitions)) == 200
    assert len(json.dumps(cursor)) < 20_000  # the cursor does not grow with what was processed


def leftovers() -> set[str]:
    import tempfile

    return {p.name for p in Path(tempfile.gettempdir()).glob("video_assets-*")}


def test_submit_uploads_and_a_failing_stage_leaves_no_local_files(s3_env, client, clean_inbox,
                                                                   tmp_path, capsys, monkeypatch):
    import video_assets.assets.final as final_module

    make_song(tmp_path / "crash.wav", 9.3, tempo_bpm=100.0)
    request = tmp_path / "crash.yaml"
    request.write_text("prompt: a stage that will fail\naudio: crash.wav\naspect: '1:1'\n")
    assert main(["submit", str(request)]) == 0
    assert f"s3://{BUCKET}/inbox/crash.yaml" in capsys.readouterr().out
    client.head_object(Bucket=BUCKET, Key="inbox/crash.wav")

    def broken_compose(*args, **kwargs):
        raise RuntimeError("encoder crashed (on purpose)")

    monkeypatch.setattr(final_module, "compose_chunked", broken_compose)
    before = leftovers()
    assert main(["ingest", "--once", "--wait", "--json"]) == 1
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "failed" and summary["failed_stage"] == "final_video"
    assert "encoder crashed" in summary["error"]
    # the clips were downloaded for composition; none of them, nor any scratch folder, remains
    assert leftovers() <= before
    jobs = client.list_objects_v2(Bucket=BUCKET, Prefix=f"jobs/{summary['job_id']}/")
    keys = {o["Key"].split("/", 2)[2] for o in jobs["Contents"]}
    assert "clips/01.mp4" in keys and "final.mp4" not in keys  # nothing half-written
