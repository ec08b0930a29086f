"""Captioned videos end to end, offline, through ``videogen render``: a lyric video from a song and
an LRC file in each preset, and an ad captioned with its voiceover lines, across the three
aspects; each measured by the product itself (the ``captions_readable`` metrics, from the file
against the caption-free frames) and checked against a render of the same job without
captions (its next version, ``rerender --captions off``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_song
from video_assets.media.ffmpeg_bin import ffmpeg_output

LRC = ("[00:00.40]<00:00.40>Lanterns <00:01.00>over <00:01.50>the <00:01.80>river\n"
       "[00:03.00]<00:03.00>Carry <00:03.50>all <00:03.80>our <00:04.20>wishes\n[00:05.50]\n")
CASES = [("karaoke", "9:16", "music_video"), ("bold_pop", "1:1", "music_video"),
         ("minimal", "16:9", "music_video"), ("lower_third", "9:16", "ad")]
CAPTION_METRICS = {"captions_present", "caption_safe_area", "caption_contrast_min",
                   "words_without_caption"}


def videogen(capsys, *args: str) -> dict:
    from video_assets.cli import main

    code = main([*args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out.strip().splitlines()[-1])


def frame_at(video: Path, t_s: float) -> np.ndarray:
    raw = ffmpeg_output(["-ss", f"{t_s}", "-i", str(video), "-frames:v", "1", "-vf",
                         "scale=270:-2", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:"],
                        what="a frame", media_s=1)
    return np.frombuffer(raw, np.uint8).astype(int)


@pytest.mark.slow
@pytest.mark.parametrize("preset, aspect, mode", CASES)
def test_a_captioned_render_shows_its_words_and_measures_them(home: Path, tmp_path: Path, capsys,
                                                              preset: str, aspect: str, mode: str):
    song = make_song(tmp_path / "lanterns.wav", 6.0, tempo_bpm=120.0)
    lrc = tmp_path / "lanterns.lrc"
    lrc.write_text(LRC, encoding="utf-8")
    base = ["render", "--audio", str(song), "--prompt", "paper lanterns over a night river",
            "--aspect", aspect, "--mode", mode]
    words = ["--captions", "voiceover"] if mode == "ad" else ["--lyrics", str(lrc)]
    done = videogen(capsys, *base, *words, "--caption-style", preset)
    assert done["status"] == "done" and done["checks"]["captions_readable"], done
    folder = home / "media" / "jobs" / done["job_id"]
    metrics = {m["metric"]: m for m in json.loads((folder / "quality.json").read_text())["metrics"]}
    assert set(metrics) >= CAPTION_METRICS  # measured, not "no captions"
    assert all(metrics[name]["passed"] for name in CAPTION_METRICS)
    assert metrics["caption_safe_area"]["value"] == 1.0
    assert (folder / "captions.srt").read_text().count(" --> ") >= 2
    assert (folder / "captions.vtt").read_text().startswith("WEBVTT")
    # the same job without captions (its next version) differs where and when words show only
    plain = videogen(capsys, "rerender", done["job_id"], "--captions", "off")
    assert plain["version"] == 2 and plain["paid_calls"] == 0
    shown, before = (4.3, 0.2) if mode == "music_video" else (1.0, 0.05)
    worded, bare = folder / "versions" / "1" / "final.mp4", Path(plain["final_video"])
    assert np.abs(frame_at(worded, shown) - frame_at(bare, shown)).max() > 100
    if mode == "music_video":  # no lyric before the first line's time
        assert np.abs(frame_at(worded, before) - frame_at(bare, before)).mean() < 1.0
