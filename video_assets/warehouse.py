"""DuckDB warehouse: ``jobs``, ``provider_calls``, ``quality_metrics`` and ``edits``.

DuckDB allows one read-write process per file, so every write opens a short-lived connection and
retries with backoff while another process holds the lock: two runs at once never lose rows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from video_assets.schemas import CallRecord, QualityMetric

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
"""

CALL_COLUMNS = (
    "job_id", "asset", "scene_index", "provider", "model", "units", "unit", "unit_price_usd",
    "cost_usd", "latency_s", "cache_hit", "attempt", "status", "error", "started_at",
    "input_units", "output_units",
)  # fmt: skip


class WarehouseBusy(RuntimeError):
    pass


class Warehouse:
    def __init__(self, path: str | Path, lock_timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

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
        """Create or update the job's row; only the given columns change. ``cost_usd`` is not
        a field: it is always the sum of the job's ledger rows, whatever the job's status."""
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

    def job_cost_usd(self, job_id: str) -> float:
        with self.connect() as con:
            row = con.execute(
                "SELECT coalesce(sum(cost_usd), 0) FROM provider_calls WHERE job_id = ?", [job_id]
            ).fetchone()
        return float(row[0]) if row else 0.0

    def has_calls(self, job_id: str, asset: str) -> bool:
        """Whether the job has ever called a provider for ``asset`` (any status)."""
        with self.connect() as con:
            row = con.execute("SELECT count(*) FROM provider_calls WHERE job_id = ? AND asset = ?",
                              [job_id, asset]).fetchone()
        return bool(row and row[0])

    def calls_since(self, job_id: str, since: datetime) -> tuple[int, float]:
        """The job's paid calls made since ``since`` (every attempt at a real provider that was
        not a cache hit) and what the ledger charged for them, in USD."""
        with self.connect() as con:
            row = con.execute(
                "SELECT count(*) FILTER (WHERE provider <> 'offline' AND NOT cache_hit), "
                "coalesce(sum(cost_usd), 0) FROM provider_calls WHERE job_id = ? AND started_at >= ?",
                [job_id, since]).fetchone()
        return (int(row[0]), float(row[1])) if row else (0, 0.0)

    def record_edit(self, job_id: str, version: int, operation: str, scene: int | None,
                    parameters: str, paid_calls: int, cost_usd: float,
                    created_at: datetime) -> None:
        with self.connect() as con:
            con.execute("INSERT INTO edits VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [job_id, version, operation, scene, parameters, paid_calls, cost_usd,
                         created_at])

    def replace_quality(self, job_id: str, metrics: Sequence[QualityMetric],
                        measured_at: datetime) -> None:
        """The job's latest measurement replaces its earlier one (one row per metric)."""
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
