"""Locate and run the ffmpeg binary.

Resolution order (PRODUCT.md): ``$VIDEO_ASSETS_FFMPEG``, then ``ffmpeg`` on ``PATH``, then the
binary shipped inside the ``imageio-ffmpeg`` wheel. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence


class FfmpegError(RuntimeError):
    """ffmpeg exited non-zero; carries the tail of its log."""


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


def run_ffmpeg(args: Sequence[str], *, what: str, input_bytes: bytes | None = None) -> str:
    """Run ``ffmpeg -hide_banner -nostdin <args>``; return stderr text; raise with context on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    proc = subprocess.run(cmd, input=input_bytes, capture_output=True)
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-12:])
        raise FfmpegError(f"ffmpeg failed while {what} (exit {proc.returncode}):\n{tail}")
    return err
