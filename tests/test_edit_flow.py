"""Scene edits end to end, through ``videogen`` and the real asset graph: what each operation pays
(counted at the loopback Replicate server), the versions kept, undo by the same bytes, the quality
checks on every version, bad edits refused with nothing changed, and edit files in the inbox."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import pytest

from tests.conftest import make_song
from tests.fake_replicate import FakeReplicate, serving
from video_assets.cli import main
from video_assets.media.ffmpeg_bin import ffmpeg_exe

pytestmark = pytest.mark.slow


def videogen(capsys, *args: str) -> tuple[int, dict | None, str]:
    code = main(list(args))
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return code, summary, out.out + out.err


def job_dir(home: Path, job_id: str) -> Path:
    return home / "media" / "jobs" / job_id


def history(home: Path, job_id: str) -> dict:
    return json.loads((job_dir(home, job_id) / "history.json").read_text())


def user_clip(path: Path, seconds: float = 2.0) -> Path:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=320x320:rate=25:duration={seconds}", "-pix_fmt", "yuv420p",
                    str(path)], check=True)
    return path


def test_each_edit_pays_only_for_what_it_makes_again(home: Path, tmp_path: Path, capsys):
    song = make_song(tmp_path / "harbour.wav", 16.4, tempo_bpm=120.0)
    with serving(FakeReplicate(token="r8_edit_flow_token_1")) as fake:
        code, first, out = videogen(capsys, "render", "--audio", str(song), "--prompt",
                                    "paper boats crossing a harbour", "--aspect", "1:1",
                                    "--json")
        assert code == 0 and first["version"] == 1, out
        job = first["job_id"]
        paid_first = fake.posts()
        assert paid_first == 2 * first["clips"]  # one image and one clip per scene

        def edit(*args: str) -> dict:
            posts = fake.posts()
            code, summary, out = videogen(capsys, "edit", job, *args, "--json")
            assert code == 0, out
            assert summary["status"] == "done" and all(summary["checks"].values()), summary
            assert summary["paid_calls"] == fake.posts() - posts  # the ledger agrees with the server
            return summary

        changed = edit("prompt", "2", "a lighthouse blinking in fog")
        assert changed["version"] == 2 and changed["paid_calls"] == 2  # one image, one clip
        assert edit("reorder", "1", "--to", "3")["paid_calls"] == 0
        assert edit("move-cut", "1", "--beats", str(move_within_clips(home, job)))[
            "paid_calls"] == 0
        assert edit("slip", "3", "--in-s", "0.2")["paid_calls"] == 0
        assert edit("replace", "1", "--file", str(user_clip(tmp_path / "mine.mp4")))[
            "paid_calls"] == 0
        assert edit("reroll", "3")["paid_calls"] == 2

        before_undo = fake.posts()
        final = job_dir(home, job) / "final.mp4"
        code, undone, out = videogen(capsys, "undo", job, "--json")
        assert code == 0 and undone["version"] == 6, out
        assert final.read_bytes() == (job_dir(home, job) / "versions" / "6" / "final.mp4").read_bytes()
        code, redone, out = videogen(capsys, "redo", job, "--json")
        assert code == 0 and redone["version"] == 7
        assert fake.posts() == before_undo  # undo and redo render nothing and pay nothing

        # delete: the neighbours take its time; one whose slot now needs a longer clip than it
        # has is made again (a clip, no image), at the length a first render would ask for
        before = sources(home, job)
        deleted = edit("delete", "2")
        remade = sources(home, job) - before
        assert deleted["paid_calls"] == len(remade) <= 2
        # split: the second part goes on with the same clip; nothing is made
        scene, beat = split_point(home, job)
        assert edit("split", str(scene), "--at-beat", str(beat))["paid_calls"] == 0

    hist = history(home, job)
    assert [v["operation"] for v in hist["versions"]] == \
        ["render", "prompt", "reorder", "move-cut", "slip", "replace", "reroll", "delete", "split"]
    assert hist["versions"][1]["changed_scenes"] == [2]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    rows = con.execute("SELECT version, operation, paid_calls FROM edits WHERE job_id = ? "
                       "ORDER BY created_at", [job]).fetchall()
    con.close()
    assert rows[:7] == [(1, "render", paid_first), (2, "prompt", 2), (3, "reorder", 0),
                        (4, "move-cut", 0), (5, "slip", 0), (6, "replace", 0), (7, "reroll", 2)]
    assert rows[7:9] == [(6, "undo", 0), (7, "redo", 0)]
    assert [(v, op) for v, op, _ in rows[9:]] == [(8, "delete"), (9, "split")]


def split_point(home: Path, job: str) -> tuple[int, int]:
    """The longest scene (from 1) and the first beat inside it (from 1) that leaves both parts
    at least 3 s long."""
    scenes = json.loads((job_dir(home, job) / "script.json").read_text())["scenes"]
    beats = json.loads((job_dir(home, job) / "beat_grid.json").read_text())["beats_s"]
    longest = max(scenes, key=lambda sc: sc["end_s"] - sc["start_s"])
    inside = [b for b in beats if longest["start_s"] < b < longest["end_s"]]
    fits = [k for k, b in enumerate(inside, start=1)
            if b - longest["start_s"] >= 3.0 and longest["end_s"] - b >= 3.0]
    assert fits, f"no scene is long enough to split in two: {scenes}"
    return longest["index"] + 1, fits[0]


def sources(home: Path, job: str) -> set[str]:
    """The clips the job's current version shows, as generated (their cache keys)."""
    return {c["source_key"] for c in json.loads((job_dir(home, job) / "clips.json").read_text())}


def move_within_clips(home: Path, job: str, beat_s: float = 0.5) -> int:
    """A move of the cut after scene 1, by one beat, that leaves both scenes within the clips
    they have (a scene that needs a longer clip is made again: that is paid, by the rule)."""
    scenes = json.loads((job_dir(home, job) / "script.json").read_text())["scenes"]
    clips = json.loads((job_dir(home, job) / "clips.json").read_text())
    margin_s = 0.35  # a crossfade's overlap (8 frames) and rounding to frames
    for beats in (-1, 1):
        lengths = [scenes[0]["end_s"] - scenes[0]["start_s"] + beats * beat_s,
                   scenes[1]["end_s"] - scenes[1]["start_s"] - beats * beat_s]
        if all(n >= 3.0 and clips[i]["in_s"] + n + margin_s <= clips[i]["clip_duration_s"]
               for i, n in enumerate(lengths)):
            return beats
    pytest.fail(f"no one-beat move of the cut after scene 1 fits its clips: {scenes[:2]}")


@pytest.fixture(scope="module")
def offline_job(home: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    song = make_song(tmp_path_factory.mktemp("edit") / "long.wav", 20.4, tempo_bpm=120.0)
    code = main(["render", "--audio", str(song), "--prompt", "kites over a windy beach",
                 "--aspect", "1:1", "--transitions", "cut", "--job-id", "kites-edit"])
    assert code == 0
    return "kites-edit"


def test_delete_then_split_keep_the_cuts_on_beats_and_leave_no_stale_clip(
        offline_job: str, home: Path, capsys):
    folder = job_dir(home, offline_job)
    n = len(json.loads((folder / "script.json").read_text())["scenes"])
    code, deleted, out = videogen(capsys, "edit", offline_job, "delete", "2", "--json")
    assert code == 0 and all(deleted["checks"].values()), out
    assert deleted["clips"] == n - 1
    assert not (folder / "clips" / f"{n:02d}.mp4").exists()
    assert (folder / "versions" / "1" / "clips" / f"{n:02d}.mp4").exists()
    scene, beat = split_point(home, offline_job)
    code, split, out = videogen(capsys, "edit", offline_job, "split", str(scene),
                                "--at-beat", str(beat), "--json")
    assert code == 0 and all(split["checks"].values()), out
    assert split["clips"] == n and split["paid_calls"] == 0


def test_bad_edits_exit_2_and_change_nothing(offline_job: str, home: Path, capsys):
    folder = job_dir(home, offline_job)
    before = history(home, offline_job)
    final = (folder / "final.mp4").read_bytes()
    for args, needle in ((["prompt", "99", "x y z"], "SCENE"),
                         (["move-cut", "1", "--beats", "40"], "--beats"),
                         (["slip", "1", "--in-s", "60"], "--in-s"),
                         (["replace", "1", "--file", "/nonexistent/clip.mp4"], "--file"),
                         (["reorder", "1"], "--to")):
        code, _, out = videogen(capsys, "edit", offline_job, *args)
        assert code == 2 and needle in out and "fix" in out, (args, out)
    code, _, out = videogen(capsys, "edit", "no-such-job", "reroll", "1")
    assert code == 2 and "no rendered version" in out
    assert history(home, offline_job) == before
    assert (folder / "final.mp4").read_bytes() == final


def test_an_edit_file_in_the_inbox_makes_a_version_and_a_bad_one_a_report(
        offline_job: str, home: Path, capsys):
    inbox = home / "inbox" / "crew"
    inbox.mkdir(parents=True, exist_ok=True)
    version = history(home, offline_job)["current"]
    (inbox / "recaption.yaml").write_text(
        f"edit: {offline_job}\noperations:\n  - {{op: prompt, scene: 1, caption: hello}}\n"
        "  - {op: slip, scene: 2, in_s: 0.2}\n")
    (inbox / "broken.yaml").write_text(
        f"edit: {offline_job}\noperations:\n  - {{op: split, scene: 1, at_beat: 99}}\n")
    code, _, out = videogen(capsys, "ingest", "--once", "--wait", "--grace-s", "0")
    assert code == 0, out
    after = history(home, offline_job)
    assert after["current"] == version + 1
    assert after["versions"][-1]["operation"] == "edit"
    report = json.loads((home / "rejected" / "crew" / "broken.yaml.error.json").read_text())
    assert report["field"] == "at_beat" and "fix" in report["error"]


def test_rerender_with_new_transitions_keeps_the_edits(offline_job: str, home: Path, capsys):
    folder = job_dir(home, offline_job)
    prompts = [s["prompt"] for s in json.loads((folder / "script.json").read_text())["scenes"]]
    code, summary, out = videogen(capsys, "rerender", offline_job, "--transitions", "crossfade",
                                  "--json")
    assert code == 0 and all(summary["checks"].values()), out
    scenes = json.loads((folder / "script.json").read_text())["scenes"]
    assert [s["prompt"] for s in scenes] == prompts
    assert {s["transition"] for s in scenes[:-1]} == {"crossfade"}
    assert history(home, offline_job)["versions"][-1]["operation"] == "rerender"


def test_rerender_with_a_new_pacing_but_no_replan_is_refused(offline_job: str, home: Path,
                                                             capsys):
    before = history(home, offline_job)
    code, _, out = videogen(capsys, "rerender", offline_job, "--pacing", "energetic")
    assert code == 2 and "--replan" in out
    assert history(home, offline_job) == before
