"""Shared fixtures: an isolated DAGSTER_HOME per test session and synthesized audio."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from video_assets.media.audio import synthesize_track, write_wav

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh DAGSTER_HOME with the committed instance config (env var set for the session)."""
    path = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", path / "dagster.yaml")
    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(path)
    os.environ.pop("VIDEO_ASSETS_WAREHOUSE", None)
    yield path
    if old is None:
        os.environ.pop("DAGSTER_HOME", None)
    else:
        os.environ["DAGSTER_HOME"] = old


@pytest.fixture(scope="session")
def song_10s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "song ten.wav"
    write_wav(path, synthesize_track(10.4, tempo_bpm=120.0), 44100)
    return path


@contextlib.contextmanager
def scoped_env(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for a block; restore them after."""
    old = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_song(path: Path, duration_s: float, **kwargs: object) -> Path:
    write_wav(path, synthesize_track(duration_s, **kwargs), 44100)
    return path


ARTIFACTS = REPO / "test-artifacts"  # screenshots and executed notebooks, kept for inspection


@pytest.fixture(scope="session")
def rendered_job(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One job rendered through the real asset graph with mixed transitions (the CLI's summary)."""
    import contextlib
    import io
    import json

    from video_assets.cli import main

    song = make_song(tmp_path_factory.mktemp("rendered") / "mixed.wav", 12.5, tempo_bpm=124.0)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["render", "--audio", str(song), "--prompt", "paper boats on a rainy street",
                     "--transitions", "auto", "--aspect", "9:16", "--json"])
    summary = json.loads(buffer.getvalue().strip().splitlines()[-1])
    assert code == 0, summary
    return summary


@pytest.fixture()
def inbox(home: Path) -> Path:
    """The session home's local inbox, emptied (and its rejection reports)."""
    for sub in ("inbox", "rejected"):
        shutil.rmtree(home / sub, ignore_errors=True)
    (home / "inbox").mkdir()
    return home / "inbox"
