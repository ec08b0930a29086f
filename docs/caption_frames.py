"""The README's caption frames, made by the product itself: ``make caption-frames``.

Renders, offline in a throw-away Dagster home, a short lyric video from a synthesized song and an
LRC file in each caption preset (and an ad captioned with its voiceover lines), takes the frame
half-way through the second lyric line from each ``final.mp4`` and writes it, scaled to 360
pixels high, to ``docs/images/captions-<preset>.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import make_song  # noqa: E402  (the test suite's song synthesizer)
from video_assets.media.ffmpeg_bin import run_ffmpeg  # noqa: E402

LRC = """[ti:Paper lanterns]
[00:00.40]<00:00.40>Lanterns <00:01.00>over <00:01.50>the <00:01.80>river
[00:03.00]<00:03.00>Carry <00:03.50>all <00:03.80>our <00:04.20>wishes <00:04.80>home
[00:07.00]
"""
AT_S = 4.3  # "wishes" being sung: some words lit, some not
RENDERS = {  # preset: (aspect, mode, extra arguments)
    "karaoke": ("9:16", "music_video", []),
    "bold_pop": ("9:16", "music_video", []),
    "minimal": ("16:9", "music_video", []),
    "lower_third": ("1:1", "ad", ["--captions", "voiceover"]),
}
OUT = REPO / "docs" / "images"


def render(home: Path, song: Path, lrc: Path, preset: str) -> Path:
    aspect, mode, extra = RENDERS[preset]
    args = [str(Path(sys.executable).with_name("videogen")), "render", "--prompt",
            "paper lanterns drifting over a night river", "--aspect", aspect, "--mode", mode,
            "--caption-style", preset, "--audio", str(song), "--json", *extra]
    if mode == "music_video":
        args += ["--lyrics", str(lrc)]
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    run = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"render of {preset} failed:\n{run.stderr[-2000:]}")
    return Path(json.loads(run.stdout.strip().splitlines()[-1])["final_video"])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        home = folder / "home"
        home.mkdir()
        shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
        song = make_song(folder / "lanterns.wav", 8.0, tempo_bpm=120.0)
        lrc = folder / "lanterns.lrc"
        lrc.write_text(LRC, encoding="utf-8")
        for preset in RENDERS:
            video = render(home, song, lrc, preset)
            out = OUT / f"captions-{preset}.png"
            run_ffmpeg(["-y", "-ss", f"{AT_S}", "-i", str(video), "-frames:v", "1",
                        "-vf", "scale=-2:360:flags=lanczos", str(out)], what=f"the {preset} frame")
            print(f"{preset}: {out.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
