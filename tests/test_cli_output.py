"""What ``videogen`` says: its help, its demo and how it reports an expected failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, make_song

VIDEOGEN = [sys.executable, "-m", "video_assets.cli"]


def videogen(home: Path, *args: str, env: dict[str, str] | None = None,
             timeout_s: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*VIDEOGEN, *args], capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "DAGSTER_HOME": str(home), **(env or {})})


def test_help_lists_only_real_commands(home):
    out = videogen(home, "--help").stdout
    assert "SUPPRESS" not in out and "run-jobs" not in out
    assert "render" in out and "demo" in out


@pytest.mark.slow
def test_demo_stays_offline_when_keys_are_set(home):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: a real call would fail
    proc = videogen(home, "demo", "--duration-s", "6", "--json", env={
        "OPENAI_API_KEY": "sk-demo-must-not-use", "OPENAI_BASE_URL": dead,
        "REPLICATE_API_TOKEN": "r8_demo_must_not_use", "REPLICATE_BASE_URL": dead})
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "done" and summary["cost_usd"] == 0
    request = json.loads((home / "media" / "jobs" / summary["job_id"] / "request.json").read_text())
    assert set(request["request"]["providers"].values()) == {"offline"}


def test_an_expected_failure_is_one_line_with_the_stage_and_the_fix(home, tmp_path):
    """A budget refusal: no traceback, the message once."""
    song = make_song(tmp_path / "s.wav", 6.0)
    proc = videogen(home, "render", "--audio", str(song), "--prompt", "a red kite",
                    "--budget-usd", "0.001", "--images", "replicate", "--video", "replicate",
                    env={"REPLICATE_API_TOKEN": "r8_budget_test_token",
                         "REPLICATE_BASE_URL": f"http://127.0.0.1:{free_port()}"})
    assert proc.returncode == 1
    failures = [line for line in proc.stderr.splitlines() if line.startswith("videogen:")]
    assert len(failures) == 1, proc.stderr
    assert "stage storyboard failed" in failures[0] and "fix:" in failures[0]
    assert "Traceback" not in proc.stderr and "Stack Trace" not in proc.stderr
    assert proc.stderr.count("over the budget") == 1


@pytest.mark.parametrize("command", [["edit", "../x", "reroll", "1"], ["history", "a/b"],
                                     ["undo", "."], ["rerender", "X" * 300]])
def test_edit_commands_refuse_a_bad_job_id_with_exit_2_and_the_fix(command, capsys):
    from video_assets.cli import main

    with pytest.raises(SystemExit) as info:
        main(command)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "JOB_ID" in err and "is not a job id" in err and "fix:" in err
