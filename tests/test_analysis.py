"""The analysis functions over a warehouse and instance made by a real render, and the notebook
executed headless against them; both also on the Parquet store the warehouse migrates to."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import polars as pl
import pytest
from dagster import DagsterInstance
from nbclient import NotebookClient
from polars.testing import assert_frame_equal

from tests.conftest import ARTIFACTS, REPO, scoped_env
from video_assets import analysis
from video_assets.resources import StoreResource
from video_assets.store import LocalStore
from video_assets.warehouse import migrate


@pytest.fixture()
def con(rendered_job: dict, home: Path):
    connection = analysis.connect(home / "warehouse.duckdb")
    yield connection
    connection.close()


def test_cost_cache_and_reliability_match_the_ledger(rendered_job: dict, con):
    job_id, n = rendered_job["job_id"], rendered_job["clips"]
    per_stage = analysis.cost_by(con, "asset").filter(pl.col("calls") > 0)
    calls = dict(con.execute("SELECT asset, count(*) FROM provider_calls GROUP BY asset").fetchall())
    assert dict(zip(per_stage["asset"], per_stage["calls"], strict=True)) == calls
    per_job = analysis.cost_by(con, "job_id").filter(pl.col("job_id") == job_id)
    assert per_job["calls"].item() == 1 + 2 * n and per_job["cost_usd"].item() == 0.0
    models = analysis.cost_by(con, "provider", "model")
    assert set(models["provider"]) == {"offline"} and models["calls"].sum() == sum(calls.values())
    hits = analysis.cache_hit_rate(con)
    assert ((hits["hit_rate"] >= 0) & (hits["hit_rate"] <= 1)).all()
    assert hits["calls"].sum() == sum(calls.values())
    reliability = analysis.provider_reliability(con)
    assert (reliability["failure_rate"] == 0).all() and (reliability["retry_rate"] == 0).all()
    assert (reliability["latency_p50_s"] <= reliability["latency_p90_s"]).all()
    with pytest.raises(ValueError, match="group by some of"):
        analysis.cost_by(con, "job_id; DROP TABLE jobs")


def test_jobs_and_quality_from_the_warehouse(rendered_job: dict, con, home: Path):
    jobs = analysis.jobs_over_time(con)
    with pytest.raises(ValueError, match="use hour, day, week or month"):
        analysis.jobs_over_time(con, every="day', created_at) FROM jobs; --")
    assert jobs.filter(pl.col("status") == "done")["jobs"].sum() >= 1
    rates = analysis.quality_pass_rates(con)
    report = json.loads((home / "media" / "jobs" / rendered_job["job_id"] / "quality.json").read_text())
    assert set(rates["metric"]) >= {m["metric"] for m in report["metrics"]}
    values = analysis.quality_values(con, ["audio_offset_ms"]).filter(
        pl.col("job_id") == rendered_job["job_id"])
    assert values["value"].item() == pytest.approx(abs(report["audio_offset_ms"]), abs=1e-3)
    cuts = analysis.cut_errors(StoreResource().get(), [rendered_job["job_id"], "no-such-job"])
    assert cuts["cut_to_beat_ms"].to_list() == report["cut_to_beat_ms"]


def test_run_and_step_durations_from_the_instance(rendered_job: dict):
    instance = DagsterInstance.get()
    runs = analysis.run_durations(instance)
    run = runs.filter(pl.col("run_id") == rendered_job["run_id"])
    assert run["status"].item() == "SUCCESS" and run["job_id"].item() == rendered_job["job_id"]
    steps = analysis.step_durations(instance, [rendered_job["run_id"]])
    order = steps["step"].to_list()  # in the order they ran: voiceover and storyboard both follow
    assert sorted(order) == sorted(["job_request", "beat_grid", "lyrics", "script", "voiceover",
                                    "captions", "storyboard", "clips", "final_video"])
    for before, after in [("job_request", "beat_grid"), ("beat_grid", "lyrics"),
                          ("lyrics", "script"), ("script", "voiceover"), ("script", "storyboard"),
                          ("storyboard", "clips"), ("clips", "final_video"),
                          ("voiceover", "final_video")]:
        assert order.index(before) < order.index(after)
    assert (steps["duration_s"] > 0).all()
    assert steps["duration_s"].sum() <= run["duration_s"].item() + 1e-6


def test_connect_names_the_fix_when_there_is_no_warehouse(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="render a job first"):
        analysis.connect(tmp_path / "missing.duckdb")


def test_notebook_runs_headless_and_draws_its_figures(rendered_job: dict, home: Path):
    path = REPO / "notebooks" / "run_analysis.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    ARTIFACTS.mkdir(exist_ok=True)
    nbformat.write(nb, ARTIFACTS / "run_analysis.executed.ipynb")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 5
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"dagster home: {home}" in printed  # it read the rendered instance, not a default one
    tables = "".join(o["data"].get("text/html", "") for o in outputs if "data" in o)
    assert rendered_job["job_id"] in tables


def parquet_copy(home: Path, root: Path) -> LocalStore:
    """The rendered warehouse, migrated into a Parquet store in the media folder ``root``."""
    store = LocalStore(root)
    counts = migrate(home / "warehouse.duckdb", store)
    assert counts["provider_calls"] > 0 and counts["jobs"] > 0
    return store


def test_the_analysis_functions_give_the_same_frames_on_the_parquet_store(con, home: Path,
                                                                          tmp_path: Path):
    parquet = analysis.connect(store=parquet_copy(home, tmp_path / "media"))
    try:
        for frame in (analysis.jobs_over_time, analysis.provider_reliability, analysis.latencies,
                      analysis.cache_hit_rate, analysis.quality_pass_rates,
                      lambda c: analysis.cost_by(c, "job_id", "asset", "provider", "model"),
                      lambda c: analysis.quality_values(c, ["duration_error_ms", "audio_offset_ms"])):
            expected, got = frame(con), frame(parquet)
            assert len(expected) > 0
            assert_frame_equal(got, expected, check_row_order=False, check_exact=False)
    finally:
        parquet.close()


def test_notebook_runs_headless_on_the_parquet_store(rendered_job: dict, home: Path):
    store = parquet_copy(home, home / "media")
    path = REPO / "notebooks" / "run_analysis.ipynb"
    nb = nbformat.read(path, as_version=4)
    try:
        with scoped_env({"VIDEO_ASSETS_WAREHOUSE_STORE": "parquet", "VIDEO_ASSETS_BUCKET": None}):
            NotebookClient(nb, timeout=300, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        shutil.rmtree(store.path("warehouse"), ignore_errors=True)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"warehouse: {home / 'media' / 'warehouse'}" in printed
    tables = "".join(o["data"].get("text/html", "") for o in outputs if "data" in o)
    assert rendered_job["job_id"] in tables
