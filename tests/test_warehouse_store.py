"""The Parquet warehouse, which many machines write with no lock: writers in separate processes
lose no row (in a local folder, and on S3 through moto's server on loopback), the views give each
job's latest values, both stores give the same tables for the same writes, and ``migrate`` copies
a single-file warehouse without losing a row."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from tests.conftest import free_port, scoped_env
from video_assets.schemas import CallRecord, QualityMetric
from video_assets.store import LocalStore
from video_assets.store_s3 import KIND_TAG, S3Store, lifecycle_rules
from video_assets.warehouse import (
    TABLES,
    DuckDBWarehouse,
    ParquetWarehouse,
    Warehouse,
    WarehouseBusy,
    migrate,
    warehouse_store,
)

BUCKET = "warehouse-test"
ROWS_PER_WRITER = 120
ROWS_PER_WRITER_S3 = 50  # moto answers slower than a folder


def call(job_id: str, cost_usd: float, model: str = "kwaivgi/kling-v2.1", scene: int = 0,
         asset: str = "clips", cache_hit: bool = False) -> CallRecord:
    return CallRecord(job_id=job_id, asset=asset, scene_index=scene, provider="replicate",
                      model=model, units=5, unit="video_s", unit_price_usd=cost_usd / 5,
                      cost_usd=cost_usd, cache_hit=cache_hit)


def compact_until(root: str, stop, rounds, merged) -> None:
    """A compactor process: merges the files of the store at ``root`` until ``stop`` is set;
    sets ``merged`` once a round has merged ledger files."""
    wh = ParquetWarehouse(store=LocalStore(root))
    n = 0
    while not stop.is_set():
        n += wh.compact()["provider_calls"] > 0
        if n:
            merged.set()
    rounds.put(n)


def write_ledger(root: str | None, env: dict[str, str], writer: int, job_id: str, n: int,
                 start, times, merged=None) -> None:
    """A writer process: ``n`` one-row ledger writes (as ``CallLog.finish`` makes them), started
    with the other writer. ``root``: a local media folder; None: the bucket ``env`` names (through
    a plain boto3 client: the process starts without importing Dagster). ``merged``: half-way,
    wait until a compactor has merged files (so that its merges overlap the writes, however
    fast this machine writes)."""
    os.environ.update(env)
    store = LocalStore(root) if root else S3Store(env["VIDEO_ASSETS_BUCKET"], boto3.client("s3"))
    wh = ParquetWarehouse(store=store)
    start.wait(60)
    began = time.time()
    for i in range(n):
        if merged is not None and i == n // 2:
            assert merged.wait(120), "the compactor merged nothing in 120 s"
        wh.record_calls([call(job_id, 0.01 * (i + 1), model=f"writer-{writer}", scene=i)])
    times.put((writer, began, time.time()))


def run_writers(root: str | None, env: dict[str, str], job_id: str, compacting: bool = False,
                n: int = ROWS_PER_WRITER) -> list[tuple]:
    """Two writer processes at once (and a compactor, if ``compacting``); returns each writer's
    (writer, start, end) times."""
    ctx = multiprocessing.get_context("spawn")
    start, stop, times, rounds = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Queue()
    merged = ctx.Event() if compacting else None
    procs = [ctx.Process(target=write_ledger, args=(root, env, w, job_id, n, start, times, merged))
             for w in (1, 2)]
    compactor = ctx.Process(target=compact_until, args=(root, stop, rounds, merged))
    for p in procs + [compactor] * compacting:
        p.start()
    start.set()
    spans = [times.get(timeout=180) for _ in procs]
    stop.set()
    if compacting:
        assert rounds.get(timeout=60) >= 1  # it merged files while the writers wrote (they
        # waited half-way for its first merge, and went on writing after it)
    for p in procs + [compactor] * compacting:
        p.join(30)
        assert p.exitcode == 0
    return spans


def assert_no_row_lost(wh: Warehouse, job_id: str, spans: list[tuple],
                       n: int = ROWS_PER_WRITER) -> None:
    assert max(s[1] for s in spans) < min(s[2] for s in spans), f"writers did not overlap: {spans}"
    with wh.connect(read_only=True) as con:
        per_writer = con.execute(
            "SELECT model, count(*), count(DISTINCT scene_index), sum(cost_usd) FROM provider_calls "
            "WHERE job_id = ? GROUP BY model ORDER BY model", [job_id]).fetchall()
    expected_usd = sum(0.01 * (i + 1) for i in range(n))
    assert [(m, rows, d) for m, rows, d, _ in per_writer] == [(f"writer-{w}", n, n) for w in (1, 2)]
    assert [usd for *_, usd in per_writer] == pytest.approx([expected_usd] * 2)
    assert wh.job_cost_usd(job_id) == pytest.approx(2 * expected_usd)


def test_two_processes_writing_ledger_rows_at_once_lose_none_in_a_local_folder(tmp_path: Path):
    spans = run_writers(str(tmp_path / "media"), {}, "shared-local")
    assert_no_row_lost(ParquetWarehouse(store=LocalStore(tmp_path / "media")), "shared-local", spans)


def test_two_processes_writing_while_a_third_compacts_lose_no_row(tmp_path: Path):
    spans = run_writers(str(tmp_path / "media"), {}, "compacted", compacting=True)
    wh = ParquetWarehouse(store=LocalStore(tmp_path / "media"))
    assert_no_row_lost(wh, "compacted", spans)
    wh.compact()
    assert len(wh.store.list("warehouse/provider_calls/")) == 1
    assert_no_row_lost(wh, "compacted", spans)


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    """A moto S3 server on loopback, a bucket, and the environment that selects the Parquet
    warehouse in it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "VIDEO_ASSETS_BUCKET": BUCKET, "VIDEO_ASSETS_WAREHOUSE_STORE": "parquet"}
    try:
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                     aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.stop()


def test_two_processes_writing_ledger_rows_at_once_lose_none_on_s3(s3_env: dict[str, str]):
    spans = run_writers(None, s3_env, "shared-s3", n=ROWS_PER_WRITER_S3)
    with scoped_env(s3_env):
        assert_no_row_lost(Warehouse("unused.duckdb"), "shared-s3", spans, n=ROWS_PER_WRITER_S3)


def expires(rule: dict, key: str, tags: dict[str, str]) -> bool:
    """Whether the lifecycle ``rule`` would expire an object with this key and these tags."""
    if rule["Status"] != "Enabled" or "Expiration" not in rule:
        return False
    spec = rule["Filter"].get("And", rule["Filter"])
    wanted = spec.get("Tags", [spec["Tag"]] if "Tag" in spec else [])
    return key.startswith(spec.get("Prefix", "")) and all(
        tags.get(t["Key"]) == t["Value"] for t in wanted)


def test_warehouse_files_on_s3_match_no_expiring_lifecycle_rule(s3_env: dict[str, str]):
    with scoped_env(s3_env):
        wh = Warehouse("unused.duckdb")
        wh.upsert_job("kept", status="running")
        wh.record_calls([call("kept", 0.1)])
        wh.record_calls([call("kept", 0.2)])
        wh.compact()  # the merged file is kept too
        assert wh.job_cost_usd("kept") == pytest.approx(0.3)
        client = wh.store.client
        keys = [o.key for o in wh.store.list("warehouse/") if "job_id=kept/" in o.key]
        assert len(keys) == 2 and "-compact-" in keys[1]
        for key in keys:
            tags = {t["Key"]: t["Value"] for t in
                    client.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]}
            assert not [r["ID"] for r in lifecycle_rules(final_days=7) if expires(r, key, tags)]
        # the check itself tells an expiring object: an intermediate's tags would be expired
        assert any(expires(r, keys[0], {KIND_TAG: "intermediate"})
                   for r in lifecycle_rules(final_days=7))


def test_the_jobs_view_gives_each_column_the_latest_write_that_set_it(tmp_path: Path):
    wh = ParquetWarehouse(store=LocalStore(tmp_path))
    wh.upsert_job("j1", mode="music_video", prompt="a kite", status="running", failed_stage=None)
    wh.record_calls([call("j1", 0.25), call("j1", 0.5)])
    wh.upsert_job("j1", status="failed", failed_stage="clips")
    wh.upsert_job("j1", status="done", failed_stage=None, final_uri="/media/jobs/j1/final.mp4")
    wh.record_calls([call("j1", 0.4)])  # a killed run's attempt, written after the job ended
    with wh.connect(read_only=True) as con:
        rows = con.execute("SELECT job_id, mode, prompt, status, failed_stage, final_uri, cost_usd, "
                           "created_at < updated_at FROM jobs").fetchall()
    assert rows == [("j1", "music_video", "a kite", "done", None, "/media/jobs/j1/final.mp4",
                     pytest.approx(1.15), True)]


def test_a_later_quality_measurement_replaces_the_earlier_one(tmp_path: Path):
    wh = ParquetWarehouse(store=LocalStore(tmp_path))
    now = datetime.now(UTC)
    wh.replace_quality("j1", [QualityMetric(metric="a", value=1, threshold=2, passed=True),
                              QualityMetric(metric="b", value=3, threshold=2, passed=False)], now)
    wh.replace_quality("j2", [QualityMetric(metric="a", value=5, threshold=2, passed=False)], now)
    wh.replace_quality("j1", [QualityMetric(metric="a", value=0.5, threshold=2, passed=True)], now)
    with wh.connect(read_only=True) as con:
        rows = con.execute("SELECT job_id, metric, value FROM quality_metrics ORDER BY ALL").fetchall()
    assert rows == [("j1", "a", 0.5), ("j2", "a", 5.0)]
    wh.replace_quality("j2", [], now)  # a measurement with no metrics leaves none
    with wh.connect(read_only=True) as con:
        assert con.execute("SELECT job_id FROM quality_metrics").fetchall() == [("j1",)]


def write_history(wh: Warehouse) -> None:
    """The same writes a few jobs make, on either store."""
    t0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
    wh.upsert_job("j1", mode="music_video", prompt="boats", audio_duration_s=12.5,
                  status="running", failed_stage=None)
    wh.record_calls([call("j1", 0.3, scene=i) for i in range(3)] + [call("j1", 0.0, cache_hit=True)])
    wh.upsert_job("j2", mode="lyric_video", prompt="rain", status="running")
    wh.record_calls([call("j2", 1.5, asset="storyboard", model="black-forest-labs/flux-schnell")])
    wh.record_calls([call("orphan", 0.7)])  # ledger rows of a job that has no row yet
    wh.upsert_job("j2", status="failed", failed_stage="clips")
    wh.replace_quality("j1", [QualityMetric(metric="duration_error_ms", value=9, threshold=34,
                                            passed=True)], t0)
    wh.replace_quality("j1", [QualityMetric(metric="duration_error_ms", value=3, threshold=34,
                                            passed=True),
                              QualityMetric(metric="audio_offset_ms", value=50, threshold=20,
                                            passed=False)], t0 + timedelta(minutes=5))
    wh.upsert_job("j1", status="checks_failed", final_uri="jobs/j1/final.mp4", final_url=None)
    wh.record_edit("j1", 1, "render", None, "{}", 3, 0.9, t0)
    wh.record_edit("j1", 2, "regenerate", 2, '{"prompt": "boats at dusk"}', 1, 0.3, t0)
    wh.record_edit("j1", 1, "undo", None, "{}", 0, 0.0, t0)
    wh.record_webhook([{"job_id": "j1", "run_id": "r1", "status": "done", "host": "hooks.example.com",
                        "attempt": k, "http_status": code, "error": None if ok else "HTTP 500",
                        "latency_s": 0.25 * k, "delivered": ok, "sent_at": t0}
                       for k, code, ok in ((1, 500, False), (2, 200, True))])


def table_rows(wh: Warehouse, table: str, exclude: tuple[str, ...] = ()) -> list[tuple]:
    with wh.connect(read_only=True) as con:
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] not in exclude]
        return con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY ALL").fetchall()


def test_both_stores_give_the_same_tables_and_answers_for_the_same_writes(tmp_path: Path):
    duck, parquet = DuckDBWarehouse(tmp_path / "w.duckdb"), ParquetWarehouse(store=LocalStore(tmp_path))
    for wh in (duck, parquet):
        write_history(wh)
    # when each store's own writes happened
    write_times = {"jobs": ("created_at", "updated_at"), "provider_calls": ("started_at",)}
    for table in TABLES:
        exclude = write_times.get(table, ())
        assert table_rows(parquet, table, exclude) == table_rows(duck, table, exclude), table
    since = datetime.now(UTC) - timedelta(hours=1)
    for wh in (duck, parquet):
        assert wh.job_cost_usd("j1") == pytest.approx(0.9) and wh.job_cost_usd("orphan") == 0.7
        assert wh.has_calls("j2", "storyboard") and not wh.has_calls("j2", "clips")
        assert wh.calls_since("j1", since) == (3, pytest.approx(0.9))


def test_migrate_keeps_every_row_and_running_it_again_doubles_none(tmp_path: Path):
    src = DuckDBWarehouse(tmp_path / "w.duckdb")
    write_history(src)
    dest = ParquetWarehouse(store=LocalStore(tmp_path / "media"))
    sums = {"jobs": "cost_usd", "provider_calls": "cost_usd", "quality_metrics": "value",
            "edits": "cost_usd", "webhook_deliveries": "latency_s"}

    def totals(wh: Warehouse) -> dict[str, tuple]:
        with wh.connect(read_only=True) as con:
            # rounded: a float sum depends on the order rows are added in
            return {t: con.execute(f"SELECT count(*), round(sum({c}), 9) FROM {t}").fetchone()
                    for t, c in sums.items()}

    before = totals(src)
    assert migrate(src.path, dest.store) == {t: n for t, (n, _) in before.items()}
    assert totals(dest) == before
    for table in TABLES:  # every row and every column, the jobs' times included
        assert table_rows(dest, table) == table_rows(src, table), table
    migrate(src.path, dest)
    assert totals(dest) == before
    dest.upsert_job("j2", status="done", failed_stage=None)  # later writes come after the copy
    with dest.connect(read_only=True) as con:
        assert con.execute("SELECT status, failed_stage, prompt FROM jobs WHERE job_id = 'j2'"
                           ).fetchall() == [("done", None, "rain")]


def test_migrate_copies_a_warehouse_older_than_the_newest_columns(tmp_path: Path):
    import duckdb

    src = tmp_path / "old.duckdb"
    with duckdb.connect(str(src)) as con:  # before final_url, input/output units and edits
        con.execute("""
            CREATE TABLE jobs (job_id VARCHAR PRIMARY KEY, created_at TIMESTAMPTZ, mode VARCHAR,
                prompt VARCHAR, audio_duration_s DOUBLE, status VARCHAR, final_uri VARCHAR,
                cost_usd DOUBLE, failed_stage VARCHAR, updated_at TIMESTAMPTZ);
            CREATE TABLE provider_calls (job_id VARCHAR, asset VARCHAR, scene_index INTEGER,
                provider VARCHAR, model VARCHAR, units DOUBLE, unit VARCHAR, unit_price_usd DOUBLE,
                cost_usd DOUBLE, latency_s DOUBLE, cache_hit BOOLEAN, attempt INTEGER,
                status VARCHAR, error VARCHAR, started_at TIMESTAMPTZ);
            INSERT INTO jobs VALUES ('old', now(), 'music_video', 'p', 10, 'done', 'f.mp4', 0.75,
                                     NULL, now());
            INSERT INTO provider_calls SELECT 'old', 'clips', i, 'replicate', 'm', 5, 'video_s',
                0.05, 0.25, 1.0, false, 1, 'ok', NULL, now() FROM range(3) t(i);""")
    assert migrate(src, LocalStore(tmp_path / "media")) == {
        "jobs": 1, "provider_calls": 3, "quality_metrics": 0, "edits": 0, "webhook_deliveries": 0}
    with ParquetWarehouse(store=LocalStore(tmp_path / "media")).connect(read_only=True) as con:
        assert con.execute("SELECT status, cost_usd, final_url FROM jobs").fetchall() == [
            ("done", 0.75, None)]
        assert con.execute("SELECT count(*), sum(cost_usd), count(input_units) FROM provider_calls"
                           ).fetchone() == (3, 0.75, 0)


def test_migrate_names_the_fix_while_another_process_writes_the_file(tmp_path: Path):
    src = DuckDBWarehouse(tmp_path / "w.duckdb")
    src.upsert_job("j1", status="running")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); time.sleep(60)", str(src.path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseBusy, match="fix: wait for running jobs to end"):
            migrate(src.path, LocalStore(tmp_path / "media"))
    finally:
        holder.kill()
        holder.wait()


def test_the_profile_or_the_setting_chooses_the_store(tmp_path: Path):
    unset = {"VIDEO_ASSETS_WAREHOUSE_STORE": None, "VIDEO_ASSETS_BUCKET": None}
    with scoped_env({**unset, "VIDEO_ASSETS_PROFILE": None}):
        assert isinstance(Warehouse(tmp_path / "w.duckdb"), DuckDBWarehouse)
    with scoped_env({**unset, "VIDEO_ASSETS_PROFILE": "postgres",
                     "DAGSTER_HOME": str(tmp_path)}):
        wh = Warehouse(tmp_path / "w.duckdb")
        assert isinstance(wh, ParquetWarehouse)
        assert wh.location() == str(tmp_path / "media" / "warehouse")
        with pytest.raises(ValueError, match=r"connect\(read_only=True\)"), wh.connect():
            pass
    with (scoped_env({"VIDEO_ASSETS_WAREHOUSE_STORE": "ducklake"}),
          pytest.raises(ValueError, match="fix: duckdb .* or parquet")):
        warehouse_store()


def all_tables(wh: Warehouse) -> dict[str, list[tuple]]:
    return {table: table_rows(wh, table) for table in TABLES}


def test_compact_leaves_one_file_per_table_and_job_and_every_row(tmp_path: Path):
    wh = ParquetWarehouse(store=LocalStore(tmp_path))
    write_history(wh)
    before = all_tables(wh)
    folders = Counter(info.key.rsplit("/", 1)[0] for info in wh.store.list("warehouse/"))
    assert max(folders.values()) > 1
    assert sum(wh.compact().values()) == sum(n for n in folders.values() if n > 1)
    assert Counter(info.key.rsplit("/", 1)[0] for info in wh.store.list("warehouse/")) == \
        dict.fromkeys(folders, 1)  # one file per table and job
    assert all_tables(wh) == before
    wh.upsert_job("j2", status="done", failed_stage=None)  # writes after a compaction still win
    wh.compact()
    with wh.connect(read_only=True) as con:
        assert con.execute("SELECT status, failed_stage FROM jobs WHERE job_id = 'j2'").fetchall() \
            == [("done", None)]


def test_a_reader_that_lists_a_merged_file_and_its_originals_reads_each_row_once(tmp_path: Path):
    wh = ParquetWarehouse(store=LocalStore(tmp_path / "a"))
    write_history(wh)
    before = all_tables(wh)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    ParquetWarehouse(store=LocalStore(tmp_path / "b")).compact()
    originals = {info.key for info in wh.store.list("warehouse/")}
    for info in LocalStore(tmp_path / "b").list("warehouse/"):  # merged, originals not yet gone
        if info.key not in originals:
            shutil.copy(tmp_path / "b" / info.key, tmp_path / "a" / info.key)
    assert len(wh.store.list("warehouse/")) > len(originals)
    assert all_tables(wh) == before


class CompactedWhileRead(LocalStore):
    """A local store whose first read comes after another process compacted the files."""

    compacted = False

    def get_bytes(self, key: str) -> bytes:
        if not self.compacted:
            self.compacted = True
            ParquetWarehouse(store=LocalStore(self.root)).compact()
        return super().get_bytes(key)


def test_a_reader_lists_again_when_a_file_it_listed_was_merged_away(tmp_path: Path):
    write_history(ParquetWarehouse(store=LocalStore(tmp_path)))
    before = all_tables(ParquetWarehouse(store=LocalStore(tmp_path)))
    reader = ParquetWarehouse(store=CompactedWhileRead(tmp_path))
    assert all_tables(reader) == before and reader.store.compacted


def test_videogen_warehouse_migrate_and_compact_copy_and_merge_the_configured_warehouse(
        tmp_path: Path, capsys: pytest.CaptureFixture):
    import argparse
    import json

    from video_assets.cli_warehouse import add_parsers

    parser = argparse.ArgumentParser(prog="videogen")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    src = DuckDBWarehouse(tmp_path / "home" / "warehouse.duckdb")
    write_history(src)
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "VIDEO_ASSETS_BUCKET": None,
           "VIDEO_ASSETS_WAREHOUSE": None, "VIDEO_ASSETS_WAREHOUSE_STORE": None}
    dest = ParquetWarehouse(store=LocalStore(tmp_path / "home" / "media"))
    with scoped_env(env):
        args = parser.parse_args(["warehouse", "migrate", "--json"])
        assert args.func(args) == 0
        assert json.loads(capsys.readouterr().out) == {
            "from": str(src.path), "to": dest.location(),
            "rows": {"jobs": 2, "provider_calls": 6, "quality_metrics": 2, "edits": 3,
                     "webhook_deliveries": 2}}
        assert all_tables(dest) == all_tables(src)
        dest.record_calls([call("j1", 0.1)])  # j1's ledger: its migrated file and this one
        args = parser.parse_args(["warehouse", "compact", "--json"])
        assert args.func(args) == 0
        assert json.loads(capsys.readouterr().out)["files_merged"] == {
            "jobs": 0, "provider_calls": 2, "quality_metrics": 0, "edits": 0, "webhook_deliveries": 0}
        assert dest.job_cost_usd("j1") == pytest.approx(1.0)
        args = parser.parse_args(["warehouse", "migrate", "--from", str(tmp_path / "none.duckdb")])
        assert args.func(args) == 2
    assert "fix: give the path of an existing" in capsys.readouterr().err
