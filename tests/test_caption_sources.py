"""The caption track a job gets (captions.build_track) and the ``captions`` asset that writes it:
each source (LRC, plain lyrics, transcript, an ad's voiceover lines offline, custom scene
captions), ``auto`` and ``off``, the font check, captions.json with its SRT and WebVTT files from
a real Dagster run, and the subtitle files kept per version (undo brings them back)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_song
from video_assets.captions import CaptionSettings, CaptionTrack, LyricsError, build_track
from video_assets.media.fonts import FontCoverageError, covering_face
from video_assets.schemas import Scene, Section, Word

ADLAM = "\U0001e900\U0001e901"  # a script only fonts-noto-core covers (not installed by CI)
LRC = "[00:01.00]Hello <00:01.00>bright <00:01.60>day\n[00:03.00]Second line\n[00:05.00]\n"
BEATS = [i * 0.5 for i in range(40)]
SECTIONS = [Section(start_s=0.0, end_s=2.0, label="intro", energy=0.3),
            Section(start_s=2.0, end_s=8.0, label="verse", energy=0.6),
            Section(start_s=8.0, end_s=10.0, label="outro", energy=0.2)]


def scene(index: int, start_s: float, end_s: float, caption: str) -> Scene:
    return Scene(index=index, start_s=start_s, end_s=end_s, prompt="a kite", caption=caption,
                 camera="static", motion="still", transition="cut", energy=0.5, seed=index)


SCENES = [scene(0, 0.0, 4.0, "Hook: Fly higher today"), scene(1, 4.0, 10.0, "CTA: Get yours now")]
WORDS = [Word(word="we", start_s=1.0, end_s=1.2), Word(word="sing.", start_s=1.3, end_s=1.6),
         Word(word="again", start_s=3.0, end_s=3.4)]


def track(source: str = "auto", mode: str = "music_video", **given) -> CaptionTrack:
    inputs = {"lyrics_text": None, "transcript_words": [], "voice_lines": [], "scenes": SCENES,
              **given}
    return build_track(CaptionSettings(source=source), mode, "default", duration_s=10.0,
                       beats_s=BEATS, sections=SECTIONS, **inputs)


def test_lrc_lyrics_give_timed_lines_with_word_times_in_the_flavors_style():
    got = track(lyrics_text=LRC)
    assert got.source == "lyrics" and got.style is not None and got.style.karaoke == "switch"
    assert [(c.start_s, c.end_s, c.text) for c in got.captions] == [
        (1.0, 3.0, "Hello bright day"), (3.0, 5.0, "Second line")]
    assert [(w.text, w.start_s) for w in got.captions[0].words] == [
        ("Hello", 1.0), ("bright", 1.0), ("day", 1.6)]


def test_plain_lyrics_are_spread_over_the_vocal_span_on_beats():
    got = track(lyrics_text="one line\n\nanother line\nthe last\n")
    assert got.source == "lyrics" and [c.text for c in got.captions] == [
        "one line", "another line", "the last"]
    assert got.captions[0].start_s == 2.0 and got.captions[-1].end_s == 8.0  # verse only
    assert all(c.start_s in BEATS for c in got.captions)


def test_transcript_words_become_lines_when_there_are_no_lyrics():
    got = track(transcript_words=WORDS)
    assert got.source == "transcript"
    assert [c.text for c in got.captions] == ["we sing.", "again"]
    assert got.captions[0].words[1].start_s == 1.3


def test_an_ads_voice_lines_are_its_captions():
    lines = [{"start_s": 0.15, "end_s": 4.0, "text": "Fly higher today"},
             {"start_s": 4.15, "duration_s": 2.0, "text": "Get yours now"}]
    got = track(mode="ad", voice_lines=lines)
    assert got.source == "voiceover" and got.style is not None and got.style.box  # lower_third
    assert [(c.start_s, c.end_s, c.text) for c in got.captions] == [
        (0.15, 4.0, "Fly higher today"), (4.15, 6.15, "Get yours now")]


def test_custom_captions_are_the_scenes_own():
    got = track("custom", lyrics_text=LRC)
    assert got.source == "custom"
    assert [(c.start_s, c.end_s, c.text) for c in got.captions] == [
        (0.0, 4.0, "Hook: Fly higher today"), (4.0, 10.0, "CTA: Get yours now")]


def test_auto_prefers_lyrics_then_transcript_then_voiceover_and_else_shows_none():
    lines = [{"start_s": 0.15, "end_s": 4.0, "text": "Fly"}]
    assert track(lyrics_text=LRC, transcript_words=WORDS, voice_lines=lines).source == "lyrics"
    assert track(transcript_words=WORDS, voice_lines=lines).source == "transcript"
    assert track(mode="ad", voice_lines=lines).source == "voiceover"
    nothing = track()
    assert nothing.source is None and nothing.captions == [] and "no words" in nothing.note


def test_off_shows_no_captions_even_with_lyrics():
    got = track("off", lyrics_text=LRC, transcript_words=WORDS)
    assert got.source is None and got.style is None and got.captions == []
    assert got.note == "captions: off"


def test_an_explicit_source_with_no_words_says_why_there_are_none():
    got = track("transcript", lyrics_text=LRC)
    assert got.source is None and got.captions == [] and "OPENAI_API_KEY" in got.note


def test_unreadable_lyrics_fail_naming_the_line_and_the_fix():
    with pytest.raises(LyricsError, match=r"line 1 .*fix:"):
        track(lyrics_text="[00:99.00]sixty-nine seconds?\n")


def test_text_no_installed_font_covers_fails_naming_the_package():
    try:
        covering_face(ADLAM, "DejaVu Sans")
        pytest.skip("a font covering Adlam is installed here")
    except FontCoverageError:
        pass
    words = [Word(word=ADLAM, start_s=1.0, end_s=1.5)]
    with pytest.raises(FontCoverageError, match=r"fonts-noto-core.*fix:|fix:.*fonts-noto-core"):
        track(transcript_words=words)


# --- the asset, in a real Dagster run -------------------------------------------------------

UP_TO_CAPTIONS = ["job_request", "beat_grid", "lyrics", "script", "voiceover", "captions"]


def run_up_to_captions(home: Path, job_id: str, request: dict, song: Path | None,
                       lyrics: str | None = None) -> Path:
    """Stage a job as admission does and materialize its stages up to ``captions`` offline;
    returns the job's folder."""
    from tests.conftest import scoped_env
    from video_assets.admission import stage, validate_request
    from video_assets.cli import execute_job
    from video_assets.media.audio import probe_audio
    from video_assets.resources import StoreResource

    req = validate_request({**request, "providers": {"planner": "offline", "transcribe": "offline",
                                                     "voice": "offline", "images": "offline",
                                                     "video": "offline", "music": "offline"}},
                           "test")
    duration_s = probe_audio(song).duration_s if song else None
    with scoped_env({"OPENAI_API_KEY": None, "REPLICATE_API_TOKEN": None}):
        stage(StoreResource().get(), job_id, req, song.name if song else "ad", song, duration_s,
              None, lyrics)
        summary = execute_job(job_id, stages=UP_TO_CAPTIONS)
    assert summary["status"] == "done", summary
    return home / "media" / "jobs" / job_id


def test_the_captions_asset_writes_the_track_and_its_subtitle_files(home: Path, tmp_path: Path):
    song = make_song(tmp_path / "lyric.wav", 8.0, tempo_bpm=120.0)
    folder = run_up_to_captions(home, "capsrc-lyrics-0001",
                                {"prompt": "a lyric video of kites", "audio": song.name,
                                 "lyrics": "words.lrc"}, song, LRC)
    assert (folder / "lyrics_user.txt").read_text() == LRC
    got = CaptionTrack.model_validate_json((folder / "captions.json").read_text())
    assert got.source == "lyrics" and [c.text for c in got.captions] == [
        "Hello bright day", "Second line"]
    assert (folder / "captions.srt").read_text() == (
        "1\n00:00:01,000 --> 00:00:03,000\nHello bright day\n\n"
        "2\n00:00:03,000 --> 00:00:05,000\nSecond line\n\n")
    assert (folder / "captions.vtt").read_text().startswith(
        "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nHello bright day\n")


def test_an_ad_offline_is_captioned_with_the_lines_its_voice_would_speak(home: Path):
    from video_assets.assets.common import voice_line
    from video_assets.assets.voiceover import LEAD_IN_S
    from video_assets.schemas import Script

    folder = run_up_to_captions(home, "capsrc-ad-0001", {"prompt": "running shoes for rainy days",
                                                         "mode": "ad", "duration_s": 6.0}, None)
    plan = Script.model_validate_json((folder / "script.json").read_text())
    got = CaptionTrack.model_validate_json((folder / "captions.json").read_text())
    assert got.source == "voiceover" and got.style is not None and got.style.position == "lower_third"
    assert [(c.start_s, c.end_s, c.text) for c in got.captions] == [
        (round(s.start_s + LEAD_IN_S, 3), s.end_s, voice_line(s)) for s in plan.scenes]
    assert (folder / "captions.srt").read_text().count(" --> ") == len(plan.scenes)


def test_a_job_without_captions_keeps_no_stale_subtitle_files(home: Path, tmp_path: Path):
    song = make_song(tmp_path / "quiet.wav", 6.0, tempo_bpm=120.0)
    folder = home / "media" / "jobs" / "capsrc-off-0001"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("captions.srt", "captions.vtt"):  # left by a version that had captions
        (folder / name).write_text("1\n00:00:00,000 --> 00:00:01,000\nold\n\n")
    run_up_to_captions(home, "capsrc-off-0001", {"prompt": "a quiet harbour", "audio": song.name,
                                                 "lyrics": "w.lrc", "captions": {"source": "off"}},
                       song, LRC)
    got = json.loads((folder / "captions.json").read_text())
    assert got["source"] is None and got["captions"] == [] and got["note"] == "captions: off"
    assert not (folder / "captions.srt").exists() and not (folder / "captions.vtt").exists()


def test_lyrics_gone_from_the_job_folder_are_read_from_the_current_version(home: Path,
                                                                            tmp_path: Path):
    """On S3 a job folder's non-deliverable files expire after a day while its versions stay:
    an edit made later still captions from the lyrics its current version kept."""
    from video_assets.cli import execute_job
    from video_assets.resources import StoreResource
    from video_assets.versions import commit_version

    song = make_song(tmp_path / "later.wav", 6.0, tempo_bpm=120.0)
    job = "capsrc-expired-0001"
    folder = run_up_to_captions(home, job, {"prompt": "kites at dusk", "audio": song.name,
                                            "lyrics": "w.lrc"}, song, LRC)
    commit_version(StoreResource().get(), job, None, "done", 0, 0.0)
    (folder / "lyrics_user.txt").unlink()
    (folder / "captions.json").unlink()
    assert execute_job(job, stages=["captions"])["status"] == "done"
    got = CaptionTrack.model_validate_json((folder / "captions.json").read_text())
    assert got.source == "lyrics" and got.captions[0].text == "Hello bright day"


# --- versions ----------------------------------------------------------------------------------

def two_versions(media, job: str) -> tuple[bool, bool]:
    """Commit a version, change only its captions (a rerender with other lyrics), commit again;
    returns whether each commit added a version."""
    from video_assets.layout import CAPTIONS, CAPTIONS_SRT, CAPTIONS_VTT, USER_LYRICS
    from video_assets.store import job_key
    from video_assets.versions import commit_version

    def write(n: int, **files: str) -> None:
        for name, text in {**files, CAPTIONS: f'{{"v": {n}}}', CAPTIONS_SRT: f"srt {n}",
                           CAPTIONS_VTT: f"vtt {n}", USER_LYRICS: f"lyrics {n}"}.items():
            media.put_bytes(job_key(job, name), text.encode())

    write(1, **{"script.json": '{"scenes": []}', "clips.json": "[]"})
    first = commit_version(media, job, None, "done", 0, 0.0)[1]
    write(2)
    return first, commit_version(media, job, None, "done", 0, 0.0)[1]


def test_a_render_that_changes_only_the_captions_is_a_new_version(tmp_path: Path):
    from video_assets.store import LocalStore
    from video_assets.versions import commit_version

    media = LocalStore(tmp_path)
    assert two_versions(media, "capver-0001") == (True, True)
    assert commit_version(media, "capver-0001", None, "done", 0, 0.0)[1] is False  # unchanged


def test_undo_brings_back_the_captions_and_subtitle_files_of_the_version_before(tmp_path: Path):
    from video_assets.layout import CAPTIONS, CAPTIONS_SRT, CAPTIONS_VTT, USER_LYRICS
    from video_assets.store import LocalStore, job_key
    from video_assets.versions import undo

    media, job = LocalStore(tmp_path), "capver-0002"
    two_versions(media, job)
    undo(media, job)
    for name, text in ((CAPTIONS, '{"v": 1}'), (CAPTIONS_SRT, "srt 1"), (CAPTIONS_VTT, "vtt 1"),
                       (USER_LYRICS, "lyrics 1")):
        assert media.get_bytes(job_key(job, name)).decode() == text
        assert media.get_bytes(f"jobs/{job}/versions/2/{name}").decode() == text.replace("1", "2")


# --- through videogen, end to end (offline) ------------------------------------------------------

def videogen(capsys, *args: str) -> tuple[int, dict]:
    from video_assets.cli import main

    code = main([*args, "--json"])
    out = capsys.readouterr()
    assert out.out.strip(), out.err
    return code, json.loads(out.out.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_lyric_video_renders_offline_from_a_song_and_an_lrc_file(home: Path, tmp_path: Path,
                                                                   capsys):
    song = make_song(tmp_path / "lyric song.wav", 6.0, tempo_bpm=120.0)
    lrc = tmp_path / "words.lrc"
    lrc.write_text(LRC)
    code, summary = videogen(capsys, "render", "--audio", str(song), "--prompt",
                             "paper lanterns over a river", "--lyrics", str(lrc),
                             "--caption-style", "bold_pop", "--aspect", "1:1")
    assert code == 0 and summary["status"] == "done", summary
    folder = home / "media" / "jobs" / summary["job_id"]
    got = CaptionTrack.model_validate_json((folder / "captions.json").read_text())
    assert got.source == "lyrics" and got.style is not None and got.style.position == "center"
    assert [c.text for c in got.captions] == ["Hello bright day", "Second line"]
    assert (folder / "captions.srt").read_text().count(" --> ") == 2
    assert (folder / "lyrics_user.txt").read_text() == LRC


@pytest.mark.slow
def test_a_scene_caption_edit_reaches_the_custom_captions(home: Path, tmp_path: Path, capsys):
    song = make_song(tmp_path / "custom.wav", 6.0, tempo_bpm=120.0)
    code, first = videogen(capsys, "render", "--audio", str(song), "--prompt",
                           "a tram through a snowy town", "--captions", "custom", "--aspect", "1:1")
    assert code == 0, first
    folder = home / "media" / "jobs" / first["job_id"]
    before = CaptionTrack.model_validate_json((folder / "captions.json").read_text())
    assert before.source == "custom" and len(before.captions) >= 2
    code, edited = videogen(capsys, "edit", first["job_id"], "prompt", "2", "--caption",
                            "Brand new words")
    assert code == 0 and edited["paid_calls"] == 0, edited
    after = CaptionTrack.model_validate_json((folder / "captions.json").read_text())
    assert after.source == "custom" and after.captions[1].text == "Brand new words"
    assert after.captions[0] == before.captions[0]
    assert "Brand new words" in (folder / "captions.vtt").read_text()
    # a caption no installed font draws is refused with the edit, naming the package; nothing made
    from video_assets.cli import main

    code = main(["edit", first["job_id"], "prompt", "2", "--caption", f"words {ADLAM}", "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "caption" in err and "fonts-noto-core" in err, err
    assert CaptionTrack.model_validate_json((folder / "captions.json").read_text()) == after


@pytest.mark.slow
def test_rerender_with_new_lyrics_or_no_captions_is_a_new_version_with_the_same_scenes(
        home: Path, tmp_path: Path, capsys):
    song = make_song(tmp_path / "again.wav", 6.0, tempo_bpm=120.0)
    lrc = tmp_path / "first.lrc"
    lrc.write_text(LRC)
    code, first = videogen(capsys, "render", "--audio", str(song), "--prompt",
                           "gulls over a pier", "--lyrics", str(lrc), "--aspect", "1:1")
    assert code == 0, first
    job = first["job_id"]
    folder = home / "media" / "jobs" / job
    def scenes() -> list[tuple]:
        plan = json.loads((folder / "script.json").read_text())
        return [(s["start_s"], s["end_s"], s["prompt"], s["seed"]) for s in plan["scenes"]]

    planned = scenes()
    other = tmp_path / "second.txt"
    other.write_text("a plain line\nand another one\n")
    code, second = videogen(capsys, "rerender", job, "--lyrics", str(other))
    assert code == 0 and second["version"] == 2, second
    got = CaptionTrack.model_validate_json((folder / "captions.json").read_text())
    assert [c.text for c in got.captions] == ["a plain line", "and another one"]
    assert (folder / "lyrics_user.txt").read_text() == other.read_text()
    assert scenes() == planned and second["paid_calls"] == 0  # the scenes are kept
    code, third = videogen(capsys, "rerender", job, "--captions", "off")
    assert code == 0 and third["version"] == 3, third
    assert json.loads((folder / "captions.json").read_text())["source"] is None
    assert not (folder / "captions.srt").exists()
