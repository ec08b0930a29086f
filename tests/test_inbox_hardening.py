"""The inbox never stalls, and a request reads only what it may (hostile and unlucky inputs).

Each test drops files into a real local inbox and runs the real scan (``scan_inbox``) or the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from tests.conftest import make_song
from video_assets.admission import RequestError, parse_request, resolve_providers, validate_request
from video_assets.cli import main
from video_assets.media.ffmpeg_bin import ffmpeg_exe
from video_assets.resources import StoreResource
from video_assets.sensors import error_report_key, inbox_store, scan_inbox


@pytest.fixture()
def inbox(home: Path) -> Path:
    for sub in ("inbox", "rejected", "media"):
        shutil.rmtree(home / sub, ignore_errors=True)
    (home / "inbox").mkdir()
    return home / "inbox"


def scan(cursor: dict | None = None):
    return scan_inbox(inbox_store(), StoreResource().get(), cursor or {}, grace_s=0)


def report(home: Path, key: str) -> dict:
    return json.loads((home / error_report_key(key)).read_text())


def good_request(inbox: Path, name: str = "good.yaml") -> Path:
    make_song(inbox / "tune.wav", 3.0)
    path = inbox / name
    path.write_text("prompt: a red kite over green hills\naudio: tune.wav\n")
    return path


def assert_rejected_and_tick_goes_on(home: Path, inbox: Path, name: str, field: str) -> dict:
    good_request(inbox)
    tick = scan()
    assert [key for key, _ in tick.rejected] == [f"inbox/{name}"]
    assert [key for _, _, key in tick.admitted] == ["inbox/good.yaml"]
    assert tick.cursor["after_ns"] > 0  # the cursor moved over both files
    found = report(home, f"inbox/{name}")
    assert found["field"] == field and "fix" in found["error"]
    return found


def test_audio_name_with_a_nul_byte_is_rejected_and_the_tick_goes_on(home, inbox):
    (inbox / "nul.yaml").write_text('prompt: a red kite\naudio: "tune\\0.wav"\n')
    found = assert_rejected_and_tick_goes_on(home, inbox, "nul.yaml", "audio")
    assert "control character" in found["error"]


def test_5000_character_audio_name_is_rejected_and_the_tick_goes_on(home, inbox):
    (inbox / "long.yaml").write_text(f"prompt: a red kite\naudio: {'a' * 5000}.wav\n")
    found = assert_rejected_and_tick_goes_on(home, inbox, "long.yaml", "audio")
    assert len(json.dumps(found)) < 1200


@pytest.mark.parametrize("name, text", [
    ("deep.yaml", "prompt: a red kite\naudio: tune.wav\nstyle: " + "[" * 5000 + "]" * 5000 + "\n"),
    ("deep.json", '{"prompt": "a red kite", "style": ' + "[" * 100000 + "]" * 100000 + "}"),
    ("deep-block.yaml", "prompt: a red kite\nstyle:\n" + "".join(
        " " * i + "- \n" for i in range(600))),
])
def test_deeply_nested_request_is_rejected_and_the_tick_goes_on(home, inbox, name, text):
    (inbox / name).write_text(text)
    found = assert_rejected_and_tick_goes_on(home, inbox, name, "file")
    assert "nested" in found["error"]


def test_rejected_request_with_a_251_character_name_gets_its_report(home, inbox):
    name = "r" * 250 + ".yaml"  # 255 bytes: the longest name the file system allows
    (inbox / name).write_text("prompt: a red kite\naudio: tune.wav\naspect: 4:3\n")
    found = assert_rejected_and_tick_goes_on(home, inbox, name, "aspect")
    assert found["key"] == f"inbox/{name}"
    assert all(len(part) <= 255 for part in Path(error_report_key(f"inbox/{name}")).parts)


def test_unexpected_failure_admitting_one_file_rejects_only_that_file(home, inbox, monkeypatch):
    """Any exception, not only a validation error, becomes that file's report."""
    import video_assets.sensors as sensors

    real = sensors.validate_request

    def explode(data, source):
        if source == "boom.yaml":
            raise OSError(36, "File name too long")
        return real(data, source)

    monkeypatch.setattr(sensors, "validate_request", explode)
    (inbox / "boom.yaml").write_text("prompt: a red kite\naudio: tune.wav\n")
    found = assert_rejected_and_tick_goes_on(home, inbox, "boom.yaml", "file")
    assert "File name too long" in found["error"]


BILLION_LAUGHS = """prompt: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
audio: [*g,*g,*g,*g,*g,*g,*g,*g,*g]
"""


def test_yaml_aliases_are_refused_with_a_short_message(home, inbox):
    (inbox / "laughs.yaml").write_text(BILLION_LAUGHS)
    found = assert_rejected_and_tick_goes_on(home, inbox, "laughs.yaml", "file")
    assert "anchor" in found["error"] and len(json.dumps(found)) < 1000


def test_error_messages_quote_at_most_200_characters_of_a_value():
    with pytest.raises(RequestError) as exc:
        validate_request(parse_request(
            f"prompt: a red kite\naudio: a.wav\naspect: '{'9' * 100_000}'\n".encode(), "r.yaml"),
            "r.yaml")
    assert exc.value.field == "aspect" and len(str(exc.value)) < 600
    assert "9" * 200 not in str(exc.value)


def long_silent_flac(path: Path, duration_s: float) -> Path:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "anullsrc=r=44100:cl=mono", "-t", str(duration_s), "-y", str(path)],
                   check=True)
    return path


def test_over_long_audio_is_rejected_without_decoding_it(home, inbox):
    """30 minutes of silence in a ~1 MB FLAC: its length comes from the container, not a decode
    (which held ~160 MB of samples in this process before)."""
    long_silent_flac(inbox / "long.flac", 1800)
    (inbox / "long.yaml").write_text("prompt: a red kite\naudio: long.flac\n")
    tracemalloc.start()
    try:
        tick = scan()
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [key for key, _ in tick.rejected] == ["inbox/long.yaml"]
    assert "30.0 min" in report(home, "inbox/long.yaml")["error"]
    assert peak_bytes < 20 * 2**20


@pytest.mark.parametrize("audio_name", ["song.m3u8", "song.mp3"])
def test_a_playlist_is_not_audio(home, inbox, audio_name):
    """An HLS playlist names other local files (another job's video among them): only audio
    container formats are read."""
    make_song(inbox / "secret.wav", 4.0)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(inbox / "secret.wav"), "-f", "mpegts",
                    "-y", str(inbox / "seg.ts")], check=True)
    (inbox / audio_name).write_text("#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:4.0,\nseg.ts\n"
                                    "#EXT-X-ENDLIST\n")
    (inbox / "hls.yaml").write_text(f"prompt: a red kite\naudio: {audio_name}\n")
    tick = scan()
    assert [key for key, _ in tick.rejected] == ["inbox/hls.yaml"]
    assert "not an audio file" in report(home, "inbox/hls.yaml")["error"]


def outside_message(home: Path, inbox: Path, audio: str) -> str:
    (inbox / "out.yaml").write_text(f"prompt: a red kite\naudio: '{audio}'\n")
    tick = scan()
    assert [key for key, _ in tick.rejected] == ["inbox/out.yaml"], tick
    found = report(home, "inbox/out.yaml")
    assert found["field"] == "audio"
    (inbox / "out.yaml").unlink()
    return found["error"]


def test_local_audio_must_stay_inside_the_request_folder(home, inbox, tmp_path):
    secret = make_song(tmp_path / "secret.wav", 3.0)
    os.symlink(secret, inbox / "link.wav")
    messages = {audio: outside_message(home, inbox, audio) for audio in (
        str(secret), str(tmp_path / "absent.wav"), "../secret.wav", "../absent.wav", "link.wav")}
    assert all("inside the request's folder" in m for m in messages.values()), messages
    # the answer does not tell whether a file outside exists
    assert messages[str(secret)].replace("secret", "X") == \
        messages[str(tmp_path / "absent.wav")].replace("absent", "X")
    assert not (home / "media" / "staged").exists()


@pytest.mark.parametrize("tempos_bpm", [(100, 130), (120, 120)], ids=["two-songs", "one-song"])
def test_the_same_request_in_two_folders_is_two_jobs(home, inbox, tempos_bpm):
    """Two songs, or one song in two folders: the job id hashes the song and the inbox path."""
    for folder, bpm in zip("ab", tempos_bpm, strict=True):
        (inbox / folder).mkdir()
        make_song(inbox / folder / "song.wav", 3.0, tempo_bpm=bpm)
        (inbox / folder / "req.yaml").write_text("prompt: a red kite\naudio: song.wav\n")
    tick = scan()
    assert len({job_id for job_id, _, _ in tick.admitted}) == 2


def test_rejection_reports_mirror_the_inbox_path(home, inbox):
    for folder in ("a", "b"):
        (inbox / folder).mkdir()
        (inbox / folder / "req.yaml").write_text(f"prompt: kite {folder}\naudio: x.wav\nmode: x\n")
    scan()
    for folder in ("a", "b"):
        assert report(home, f"inbox/{folder}/req.yaml")["key"] == f"inbox/{folder}/req.yaml"


@pytest.mark.parametrize("job_id", ["../x", "a/b", ".", "x" * 300, "Big", "-x"])
def test_bad_job_id_is_bad_input(home, inbox, capsys, song_10s, job_id):
    code = main(["render", "--audio", str(song_10s), "--prompt", "a red kite", f"--job-id={job_id}"])
    err = capsys.readouterr().err
    assert code == 2 and "--job-id" in err and "fix" in err
    assert not (home / "media").exists() or not any((home / "media").rglob("*.json"))


def admit(text: bytes):
    """Validation and the admission's checks (operator limits, keys) of a request's text."""
    return resolve_providers(validate_request(parse_request(text, "r.yaml"), "r.yaml"), "r.yaml")


@pytest.mark.parametrize("budget", [".inf", "1e308", ".nan", "21"])
def test_budget_must_be_finite_and_within_the_operator_cap(budget):
    with pytest.raises(RequestError) as exc:
        admit(f"prompt: a red kite\naudio: a.wav\nbudget_usd: {budget}\n".encode())
    assert exc.value.field == "budget_usd" and "fix" in str(exc.value)


def test_a_model_outside_the_operators_allowlist_is_refused(monkeypatch):
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_allowlist_test")  # the model, not the key, is refused
    text = b"prompt: a red kite\naudio: a.wav\nproviders: {video: 'replicate:google/veo-3-fast'}\n"
    with pytest.raises(RequestError) as exc:
        admit(text)
    assert exc.value.field == "providers.video"
    assert "VIDEO_ASSETS_ALLOWED_MODELS" in str(exc.value)


def test_the_operator_can_allow_a_model_and_raise_the_cap(monkeypatch):
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_allowlist_test")
    monkeypatch.setenv("VIDEO_ASSETS_ALLOWED_MODELS", "google/veo-3-fast")
    monkeypatch.setenv("VIDEO_ASSETS_MAX_BUDGET_USD", "50")
    text = (b"prompt: a red kite\naudio: a.wav\nbudget_usd: 40\n"
            b"providers: {video: 'replicate:google/veo-3-fast'}\n")
    request = admit(text)
    assert request.budget_usd == 40 and request.providers.video == "replicate:google/veo-3-fast"


def test_a_job_held_by_another_process_is_not_rendered_twice(home, inbox, capsys, song_10s):
    from dagster import DagsterInstance

    from video_assets.job_lock import hold_job

    with hold_job(DagsterInstance.get(), "held-job"):
        code = main(["render", "--audio", str(song_10s), "--prompt", "a red kite",
                     "--job-id", "held-job"])
    err = capsys.readouterr().err
    assert code == 2 and "held-job" in err and "videogen cancel held-job" in err
    # refused before staging: the running job's staged request and song are not replaced
    assert not (home / "media" / "jobs" / "held-job").exists()
    assert not (home / "media" / "staged" / "held-job").exists()


def test_a_job_with_a_run_in_progress_is_not_rendered_twice(home, inbox, capsys, song_10s):
    from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

    instance = DagsterInstance.get()
    instance.add_run(DagsterRun(job_name="render_job", run_id="f" * 8 + "-0000-0000-0000-" + "0" * 12,
                                status=DagsterRunStatus.STARTED,
                                tags={"dagster/partition": "busy-job"}))
    code = main(["render", "--audio", str(song_10s), "--prompt", "a red kite",
                 "--job-id", "busy-job"])
    err = capsys.readouterr().err
    assert code == 2 and "already has a run in progress" in err


def test_the_run_queue_runs_one_run_per_job(home):
    """Runs the daemon launches are held to one per job by the queue's tag limit, and every run
    request of the inbox carries the tag."""
    from dagster import DagsterInstance

    from video_assets.sensors import TickResult, run_requests

    limits = DagsterInstance.get().run_coordinator.get_run_queue_config().tag_concurrency_limits
    assert {"key": "video_assets/job_id", "value": {"applyLimitPerUniqueValue": True},
            "limit": 1} in limits
    # a run launched from the UI carries no job tag, but its partition is the job
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True},
            "limit": 1} in limits
    tick = TickResult(admitted=[("kite-1234abcd", "inbox/kite.yaml:1", "inbox/kite.yaml")])
    assert run_requests(tick)[0].tags["video_assets/job_id"] == "kite-1234abcd"


def test_a_job_admitted_before_the_cap_was_lowered_still_loads(monkeypatch):
    """The limits are judged at admission; later stages load the stored request as it was (their
    spending is bounded by the cap in force, ``assets/budget.cap_usd``)."""
    from video_assets.schemas import StoredRequest

    stored = StoredRequest(job_id="j", request=admit(b"prompt: a red kite\naudio: a.wav\n"
                                                     b"budget_usd: 4\n"),
                           source_name="r.yaml", audio_key="staged/j/audio.wav",
                           audio_duration_s=10, audio_sha256="")
    monkeypatch.setenv("VIDEO_ASSETS_MAX_BUDGET_USD", "3")
    again = StoredRequest.model_validate(stored.model_dump(mode="json"))
    assert again.request.budget_usd == 4
