"""``videogen cache prune``: remove the cache entries that the product remakes at no cost.

Composition keeps every chunk it encodes (``cache/chunk/``: an edit re-encodes only the chunks
it changes) and the contact sheets their tiles (``cache/tile/``); nothing else removes them, so
on a local store they grow with every render and edit (122 MB for a 2-minute 1080x1920 video
rendered once and edited six times). Pruning them costs time at the next edit of an old job,
never money: paid generations (images, clips, plans, voices, music, downloads) are never pruned
here. On S3 the bucket's
lifecycle rule (``videogen s3 setup``) expires the whole cache instead."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

from video_assets.layout import DERIVED_CACHE_KINDS


@dataclass(frozen=True)
class Pruned:
    n_files: int
    n_bytes: int


def prune(media, older_than_s: float, kinds: tuple[str, ...] = DERIVED_CACHE_KINDS,
          dry_run: bool = False, now_s: float | None = None) -> Pruned:
    """Delete the entries of the cache ``kinds`` (derived ones only) last written more than
    ``older_than_s`` ago; with ``dry_run``, only count them."""
    unknown = set(kinds) - set(DERIVED_CACHE_KINDS)
    if unknown:
        raise ValueError(f"kinds: {', '.join(sorted(unknown))} cannot be pruned (only "
                         f"{', '.join(DERIVED_CACHE_KINDS)}: what is remade at no cost)")
    cutoff_ns = int(((time.time() if now_s is None else now_s) - older_than_s) * 1e9)
    n_files = n_bytes = 0
    for kind in kinds:
        for entry in media.list(f"cache/{kind}/"):
            if entry.modified_ns < cutoff_ns:
                n_files, n_bytes = n_files + 1, n_bytes + entry.size_bytes
                if not dry_run:
                    media.delete(entry.key)
    return Pruned(n_files, n_bytes)


def add_parsers(sub) -> None:
    """``videogen cache prune`` (``sub``: videogen's subparsers)."""
    cache = sub.add_parser("cache", help="the media store's cache").add_subparsers(
        dest="cache_command", required=True)
    p = cache.add_parser("prune", help="remove composition chunks and contact-sheet tiles not "
                         "written for a while (remade at no cost; paid generations are kept)")
    p.add_argument("--older-than-days", dest="older_than_days", type=float, default=7.0,
                   help="remove entries written more than this many days ago (default 7; 0: all)")
    p.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_prune_command)


def _prune_command(args) -> int:
    from video_assets.resources import StoreResource

    if args.older_than_days < 0:
        print("videogen: --older-than-days: must be 0 or more; fix: give the age in days, "
              "e.g. --older-than-days 7", file=sys.stderr)
        return 2
    media = StoreResource().get()
    done = prune(media, args.older_than_days * 86400.0, dry_run=args.dry_run)
    summary = {"files": done.n_files, "bytes": done.n_bytes, "dry_run": args.dry_run,
               "kinds": list(DERIVED_CACHE_KINDS)}
    print(json.dumps(summary, sort_keys=True) if args.json else
          f"{'would remove' if args.dry_run else 'removed'} {done.n_files} cache files "
          f"({done.n_bytes / 1e6:.1f} MB) of {', '.join(DERIVED_CACHE_KINDS)} older than "
          f"{args.older_than_days:g} days")
    return 0
