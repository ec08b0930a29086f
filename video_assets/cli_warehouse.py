"""``videogen warehouse migrate | compact``: the Parquet warehouse's commands (``warehouse.py``
holds the work; it is imported when a command runs, not when ``videogen`` starts)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parsers(sub) -> None:
    """``videogen warehouse migrate`` and ``videogen warehouse compact`` (``sub``: videogen's
    subparsers)."""
    wh = sub.add_parser("warehouse", help="the Parquet warehouse: migrate to it, compact it"
                        ).add_subparsers(dest="warehouse_command", required=True)
    m = wh.add_parser("migrate", help="copy the DuckDB warehouse file into the Parquet store in "
                      "the media store (local, or VIDEO_ASSETS_BUCKET)")
    m.add_argument("--from", dest="source", default=None,
                   help="the DuckDB file (default: $VIDEO_ASSETS_WAREHOUSE or "
                   "$DAGSTER_HOME/warehouse.duckdb)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_migrate_command)
    c = wh.add_parser("compact", help="merge each job's small Parquet files into one per table "
                      "(safe while runs write and read)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_compact_command)


def _migrate_command(args) -> int:
    from video_assets.config import warehouse_path
    from video_assets.warehouse import ParquetWarehouse, WarehouseBusy, migrate

    src = Path(args.source) if args.source else warehouse_path()
    dest = ParquetWarehouse()
    try:
        rows = migrate(src, dest)
    except (FileNotFoundError, WarehouseBusy) as exc:
        print(f"videogen: warehouse {exc}", file=sys.stderr)
        return 2
    summary = {"from": str(src), "to": dest.location(), "rows": rows}
    print(json.dumps(summary, sort_keys=True) if args.json else
          f"copied {', '.join(f'{n} {t}' for t, n in rows.items())} rows from {src} to "
          f"{dest.location()}; use it with VIDEO_ASSETS_WAREHOUSE_STORE=parquet (or the postgres "
          "profile)")
    return 0


def _compact_command(args) -> int:
    from video_assets.warehouse import ParquetWarehouse

    dest = ParquetWarehouse()
    removed = dest.compact()
    print(json.dumps({"warehouse": dest.location(), "files_merged": removed}, sort_keys=True)
          if args.json else f"{dest.location()}: merged away {sum(removed.values())} files")
    return 0
