"""The warehouse: ``jobs``, ``provider_calls``, ``quality_metrics`` and ``edits``, in two stores
behind one interface (``Warehouse``), readable with the same SQL.

``duckdb`` (the ``local`` profile's default): one DuckDB file, ``$DAGSTER_HOME/warehouse.duckdb`` or
``VIDEO_ASSETS_WAREHOUSE``. DuckDB allows one read-write process per file, so every write opens a
short-lived connection and retries with backoff while another process holds the lock: two runs on
one machine never lose rows. Fastest to query, nothing to set up, and what a laptop needs.

``parquet`` (the ``postgres`` profile's default, ``VIDEO_ASSETS_PROFILE=postgres``; or chosen with
``VIDEO_ASSETS_WAREHOUSE_STORE=parquet``): for runs on many machines, which cannot share a file
lock. Every write is a new, immutable Parquet file in the media store (the local media folder, or
``s3://$VIDEO_ASSETS_BUCKET/``), under ``warehouse/<table>/job_id=<job>/<time>-<uuid>.parquet``.
A file is written whole or not at all (a rename locally, one PUT on S3) under a name no other
writer uses, so writers need no lock and no row is lost or overwritten. "Update" and "replace"
are appends too; the read side turns the files into the same four tables, as views:

- ``provider_calls`` and ``edits`` are facts: every row, as written.
- ``jobs``: one row per job; each column holds the value of the latest write that set it
  (``upsert_job`` changes only the columns it is given, as before), ordered by write time;
  ``created_at`` is the first write's, and ``cost_usd`` is the sum of the job's ledger rows.
- ``quality_metrics``: the job's latest ``replace_quality`` batch.

Files hold hidden columns for this (``_batch``, ``_written_at``, ``_seq``, and ``_set`` on ``jobs``:
which columns that write set). A reader lists the files and reads them into Arrow through the
media store (boto3 on S3), so nothing is downloaded at run time: DuckDB's ``httpfs`` extension
would be, and the ``duckdb-extension-*`` wheels on PyPI (1.5.5) refuse to load into DuckDB 2.0.0.
A job's own reads (``job_cost_usd``, ``has_calls``, ``calls_since``) list only its ledger folder.

A paid call is written the moment it ends, so files are small and many; ``compact`` merges each
table's files of a job into one and removes the merged ones, safely while others write and read
(a batch is read from one file only; a reader whose file was merged away lists again).
Writes on one machine are ordered by its clock; machines' clocks are assumed in sync (NTP).
On S3 the files are tagged ``final`` outside ``jobs/``: no lifecycle rule expires them.

Why not switch both profiles: the single file is faster and simpler where one machine writes,
and existing warehouses, notebooks and tools that open ``warehouse.duckdb`` keep working.
``migrate`` copies a single-file warehouse into the Parquet store without losing rows.
"""

from __future__ import annotations

import io
import itertools
import os
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from urllib.parse import quote, urlencode

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from video_assets.schemas import CallRecord, QualityMetric
from video_assets.store import MediaStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id VARCHAR PRIMARY KEY,
    created_at TIMESTAMPTZ,
    mode VARCHAR,
    prompt VARCHAR,
    audio_duration_s DOUBLE,
    status VARCHAR,
    final_uri VARCHAR,
    cost_usd DOUBLE,
    failed_stage VARCHAR,
    updated_at TIMESTAMPTZ
);
-- a link to open that does not expire (file:// locally); NULL on S3, where links expire and are
-- signed on demand (videogen link JOB_ID)
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS final_url VARCHAR;
CREATE TABLE IF NOT EXISTS provider_calls (
    job_id VARCHAR,
    asset VARCHAR,
    scene_index INTEGER,
    provider VARCHAR,
    model VARCHAR,
    units DOUBLE,
    unit VARCHAR,
    unit_price_usd DOUBLE,
    cost_usd DOUBLE,
    latency_s DOUBLE,
    cache_hit BOOLEAN,
    attempt INTEGER,
    status VARCHAR,
    error VARCHAR,
    started_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS quality_metrics (
    job_id VARCHAR,
    metric VARCHAR,
    value DOUBLE,
    threshold DOUBLE,
    passed BOOLEAN,
    measured_at TIMESTAMPTZ
);
-- token models are priced per token in and out: units = in + out, these say which is which
ALTER TABLE provider_calls ADD COLUMN IF NOT EXISTS input_units DOUBLE;
ALTER TABLE provider_calls ADD COLUMN IF NOT EXISTS output_units DOUBLE;
-- one row per version of a job an edit, a render again or an undo/redo made current
CREATE TABLE IF NOT EXISTS edits (
    job_id VARCHAR,
    version INTEGER,
    operation VARCHAR,
    scene INTEGER,
    parameters VARCHAR,
    paid_calls INTEGER,
    cost_usd DOUBLE,
    created_at TIMESTAMPTZ
);
-- one row per webhook delivery attempt (nothing secret: the URL's host only, no body)
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    job_id VARCHAR,
    run_id VARCHAR,
    status VARCHAR,
    host VARCHAR,
    attempt INTEGER,
    http_status INTEGER,
    error VARCHAR,
    latency_s DOUBLE,
    delivered BOOLEAN,
    sent_at TIMESTAMPTZ
);
"""

CALL_COLUMNS = (
    "job_id", "asset", "scene_index", "provider", "model", "units", "unit", "unit_price_usd",
    "cost_usd", "latency_s", "cache_hit", "attempt", "status", "error", "started_at",
    "input_units", "output_units",
)  # fmt: skip


TABLES = ("jobs", "provider_calls", "quality_metrics", "edits", "webhook_deliveries")
PREFIX = "warehouse/"  # the Parquet store's folder in the media store
STORES = ("duckdb", "parquet")


class WarehouseBusy(RuntimeError):
    pass


def warehouse_store() -> str:
    """Which store ``Warehouse(path)`` opens: ``VIDEO_ASSETS_WAREHOUSE_STORE`` (``duckdb`` or
    ``parquet``), else ``parquet`` for ``VIDEO_ASSETS_PROFILE=postgres`` and ``duckdb`` otherwise."""
    raw = os.environ.get("VIDEO_ASSETS_WAREHOUSE_STORE", "").strip().lower()
    if not raw:
        profile = os.environ.get("VIDEO_ASSETS_PROFILE", "").strip().lower()
        return "parquet" if profile == "postgres" else "duckdb"
    if raw not in STORES:
        raise ValueError(f"VIDEO_ASSETS_WAREHOUSE_STORE={raw!r} is not a warehouse store; fix: "
                         "duckdb (one file, one machine) or parquet (files in the media store)")
    return raw


class Warehouse:
    """The warehouse. ``Warehouse(path)`` opens the configured store (``warehouse_store``): a
    ``DuckDBWarehouse`` at ``path``, or a ``ParquetWarehouse`` in the media store (``path`` is
    then unused); construct either class to choose. The readers below run the same SQL on both."""

    def __new__(cls, *args: object, **kwargs: object) -> Warehouse:
        if cls is Warehouse:
            cls = ParquetWarehouse if warehouse_store() == "parquet" else DuckDBWarehouse
        return super().__new__(cls)

    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection in which the four tables can be queried, closed after the block."""
        raise NotImplementedError

    def open_reader(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the tables as they are now, for the caller to close."""
        raise NotImplementedError

    def location(self) -> str:
        """Where the warehouse lives (a file, or a folder in the media store)."""
        raise NotImplementedError

    def _job_reader(self, job_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that holds at least ``job_id``'s rows (context manager)."""
        raise NotImplementedError

    def record_calls(self, calls: Sequence[CallRecord]) -> int:
        raise NotImplementedError

    def upsert_job(self, job_id: str, **fields: object) -> None:
        """Create or update the job's row; only the given columns change. ``cost_usd`` is not
        a field: it is always the sum of the job's ledger rows, whatever the job's status."""
        raise NotImplementedError

    def record_edit(self, job_id: str, version: int, operation: str, scene: int | None,
                    parameters: str, paid_calls: int, cost_usd: float,
                    created_at: datetime) -> None:
        raise NotImplementedError

    def replace_quality(self, job_id: str, metrics: Sequence[QualityMetric],
                        measured_at: datetime) -> None:
        """The job's latest measurement replaces its earlier one (one row per metric)."""
        raise NotImplementedError

    def record_webhook(self, rows: Sequence[dict]) -> None:
        """Webhook delivery attempts, one row each (``webhook_deliveries``' columns)."""
        raise NotImplementedError

    def job_cost_usd(self, job_id: str) -> float:
        with self._job_reader(job_id) as con:
            row = con.execute(
                "SELECT coalesce(sum(cost_usd), 0) FROM provider_calls WHERE job_id = ?", [job_id]
            ).fetchone()
        return float(row[0]) if row else 0.0

    def has_calls(self, job_id: str, asset: str) -> bool:
        """Whether the job has ever called a provider for ``asset`` (any status)."""
        with self._job_reader(job_id) as con:
            row = con.execute("SELECT count(*) FROM provider_calls WHERE job_id = ? AND asset = ?",
                              [job_id, asset]).fetchone()
        return bool(row and row[0])

    def calls_since(self, job_id: str, since: datetime) -> tuple[int, float]:
        """The job's paid calls made since ``since`` (every attempt at a real provider that was
        not a cache hit) and what the ledger charged for them, in USD."""
        with self._job_reader(job_id) as con:
            row = con.execute(
                "SELECT count(*) FILTER (WHERE provider <> 'offline' AND NOT cache_hit), "
                "coalesce(sum(cost_usd), 0) FROM provider_calls WHERE job_id = ? AND started_at >= ?",
                [job_id, since]).fetchone()
        return (int(row[0]), float(row[1])) if row else (0, 0.0)


# --- one DuckDB file ---------------------------------------------------------------------------

class DuckDBWarehouse(Warehouse):
    """One DuckDB file; writers take turns (short-lived connections, retried while locked)."""

    def __init__(self, path: str | Path, lock_timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    def location(self) -> str:
        return str(self.path)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits (with jittered backoff) while another process writes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only and self.path.exists())
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise WarehouseBusy(
                        f"warehouse {self.path} is locked by another process for over "
                        f"{self.lock_timeout_s:.0f} s; fix: close notebooks holding it open"
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
        try:
            if not read_only:
                con.execute(SCHEMA)
            yield con
        finally:
            con.close()

    def _job_reader(self, job_id: str):
        return self.connect()  # creates the tables of a new warehouse, as every caller expects

    def open_reader(self) -> duckdb.DuckDBPyConnection:
        if not self.path.is_file():
            raise FileNotFoundError(f"no warehouse at {self.path}; fix: render a job first (videogen "
                                    "demo) or point VIDEO_ASSETS_WAREHOUSE at an existing "
                                    "warehouse.duckdb")
        return duckdb.connect(str(self.path), read_only=True)

    def record_calls(self, calls: Sequence[CallRecord]) -> int:
        if not calls:
            return 0
        rows = [tuple(getattr(c, col) for col in CALL_COLUMNS) for c in calls]
        placeholders = ", ".join("?" for _ in CALL_COLUMNS)
        with self.connect() as con:
            con.executemany(
                f"INSERT INTO provider_calls ({', '.join(CALL_COLUMNS)}) VALUES ({placeholders})",
                rows,
            )
            for job_id in {c.job_id for c in calls}:
                _sync_job_cost(con, job_id)
        return len(rows)

    def upsert_job(self, job_id: str, **fields: object) -> None:
        fields = {**fields, "updated_at": datetime.now(UTC)}
        fields.pop("cost_usd", None)
        with self.connect() as con:
            con.execute(
                "INSERT INTO jobs (job_id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [job_id, datetime.now(UTC)],
            )
            sets = ", ".join(f"{k} = ?" for k in fields)
            con.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", [*fields.values(), job_id])
            _sync_job_cost(con, job_id)

    def record_edit(self, job_id: str, version: int, operation: str, scene: int | None,
                    parameters: str, paid_calls: int, cost_usd: float,
                    created_at: datetime) -> None:
        with self.connect() as con:
            con.execute("INSERT INTO edits VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [job_id, version, operation, scene, parameters, paid_calls, cost_usd,
                         created_at])

    def record_webhook(self, rows: Sequence[dict]) -> None:
        cols = _columns("webhook_deliveries")
        with self.connect() as con:
            con.executemany(f"INSERT INTO webhook_deliveries ({', '.join(cols)}) VALUES "
                            f"({', '.join('?' * len(cols))})", [[r[c] for c in cols] for r in rows])

    def replace_quality(self, job_id: str, metrics: Sequence[QualityMetric],
                        measured_at: datetime) -> None:
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute("DELETE FROM quality_metrics WHERE job_id = ?", [job_id])
            con.executemany(
                "INSERT INTO quality_metrics VALUES (?, ?, ?, ?, ?, ?)",
                [(job_id, m.metric, m.value, m.threshold, m.passed, measured_at) for m in metrics],
            )
            con.execute("COMMIT")


def _sync_job_cost(con: duckdb.DuckDBPyConnection, job_id: str) -> None:
    """``jobs.cost_usd`` = the sum of the job's ``provider_calls`` (failed jobs included)."""
    con.execute("UPDATE jobs SET cost_usd = (SELECT coalesce(sum(cost_usd), 0) FROM provider_calls "
                "WHERE job_id = ?) WHERE job_id = ?", [job_id, job_id])


# --- append-only Parquet files in the media store ----------------------------------------------

HIDDEN = {"_batch": "VARCHAR", "_written_at": "TIMESTAMPTZ", "_seq": "BIGINT"}
JOB_SET = "_set"  # on jobs: the columns a write set
FILE = "_file"  # added when read: the key of the file a row came from
ORDER = "(_written_at, _seq, _batch)"  # write order: time, then order within one process
_seq = itertools.count()
READ_THREADS = 16  # files fetched at once (S3 GETs)
READ_ATTEMPTS = 5
# a batch is read from one file only: from its own, or from a file compact() merged it into
ONE_COPY = f"QUALIFY {FILE} = min({FILE}) OVER (PARTITION BY job_id, _batch)"


@cache
def _layout() -> tuple[dict[str, list[str]], dict[str, pa.Schema]]:
    """Each table's columns (from ``SCHEMA``, the one definition) and its files' Arrow schema."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(SCHEMA)
        columns = {t: [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()] for t in TABLES}
        for table in TABLES:
            for name, kind in HIDDEN.items():
                con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        con.execute(f"ALTER TABLE jobs ADD COLUMN {JOB_SET} VARCHAR[]")
        schemas = {t: con.table(t).to_arrow_table().schema for t in TABLES}
    finally:
        con.close()
    return columns, schemas


def _columns(table: str) -> list[str]:
    return _layout()[0][table]


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` with exactly ``schema``'s columns (missing ones, e.g. from an older file, null)."""
    return pa.table([data.column(f.name).cast(f.type) if f.name in data.column_names
                     else pa.nulls(data.num_rows, f.type) for f in schema], schema=schema)


def _folder(table: str, job_id: str | None = None) -> str:
    return f"{PREFIX}{table}/" + ("" if job_id is None else f"job_id={quote(job_id, safe='')}/")


def _jobs_view() -> str:
    """One row per job: each column as the latest write that set it left it."""
    latest = {c: f"(arg_max({{'v': {c}}}, {ORDER}) FILTER (WHERE list_contains({JOB_SET}, '{c}'))).v"
              for c in _columns("jobs")}
    latest.update(created_at="min(created_at)")
    inner = ", ".join(f"{expr} AS {c}" for c, expr in latest.items() if c not in ("job_id", "cost_usd"))
    outer = ", ".join("coalesce(c.cost_usd, 0) AS cost_usd" if c == "cost_usd" else f"j.{c}"
                      for c in _columns("jobs"))
    return f"""
        CREATE TEMP VIEW jobs AS
        WITH j AS (SELECT job_id, {inner} FROM _rows_jobs GROUP BY job_id),
             c AS (SELECT job_id, sum(cost_usd) AS cost_usd FROM _rows_provider_calls GROUP BY job_id)
        SELECT {outer} FROM j LEFT JOIN c USING (job_id)"""


def _views() -> str:
    cols = {t: ", ".join(_columns(t)) for t in TABLES}
    one_copy = "".join(f"CREATE TEMP VIEW _rows_{t} AS SELECT * FROM _raw_{t} {ONE_COPY};"
                       for t in TABLES)
    return one_copy + _jobs_view() + f""";
        CREATE TEMP VIEW provider_calls AS SELECT {cols["provider_calls"]} FROM _rows_provider_calls;
        CREATE TEMP VIEW edits AS SELECT {cols["edits"]} FROM _rows_edits;
        CREATE TEMP VIEW webhook_deliveries AS
            SELECT {cols["webhook_deliveries"]} FROM _rows_webhook_deliveries;
        CREATE TEMP VIEW quality_metrics AS SELECT {cols["quality_metrics"]} FROM (
            SELECT *, arg_max(_batch, {ORDER}) OVER (PARTITION BY job_id) AS _latest
            FROM _rows_quality_metrics)
        WHERE _batch = _latest AND metric IS NOT NULL"""


class ParquetWarehouse(Warehouse):
    """Append-only Parquet files under ``warehouse/`` in a media store; no lock anywhere."""

    def __init__(self, path: str | Path | None = None, lock_timeout_s: float = 120.0,
                 store: MediaStore | None = None) -> None:
        if store is None:  # the configured media store: S3 when VIDEO_ASSETS_BUCKET is set
            from video_assets.resources import StoreResource

            store = StoreResource().get()
        self.store = store

    def location(self) -> str:
        return self.store.uri(PREFIX.rstrip("/"))

    # writing

    def _put(self, key: str, data: bytes) -> None:
        from video_assets.store_s3 import KIND_TAG, S3Store

        if isinstance(self.store, S3Store):
            # kept like the inbox: "final" outside jobs/ matches no expiring lifecycle rule
            # (put_file would tag it an intermediate, expired after a day)
            self.store.client.put_object(Bucket=self.store.bucket, Key=self.store.prefix + key,
                                         Body=data, Tagging=urlencode({KIND_TAG: "final"}))
        else:
            self.store.put_bytes(key, data)

    def _write(self, table: str, key: str, data: pa.Table) -> None:
        buffer = io.BytesIO()
        pq.write_table(_conform(data, _layout()[1][table]), buffer)
        self._put(key, buffer.getvalue())

    def _append(self, table: str, rows: list[dict]) -> None:
        """One new file per job among ``rows``, each under a name no other writer uses."""
        now = datetime.now(UTC)
        for job_id in dict.fromkeys(r["job_id"] for r in rows):
            batch = uuid.uuid4().hex
            mine = [{**r, "_batch": batch, "_written_at": now, "_seq": next(_seq)}
                    for r in rows if r["job_id"] == job_id]
            self._write(table, _folder(table, job_id) + f"{now:%Y%m%dT%H%M%S%fZ}-{batch}.parquet",
                        pa.Table.from_pylist(mine, schema=_layout()[1][table]))

    def record_calls(self, calls: Sequence[CallRecord]) -> int:
        self._append("provider_calls", [{col: getattr(c, col) for col in CALL_COLUMNS}
                                        for c in calls])
        return len(calls)

    def upsert_job(self, job_id: str, **fields: object) -> None:
        fields.pop("cost_usd", None)
        unknown = set(fields) - set(_columns("jobs"))
        if unknown:
            raise ValueError(f"upsert_job: no column {sorted(unknown)} in jobs; fix: one of "
                             f"{_columns('jobs')}")
        now = datetime.now(UTC)
        self._append("jobs", [{**fields, "job_id": job_id, "created_at": now, "updated_at": now,
                               JOB_SET: sorted({*fields, "updated_at"})}])

    def record_edit(self, job_id: str, version: int, operation: str, scene: int | None,
                    parameters: str, paid_calls: int, cost_usd: float,
                    created_at: datetime) -> None:
        self._append("edits", [dict(job_id=job_id, version=version, operation=operation, scene=scene,
                                    parameters=parameters, paid_calls=paid_calls, cost_usd=cost_usd,
                                    created_at=created_at)])

    def record_webhook(self, rows: Sequence[dict]) -> None:
        self._append("webhook_deliveries", [dict(r) for r in rows])

    def replace_quality(self, job_id: str, metrics: Sequence[QualityMetric],
                        measured_at: datetime) -> None:
        rows = [dict(job_id=job_id, metric=m.metric, value=m.value, threshold=m.threshold,
                     passed=m.passed, measured_at=measured_at) for m in metrics]
        # no metrics: one row without a metric, so that the batch still replaces the earlier one
        self._append("quality_metrics", rows or [dict(job_id=job_id, measured_at=measured_at)])

    # reading

    def _read_file(self, key: str) -> pa.Table:
        data = pq.ParquetFile(pa.BufferReader(self.store.get_bytes(key))).read()
        return data.append_column(FILE, pa.array([key] * data.num_rows, pa.string()))

    def _read(self, table: str, folder: str, pool: ThreadPoolExecutor) -> pa.Table:
        """The rows of the files under ``folder``, each with the key of its file (``_file``). A
        file gone between the listing and its read was merged by ``compact``: list again."""
        schema = _layout()[1][table].append(pa.field(FILE, pa.string()))
        for attempt in range(READ_ATTEMPTS):
            keys = [o.key for o in self.store.list(folder) if o.key.endswith(".parquet")]
            try:
                parts = list(pool.map(self._read_file, keys))
                break
            except FileNotFoundError:
                if attempt == READ_ATTEMPTS - 1:
                    raise
        return _conform(pa.concat_tables([schema.empty_table(), *parts],
                                         promote_options="permissive"), schema)

    def _open(self, job_id: str | None = None,
              tables: Sequence[str] = TABLES) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB whose views read the files there are now (all, or one job's) of
        ``tables`` (the others empty)."""
        with ThreadPoolExecutor(READ_THREADS) as pool:
            raw = {t: self._read(t, _folder(t, job_id), pool) if t in tables
                   else _layout()[1][t].append(pa.field(FILE, pa.string())).empty_table()
                   for t in TABLES}
        con = duckdb.connect()
        try:
            for table, data in raw.items():
                con.register(f"_raw_{table}", data)
            con.execute(_views())
        except BaseException:
            con.close()
            raise
        return con

    def open_reader(self) -> duckdb.DuckDBPyConnection:
        return self._open()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only:
            raise ValueError(f"the warehouse at {self.location()} is written only through its "
                             "methods (record_calls, upsert_job, ...); fix: connect(read_only=True)")
        con = self._open()
        try:
            yield con
        finally:
            con.close()

    def compact(self, min_files: int = 2) -> dict[str, int]:
        """Merge the files of each table and job (where there are at least ``min_files``) into one,
        and remove the merged ones: fewer files to list and fetch. Safe while others write, read
        or compact: files written meanwhile are left alone or merged whole; a reader that lists
        both a merged file and its originals reads each batch once (``ONE_COPY``), one whose
        file was removed lists again. Returns how many files were merged away, per table."""
        removed = dict.fromkeys(TABLES, 0)
        with ThreadPoolExecutor(READ_THREADS) as pool:
            for table in TABLES:
                folders: dict[str, int] = {}
                for info in self.store.list(_folder(table)):
                    if info.key.endswith(".parquet"):
                        folder = info.key.rsplit("/", 1)[0] + "/"
                        folders[folder] = folders.get(folder, 0) + 1
                for folder in [f for f, n in folders.items() if n >= min_files]:
                    data = self._read(table, folder, pool)
                    con = duckdb.connect()
                    try:
                        con.register("_raw", data)
                        rows = con.sql(f"SELECT * EXCLUDE ({FILE}) FROM _raw {ONE_COPY}"
                                       ).to_arrow_table()
                    finally:
                        con.close()
                    now = datetime.now(UTC)
                    self._write(table, f"{folder}{now:%Y%m%dT%H%M%S%fZ}-compact-{uuid.uuid4().hex}"
                                ".parquet", rows)
                    merged = set(data.column(FILE).to_pylist())
                    for key in merged:
                        self.store.delete(key)
                    removed[table] += len(merged)
        return removed

    @contextmanager
    def _job_reader(self, job_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._open(job_id, ("provider_calls",))  # all that the job's readers ask
        try:
            yield con
        finally:
            con.close()


def migrate(src_duckdb: str | Path, dest: Warehouse | MediaStore) -> dict[str, int]:
    """Copy every row of the single-file warehouse ``src_duckdb`` into the Parquet warehouse
    ``dest`` (or one in the media store ``dest``); returns the rows copied per table. Columns an
    older warehouse lacks are copied as NULL. Each table's rows of a job go to one file at a fixed
    name, so running it again replaces them, never doubles them (before a ``compact``, which keeps
    the copy it merged: migrate once, when switching stores, with no run writing the file)."""
    if isinstance(dest, MediaStore):
        dest = ParquetWarehouse(store=dest)
    if not isinstance(dest, ParquetWarehouse):
        raise ValueError(f"migrate: the destination {dest.location()} is a single-file warehouse; "
                         "fix: VIDEO_ASSETS_WAREHOUSE_STORE=parquet (or the postgres profile)")
    src = Path(src_duckdb)
    if not src.is_file():
        raise FileNotFoundError(f"migrate: no warehouse at {src}; fix: give the path of an existing "
                                "warehouse.duckdb (VIDEO_ASSETS_WAREHOUSE or $DAGSTER_HOME's)")
    now = datetime.now(UTC)
    # the order each kind of row is read in: a job's updates by their own time, metrics by when
    # they were measured; later writes to the Parquet store come after them
    written_at = {"jobs": "coalesce(updated_at, created_at)", "quality_metrics": "measured_at"}
    counts = {}
    try:
        con = duckdb.connect(str(src), read_only=True)
    except duckdb.IOException as exc:
        raise WarehouseBusy(f"migrate: {src} is open for writing in another process ({exc}); fix: "
                            "wait for running jobs to end, close notebooks holding it open") from exc
    try:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                             "WHERE table_schema = 'main'").fetchall()}
        for table in TABLES:
            if table not in present:
                counts[table] = 0
                continue
            counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for (job_id,) in con.execute(f"SELECT DISTINCT job_id FROM {table}").fetchall():
                rows = con.sql(f"""SELECT *, 'migrated' AS _batch, -1 AS _seq,
                                   coalesce({written_at.get(table, 'NULL')}, ?) AS _written_at
                                   FROM {table} WHERE job_id IS NOT DISTINCT FROM ?""",
                               params=[now, job_id]).to_arrow_table()
                if table == "jobs":
                    set_columns = [c for c in _columns("jobs") if c not in ("job_id", "cost_usd")]
                    rows = rows.append_column(JOB_SET, pa.array([set_columns] * rows.num_rows,
                                                                pa.list_(pa.string())))
                dest._write(table, _folder(table, job_id or "") + "migrated.parquet", rows)
    finally:
        con.close()
    return counts


# --- videogen warehouse migrate | compact --------------------------------------------------------
