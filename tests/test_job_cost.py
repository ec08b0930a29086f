"""``jobs.cost_usd`` always equals the sum of the job's ledger rows, whatever its status."""

from __future__ import annotations

from pathlib import Path

from video_assets.schemas import CallRecord
from video_assets.warehouse import Warehouse


def paid_row(job_id: str, cost_usd: float) -> CallRecord:
    return CallRecord(job_id=job_id, asset="clips", provider="replicate", model="kwaivgi/kling-v2.1",
                      units=5, unit="video_s", unit_price_usd=cost_usd / 5, cost_usd=cost_usd,
                      status="ok")


def cost(wh: Warehouse, job_id: str) -> float | None:
    with wh.connect(read_only=True) as con:
        return con.execute("SELECT cost_usd FROM jobs WHERE job_id = ?", [job_id]).fetchone()[0]


def test_a_failed_job_that_spent_money_costs_its_ledger_sum(tmp_path: Path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.upsert_job("j1", status="running")
    wh.record_calls([paid_row("j1", 0.25), paid_row("j1", 0.5)])
    wh.upsert_job("j1", status="failed", failed_stage="clips")
    assert cost(wh, "j1") == 0.75


def test_a_ledger_row_written_after_the_job_failed_is_counted(tmp_path: Path):
    """A killed run's paid attempt may be written after the failure was recorded."""
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.upsert_job("j2", status="failed", failed_stage="clips")
    wh.record_calls([paid_row("j2", 0.4)])
    assert cost(wh, "j2") == 0.4


def test_the_operators_cap_bounds_a_job_admitted_before_it_was_lowered(monkeypatch):
    from video_assets.assets.budget import cap_usd
    from video_assets.resources import PipelineSettings
    from video_assets.schemas import Request, StoredRequest

    stored = StoredRequest(job_id="j", request=Request(prompt="a red kite", audio="a.wav",
                                                       budget_usd=15), source_name="r.yaml",
                           audio_key="staged/j/audio.wav", audio_duration_s=10, audio_sha256="")
    assert cap_usd(stored, PipelineSettings()) == 15
    monkeypatch.setenv("VIDEO_ASSETS_MAX_BUDGET_USD", "3")
    assert cap_usd(stored, PipelineSettings()) == 3
