"""Run analysis for notebooks: polars frames over the warehouse (either store: one DuckDB file, or
the Parquet files in the media store, read through the same table names) and the Dagster instance,
and matplotlib figures of them.

Everything here reads; nothing writes. ``notebooks/run_analysis.ipynb`` is a thin page over these
functions, and ``tests/test_analysis.py`` covers them against a warehouse made by a real render.

    con = analysis.connect()                  # the warehouse, read-only
    analysis.cost_by(con, "provider", "model")
    analysis.step_durations(DagsterInstance.get())
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
import polars as pl
from matplotlib.figure import Figure

from video_assets.config import warehouse_path
from video_assets.layout import QUALITY
from video_assets.store import MediaStore, job_key
from video_assets.warehouse import DuckDBWarehouse, ParquetWarehouse, Warehouse

RENDER_JOB = "render_job"


def _warehouse(path: str | Path | None = None, store: MediaStore | None = None) -> Warehouse:
    if store is not None:
        return ParquetWarehouse(store=store)
    if path:
        return DuckDBWarehouse(path)
    return Warehouse(warehouse_path())  # the configured store (VIDEO_ASSETS_WAREHOUSE_STORE)


def connect(path: str | Path | None = None,
            store: MediaStore | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the warehouse: the DuckDB file at ``path``, the Parquet files in
    the media store ``store``, or by default the configured one (``$VIDEO_ASSETS_WAREHOUSE`` or
    ``$DAGSTER_HOME/warehouse.duckdb``; the media store's for ``VIDEO_ASSETS_WAREHOUSE_STORE=parquet``
    or the postgres profile). On the Parquet store it sees the rows written before it opened."""
    return _warehouse(path, store).open_reader()


def location(path: str | Path | None = None, store: MediaStore | None = None) -> str:
    """Where ``connect`` with the same arguments reads (a file, or a folder in the media store)."""
    return _warehouse(path, store).location()


def query(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    return con.sql(sql, params=params or None).pl()


# --- jobs and cost -----------------------------------------------------------------------------

def jobs_over_time(con: duckdb.DuckDBPyConnection, every: str = "day") -> pl.DataFrame:
    """Jobs created per ``every`` (hour, day, week or month), by status."""
    if every not in ("hour", "day", "week", "month"):
        raise ValueError(f"every={every!r}; fix: use hour, day, week or month")
    return query(con, f"""
        SELECT date_trunc('{every}', created_at) AS period, coalesce(status, 'unknown') AS status,
               count(*) AS jobs
        FROM jobs GROUP BY ALL ORDER BY period, status""")


def cost_by(con: duckdb.DuckDBPyConnection, *columns: str) -> pl.DataFrame:
    """Spend from ``provider_calls`` grouped by any of job_id, asset (the stage), provider, model."""
    allowed = {"job_id", "asset", "provider", "model"}
    if not columns or not set(columns) <= allowed:
        raise ValueError(f"group by some of {sorted(allowed)}, got {list(columns)}")
    cols = ", ".join(columns)
    return query(con, f"""
        SELECT {cols}, count(*) AS calls, sum(cost_usd) AS cost_usd,
               sum(CASE WHEN cache_hit THEN 0 ELSE cost_usd END) AS paid_usd
        FROM provider_calls GROUP BY {cols} ORDER BY cost_usd DESC, {cols}""")


def provider_reliability(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per provider and model: calls, latency percentiles of real (uncached) calls, retry and
    failure rates."""
    return query(con, """
        SELECT provider, model, count(*) AS calls,
               count(*) FILTER (WHERE NOT cache_hit) AS uncached_calls,
               quantile_cont(latency_s, 0.5) FILTER (WHERE NOT cache_hit) AS latency_p50_s,
               quantile_cont(latency_s, 0.9) FILTER (WHERE NOT cache_hit) AS latency_p90_s,
               max(latency_s) FILTER (WHERE NOT cache_hit) AS latency_max_s,
               avg(CASE WHEN attempt > 1 THEN 1 ELSE 0 END) AS retry_rate,
               avg(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) AS failure_rate
        FROM provider_calls GROUP BY ALL ORDER BY provider, model""")


def latencies(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every uncached call's latency, for distributions."""
    return query(con, """SELECT provider, model, asset, latency_s FROM provider_calls
                         WHERE NOT cache_hit ORDER BY provider, model""")


def cache_hit_rate(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per stage: calls, cache hits and the hit rate."""
    return query(con, """
        SELECT asset, count(*) AS calls, count(*) FILTER (WHERE cache_hit) AS hits,
               avg(CASE WHEN cache_hit THEN 1 ELSE 0 END) AS hit_rate
        FROM provider_calls GROUP BY asset ORDER BY asset""")


# --- quality -----------------------------------------------------------------------------------

def quality_pass_rates(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per metric: jobs measured, share passing, median and worst value, and its limit."""
    return query(con, """
        SELECT metric, count(*) AS jobs, avg(CASE WHEN passed THEN 1 ELSE 0 END) AS pass_rate,
               median(value) AS median_value, max(value) AS max_value, any_value(threshold) AS limit
        FROM quality_metrics GROUP BY metric ORDER BY pass_rate, metric""")


def quality_values(con: duckdb.DuckDBPyConnection, metrics: Iterable[str]) -> pl.DataFrame:
    """One row per job and metric for the given metrics (e.g. duration and audio offset)."""
    names = list(metrics)
    return query(con, f"""SELECT job_id, metric, value, threshold, passed FROM quality_metrics
                          WHERE metric IN ({", ".join("?" for _ in names)})
                          ORDER BY metric, job_id""", names)


def cut_errors(store: MediaStore, job_ids: Iterable[str]) -> pl.DataFrame:
    """Every detected hard cut's distance to its nearest beat (ms), from each job's quality.json."""
    rows = []
    for job_id in job_ids:
        key = job_key(job_id, QUALITY)
        if store.exists(key):
            rows += [{"job_id": job_id, "cut_to_beat_ms": float(ms)}
                     for ms in store.get_json(key).get("cut_to_beat_ms", [])]
    return pl.DataFrame(rows, schema={"job_id": pl.String, "cut_to_beat_ms": pl.Float64})


# --- Dagster runs and steps --------------------------------------------------------------------

def run_durations(instance, limit: int = 1000) -> pl.DataFrame:
    """The render runs recorded in the Dagster instance: job, status, start and wall time."""
    from dagster import RunsFilter

    rows = []
    for record in instance.get_run_records(filters=RunsFilter(job_name=RENDER_JOB), limit=limit):
        run = record.dagster_run
        start, end = record.start_time, record.end_time
        rows.append({
            "run_id": run.run_id, "job_id": run.tags.get("dagster/partition"),
            "status": run.status.value, "started_at": start,
            "duration_s": (end - start) if start and end else None,
        })
    return pl.DataFrame(rows, schema={"run_id": pl.String, "job_id": pl.String,
                                      "status": pl.String, "started_at": pl.Float64,
                                      "duration_s": pl.Float64})


def step_durations(instance, run_ids: Iterable[str] | None = None) -> pl.DataFrame:
    """Per run and stage (step): status and wall time, from the instance's step statistics."""
    if run_ids is None:
        run_ids = run_durations(instance)["run_id"].to_list()
    rows = []
    for run_id in run_ids:
        for step in instance.get_run_step_stats(run_id):
            rows.append({
                "run_id": run_id, "step": step.step_key,
                "status": step.status.value if step.status else None,
                "duration_s": (step.end_time - step.start_time)
                if step.start_time and step.end_time else None,
            })
    return pl.DataFrame(rows, schema={"run_id": pl.String, "step": pl.String,
                                      "status": pl.String, "duration_s": pl.Float64})


# --- figures -----------------------------------------------------------------------------------

def _figure(width_in: float = 7.0, height_in: float = 3.2) -> tuple[Figure, object]:
    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _note_if_empty(ax, n: int) -> None:
    if not n:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes,
                color="#888888")


def plot_jobs_over_time(jobs: pl.DataFrame) -> Figure:
    fig, ax = _figure()
    wide = jobs.pivot(on="status", index="period", values="jobs").fill_null(0).sort("period")
    labels = [str(p)[:16] for p in wide["period"]]
    bottom = [0] * len(labels)
    for status in [c for c in wide.columns if c != "period"]:
        values = wide[status].to_list()
        ax.bar(labels, values, bottom=bottom, label=status)
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    _note_if_empty(ax, len(labels))
    ax.set(title="Jobs over time", ylabel="jobs")
    ax.legend()
    return fig


def plot_cost(cost: pl.DataFrame, by: str) -> Figure:
    fig, ax = _figure()
    ax.barh([str(x) for x in cost[by]], cost["cost_usd"].to_list(), color="#4c72b0")
    _note_if_empty(ax, len(cost))
    ax.set(title=f"Cost per {by}", xlabel="USD")
    return fig


def plot_latencies(calls: pl.DataFrame) -> Figure:
    fig, ax = _figure()
    groups = calls.group_by("provider", "model", maintain_order=True).agg(pl.col("latency_s"))
    ax.boxplot([g for g in groups["latency_s"].to_list()] or [[0.0]],
               tick_labels=[f"{p}/{m}" for p, m in zip(groups["provider"], groups["model"],
                                                       strict=True)] or ["none"])
    _note_if_empty(ax, len(calls))
    ax.set(title="Provider latency (uncached calls)", ylabel="seconds")
    return fig


def plot_step_durations(steps: pl.DataFrame) -> Figure:
    fig, ax = _figure()
    groups = steps.drop_nulls("duration_s").group_by("step", maintain_order=True).agg(
        pl.col("duration_s"))
    ax.boxplot(groups["duration_s"].to_list() or [[0.0]],
               tick_labels=groups["step"].to_list() or ["none"])
    _note_if_empty(ax, len(groups))
    ax.set(title="Dagster step durations", ylabel="seconds")
    return fig


def plot_quality(cuts: pl.DataFrame, values: pl.DataFrame, frame_ms: float = 1000 / 30) -> Figure:
    fig = Figure(figsize=(10, 3.2), dpi=100, layout="constrained")
    ax_cuts, ax_dur, ax_sync = fig.subplots(1, 3)
    ax_cuts.hist(cuts["cut_to_beat_ms"].to_list(), bins=20, color="#4c72b0")
    ax_cuts.axvline(frame_ms, color="#d62728", linestyle="--", label="1 frame")
    _note_if_empty(ax_cuts, len(cuts))
    ax_cuts.set(title="Cut to nearest beat", xlabel="ms", ylabel="cuts")
    ax_cuts.legend()
    for ax, metric, title in [(ax_dur, "duration_error_ms", "Duration error"),
                              (ax_sync, "audio_offset_ms", "Audio offset")]:
        rows = values.filter(pl.col("metric") == metric)
        ax.hist(rows["value"].to_list(), bins=20, color="#55a868")
        if len(rows) and rows["threshold"][0] is not None:
            ax.axvline(rows["threshold"][0], color="#d62728", linestyle="--", label="limit")
            ax.legend()
        _note_if_empty(ax, len(rows))
        ax.set(title=title, xlabel="ms", ylabel="jobs")
    return fig
