"""Deployment profiles (video_assets/profiles.py): ``local`` (SQLite in $DAGSTER_HOME) and ``postgres``
(a real PostgreSQL server, tests/postgres_server.py); the errors name the variable and the fix and
never show the password; runs are tagged with their models, which the run queue limits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, free_port, scoped_env
from tests.postgres_server import postgres  # noqa: F401 - the session's server fixture
from video_assets.cli import main

PASSWORD = "hunter2-not-for-logs"


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def profile_env(home: Path, profile: str | None, url: str | None) -> dict[str, str | None]:
    return {"DAGSTER_HOME": str(home), "VIDEO_ASSETS_PROFILE": profile,
            "DAGSTER_POSTGRES_URL": url}


def test_postgres_profile_without_url_exits_2_naming_the_variable(tmp_path, capsys):
    with scoped_env(profile_env(tmp_path, "postgres", None)):
        code, out = run_cli(capsys, "cancel", "some-job")
    assert code == 2
    assert "DAGSTER_POSTGRES_URL: not set" in out and "fix: export DAGSTER_POSTGRES_URL=" in out


def test_unreachable_server_exits_2_without_the_password(tmp_path, capsys):
    url = f"postgresql://va:{PASSWORD}@127.0.0.1:{free_port()}/dagster"
    with scoped_env(profile_env(tmp_path, "postgres", url)):
        code, out = run_cli(capsys, "cancel", "some-job")
    assert code == 2
    assert "cannot be used" in out and "fix: start the server or correct the URL" in out
    assert "postgresql://va:***@127.0.0.1" in out
    assert PASSWORD not in out


def test_wrong_password_is_reported_without_it(tmp_path, capsys, postgres):  # noqa: F811
    url = postgres.url().replace(postgres.password, PASSWORD)
    with scoped_env(profile_env(tmp_path, "postgres", url)):
        code, out = run_cli(capsys, "cancel", "some-job")
    assert code == 2 and "password authentication failed" in out
    assert PASSWORD not in out and postgres.password not in out


def test_url_of_another_scheme_is_refused(tmp_path, capsys):
    with scoped_env(profile_env(tmp_path, "postgres", f"mysql://u:{PASSWORD}@h/db")):
        code, out = run_cli(capsys, "cancel", "some-job")
    assert code == 2 and "not postgresql" in out and PASSWORD not in out


def test_unknown_profile_exits_2_listing_the_profiles(tmp_path, capsys):
    with scoped_env(profile_env(tmp_path, "mysql", None)):
        code, out = run_cli(capsys, "cancel", "some-job")
    assert code == 2 and "VIDEO_ASSETS_PROFILE='mysql': unknown profile" in out
    assert "local" in out and "postgres" in out


def test_postgres_profile_writes_its_instance_config_and_stores_runs_in_postgres(
        tmp_path, postgres):  # noqa: F811
    from dagster import DagsterRunStatus

    from video_assets.profiles import MARK, POSTGRES_TEMPLATE, instance

    url = postgres.create_database("profile_instance")
    with scoped_env(profile_env(tmp_path, "postgres", url)):
        inst = instance()
        written = (tmp_path / "dagster.yaml").read_text()
        from dagster import job, op

        @op
        def nothing() -> None:
            pass

        @job
        def probe():
            nothing()

        result = probe.execute_in_process(instance=inst)
    assert written == MARK + POSTGRES_TEMPLATE.read_text()
    assert url not in written and postgres.password not in written
    assert type(inst.run_storage).__name__ == "PostgresRunStorage"
    assert type(inst.event_log_storage).__name__ == "PostgresEventLogStorage"
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:  # the run is in the database
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
        assert cur.fetchone() == (DagsterRunStatus.SUCCESS.value,)


def test_postgres_profile_refreshes_its_config_when_the_template_changes(tmp_path, postgres):  # noqa: F811
    from video_assets.profiles import MARK, POSTGRES_TEMPLATE, prepare_home

    (tmp_path / "dagster.yaml").write_text(MARK + "telemetry:\n  enabled: true\n")  # an old copy
    with scoped_env(profile_env(tmp_path, "postgres", postgres.url())):
        prepare_home()
    assert (tmp_path / "dagster.yaml").read_text() == MARK + POSTGRES_TEMPLATE.read_text()


def test_postgres_profile_refuses_a_home_with_the_local_config(tmp_path, capsys, postgres):  # noqa: F811
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    with scoped_env(profile_env(tmp_path, "postgres", postgres.url())):
        code, out = run_cli(capsys, "cancel", "some-job")
    assert code == 2 and "SQLite storage (the local profile's)" in out
    assert "fix: unset DAGSTER_HOME" in out


def test_local_profile_refuses_a_postgres_home(tmp_path, capsys):
    from video_assets.profiles import MARK, POSTGRES_TEMPLATE

    (tmp_path / "dagster.yaml").write_text(MARK + POSTGRES_TEMPLATE.read_text())
    with scoped_env(profile_env(tmp_path, None, None)):
        code, out = run_cli(capsys, "cancel", "some-job")
    assert code == 2 and "is a postgres instance" in out
    assert "fix: export VIDEO_ASSETS_PROFILE=postgres" in out


def test_local_profile_is_sqlite_in_dagster_home(tmp_path):
    from video_assets.profiles import instance

    shutil.copy(REPO / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    with scoped_env(profile_env(tmp_path, "local", "postgresql://u:p@nowhere:1/db")):
        inst = instance()
    assert type(inst.run_storage).__name__ == "SqliteRunStorage"
    assert Path(inst.root_directory) == tmp_path


def test_postgres_profile_default_home_is_a_folder_of_its_own(tmp_path, monkeypatch):
    from video_assets.config import dagster_home

    monkeypatch.chdir(tmp_path)
    with scoped_env({"DAGSTER_HOME": None, "VIDEO_ASSETS_PROFILE": "postgres"}):
        assert dagster_home() == tmp_path / "dagster_home" / "postgres"
    with scoped_env({"DAGSTER_HOME": None, "VIDEO_ASSETS_PROFILE": None}):
        assert dagster_home() == tmp_path / "dagster_home"


def test_dev_without_url_exits_2_before_starting_dagster(tmp_path, capsys):
    with scoped_env(profile_env(tmp_path, "postgres", None)):
        code, out = run_cli(capsys, "dev", "--daemon")
    assert code == 2 and "DAGSTER_POSTGRES_URL: not set" in out


@pytest.mark.parametrize("config", ["dagster_home/dagster.yaml", "deploy/postgres/dagster.yaml"])
def test_run_queue_limits_each_replicate_media_model(config):
    from video_assets.partitions import MODEL_TAG_PREFIX

    limits = {item["key"]: item for item in
              yaml.safe_load((REPO / config).read_text())["run_queue"]["tag_concurrency_limits"]}
    for capability in ("images", "video", "lipsync", "music"):
        limit = limits[f"{MODEL_TAG_PREFIX}{capability}"]
        assert limit["limit"] == 1 and limit["value"] == {"applyLimitPerUniqueValue": True}


def stored_request(audio: bool, **fields) -> object:
    from video_assets.schemas import Request, StoredRequest

    request = Request(prompt="a kite over green hills", audio="song.wav" if audio else None,
                      **fields)
    return StoredRequest(job_id="kite-1234abcd", request=request, source_name="kite.yaml",
                         audio_key="", audio_duration_s=10.0, audio_sha256="",
                         synthesized_audio=not audio)


def test_runs_are_tagged_with_the_models_their_job_calls():
    from video_assets.partitions import model_tags
    from video_assets.schemas import Providers

    providers = Providers(planner="offline", transcribe="offline", images="replicate",
                          video="replicate:kwaivgi/kling-v2.1", music="replicate")
    tags = model_tags(stored_request(True, providers=providers))
    assert tags == {"video_assets/model_images": "black-forest-labs/flux-schnell",
                    "video_assets/model_video": "kwaivgi/kling-v2.1"}  # a song: no music bed


def test_a_synthesized_music_bed_tags_the_music_model():
    from video_assets.partitions import model_tags
    from video_assets.schemas import Providers

    tags = model_tags(stored_request(False, mode="ad", duration_s=10,
                                     providers=Providers(images="offline", video="offline",
                                                         music="replicate")))
    assert tags == {"video_assets/model_music": "meta/musicgen"}


def test_render_queue_submits_a_queued_run_of_the_job(home, song_10s, capsys):
    from dagster import DagsterInstance, DagsterRunStatus

    code = main(["render", "--audio", str(song_10s), "--prompt", "a queued render of a kite",
                 "--images", "offline", "--video", "offline", "--queue", "--json"])
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert code == 0, out
    queued = json.loads(captured.out.strip().splitlines()[-1])
    run = DagsterInstance.get().get_run_by_id(queued["run_id"])
    assert run.status == DagsterRunStatus.QUEUED  # no daemon here: it waits in the queue
    assert "no daemon is running" in out
    assert run.job_name == "render_job" and run.tags["dagster/partition"] == queued["job_id"]
    assert run.tags["video_assets/job_id"] == queued["job_id"]
    assert run.remote_job_origin.location_name == "video_assets.definitions"  # the daemon's
    DagsterInstance.get().delete_run(run.run_id)  # other tests' runs of the job are not held


def test_retry_of_a_job_without_runs_exits_2(home, capsys):
    code, out = run_cli(capsys, "retry", "never-rendered-1234abcd")
    assert code == 2 and "has no run" in out and "fix:" in out


def test_retry_of_a_job_whose_last_run_succeeded_exits_2(home, capsys):
    from dagster import DagsterInstance, job, op

    @op
    def nothing() -> None:
        pass

    @job
    def finished():
        nothing()

    finished.execute_in_process(instance=DagsterInstance.get(),
                                tags={"dagster/partition": "finished-1234abcd"})
    code, out = run_cli(capsys, "retry", "finished-1234abcd")
    assert code == 2 and "is success, not failed or cancelled" in out


def test_sensor_run_requests_carry_the_models_of_the_staged_job(tmp_path, song_10s):
    from video_assets.admission import check_audio, stage, validate_request
    from video_assets.sensors import TickResult, run_requests
    from video_assets.store import LocalStore

    media = LocalStore(tmp_path / "media")
    with scoped_env({"REPLICATE_API_TOKEN": "r8_tags_test_token", "OPENAI_API_KEY": None}):
        request = validate_request({"prompt": "a kite over green hills", "audio": song_10s.name,
                                    "providers": {"images": "offline",
                                                  "video": "replicate:kwaivgi/kling-v2.1"}}, "t")
        stage(media, "kite-1234abcd", request, song_10s.name, song_10s,
              check_audio(song_10s, "t"))
    tick = TickResult(admitted=[("kite-1234abcd", "inbox/kite.yaml:etag", "inbox/kite.yaml")])
    (run,) = run_requests(tick, media)
    assert run.tags["video_assets/model_video"] == "kwaivgi/kling-v2.1"
    assert "video_assets/model_images" not in run.tags  # offline images: no model to limit
    assert run.tags["video_assets/job_id"] == "kite-1234abcd"
