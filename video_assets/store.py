"""Media store: where every job's files live (a local folder now; S3 implements the same interface).

Keys are ``/``-separated paths relative to the store root, following PRODUCT.md's per-job layout
(``jobs/<job_id>/...``), plus ``cache/`` for content-addressed generations and ``staged/`` for
admitted requests waiting for their run.

A cache entry is written with its size and sha256 recorded beside it, and ``MediaStore.cached``
checks both before the entry is reused: a damaged entry is removed and generated again, never
reused. Writes and copies go through fresh, uniquely named temporary files, so nothing ever writes
into a file another key shares by a hard link.

A paid provider's raw output (``Downloads``) is kept in the cache under a key of its own
(``cache/download/``) the moment it is on disk, before it is processed (a clip normalised, an
image fitted), until the processed result is cached: a worker killed while processing it leaves
the paid download behind, and the retry processes that instead of paying the provider again.
Likewise a prediction's id is kept (``cache/prediction/``) from its creation until then: a worker
killed while the prediction runs leaves its id behind, and the retry follows that prediction.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


def job_key(job_id: str, *parts: str) -> str:
    """Key of a file in a job's folder, e.g. ``job_key(j, "clips", "01.mp4")``."""
    return "/".join(("jobs", job_id, *parts))


def cache_key(kind: str, ext: str, **inputs: object) -> str:
    """Content address of a generation: a hash of everything that determines its output."""
    blob = json.dumps({"kind": kind, **inputs}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()
    return f"cache/{kind}/{digest[:2]}/{digest}.{ext.lstrip('.')}"


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def is_cache_key(key: str) -> bool:
    return key.startswith("cache/")


@dataclass(frozen=True)
class Digest:
    """What a cache entry held when it was written."""

    size_bytes: int
    sha256: str


def file_digest(path: str | Path) -> Digest:
    return Digest(size_bytes=Path(path).stat().st_size, sha256=sha256_file(path))


log = logging.getLogger(__name__)


def _check_key(key: str) -> str:
    p = PurePosixPath(key)
    if p.is_absolute() or ".." in p.parts or not key or key.endswith("/"):
        raise ValueError(f"store key {key!r} must be a relative path without '..'")
    return key


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size_bytes: int
    modified_ns: int
    etag: str  # changes whenever the content changes


class MediaStore(abc.ABC):
    """The interface every media store implements."""

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """Where the object lives (a local path, or ``s3://bucket/key``)."""

    links_expire = False  # whether ``url`` makes links that expire (presigned, on S3)
    cache_expires = False  # whether cache entries expire on their own (S3's lifecycle rules)

    @abc.abstractmethod
    def url(self, key: str, expires_s: int | None = None) -> str:
        """A link a person can open (``file://`` locally; on S3 a presigned URL, valid
        ``expires_s`` seconds or the store's default): made when asked for, and where
        ``links_expire`` never stored."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def put_file(self, key: str, src: str | Path) -> None:
        """Store a local file under ``key`` atomically (readers never see half a file)."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abc.abstractmethod
    def copy(self, src_key: str, dst_key: str) -> None: ...

    @abc.abstractmethod
    def size(self, key: str) -> int: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object if it exists."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a folder, ``/``-terminated), sorted by key."""

    @abc.abstractmethod
    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """A local file with the object's content, valid inside the ``with`` block."""

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.scratch_dir() as tmp:
            path = tmp / PurePosixPath(key).name
            path.write_bytes(data)
            self.put_file(key, path)

    def put_json(self, key: str, obj: object) -> None:
        self.put_bytes(key, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())

    def get_json(self, key: str) -> object:
        return json.loads(self.get_bytes(key))

    def cached(self, key: str) -> bool:
        """Whether the cache key ``key`` holds an entry fit for reuse: it exists and its size
        and sha256 match those recorded when it was written. A damaged entry is deleted (and
        logged), so the caller generates it again; an entry written before digests were recorded
        is reused if it is not empty (and its digest recorded now), else deleted."""
        state = self._entry_state(key)
        if state in ("ok", "missing"):
            return state == "ok"
        log.warning("cache entry %s is damaged (%s); removing it so that it is generated again",
                    self.uri(key), state)
        self.delete(key)
        return False

    @abc.abstractmethod
    def _entry_state(self, key: str) -> str:
        """``ok``, ``missing``, or what is wrong with the cache entry ``key``."""

    @contextlib.contextmanager
    def scratch_dir(self) -> Iterator[Path]:
        """A temporary local folder, removed afterwards, also when the block fails."""
        with tempfile.TemporaryDirectory(prefix="video_assets-") as tmp:
            yield Path(tmp)


class LocalStore(MediaStore):
    """A folder on disk. Writes go to a temporary file beside the target, then ``os.replace``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def url(self, key: str, expires_s: int | None = None) -> str:
        return self.path(key).as_uri()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    @staticmethod
    def _digest_path(path: Path) -> Path:
        """Where a cache entry's digest is kept: a hidden file beside it (``list`` skips it)."""
        return path.with_name(f".{path.name}.sha256")

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        self._digest_path(path).unlink(missing_ok=True)

    @staticmethod
    def _fresh_copy(src: str | Path, dst: Path) -> str:
        """A new file (its own inode, a name no one else uses) beside ``dst`` with ``src``'s
        bytes: what is then renamed onto ``dst``. Never copies into an existing file, which may
        be a hard link shared with another key."""
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)  # into the file just made, which no other name shares
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp

    def _record_digest(self, path: Path, digest: Digest) -> None:
        target = self._digest_path(path)
        fd, tmp = tempfile.mkstemp(prefix=f"{target.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as out:
            json.dump({"size_bytes": digest.size_bytes, "sha256": digest.sha256}, out)
        os.replace(tmp, target)

    def _recorded_digest(self, path: Path) -> Digest | None:
        try:
            data = json.loads(self._digest_path(path).read_text())
            return Digest(size_bytes=int(data["size_bytes"]), sha256=str(data["sha256"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return Digest(size_bytes=-1, sha256="")  # an unreadable record matches nothing

    def put_file(self, key: str, src: str | Path) -> None:
        dst = self.path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._fresh_copy(src, dst)
        try:
            digest = file_digest(tmp) if is_cache_key(key) else None
            os.replace(tmp, dst)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if digest is not None:
            self._record_digest(dst, digest)

    def _entry_state(self, key: str) -> str:
        path = self.path(key)
        if not path.is_file():
            return "missing"
        recorded = self._recorded_digest(path)
        size_bytes = path.stat().st_size
        if recorded is None:  # written before digests were recorded
            if size_bytes == 0:
                return "empty, and no digest recorded"
            self._record_digest(path, file_digest(path))
            return "ok"
        if size_bytes != recorded.size_bytes:
            return f"{size_bytes} bytes, {recorded.size_bytes} recorded"
        if sha256_file(path) != recorded.sha256:
            return "sha256 differs from the one recorded"
        return "ok"

    def get_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def copy(self, src_key: str, dst_key: str) -> None:
        src, dst = self.path(src_key), self.path(dst_key)
        if src == dst:
            return
        if not src.is_file():
            raise FileNotFoundError(f"store has no {src_key!r} (looked at {src}) to copy to "
                                    f"{dst_key!r}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if os.path.samefile(src, dst):  # already a link to it
                return
        tmp: Path | str | None = None
        for _ in range(8):
            # cache -> job folder without a second copy on disk, under a name no one else uses:
            # os.link never replaces an existing name (a name taken raises, and another is tried)
            name = dst.with_name(f".{dst.name}.{secrets.token_hex(8)}.link")
            try:
                os.link(src, name)
            except FileExistsError:
                continue
            except OSError:  # no hard links here (another device, a file system without them)
                break
            tmp = name
            break
        if tmp is None:
            tmp = self._fresh_copy(src, dst)
        try:
            os.replace(tmp, dst)
        finally:
            # a rename onto a link to the same file does nothing and leaves the name behind
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self.path(prefix.rstrip("/") or ".") if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        out = []
        for p in sorted(base.rglob("*")):
            if not p.is_file() or p.name.startswith("."):
                continue
            st = p.stat()
            out.append(ObjectInfo(
                key=p.relative_to(self.root).as_posix(), size_bytes=st.st_size,
                modified_ns=st.st_mtime_ns, etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
            ))
        return out

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"store has no {key!r} (looked at {path})")
        yield path


# ---------------------------------------------------------------------------------------------
# paid downloads, kept before they are processed


class Downloads:
    """The raw outputs of one paid generation, kept in ``media``'s cache: ``keep`` puts a
    download there under ``key(...)`` (what the provider was sent: a prediction with the same
    inputs gives the same output), ``restore`` copies a kept one (size and sha256 checked, as
    every cache entry) to where the provider would have downloaded it, and ``forget`` removes
    what this generation kept or restored (once its result is cached; or when its output may be
    what failed, so that a retry asks the provider again)."""

    def __init__(self, media: MediaStore) -> None:
        self.media = media
        self.keys: list[str] = []

    @staticmethod
    def key(provider: str, model: str, inputs: dict, units: float, ext: str) -> str:
        return cache_key("download", ext or "bin", provider=provider, model=model, inputs=inputs,
                         units=units)

    def restore(self, key: str, dst: Path) -> bool:
        """Copy the kept download ``key`` to ``dst``; False when there is none fit for reuse."""
        if not self.media.cached(key):
            return False
        with self.media.local_path(key) as src:
            shutil.copyfile(src, dst)
        self.keys.append(key)
        return True

    def keep(self, key: str, src: Path) -> None:
        """Put the download ``src`` into the cache as ``key``; a store that fails here does not
        fail the paid call (its output is on disk, to be processed): it is logged."""
        try:
            self.media.put_file(key, src)
        except Exception as exc:  # noqa: BLE001 - a safety copy; the call itself succeeded
            log.warning("could not keep the paid download %s (%s: %s); if this worker dies before "
                        "its result is cached, a retry pays for it again", self.media.uri(key),
                        type(exc).__name__, exc)
            return
        self.keys.append(key)

    def forget(self) -> None:
        for key in self.keys:
            self.media.delete(key)
        self.keys.clear()

    # A prediction's id is kept from its creation until its output is cached, so that a retry
    # after the worker died follows that prediction (paid once it succeeds) instead of creating
    # another. Replicate keeps a prediction's output for an hour: an older id is not followed.
    PREDICTION_TTL_S = 50 * 60

    @staticmethod
    def prediction_key(key: str) -> str:
        return cache_key("prediction", "json", download=key)

    def remember(self, key: str, prediction_id: str) -> None:
        """Keep the id of the prediction just created for the download ``key`` (logged, not
        raised, when the store cannot: the call goes on)."""
        record = self.prediction_key(key)
        try:
            self.media.put_json(record, {"id": prediction_id, "created_unix_s": time.time()})
        except Exception as exc:  # noqa: BLE001 - a safety record; the prediction runs anyway
            log.warning("could not keep prediction %s's id (%s: %s); if this worker dies before "
                        "it ends, a retry pays for another", prediction_id, type(exc).__name__, exc)
            return
        self.keys.append(record)

    def pending(self, key: str) -> str | None:
        """The id of a prediction an earlier attempt created for the download ``key`` and never
        saw end (its worker died), if it is recent enough to follow; a damaged or stale record
        is removed."""
        record = self.prediction_key(key)
        if not self.media.exists(record):
            return None
        try:
            data = self.media.get_json(record)
            prediction_id, age_s = str(data["id"]), time.time() - float(data["created_unix_s"])
        except (ValueError, KeyError, TypeError):
            prediction_id, age_s = "", float("inf")
        if age_s > self.PREDICTION_TTL_S or not PREDICTION_ID_RE.fullmatch(prediction_id):
            self.media.delete(record)
            return None
        self.keys.append(record)
        return prediction_id


PREDICTION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


_DOWNLOADS: ContextVar[Downloads | None] = ContextVar("video_assets_downloads", default=None)


@contextlib.contextmanager
def keeping_downloads(media: MediaStore) -> Iterator[Downloads]:
    """Inside the block (in this thread), a paid provider keeps what it downloads in ``media``'s
    cache before processing it, and uses a download kept earlier instead of paying again
    (``kept_downloads``). ``generation.cached_generation`` opens it around every paid call."""
    downloads = Downloads(media)
    token = _DOWNLOADS.set(downloads)
    try:
        yield downloads
    finally:
        _DOWNLOADS.reset(token)


def kept_downloads() -> Downloads | None:
    """Where the paid call running in this thread keeps its downloads (None: outside a cached
    generation, nothing is kept)."""
    return _DOWNLOADS.get()
