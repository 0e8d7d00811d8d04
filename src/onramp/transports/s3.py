"""A drop zone in an S3 bucket, over any S3 API (SPEC §3.1, §9.1, §9.2).

Objects live at ``<bucket>/<prefix><partner>/date=YYYY-MM-DD/<file>``; the ETag is the
object's identity. Handled objects are copied to ``<prefix>processed/…`` or
``<prefix>rejected/…`` and then deleted, and ``sweep`` removes archived objects after
``inbound.s3_retention_days`` (§3.1: 30 days). Environments are kept apart by bucket
or prefix (``dropzone.s3_beta_bucket`` / ``s3_beta_prefix``, §9.1); two environments
may never share a key range.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from onramp.errors import FileRejected, UsageError
from onramp.transports.dropzone import (
    DropObject,
    DropObjectChanged,
    IgnoreLog,
    Outcome,
    PartnerFolders,
    log,
    resolve_partners,
)
from onramp.transports.layout import ARCHIVES, Ignored, archive_key, is_partner_folder, parse_key, put_back_key

if TYPE_CHECKING:
    from onramp.settings import Settings

# Copies above this size use multipart UploadPartCopy; below it a single CopyObject,
# which every S3 implementation supports (S3's own single-copy limit is 5 GiB).
_SINGLE_COPY_MAX = 5 * 1024**3
_DENIED = {"AccessDenied", "403", "Forbidden"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
_CHANGED = {"PreconditionFailed", "412"}


def s3_client(endpoint: str, access_key: str, secret_key: str, region: str) -> Any:
    """A boto3 S3 client; empty keys fall back to boto3's credential chain (IAM roles)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
        region_name=region,
        # Path-style works on every S3 API (SeaweedFS, MinIO) and on AWS.
        config=Config(s3={"addressing_style": "path"} if endpoint else {}, retries={"max_attempts": 5, "mode": "standard"}),
    )


def zone_location(settings: Settings, env: str) -> tuple[str, str]:
    """(bucket, prefix) of ``env``; refuses settings where prod and beta would overlap."""
    dz = settings.dropzone
    if not dz.s3_bucket:
        raise UsageError("dropzone.kind is 's3' but dropzone.s3_bucket is empty", hint="set dropzone.s3_bucket")
    prod = (dz.s3_bucket, normalize_prefix(dz.s3_prefix))
    beta = (dz.s3_beta_bucket or f"{dz.s3_bucket}-beta", normalize_prefix(dz.s3_beta_prefix or dz.s3_prefix))
    if prod[0] == beta[0] and (prod[1].startswith(beta[1]) or beta[1].startswith(prod[1])):
        raise UsageError(
            f"prod and beta drop zones overlap in bucket {prod[0]!r} ({prod[1]!r} vs {beta[1]!r})",
            hint="give beta its own bucket (dropzone.s3_beta_bucket) or disjoint prefixes, e.g. s3_prefix='prod' and s3_beta_prefix='beta' (SPEC §9.1)",
        )
    return prod if env == "prod" else beta


def normalize_prefix(prefix: str) -> str:
    """``''`` or ``'a/b/'``: no leading slash, one trailing slash."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


class S3DropZone:
    """Uploads under ``s3://bucket/prefix`` for one environment."""

    def __init__(self, client: Any, bucket: str, prefix: str, env: str, partners: PartnerFolders):
        self.client = client
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.env = env
        self._partners = partners
        self._ignore = IgnoreLog(env)

    @classmethod
    def from_settings(cls, settings: Settings, env: str, partners: PartnerFolders) -> S3DropZone:
        dz = settings.dropzone
        bucket, prefix = zone_location(settings, env)
        client = s3_client(dz.s3_endpoint, dz.s3_access_key.get_secret_value(), dz.s3_secret_key.get_secret_value(), dz.s3_region)
        return cls(client, bucket, prefix, env, partners)

    def list_objects(self) -> list[DropObject]:
        known = resolve_partners(self._partners)
        found = []
        for folder in self._top_level():
            if folder in ARCHIVES:
                continue
            if folder not in known or not is_partner_folder(folder):
                # Not listed further: an unknown prefix may hold anything, in any amount.
                self._ignore(self.prefix + folder + "/", Ignored("unknown partner: no partner has this name"))
                continue
            for item in self._objects(f"{self.prefix}{folder}/"):
                obj = self._drop_object(item, known)
                if obj is not None:
                    found.append(obj)
        return found

    def fetch(self, obj: DropObject, dest_dir: Path) -> Path:
        """Download the listed version; an unreadable object is a rejected file (§3.1)."""
        dest = Path(dest_dir) / obj.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        extra = {"IfMatch": _quoted(obj.etag)} if obj.etag else {}
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=obj.key, **extra)["Body"]
        except ClientError as exc:
            code = _code(exc)
            if code in _DENIED:
                raise FileRejected(
                    "access denied", where=obj.uri,
                    hint="upload with the canned ACL bucket-owner-full-control, e.g. aws s3 cp FILE s3://BUCKET/PARTNER/date=YYYY-MM-DD/ --acl bucket-owner-full-control",
                ) from exc
            if code in _MISSING | _CHANGED:
                raise DropObjectChanged(f"{obj.key} changed or vanished since it was listed", hint="list the zone again") from exc
            raise
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        with contextlib.closing(body), open(tmp, "wb") as out:
            for chunk in body.iter_chunks(chunk_size=8 * 1024 * 1024):
                out.write(chunk)
        os.replace(tmp, dest)
        return dest

    def finish(self, obj: DropObject, outcome: Outcome) -> None:
        """Copy to the archive (only the version that was processed), then delete."""
        from boto3.s3.transfer import TransferConfig

        target = self.prefix + archive_key(outcome, obj.key[len(self.prefix):])
        extra = {"CopySourceIfMatch": _quoted(obj.etag)} if obj.etag else {}
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": obj.key}, self.bucket, target, ExtraArgs=extra,
                Config=TransferConfig(multipart_threshold=_SINGLE_COPY_MAX, use_threads=False),
            )
        except ClientError as exc:
            if _code(exc) in _MISSING:
                log.debug("%s drop zone: %s already moved", self.env, obj.key)  # retry after a crash
                return
            if _code(exc) in _CHANGED:
                log.info("%s drop zone: %s replaced while processing; left for the next run", self.env, obj.key)
                return
            if _code(exc) in _DENIED and not self._readable(obj):
                # A copy needs read access. Not a transient error: retrying cannot help.
                raise FileRejected(
                    "access denied", where=obj.uri,
                    hint="the platform may not read this object, so it cannot archive it; delete it, or upload it "
                         "again with --acl bucket-owner-full-control",
                ) from exc
            raise
        # S3 has no conditional delete on general buckets: a re-upload in the instant
        # between copy and delete is lost (kept in the archive, under the old name).
        self.client.delete_object(Bucket=self.bucket, Key=obj.key)

    def put_back(self, partner: str, date: str, name: str, data: bytes) -> str:
        key = self.prefix + put_back_key(partner, date, name)
        content_type = "application/json" if name.endswith(".json") else "application/gzip"
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return key

    def receive(self, key: str, path: Path) -> None:
        """Store a finished FTP/SFTP upload at the zone-relative layout ``key`` (§3.1)."""
        self.client.upload_file(str(path), self.bucket, self.prefix + key)

    def sweep(self, older_than: datetime) -> list[str]:
        """Delete archived objects last written (i.e. archived) before ``older_than``."""
        cutoff = older_than if older_than.tzinfo else older_than.replace(tzinfo=timezone.utc)
        doomed = [
            item["Key"]
            for archive in ARCHIVES
            for item in self._objects(f"{self.prefix}{archive}/")
            if item["LastModified"] < cutoff
        ]
        for start in range(0, len(doomed), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in doomed[start:start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return doomed

    def download_handled(self, key: str, dest_dir: Path) -> list[Path]:
        """Copies of the upload at ``key`` — still there, or archived under processed/ or
        rejected/ — downloaded into ``dest_dir`` (one subdirectory each), for reprocessing."""
        rel = key[len(self.prefix):] if key.startswith(self.prefix) else key
        found = []
        for n, candidate in enumerate([key, *(self.prefix + archive_key(o, rel) for o in ARCHIVES)]):
            dest = Path(dest_dir) / str(n) / Path(key).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.client.download_file(self.bucket, candidate, str(dest))
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    continue
                raise
            found.append(dest)
        return found

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _readable(self, obj: DropObject) -> bool:
        """Whether the platform may read ``obj`` — to tell a denied source from a denied target
        (e.g. no s3:PutObject on ``rejected/``, an operator's fix that a retry then picks up)."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=obj.key)
        except ClientError as exc:
            return _code(exc) not in _DENIED
        return True

    def _top_level(self) -> Iterator[str]:
        """Folder names directly under the prefix; loose objects there are logged."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/")
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                yield common["Prefix"][len(self.prefix):].rstrip("/")
            for item in page.get("Contents", []):
                self._ignore(item["Key"], Ignored("wrong depth: expected <partner>/date=YYYY-MM-DD/<file>"))

    def _objects(self, prefix: str) -> Iterator[Mapping[str, Any]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _drop_object(self, item: Mapping[str, Any], known: Mapping[str, int]) -> DropObject | None:
        key = item["Key"]
        if key.endswith("/"):
            return None  # a "folder" marker some S3 consoles create
        place = parse_key(key[len(self.prefix):])
        if isinstance(place, Ignored):
            self._ignore(key, place)
            return None
        return DropObject(
            partner=place.partner, date=place.date, name=place.name, key=key, size=item["Size"],
            mtime=item["LastModified"].timestamp(), etag=item["ETag"].strip('"'), pid=known[place.partner],
            uri=self.uri(key),
        )


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _quoted(etag: str | None) -> str:
    return f'"{etag}"'
