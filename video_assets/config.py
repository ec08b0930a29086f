"""Where things live (PRODUCT.md): DAGSTER_HOME, the media store and the warehouse."""

from __future__ import annotations

import math
import os
from pathlib import Path


def dagster_home() -> Path:
    """``$DAGSTER_HOME``, defaulting to ``./dagster_home``, or ``./dagster_home/postgres`` for the
    postgres profile (``VIDEO_ASSETS_PROFILE=postgres``: an instance folder of its own, see
    video_assets/profiles.py); created, and exported for Dagster."""
    default = "dagster_home/postgres" if os.environ.get(
        "VIDEO_ASSETS_PROFILE", "").strip().lower() == "postgres" else "dagster_home"
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def media_root() -> Path:
    return dagster_home() / "media"


def s3_bucket() -> str:
    """``$VIDEO_ASSETS_BUCKET``: when set, media, inbox and rejections live in that bucket."""
    return os.environ.get("VIDEO_ASSETS_BUCKET", "").strip()


DEFAULT_URL_EXPIRY_S = 3600  # an hour: links are signed when someone asks, never stored
MAX_URL_EXPIRY_S = 7 * 24 * 3600  # the most S3 signatures allow


def check_url_expiry_s(value: int, source: str) -> int:
    """``value`` if it is a valid presigned link lifetime, else a ValueError naming ``source``."""
    if not 1 <= value <= MAX_URL_EXPIRY_S:
        raise ValueError(f"{source}={value} is outside 1..{MAX_URL_EXPIRY_S} (S3 signs links for "
                         "at most 7 days); fix: choose a value in that range, e.g. 3600")
    return value


def url_expiry_s() -> int:
    """How long presigned links to videos stay valid (``VIDEO_ASSETS_URL_EXPIRY_S``, default an
    hour, at most 7 days). Links are made on demand (``videogen link JOB_ID``), never stored."""
    raw = os.environ.get("VIDEO_ASSETS_URL_EXPIRY_S", "").strip()
    try:
        value = int(raw) if raw else DEFAULT_URL_EXPIRY_S
    except ValueError:
        raise ValueError(f"VIDEO_ASSETS_URL_EXPIRY_S={raw!r} is not a whole number of seconds; "
                         "fix: e.g. 3600 for an hour") from None
    return check_url_expiry_s(value, "VIDEO_ASSETS_URL_EXPIRY_S")


DEFAULT_MAX_BUDGET_USD = 20.0


def max_budget_usd() -> float:
    """The most one job may spend on paid calls, across all its runs (``VIDEO_ASSETS_MAX_BUDGET_USD``,
    an operator setting, default $20): a request's ``budget_usd`` above it is refused."""
    raw = os.environ.get("VIDEO_ASSETS_MAX_BUDGET_USD", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_MAX_BUDGET_USD
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"VIDEO_ASSETS_MAX_BUDGET_USD={raw!r} is not a finite number of US dollars "
                         ">= 0; fix: e.g. 20")
    return value


def allowed_models() -> frozenset[str] | None:
    """Registry models a request may name besides each capability's default
    (``VIDEO_ASSETS_ALLOWED_MODELS``: comma-separated ``owner/model`` names; ``*`` allows every
    model in the registry, returned as ``None``). Unset: only the defaults."""
    raw = os.environ.get("VIDEO_ASSETS_ALLOWED_MODELS", "").strip()
    if raw == "*":
        return None
    return frozenset(m.strip() for m in raw.split(",") if m.strip())


def allow_loopback_http() -> bool:
    """``VIDEO_ASSETS_ALLOW_LOOPBACK_HTTP=1``: provider outputs may also be fetched over plain http
    from loopback addresses (the tests' fake provider servers); never for real deployments."""
    return os.environ.get("VIDEO_ASSETS_ALLOW_LOOPBACK_HTTP", "").strip() == "1"


def warehouse_path() -> Path:
    env = os.environ.get("VIDEO_ASSETS_WAREHOUSE")
    return Path(env).resolve() if env else dagster_home() / "warehouse.duckdb"


def numba_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "video_assets" / "numba"


def writable_numba_cache_dir() -> Path | None:
    """The first writable place for numba's compiled kernels: the user cache folder, else
    ``$DAGSTER_HOME/.numba_cache``, else a per-user folder in the system temp directory; ``None``
    when none is writable (numba then keeps its default: beside librosa, or no cache)."""
    import tempfile

    candidates = [numba_cache_dir()]
    if os.environ.get("DAGSTER_HOME"):
        candidates.append(Path(os.environ["DAGSTER_HOME"]) / ".numba_cache")
    candidates.append(Path(tempfile.gettempdir()) / f"video_assets-numba-{os.getuid()}")
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write-test-{os.getpid()}"
            probe.touch()
            probe.unlink()
            return path
        except OSError:
            continue
    return None
