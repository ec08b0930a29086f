"""Deployment profiles: which Dagster instance ``videogen``, the webserver, the daemon and every run use.

- ``local`` (the default): ``$DAGSTER_HOME`` (``./dagster_home``) and its ``dagster.yaml``: SQLite
  storage in that folder, nothing to start.
- ``postgres`` (``VIDEO_ASSETS_PROFILE=postgres``): run, event-log and schedule storage in
  PostgreSQL (dagster-postgres) at ``DAGSTER_POSTGRES_URL=postgresql://user:pass@host:port/db``;
  the instance config is ``deploy/postgres/dagster.yaml`` (the run queue, its limits and run
  monitoring, as the local profile's).

The mechanism is Dagster's own: every Dagster process (``videogen``, ``dagster dev``,
``dagster-daemon run``, and each run worker, which inherits the launching process's environment)
reads its instance from ``$DAGSTER_HOME/dagster.yaml``. So a profile is which ``dagster.yaml`` sits in
``$DAGSTER_HOME``. The postgres profile has a folder of its own (``./dagster_home/postgres`` unless
``DAGSTER_HOME`` is set) into which ``videogen`` writes a copy of ``deploy/postgres/dagster.yaml``,
marked on its first line and refreshed whenever the template changes; the URL (it holds the
password) is read from the environment when an instance loads and is never written anywhere.
A ``dagster.yaml`` that is the operator's own (not marked) is used as it is when its storage is
PostgreSQL. The URL is exported as ``postgresql+psycopg2://`` (the driver dagster-postgres itself
uses; SQLAlchemy 2.1 reads a plain ``postgresql://`` as psycopg 3), so every process of the
profile uses one driver whichever form was given. ``videogen dev`` (``make ui``)
prepares the folder, then runs ``dagster dev`` (or, with ``--daemon``, ``dagster-daemon run``)
with ``DAGSTER_HOME`` pointing at it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from video_assets.config import dagster_home

PROFILE_VAR = "VIDEO_ASSETS_PROFILE"
URL_VAR = "DAGSTER_POSTGRES_URL"
PROFILES = ("local", "postgres")
REPO = Path(__file__).resolve().parents[1]
POSTGRES_TEMPLATE = REPO / "deploy" / "postgres" / "dagster.yaml"
WORKSPACE = REPO / "workspace.yaml"
MARK = "# written by videogen for the postgres profile from deploy/postgres/dagster.yaml; " \
       "edits here are replaced: edit that file\n"
CONNECT_TIMEOUT_S = 5
DRIVER_SCHEME = "postgresql+psycopg2://"


class ProfileError(ValueError):
    """The profile's settings are wrong or its database is out of reach (the message says the fix)."""


def profile() -> str:
    """``VIDEO_ASSETS_PROFILE``: ``local`` (default) or ``postgres``."""
    raw = os.environ.get(PROFILE_VAR, "").strip()
    value = raw.lower() or "local"
    if value not in PROFILES:
        raise ProfileError(f"{PROFILE_VAR}={raw[:40]!r}: unknown profile; fix: local (SQLite in "
                           f"$DAGSTER_HOME, the default) or postgres (with {URL_VAR}="
                           "postgresql://user:pass@host:port/db)")
    return value


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages: secrets never reach logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = (parts.username or "") + ":***"
        return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))
    except ValueError:
        return "<unparseable URL>"


def _scrub(text: str, url: str) -> str:
    """``text`` with the URL's password (and the URL itself) taken out."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    text = text.replace(url, redact_url(url))
    return text.replace(password, "***") if password else text


def postgres_url() -> str:
    """``DAGSTER_POSTGRES_URL``, checked for form (scheme, host, database); never printed whole."""
    url = os.environ.get(URL_VAR, "").strip()
    fix = (f"fix: export {URL_VAR}=postgresql://user:pass@host:5432/db (the server of the postgres "
           f"profile), or unset {PROFILE_VAR} for the local profile (SQLite, nothing to start)")
    if not url:
        raise ProfileError(f"{URL_VAR}: not set, and {PROFILE_VAR}=postgres needs it; {fix}")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ProfileError(f"{URL_VAR}={redact_url(url)}: not a URL (bad port?); {fix}") from None
    if parts.scheme not in ("postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        raise ProfileError(f"{URL_VAR}: the scheme is {parts.scheme[:20]!r}, not postgresql; {fix}")
    if not parts.hostname or not parts.path.strip("/"):
        raise ProfileError(f"{URL_VAR}={redact_url(url)}: no host or no database name; {fix}")
    return url


def check_reachable(url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Connect once (within ``timeout_s``) so an unreachable server is one clear error, not a
    traceback after Dagster's retries. The password never appears in the message."""
    import psycopg2

    try:
        psycopg2.connect("postgresql://" + url.split("://", 1)[1],
                         connect_timeout=max(1, int(timeout_s))).close()
    except psycopg2.Error as exc:
        reason = " ".join(_scrub(str(exc), url).split())[:300]
        raise ProfileError(f"{URL_VAR}={redact_url(url)}: the PostgreSQL server cannot be used "
                           f"({reason}); fix: start the server or correct the URL (host, port, "
                           "user, password, database)") from None


def _storage_kind(config_file: Path) -> str:
    """``postgres`` when the instance config keeps its storage in PostgreSQL, else ``sqlite``."""
    try:
        config = yaml.safe_load(config_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{config_file}: unreadable instance config ({type(exc).__name__}); "
                           "fix: repair or remove the file") from None
    storage = config.get("storage") or {}
    postgres = (isinstance(storage, dict) and "postgres" in storage) \
        or "postgres" in str(config.get("run_storage", "")).lower()
    return "postgres" if postgres else "sqlite"


def prepare_home() -> Path:
    """The profile's instance folder, ready: its ``dagster.yaml`` is the profile's (written for
    the postgres profile), and for postgres the server answers. Exports ``DAGSTER_HOME``."""
    chosen = profile()
    home = dagster_home()
    config_file = home / "dagster.yaml"
    if chosen == "local":
        if config_file.is_file() and _storage_kind(config_file) == "postgres":
            raise ProfileError(f"DAGSTER_HOME={home} is a postgres instance (its dagster.yaml keeps "
                               f"the storage in PostgreSQL) but {PROFILE_VAR} is local; fix: export "
                               f"{PROFILE_VAR}=postgres (and {URL_VAR}), or point DAGSTER_HOME at "
                               "another folder (unset: ./dagster_home)")
        return home
    url = postgres_url()
    ours = config_file.is_file() and config_file.read_text().startswith(MARK)
    if config_file.is_file() and not ours:
        if _storage_kind(config_file) != "postgres":
            raise ProfileError(f"DAGSTER_HOME={home} holds a dagster.yaml with SQLite storage (the "
                               f"local profile's) but {PROFILE_VAR}=postgres; fix: unset "
                               "DAGSTER_HOME (the postgres profile's folder is then "
                               "./dagster_home/postgres) or point it at a folder of its own")
    else:
        if not POSTGRES_TEMPLATE.is_file():
            raise ProfileError(f"{POSTGRES_TEMPLATE}: the postgres profile's instance config is "
                               f"missing; fix: put a dagster.yaml with postgres storage into {home}")
        wanted = MARK + POSTGRES_TEMPLATE.read_text()
        if not ours or config_file.read_text() != wanted:
            tmp = config_file.with_name(f".dagster.yaml.{os.getpid()}")
            tmp.write_text(wanted)
            tmp.replace(config_file)  # atomic: a daemon reading it sees one whole file
    check_reachable(url)
    # one driver, dagster-postgres's own (SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3),
    # exported for this process and the ones it starts (the daemon, the run workers)
    os.environ[URL_VAR] = DRIVER_SCHEME + url.split("://", 1)[1]
    return home


def instance():
    """The Dagster instance of the profile (``ProfileError`` naming the variable and the fix)."""
    from dagster import DagsterInstance

    prepare_home()
    return DagsterInstance.get()


def dagster_command(daemon_only: bool) -> list[str]:
    """The command ``videogen dev`` runs: ``dagster dev`` (webserver and daemon) or
    ``dagster-daemon run``, over the product's workspace."""
    import sys

    bin_dir = Path(sys.executable).parent
    if daemon_only:
        return [str(bin_dir / "dagster-daemon"), "run", "-w", str(WORKSPACE)]
    return [str(bin_dir / "dagster"), "dev", "-w", str(WORKSPACE)]
