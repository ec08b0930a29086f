"""Locate and run the ffmpeg binary, each run with a deadline proportional to its media's length.

Resolution order (PRODUCT.md): ``$VIDEO_ASSETS_FFMPEG``, then ``ffmpeg`` on ``PATH``, then the
binary shipped inside the ``imageio-ffmpeg`` wheel. Nothing is downloaded.

Every ffmpeg process gets ``ffmpeg_timeout_s(media_s)`` (60 s + 10 s per second of the media it
reads or writes): one that overruns it is killed and reaped, its outputs are deleted, and
``FfmpegTimeout`` names what was being done. ``run_ffmpeg`` does this for a single process;
``Deadline`` for processes a caller drives itself (pipes between them).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

BASE_TIMEOUT_S = 60.0  # start-up, probing, seeking: what even a short job may need on a busy machine
TIMEOUT_S_PER_MEDIA_S = 10.0  # a 1080x1920 composition runs at ~1 s per second; 10x for a loaded machine
UNKNOWN_MEDIA_S = 600.0  # when the length is not known: the longest song a request may have


class FfmpegError(RuntimeError):
    """ffmpeg exited non-zero; carries the tail of its log."""


class FfmpegTimeout(FfmpegError):
    """ffmpeg ran past its deadline and was killed; its outputs were deleted."""


def ffmpeg_timeout_s(media_s: float | None) -> float:
    """How long an ffmpeg job over ``media_s`` seconds of media may run: ``BASE_TIMEOUT_S`` plus
    ``TIMEOUT_S_PER_MEDIA_S`` per second (``None``: ``UNKNOWN_MEDIA_S``)."""
    media = UNKNOWN_MEDIA_S if media_s is None else max(0.0, float(media_s))
    return BASE_TIMEOUT_S + TIMEOUT_S_PER_MEDIA_S * media


def remove_outputs(outputs: Sequence[str | Path]) -> None:
    """Delete what a failed or killed ffmpeg job may have half written."""
    for path in outputs:
        Path(path).unlink(missing_ok=True)


def timeout_error(what: str, timeout_s: float, media_s: float | None) -> FfmpegTimeout:
    media = "of unknown length" if media_s is None else f"of {media_s:g} s"
    return FfmpegTimeout(
        f"ffmpeg timed out while {what}: killed after {timeout_s:g} s (the limit for media "
        f"{media}: {BASE_TIMEOUT_S:g} s + {TIMEOUT_S_PER_MEDIA_S:g} s per second); its output "
        "was deleted; fix: check that the machine is not overloaded and the input is not "
        "damaged, then run again")


class Deadline:
    """Kills the processes it watches when ``ffmpeg_timeout_s(media_s)`` has passed (a timer
    thread), so that a caller blocked on their pipes wakes up; ``expired`` then says why.

    ::

        with Deadline(what, media_s) as deadline:
            proc = deadline.watch(subprocess.Popen(...))
            ...  # on any error: if deadline.expired, raise deadline.error()
    """

    def __init__(self, what: str, media_s: float | None) -> None:
        self.what, self.media_s = what, media_s
        self.timeout_s = ffmpeg_timeout_s(media_s)
        self.expired = False
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(self.timeout_s, self._expire)
        self._timer.daemon = True

    def watch(self, proc: subprocess.Popen) -> subprocess.Popen:
        with self._lock:
            self._procs.append(proc)
            if self.expired:
                proc.kill()
        return proc

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for proc in self._procs:
                if proc.poll() is None:
                    proc.kill()

    def error(self) -> FfmpegTimeout:
        return timeout_error(self.what, self.timeout_s, self.media_s)

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        self._timer.join()


@functools.cache
def ffmpeg_exe() -> str:
    env = os.environ.get("VIDEO_ASSETS_FFMPEG")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise FfmpegError(
                f"VIDEO_ASSETS_FFMPEG={env!r} is not an executable file; "
                "fix: point it at an ffmpeg binary or unset it"
            )
        return env
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise FfmpegError("no ffmpeg found; fix: install imageio-ffmpeg or set VIDEO_ASSETS_FFMPEG") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: Sequence[str], *, what: str, input_bytes: bytes | None = None,
               media_s: float | None = None, outputs: Sequence[str | Path] = ()) -> str:
    """Run ``ffmpeg -hide_banner -nostdin <args>``; return stderr text; raise with context on
    failure. ``media_s``: the length of the media it reads or writes (sets the deadline,
    ``ffmpeg_timeout_s``); ``outputs``: files it writes, deleted if it fails or times out."""
    return _run(args, what, input_bytes, media_s, outputs, stdout=False)[1]


def ffmpeg_output(args: Sequence[str], *, what: str, media_s: float | None = None) -> bytes:
    """Run ``ffmpeg -hide_banner -nostdin <args>`` writing to ``pipe:``/``-``; return its stdout
    (bound its size with ``-t`` or ``-frames``: it is held in memory). Deadline as ``run_ffmpeg``."""
    return _run(args, what, None, media_s, (), stdout=True)[0]


def _run(args: Sequence[str], what: str, input_bytes: bytes | None, media_s: float | None,
         outputs: Sequence[str | Path], stdout: bool) -> tuple[bytes, str]:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    timeout_s = ffmpeg_timeout_s(media_s)
    try:  # on timeout, subprocess.run kills the process and reaps it
        proc = subprocess.run(cmd, input=input_bytes, timeout=timeout_s, stderr=subprocess.PIPE,
                              stdout=subprocess.PIPE if stdout else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        remove_outputs(outputs)
        raise timeout_error(what, timeout_s, media_s) from None
    except BaseException:  # an interrupt: subprocess.run has killed and reaped ffmpeg
        remove_outputs(outputs)
        raise
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        remove_outputs(outputs)
        tail = "\n".join(err.strip().splitlines()[-12:])
        raise FfmpegError(f"ffmpeg failed while {what} (exit {proc.returncode}):\n{tail}")
    return proc.stdout or b"", err
