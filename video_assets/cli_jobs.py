"""``videogen jobs | status``: what the jobs are doing, from the instance and the warehouse of the
profile in use (``VIDEO_ASSETS_PROFILE``), without the UI.

``--json``: the last stdout line is one JSON object. Exit codes: 0 ok, 2 bad input (an unknown job
id, a bad ``--status``: the message names it and the fix).
"""

from __future__ import annotations

import argparse
import json

from video_assets.cli import EXIT_BAD_INPUT, EXIT_OK, _err, _instance
from video_assets.cli_edit import _job_id


def _sources():
    from video_assets.resources import StoreResource, WarehouseResource

    return _instance(), WarehouseResource().get(), StoreResource().get()


def jobs(args: argparse.Namespace) -> int:
    from video_assets.job_status import format_jobs_table, list_jobs

    instance, warehouse, _ = _sources()
    try:
        rows = list_jobs(instance, warehouse, args.status)
    except ValueError as exc:
        _err(f"jobs: {exc}")
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps({"jobs": [r.to_dict() for r in rows], "count": len(rows)}, sort_keys=True))
    else:
        print(format_jobs_table(rows))
    return EXIT_OK


def status(args: argparse.Namespace) -> int:
    from video_assets.job_status import UnknownJob, format_status, job_status

    instance, warehouse, media = _sources()
    try:
        found = job_status(instance, warehouse, media, args.job_id)
    except UnknownJob as exc:
        _err(f"status: {exc}")
        return EXIT_BAD_INPUT
    print(json.dumps(found.to_dict(), sort_keys=True) if args.json else format_status(found))
    return EXIT_OK


def add_job_commands(sub) -> None:
    """Register ``jobs`` and ``status`` on ``videogen``'s subparsers."""
    j = sub.add_parser("jobs", help="list the jobs: status, created, length, cost, final video "
                       "(newest first)")
    # checked by list_jobs (its JOB_STATUSES): importing it here would load Dagster for --help
    j.add_argument("--status", metavar="STATUS",
                   help="done | failed | checks_failed | cancelled | running | queued: only the "
                   "jobs in this status")
    j.add_argument("--json", action="store_true",
                   help='last stdout line is {"jobs": [...], "count": N}')
    j.set_defaults(func=jobs)
    s = sub.add_parser("status", help="one job now: the stage running, the stages done, the cost "
                       "so far, its version and quality checks")
    s.add_argument("job_id", metavar="JOB_ID", type=_job_id)
    s.add_argument("--json", action="store_true", help="last stdout line is a JSON object")
    s.set_defaults(func=status)
