"""Bad input: exit code 2, a message naming the field and the fix, and nothing half-written."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_song
from video_assets.admission import (
    RequestError,
    job_id_for,
    parse_request,
    render_job_id,
    validate_request,
)
from video_assets.cli import main
from video_assets.store import sha256_file


def write_silence(path: Path, duration_s: float, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(int(duration_s * rate), dtype="<i2").tobytes())
    return path


def nothing_written(home: Path) -> bool:
    media = home / "media"
    return not any((media / sub).exists() and any((media / sub).iterdir())
                   for sub in ("staged", "jobs"))


@pytest.fixture()
def clean_home(tmp_path: Path):
    """A DAGSTER_HOME of the test's own (the session's holds other tests' jobs, which a check
    that nothing was written must neither see nor remove)."""
    import shutil

    from tests.conftest import REPO, scoped_env

    own = tmp_path / "dagster_home"
    own.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", own / "dagster.yaml")
    with scoped_env({"DAGSTER_HOME": str(own), "VIDEO_ASSETS_WAREHOUSE": None}):
        yield own


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_missing_prompt(clean_home, capsys, song_10s):
    with pytest.raises(SystemExit) as exc:  # argparse: --prompt is required
        main(["render", "--audio", str(song_10s)])
    assert exc.value.code == 2
    assert "--prompt" in capsys.readouterr().err


def test_blank_prompt(clean_home, capsys, song_10s):
    code, err = run(capsys, "render", "--audio", str(song_10s), "--prompt", "  ")
    assert code == 2 and "prompt" in err and "fix:" in err
    assert nothing_written(clean_home)


def test_missing_audio_file(clean_home, capsys, tmp_path):
    code, err = run(capsys, "render", "--audio", str(tmp_path / "nope.mp3"), "--prompt", "a song")
    assert code == 2 and "audio" in err and "nope.mp3" in err and "not found" in err
    assert nothing_written(clean_home)


def test_no_audio_in_music_video_mode(clean_home, capsys):
    code, err = run(capsys, "render", "--prompt", "a song")
    assert code == 2 and "audio" in err and "fix:" in err


def test_text_file_named_mp3(clean_home, capsys, tmp_path):
    fake = tmp_path / "song.mp3"
    fake.write_text("this is not audio\n" * 50)
    code, err = run(capsys, "render", "--audio", str(fake), "--prompt", "a song")
    assert code == 2 and "song.mp3" in err and "cannot decode" in err and "fix:" in err
    assert nothing_written(clean_home)


def test_corrupt_audio(clean_home, capsys, tmp_path, song_10s):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(song_10s.read_bytes()[:44] + bytes(range(256)) * 8)  # header, junk body
    code, err = run(capsys, "render", "--audio", str(broken), "--prompt", "a song")
    assert code == 2 and "broken.wav" in err
    assert nothing_written(clean_home)


def test_zero_second_audio(clean_home, capsys, tmp_path):
    empty = write_silence(tmp_path / "empty.wav", 0.0)
    code, err = run(capsys, "render", "--audio", str(empty), "--prompt", "a song")
    assert code == 2 and "empty.wav" in err and "fix:" in err
    assert nothing_written(clean_home)


def test_too_short_audio(clean_home, capsys, tmp_path):
    short = write_silence(tmp_path / "short.wav", 1.0)
    code, err = run(capsys, "render", "--audio", str(short), "--prompt", "a song")
    assert code == 2 and "under the 2 s minimum" in err


def test_twenty_minute_audio(clean_home, capsys, tmp_path):
    long = write_silence(tmp_path / "long.wav", 20 * 60.0)
    code, err = run(capsys, "render", "--audio", str(long), "--prompt", "a song")
    assert code == 2 and "20.0 min" in err and "10 min" in err and "fix:" in err
    assert nothing_written(clean_home)


def test_unknown_aspect(clean_home, capsys, song_10s):
    code, err = run(capsys, "render", "--audio", str(song_10s), "--prompt", "a song",
                    "--aspect", "4:3")
    assert code == 2 and "aspect" in err and "'9:16'" in err and "4:3" in err
    assert nothing_written(clean_home)


def test_real_provider_without_its_key(clean_home, capsys, song_10s):
    from tests.conftest import scoped_env

    with scoped_env({"REPLICATE_API_TOKEN": None}):
        code, err = run(capsys, "render", "--audio", str(song_10s), "--prompt", "a song",
                        "--video", "replicate")
    assert code == 2 and "providers.video" in err and "REPLICATE_API_TOKEN" in err
    assert "fix:" in err
    assert nothing_written(clean_home)


def test_unknown_key_in_request_file():
    data = parse_request(b"prompt: hello there\naudio: a.mp3\ncolour: red\n", "job.yaml")
    with pytest.raises(RequestError) as exc:
        validate_request(data, "job.yaml")
    assert exc.value.field == "colour" and "unknown key" in exc.value.message
    assert "prompt" in exc.value.message  # lists the valid keys


@pytest.mark.parametrize("content, field, words", [
    (b"prompt: [unclosed\n", "file", "malformed YAML"),
    (b"", "file", "empty"),
    (b"- just\n- a list\n", "file", "mapping"),
    (b"audio: a.mp3\n", "prompt", "missing"),
    (b"prompt: hi there\naudio: a.mp3\nmode: movie\n", "mode", "music_video"),
    (b"prompt: hi there\naudio: a.mp3\ntransitions: wipe\n", "transitions", "crossfade"),
    (b"prompt: hi there\naudio: a.mp3\nbudget_usd: -1\n", "budget_usd", "non-negative"),
    (b"prompt: hi there\naudio: a.mp3\nproviders: {video: sora}\n", "providers.video",
     "replicate"),
    (b"prompt: hi there\nmode: ad\n", "audio", "duration_s"),
])
def test_request_errors_name_field_and_fix(content, field, words):
    with pytest.raises(RequestError) as exc:
        validate_request(parse_request(content, "r.yaml"), "r.yaml")
    assert exc.value.field == field
    assert words in str(exc.value)
    assert "fix" in str(exc.value)


def test_job_id_is_slug_and_content_hash():
    assert job_id_for("My Song (final).yaml", b"abc") == "my-song-final-ba7816bf"
    assert job_id_for("a.yaml", b"x") != job_id_for("a.yaml", b"y")


def test_render_job_id_is_the_songs_content_not_its_path(tmp_path):
    """The same song and request are one job wherever the file lies (a job's scenes are seeded by
    its id: the video used to change with the folder the song was in); another song or prompt
    is another job."""
    for folder in "abc":
        (tmp_path / folder).mkdir()
    song = make_song(tmp_path / "a" / "song.wav", 3.0)
    copy = Path(shutil.copy(song, tmp_path / "b" / "song.wav"))
    other = make_song(tmp_path / "c" / "song.wav", 3.5)

    def job(path: Path, prompt: str = "a fox") -> str:
        request = validate_request({"prompt": prompt, "audio": str(path)}, "cli")
        return render_job_id(request, path.name, sha256_file(path))

    assert job(song) == job(copy)
    assert job(song).startswith("song-")
    assert len({job(song), job(other), job(song, "a hare")}) == 3


def test_render_job_ids_of_requests_without_pacing_stay_what_they_were():
    """A new request field at its default keeps every job id made before it existed (the id
    pinned here is the one the code before ``pacing`` gave); setting it makes another job."""
    from video_assets.schemas import Request

    request = Request(prompt="a lighthouse at dusk", audio="song.wav")
    assert render_job_id(request, "song.wav", "ab" * 32) == "song-4a616c76"
    energetic = request.model_copy(update={"pacing": "energetic"})
    assert render_job_id(energetic, "song.wav", "ab" * 32) != "song-4a616c76"


def test_valid_ad_request_without_audio(tmp_path):
    req = validate_request(parse_request(b"prompt: new shoes\nmode: ad\nduration_s: 12\n",
                                         "ad.yaml"), "ad.yaml")
    assert req.duration_s == 12 and req.audio is None

