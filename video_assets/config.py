"""Where things live (PRODUCT.md): DAGSTER_HOME, the media store and the warehouse."""

from __future__ import annotations

import os
from pathlib import Path


def dagster_home() -> Path:
    """``$DAGSTER_HOME``, defaulting to ``./dagster_home`` (created, and exported for Dagster)."""
    home = Path(os.environ.get("DAGSTER_HOME") or "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def media_root() -> Path:
    return dagster_home() / "media"


def warehouse_path() -> Path:
    env = os.environ.get("VIDEO_ASSETS_WAREHOUSE")
    return Path(env).resolve() if env else dagster_home() / "warehouse.duckdb"


def numba_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "video_assets" / "numba"
