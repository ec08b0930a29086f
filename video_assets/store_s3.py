"""The S3 media store: the same interface as the local folder, in one bucket.

The client comes from dagster-aws's ``S3Resource`` (boto3), so the standard AWS settings apply:
credentials from the environment or a profile, and ``AWS_ENDPOINT_URL`` for any S3-compatible
server. Uploads and downloads are streamed by boto3's transfer manager (multipart above 8 MB);
nothing reads a whole video into memory. Every object is tagged ``video_assets-kind=final`` or
``intermediate`` so that ``videogen s3 setup``'s lifecycle rules can expire them separately.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlencode

from video_assets.config import DEFAULT_URL_EXPIRY_S, check_url_expiry_s
from video_assets.store import MediaStore, ObjectInfo, _check_key, file_digest, is_cache_key

KIND_TAG = "video_assets-kind"
FINAL_NAMES = frozenset({"final.mp4", "thumbnail.jpg", "quality.json", "captions.srt", "captions.vtt",
                         "lyrics_user.txt"})
MB = 1 << 20
DIGEST_META, SIZE_META = "sha256", "size-bytes"  # a cache entry's digest, in its object metadata


def object_kind(key: str) -> str:
    """``final`` for what a job delivers and what describes it (its video, thumbnail, subtitle
    files and the user's lyrics, and its small JSON files: request, beat grid, script, quality,
    the history of its versions), every file of every version (``versions/<n>/``: the versions
    are the user's history, kept whole), the inbox and rejection reports (users' own files), the
    Parquet warehouse's files; ``intermediate`` for everything else (the current version's
    images and clips, which its version folder keeps too; the cache; staging)."""
    parts = PurePosixPath(key).parts
    if parts[0] in ("inbox", "rejected", "warehouse"):  # users' files; the Parquet warehouse
        return "final"
    if parts[0] != "jobs" or len(parts) < 3:
        return "intermediate"
    if parts[2] == "versions" and len(parts) >= 5:
        return "final"
    kept = parts[-1] in FINAL_NAMES or parts[-1].endswith(".json")  # the JSON files are small
    return "final" if kept and len(parts) == 3 else "intermediate"


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client through dagster-aws (``AWS_ENDPOINT_URL`` and region from the env)."""
    from dagster_aws.s3 import S3Resource

    return S3Resource(
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
    ).get_client()


class S3Store(MediaStore):
    """Objects under ``s3://bucket/<prefix><key>``."""

    links_expire = True
    cache_expires = True  # `videogen s3 setup`'s lifecycle expires intermediates after a day

    def __init__(self, bucket: str, client: Any = None, prefix: str = "",
                 url_expiry_s: int = DEFAULT_URL_EXPIRY_S) -> None:
        from boto3.s3.transfer import TransferConfig

        self.bucket = bucket
        self.client = client or s3_client()
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url_expiry_s = url_expiry_s
        self.transfer = TransferConfig(multipart_threshold=8 * MB, multipart_chunksize=8 * MB,
                                       max_concurrency=4)

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def url(self, key: str, expires_s: int | None = None) -> str:
        """A presigned GET link, valid ``expires_s`` seconds, by default ``url_expiry_s``
        (``VIDEO_ASSETS_URL_EXPIRY_S``, an hour). It carries the signer's credentials' session
        token, if any: sign when someone asks (``videogen link``), never store it."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=check_url_expiry_s(expires_s or self.url_expiry_s, "expires_s"))

    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(f"no {self.uri(key)}")
        return int(head["ContentLength"])

    def info(self, key: str) -> ObjectInfo | None:
        head = self._head(key)
        if head is None:
            return None
        return ObjectInfo(key=key, size_bytes=int(head["ContentLength"]),
                          modified_ns=int(head["LastModified"].timestamp() * 1e9),
                          etag=head["ETag"].strip('"'))

    def put_file(self, key: str, src: str | Path) -> None:
        # S3 makes an object visible only once its upload completed: readers never see half
        extra: dict[str, Any] = {"Tagging": urlencode({KIND_TAG: object_kind(key)})}
        if is_cache_key(key):  # the digest travels with the object, written in the same request
            digest = file_digest(src)
            extra["Metadata"] = {DIGEST_META: digest.sha256, SIZE_META: str(digest.size_bytes)}
        self.client.upload_file(str(src), self.bucket, self._key(key), Config=self.transfer,
                                ExtraArgs=extra)

    def _entry_state(self, key: str) -> str:
        """An object and its metadata are written by one request (no partial object, no write
        through a shared file), so the size is compared with the recorded one and the recorded
        sha256 must be there; an object without it (written before digests were recorded, or
        by something else) is reused when it is not empty."""
        head = self._head(key)
        if head is None:
            return "missing"
        size_bytes, meta = int(head["ContentLength"]), head.get("Metadata") or {}
        if DIGEST_META not in meta:
            return "ok" if size_bytes > 0 else "empty, and no digest recorded"
        if str(size_bytes) != meta.get(SIZE_META):
            return f"{size_bytes} bytes, {meta.get(SIZE_META)} recorded"
        return "ok"

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"no {self.uri(key)}") from None
            raise

    def copy(self, src_key: str, dst_key: str) -> None:
        if src_key == dst_key:
            return
        if self._head(src_key) is None:
            raise FileNotFoundError(f"store has no {self.uri(src_key)} to copy to {dst_key!r}")
        # server-side (multipart for large objects): no bytes through this machine
        self.client.copy(
            {"Bucket": self.bucket, "Key": self._key(src_key)}, self.bucket, self._key(dst_key),
            Config=self.transfer,
            ExtraArgs={"Tagging": urlencode({KIND_TAG: object_kind(dst_key)}),
                       "TaggingDirective": "REPLACE"})

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str, start_after: str = "") -> list[ObjectInfo]:
        """Objects under ``prefix`` in key order (after ``start_after`` if given), all pages."""
        paginator = self.client.get_paginator("list_objects_v2")
        args = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        if start_after:
            args["StartAfter"] = self.prefix + start_after
        out = []
        for page in paginator.paginate(**args):
            for obj in page.get("Contents", []):
                out.append(ObjectInfo(
                    key=obj["Key"][len(self.prefix):], size_bytes=int(obj["Size"]),
                    modified_ns=int(obj["LastModified"].timestamp() * 1e9),
                    etag=obj["ETag"].strip('"')))
        return out

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """Download (streamed) to a temporary file that is removed afterwards, also on error."""
        if self._head(key) is None:
            raise FileNotFoundError(f"store has no {self.uri(key)}")
        with tempfile.TemporaryDirectory(prefix="video_assets-s3-") as tmp:
            path = Path(tmp) / PurePosixPath(key).name
            self.client.download_file(self.bucket, self._key(key), str(path), Config=self.transfer)
            yield path


def lifecycle_rules(final_days: int) -> list[dict]:
    """Intermediates (tagged ``intermediate``) expire after a day; a job's deliverables (tagged
    ``final`` under ``jobs/``) after ``final_days``; the inbox and rejections are never expired."""
    return [
        {"ID": "video_assets-intermediates-24h", "Status": "Enabled",
         "Filter": {"Tag": {"Key": KIND_TAG, "Value": "intermediate"}},
         "Expiration": {"Days": 1}},
        {"ID": f"video_assets-finals-{final_days}d", "Status": "Enabled",
         "Filter": {"And": {"Prefix": "jobs/",
                            "Tags": [{"Key": KIND_TAG, "Value": "final"}]}},
         "Expiration": {"Days": final_days}},
        {"ID": "video_assets-abandoned-uploads", "Status": "Enabled",
         "Filter": {"Prefix": ""}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
    ]


PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                       "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


def setup_bucket(client: Any, bucket: str, final_days: int = 7) -> dict:
    """Apply the lifecycle rules and block public access; return what the bucket now reports."""
    from botocore.exceptions import ClientError

    if final_days < 1:
        raise ValueError(f"finals must live at least 1 day, got {final_days}; fix: --final-days 7")
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        raise ValueError(f"bucket {bucket!r} is not reachable ({exc.response['Error'].get('Code')});"
                         " fix: create it, check VIDEO_ASSETS_BUCKET, AWS_ENDPOINT_URL and the "
                         "credentials") from None
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": lifecycle_rules(final_days)})
    client.put_public_access_block(Bucket=bucket,
                                   PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
    rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    block = client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    return {"bucket": bucket, "lifecycle_rules": [r["ID"] for r in rules],
            "public_access_blocked": all(block.get(k) for k in PUBLIC_ACCESS_BLOCK)}
