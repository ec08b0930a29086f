"""Media store: where every job's files live (a local folder now; S3 implements the same interface).

Keys are ``/``-separated paths relative to the store root, following PRODUCT.md's per-job layout
(``jobs/<job_id>/...``), plus ``cache/`` for content-addressed generations and ``staged/`` for
admitted requests waiting for their run.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
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

    @abc.abstractmethod
    def url(self, key: str) -> str:
        """A link a person can open (``file://`` locally, a presigned URL on S3)."""

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

    def url(self, key: str) -> str:
        return self.path(key).as_uri()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def put_file(self, key: str, src: str | Path) -> None:
        dst = self.path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

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
        tmp = dst.with_name(f".{dst.name}.link")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(src, tmp)  # cache -> job folder without a second copy on disk
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)

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
