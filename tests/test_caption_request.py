"""A request's words on screen at admission: the ``lyrics`` file (beside the request, read, checked
and staged as the job's own copy) and ``captions`` settings, each error naming its field and the
fix; job ids that stay what they were without them; the CLI's --lyrics, --captions and
--caption-style; lyrics beside a request in the local inbox and in an S3 drop folder."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import make_song
from video_assets.admission import (
    AudioNotFound,
    RequestError,
    check_lyrics,
    read_lyrics,
    render_job_id,
    request_job_id,
    resolve_request_file,
    stage,
    validate_request,
)
from video_assets.cli import main
from video_assets.media.fonts import FontCoverageError, covering_face
from video_assets.media.subtitles import resolve_style
from video_assets.schemas import MAX_LYRICS_BYTES, Request

LRC = "[00:01.00]Hello bright day\n[00:03.00]Second line\n"
ADLAM = "\U0001e900\U0001e901"


def request(**fields) -> Request:
    return validate_request({"prompt": "a lighthouse at dusk", "audio": "song.wav", **fields},
                            "req.yaml")


def refused(call, *args, **kwargs) -> RequestError:
    with pytest.raises(RequestError) as err:
        call(*args, **kwargs)
    assert "fix:" in err.value.message, err.value
    return err.value


def test_a_request_names_its_lyrics_file_and_its_caption_settings():
    got = request(lyrics="words.lrc", captions={"source": "lyrics", "style": "bold_pop",
                                                "highlight": "#FF0080", "subtitle_track": True})
    assert got.lyrics == "words.lrc"
    assert (got.captions.source, got.captions.style, got.captions.subtitle_track) == (
        "lyrics", "bold_pop", True)
    assert resolve_style(got.captions, got.flavor).highlight == "#ff0080"
    assert request().captions.source == "auto" and request().lyrics is None


@pytest.mark.parametrize(("fields", "field"), [
    ({"captions": {"source": "sung"}}, "captions.source"),
    ({"captions": {"style": "comic"}}, "captions.style"),
    ({"captions": {"size": 0.5}}, "captions.size"),
    ({"captions": {"colour": "red"}}, "captions.colour"),
    ({"captions": {"fontsize": 40}}, "captions.fontsize"),
    ({"captions": "karaoke"}, "captions"),
    ({"captions": {"source": "lyrics"}}, "captions.source"),  # no lyrics file
    ({"captions": {"source": "voiceover"}}, "captions.source"),  # a music video says nothing
    ({"lyrics": "a\nb.lrc"}, "lyrics"),
])
def test_bad_caption_fields_name_the_field_and_the_fix(fields, field):
    err = refused(request, **fields)
    assert err.field == field, err


def test_an_unknown_caption_key_lists_the_caption_keys():
    err = refused(request, captions={"fontsize": 40})
    assert "highlight" in err.message and "prompt" not in err.message


@pytest.mark.parametrize("name", ["/etc/passwd", "../words.lrc", "sub/../../words.lrc",
                                  "s3://bucket/words.lrc", "link.lrc"])
def test_lyrics_outside_the_requests_folder_are_refused(tmp_path: Path, name: str):
    folder = tmp_path / "req"
    folder.mkdir()
    (tmp_path / "words.lrc").write_text(LRC)
    (folder / "link.lrc").symlink_to(tmp_path / "words.lrc")  # a link out of the folder
    err = refused(resolve_request_file, request(lyrics=name), "lyrics", folder, "req.yaml")
    assert err.field == "lyrics"
    assert ("lyrics: song.lrc" if name[:2] != "s3" else "VIDEO_ASSETS_BUCKET") in err.message


def test_lyrics_beside_the_request_or_below_it_resolve(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.lrc").write_text(LRC)
    assert resolve_request_file(request(lyrics="sub/w.lrc"), "lyrics", tmp_path, "r") == \
        (tmp_path / "sub" / "w.lrc").resolve()


@pytest.mark.parametrize(("content", "says"), [
    (b"x" * (MAX_LYRICS_BYTES + 1), "KiB limit"),
    ("caf\u00e9 au lait\n".encode("latin-1"), "not UTF-8"),
    (b"line one\x00\n", "NUL"),
    (b"  \n\n", "empty"),
])
def test_an_unreadable_lyrics_file_is_refused_naming_lyrics(tmp_path: Path, content: bytes,
                                                            says: str):
    path = tmp_path / "w.txt"
    path.write_bytes(content)
    err = refused(read_lyrics, path, "req.yaml", "w.txt")
    assert err.field == "lyrics" and says in err.message and '"w.txt"' in err.message


def test_missing_lyrics_are_awaited_like_a_missing_song(tmp_path: Path):
    with pytest.raises(AudioNotFound) as err:
        read_lyrics(tmp_path / "later.lrc", "req.yaml", "later.lrc")
    assert err.value.field == "lyrics" and "fix:" in err.value.message


@pytest.mark.parametrize(("text", "says"), [
    ("[00:01.00]fine\n[01:75.00]seventy-five seconds\n", "line 2"),
    ("[00:01.00]fine\nno time on this line\n", "no [mm:ss.xx] time"),
    ("[00:01.00]fine\n[00:30.00]after the end\n", "after the song's end"),
    ("[00:01.00]\n", "no line to show"),
])
def test_lyrics_that_do_not_parse_are_refused_naming_the_line(text: str, says: str):
    err = refused(check_lyrics, request(lyrics="w.lrc"), text, 20.0, "req.yaml")
    assert err.field == "lyrics" and says in err.message


def test_lyrics_no_installed_font_draws_are_refused_naming_the_package():
    try:
        covering_face(ADLAM, "DejaVu Sans")
        pytest.skip("a font covering Adlam is installed here")
    except FontCoverageError:
        pass
    err = refused(check_lyrics, request(lyrics="w.txt"), f"hello\n{ADLAM}\n", 20.0, "req.yaml")
    assert err.field == "lyrics" and "fonts-noto-core" in err.message


def test_a_caption_font_that_is_not_installed_is_refused_on_captions_font():
    err = refused(check_lyrics, request(lyrics="w.txt", captions={"font": "No Such Font Sans"}),
                  "hello\n", 20.0, "req.yaml")
    assert err.field == "captions.font" and "No Such Font Sans" in err.message


def test_lyrics_not_shown_are_not_font_checked():
    check_lyrics(request(lyrics="w.txt", captions={"source": "off"}), f"{ADLAM}\n", 20.0, "r")


# --- job ids -----------------------------------------------------------------------------------

def test_job_ids_of_requests_without_lyrics_or_captions_stay_what_they_were():
    """The ids pinned here are the ones the code before ``lyrics`` and ``captions`` gave."""
    assert render_job_id(request(), "song.wav", "ab" * 32) == "song-4a616c76"
    content = b"prompt: a red kite\naudio: tune.wav\n"
    assert request_job_id("kite.yaml", content, "ab" * 32, "inbox/kite.yaml") == "kite-cf1d7543"
    # the default settings written out are the defaults
    assert render_job_id(request(captions={"source": "auto"}), "song.wav", "ab" * 32) == \
        "song-4a616c76"


def test_lyrics_content_and_caption_settings_make_another_job():
    one, two = (hashlib.sha256(t.encode()).hexdigest() for t in ("la la\n", "na na\n"))
    ids = {render_job_id(request(), "song.wav", "ab" * 32),
           render_job_id(request(lyrics="w.txt"), "song.wav", "ab" * 32, one),
           render_job_id(request(lyrics="w.txt"), "song.wav", "ab" * 32, two),
           render_job_id(request(captions={"style": "minimal"}), "song.wav", "ab" * 32)}
    assert len(ids) == 4
    # where the lyrics file lies is not what the job is: only its content
    assert render_job_id(request(lyrics="a/w.txt"), "song.wav", "ab" * 32, one) == \
        render_job_id(request(lyrics="b/w.txt"), "song.wav", "ab" * 32, one)
    content = b"prompt: a red kite\naudio: tune.wav\nlyrics: w.txt\n"
    assert request_job_id("kite.yaml", content, "ab" * 32, "inbox/kite.yaml", one) != \
        request_job_id("kite.yaml", content, "ab" * 32, "inbox/kite.yaml", two)


def test_staging_copies_the_lyrics_into_the_job_folder(tmp_path: Path):
    from video_assets.store import LocalStore

    media = LocalStore(tmp_path)
    stage(media, "staged-lyrics-0001", request(lyrics="w.lrc", providers={
        c: "offline" for c in ("planner", "transcribe", "voice", "images", "video", "music")}),
        "song.wav", None, None, None, LRC)
    assert (tmp_path / "jobs" / "staged-lyrics-0001" / "lyrics_user.txt").read_text() == LRC


def test_a_caption_font_that_is_not_installed_is_refused_before_anything_is_staged(
        tmp_path: Path):
    from video_assets.store import LocalStore

    media = LocalStore(tmp_path)
    offline = {c: "offline" for c in ("planner", "transcribe", "voice", "images", "video", "music")}
    err = refused(stage, media, "font-0001", request(captions={"font": "No Such Font Sans"},
                                                     providers=offline),
                  "song.wav", None, None, None, None)
    assert err.field == "captions.font" and "No Such Font Sans" in err.message
    assert not (tmp_path / "staged").exists()


# --- the command line --------------------------------------------------------------------------

def test_render_and_rerender_take_the_caption_flags():
    from video_assets.cli import build_parser

    args = build_parser().parse_args(["render", "--audio", "s.wav", "--prompt", "kites",
                                      "--lyrics", "w.lrc", "--captions", "lyrics",
                                      "--caption-style", "bold_pop"])
    assert (args.lyrics, args.captions, args.caption_style) == ("w.lrc", "lyrics", "bold_pop")
    again = build_parser().parse_args(["rerender", "song-1234abcd", "--captions", "off",
                                       "--caption-style", "minimal", "--lyrics", "new.lrc"])
    assert (again.captions, again.caption_style, again.lyrics) == ("off", "minimal", "new.lrc")


@pytest.mark.parametrize(("flag", "value", "valid"), [
    ("--captions", "sung", "auto | lyrics | transcript | voiceover | custom | off"),
    ("--caption-style", "comic", "karaoke | bold_pop | minimal | lower_third"),
])
@pytest.mark.parametrize("command", ["render", "rerender"])
def test_a_bad_caption_flag_exits_2_naming_the_flag_and_the_fix(capsys, command: str, flag: str,
                                                                value: str, valid: str):
    head = ["render", "--prompt", "kites", "--audio", "s.wav"] if command == "render" \
        else ["rerender", "song-1234abcd"]
    with pytest.raises(SystemExit) as exit_:
        main([*head, flag, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and flag in err and "fix:" in err and valid in err


def test_render_with_unreadable_lyrics_exits_2_naming_the_flag(home: Path, tmp_path: Path,
                                                               capsys):
    song = make_song(tmp_path / "tune.wav", 4.0)
    bad = tmp_path / "w.lrc"
    bad.write_text("[00:01.00]fine\n[00:09.00]after the four seconds of the song\n")
    code = main(["render", "--audio", str(song), "--prompt", "kites", "--lyrics", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "--lyrics:" in err and "after the song's end" in err and "fix:" in err
    code = main(["render", "--audio", str(song), "--prompt", "kites", "--captions", "lyrics"])
    err = capsys.readouterr().err
    assert code == 2 and "--captions:" in err and "--lyrics FILE" in err


def test_rerender_with_unreadable_lyrics_exits_2_and_changes_nothing(home: Path, tmp_path: Path,
                                                                     capsys):
    from video_assets.schemas import StoredRequest
    from video_assets.store import job_key

    job = "rerender-lyrics-0001"
    folder = home / "media" / "jobs" / job
    folder.mkdir(parents=True, exist_ok=True)
    stored = StoredRequest(job_id=job, request=request(), source_name="song.wav",
                           audio_key=job_key(job, "audio.flac"), audio_duration_s=5.0,
                           audio_sha256="ab" * 32)
    (folder / "request.json").write_text(stored.model_dump_json())
    bad = tmp_path / "w.lrc"
    bad.write_bytes("caf\u00e9\n".encode("latin-1"))
    code = main(["rerender", job, "--lyrics", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "--lyrics:" in err and "not UTF-8" in err
    assert not (folder / "lyrics_user.txt").exists()


# --- the inbox ---------------------------------------------------------------------------------

def test_lyrics_beside_an_inbox_request_are_staged_with_the_job(home: Path, inbox: Path):
    from video_assets.resources import StoreResource
    from video_assets.sensors import inbox_store, scan_inbox

    make_song(inbox / "tune.wav", 4.0)
    (inbox / "words.lrc").write_text(LRC)
    (inbox / "lyric.yaml").write_text("prompt: a lyric video of kites\naudio: tune.wav\n"
                                      "lyrics: words.lrc\n")
    tick = scan_inbox(inbox_store(), StoreResource().get(), {})
    assert not tick.rejected and len(tick.admitted) == 1
    job = tick.admitted[0][0]
    assert (home / "media" / "jobs" / job / "lyrics_user.txt").read_text() == LRC


def test_an_inbox_request_whose_lyrics_escape_its_folder_gets_a_report(home: Path, inbox: Path):
    from video_assets.resources import StoreResource
    from video_assets.sensors import inbox_store, scan_inbox

    make_song(inbox / "tune.wav", 4.0)
    secret = home / "secret.txt"
    secret.write_text("not yours\n")
    os.symlink(secret, inbox / "words.txt")
    (inbox / "sneaky.yaml").write_text("prompt: kites\naudio: tune.wav\nlyrics: words.txt\n")
    tick = scan_inbox(inbox_store(), StoreResource().get(), {})
    assert not tick.admitted and len(tick.rejected) == 1
    report = json.loads((home / "rejected" / "sneaky.yaml.error.json").read_text())
    assert report["field"] == "lyrics" and "fix:" in report["error"]


def test_submit_copies_the_lyrics_into_the_inbox_beside_the_request(home: Path, inbox: Path,
                                                                   tmp_path: Path, capsys):
    make_song(tmp_path / "tune.wav", 4.0)
    (tmp_path / "words.lrc").write_text(LRC)
    req = tmp_path / "lyric.yaml"
    req.write_text("prompt: a lyric video\naudio: tune.wav\nlyrics: words.lrc\n")
    assert main(["submit", str(req)]) == 0
    assert (inbox / "words.lrc").read_text() == LRC and (inbox / "lyric.yaml").is_file()


# --- an S3 drop folder (moto's server on loopback; these set the S3 environment for the rest of
# the module, so they come last) ----------------------------------------------------------------

from tests.test_s3 import BUCKET, clean_inbox, client, put, s3_env  # noqa: E402,F401


def test_lyrics_beside_a_request_in_an_s3_inbox_are_staged_with_the_job(s3_env, client,  # noqa: F811
                                                                        clean_inbox,  # noqa: F811
                                                                        tmp_path: Path):
    from video_assets.resources import StoreResource
    from video_assets.sensors import scan_inbox

    put(client, "inbox/tune.wav", make_song(tmp_path / "tune.wav", 4.0))
    put(client, "inbox/drop.yaml", "prompt: kites in the rain\naudio: tune.wav\nlyrics: words.lrc\n")
    media = StoreResource().get()
    tick = scan_inbox(media, media, {}, grace_s=300)
    assert tick.waiting == ["inbox/drop.yaml"] and not tick.admitted  # the lyrics are awaited
    put(client, "inbox/words.lrc", LRC)
    tick = scan_inbox(media, media, tick.cursor, grace_s=300)
    assert not tick.rejected and len(tick.admitted) == 1
    job = tick.admitted[0][0]
    body = client.get_object(Bucket=BUCKET, Key=f"jobs/{job}/lyrics_user.txt")["Body"].read()
    assert body.decode() == LRC


def test_too_big_lyrics_in_an_s3_inbox_get_a_report(s3_env, client, clean_inbox,  # noqa: F811
                                                    tmp_path: Path):
    from video_assets.resources import StoreResource
    from video_assets.sensors import scan_inbox

    put(client, "inbox/tune.wav", make_song(tmp_path / "tune.wav", 4.0))
    put(client, "inbox/big.txt", "la " * (MAX_LYRICS_BYTES // 3 + 10))
    put(client, "inbox/big.yaml", "prompt: kites in the rain\naudio: tune.wav\nlyrics: big.txt\n")
    media = StoreResource().get()
    tick = scan_inbox(media, media, {})
    assert not tick.admitted and len(tick.rejected) == 1
    report = json.loads(client.get_object(Bucket=BUCKET, Key="rejected/big.yaml.error.json")
                        ["Body"].read())
    assert report["field"] == "lyrics" and "KiB limit" in report["error"] and "fix:" in report["error"]
