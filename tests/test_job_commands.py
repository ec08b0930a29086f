"""``videogen jobs`` and ``videogen status JOB_ID`` on jobs run through the real asset graph: a
rendered one (the session's ``rendered_job``), a failed one and a queued one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from tests.conftest import make_song
from video_assets.cli_jobs import add_job_commands


def videogen(capsys, *argv: str) -> tuple[int, list[str], str]:
    """Run a job command through a parser built as cli.py builds videogen's: (exit code, stdout
    lines, stderr)."""
    parser = argparse.ArgumentParser(prog="videogen")
    add_job_commands(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(list(argv))
        code = int(args.func(args))
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code)
    out = capsys.readouterr()
    return code, out.out.strip().splitlines(), out.err


def render_steps() -> list[str]:
    """The render job's steps (one per stage; final_video's step also makes quality_report)."""
    from video_assets.definitions import defs
    from video_assets.jobs import RUN_JOB_NAME

    return list(defs.resolve_job_def(RUN_JOB_NAME).graph.node_dict)


@pytest.fixture(scope="module")
def failed_job(home: Path, tmp_path_factory) -> dict:
    """A job whose first stage fails in a real run (its staged song vanished)."""
    from video_assets.admission import check_audio, stage, validate_request
    from video_assets.cli import execute_job
    from video_assets.resources import StoreResource

    song = make_song(tmp_path_factory.mktemp("failed") / "gone.wav", 9.0)
    media = StoreResource().get()
    request = validate_request({"prompt": "a vanishing song", "audio": str(song)}, "t")
    staged = stage(media, "jobs-gone-0001", request, song.name, song, check_audio(song, "t"))
    media.delete(staged.audio_key)
    summary = execute_job("jobs-gone-0001")
    assert summary["status"] == "failed"
    return summary


@pytest.fixture(scope="module")
def own_job(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A job rendered by this module (other modules clear the session's media folder, which
    holds the session's ``rendered_job``'s quality report)."""
    import contextlib
    import io

    from video_assets.cli import main

    song = make_song(tmp_path_factory.mktemp("status") / "status.wav", 9.5, tempo_bpm=118.0)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["render", "--audio", str(song), "--prompt", "lanterns over a night market",
                     "--aspect", "1:1", "--json"])
    summary = json.loads(buffer.getvalue().strip().splitlines()[-1])
    assert code == 0, summary
    return summary


@pytest.mark.slow
def test_jobs_json_lists_a_rendered_job(rendered_job, capsys):
    code, out, _ = videogen(capsys, "jobs", "--json")
    assert code == 0
    listing = json.loads(out[-1])
    (row,) = [r for r in listing["jobs"] if r["job_id"] == rendered_job["job_id"]]
    assert listing["count"] == len(listing["jobs"])
    assert row["status"] == "done" and row["failed_stage"] is None
    assert row["cost_usd"] == 0.0
    assert row["final_video"] == Path(rendered_job["final_video"]).as_uri()
    assert row["duration_s"] == rendered_job["duration_s"]
    assert row["run_id"] == rendered_job["run_id"] and row["created_at"]
    assert 0 < row["elapsed_s"] <= rendered_job["elapsed_s"] + 1


@pytest.mark.slow
def test_status_json_of_a_rendered_job(own_job, capsys):
    rendered_job = own_job
    code, out, _ = videogen(capsys, "status", rendered_job["job_id"], "--json")
    assert code == 0
    status = json.loads(out[-1])
    assert status["status"] == "done" and status["run_status"] == "SUCCESS"
    done = status["stages_done"]
    assert sorted(done) == sorted(render_steps())  # every step of the render, in pipeline order:
    assert done[0] == "job_request" and done[-1] == "final_video"
    assert status["stage_running"] is None and status["failed_stage"] is None
    assert status["cost_usd"] == 0.0
    assert status["checks"] == rendered_job["checks"]
    assert status["version"] == rendered_job["version"] == 1
    assert status["final_video"] == Path(rendered_job["final_video"]).as_uri()


@pytest.mark.slow
def test_status_text_names_the_stages_and_checks(own_job, capsys):
    rendered_job = own_job
    code, out, _ = videogen(capsys, "status", rendered_job["job_id"])
    text = "\n".join(out)
    assert code == 0 and f"job:       {rendered_job['job_id']}" in text
    assert "status:    done" in text
    (done,) = [x.removeprefix("done:").strip() for x in out if x.startswith("done:")]
    assert sorted(done.split(", ")) == sorted(render_steps())
    assert "cost:      $0.00 so far" in text


def test_a_failed_job_shows_its_stage_and_error(failed_job, capsys):
    code, out, _ = videogen(capsys, "status", "jobs-gone-0001", "--json")
    status = json.loads(out[-1])
    assert code == 0 and status["status"] == "failed"
    assert status["failed_stage"] == "job_request" == failed_job["failed_stage"]
    assert status["error"] == failed_job["error"] and status["stages_done"] == []
    assert status["final_video"] is None and status["version"] is None


def test_jobs_status_filter_keeps_only_that_status(failed_job, capsys):
    code, out, _ = videogen(capsys, "jobs", "--status", "failed", "--json")
    failed = json.loads(out[-1])["jobs"]
    assert code == 0 and "jobs-gone-0001" in [r["job_id"] for r in failed]
    assert {r["status"] for r in failed} == {"failed"}
    code, out, _ = videogen(capsys, "jobs", "--status", "done", "--json")
    assert "jobs-gone-0001" not in [r["job_id"] for r in json.loads(out[-1])["jobs"]]


def test_jobs_table_shows_the_failed_stage(failed_job, capsys):
    code, out, _ = videogen(capsys, "jobs", "--status", "failed")
    assert code == 0 and out[0].split()[:3] == ["JOB", "STATUS", "CREATED"]
    (line,) = [x for x in out if x.startswith("jobs-gone-0001 ")]
    assert "failed at job_request" in line and "$0.00" in line


def test_a_run_not_started_reads_queued(home, capsys):
    from dagster._core.test_utils import create_run_for_test

    instance = DagsterInstance.get()
    run = create_run_for_test(instance, job_name="render_job",
                              status=DagsterRunStatus.NOT_STARTED,
                              tags={"dagster/partition": "jobs-queued-0001"})
    try:
        code, out, _ = videogen(capsys, "status", "jobs-queued-0001", "--json")
        status = json.loads(out[-1])
        assert code == 0 and status["status"] == "queued" and status["run_id"] == run.run_id
        assert status["stages_done"] == [] and status["elapsed_s"] is None
        code, out, _ = videogen(capsys, "jobs", "--status", "queued", "--json")
        assert [r["job_id"] for r in json.loads(out[-1])["jobs"]] == ["jobs-queued-0001"]
    finally:
        instance.delete_run(run.run_id)


def test_a_running_job_names_the_stage_in_progress_and_those_done(home, capsys):
    """A STARTED run whose event log says job_request succeeded and beat_grid started."""
    from dagster import DagsterEvent, DagsterEventType
    from dagster._core.execution.plan.objects import StepSuccessData
    from dagster._core.test_utils import create_run_for_test

    instance = DagsterInstance.get()
    run = create_run_for_test(instance, job_name="render_job", status=DagsterRunStatus.STARTED,
                              tags={"dagster/partition": "jobs-running-0001"})
    for event_type, step in ((DagsterEventType.STEP_START, "job_request"),
                             (DagsterEventType.STEP_SUCCESS, "job_request"),
                             (DagsterEventType.STEP_START, "beat_grid")):
        data = StepSuccessData(duration_ms=5.0) if event_type == DagsterEventType.STEP_SUCCESS \
            else None
        instance.report_dagster_event(DagsterEvent(event_type.value, "render_job", step_key=step,
                                                   event_specific_data=data), run.run_id)
    try:
        code, out, _ = videogen(capsys, "status", "jobs-running-0001", "--json")
        status = json.loads(out[-1])
        assert code == 0 and status["status"] == "running" and status["run_status"] == "STARTED"
        assert status["stage_running"] == "beat_grid" and status["stages_done"] == ["job_request"]
    finally:
        instance.delete_run(run.run_id)


def test_an_unknown_job_id_exits_2_naming_job_id(home, capsys):
    code, out, err = videogen(capsys, "status", "no-such-job-0000", "--json")
    assert code == 2 and out == []
    assert "JOB_ID 'no-such-job-0000' is not a job here" in err and "videogen jobs" in err


def test_a_malformed_job_id_exits_2_naming_job_id(home, capsys):
    code, _, err = videogen(capsys, "status", "Not_A_Job")
    assert code == 2 and "JOB_ID" in err and "fix:" in err


def test_a_bad_status_filter_exits_2(home, capsys):
    code, _, err = videogen(capsys, "jobs", "--status", "finished")
    assert code == 2 and "--status" in err and "checks_failed" in err
