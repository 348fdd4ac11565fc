"""Staging in object storage: a node's artifacts (checkpoints, models, reports) kept in a
local directory or an S3-compatible object store, encrypted on the client side with the
owner's key, each object's SHA-256 recorded in the job store and checked on every read.

Backends (`ObjectStore`): `DirObjectStore` (a directory; an optional `quota_bytes` makes a
write past the quota fail with `StorageFull`, as a full disk does) and `S3ObjectStore`
(boto3, any S3-protocol server: AWS S3, MinIO, Ceph; the tests use moto's standalone
server, a *test* server). `make_object_store` builds one from a node's `staging:` config.

`Staging` puts and gets whole artifacts through a backend:

- **Encryption (framed AES-GCM).** Each object is `header || frame_0 || ... || frame_k`;
  the header holds a format tag, a random 16-byte object id and the frame size. The frame
  key is HKDF-SHA256(owner key, salt = object id, info = object name), and frame i is
  AES-GCM with nonce `i (11 bytes) || last (1 byte)`, additional data the header (the
  STREAM construction): a frame changed, dropped, reordered, moved to another object or
  an object cut short fails to decrypt. The key stays at the owner's node (`key_file`).
- **Integrity record.** `put` returns `ArtifactRecord(name, sha256, size)` of the stored
  bytes (the ciphertext); the node sends it to the coordinator, which keeps it in the job
  store (`artifacts` table). `get(name, sha256=...)` refuses an object whose digest
  differs (`ArtifactTampered`) before decrypting it.

What each party learns (adversary model): the object store (and whoever runs it) sees
object names (`jobs/<job id>/checkpoints/after-2/frame.csv`), sizes and ciphertext, never
plaintext or the key; a store that changes, swaps or truncates an object is detected at
the next read. The coordinator sees names, sizes and SHA-256 digests *of ciphertexts*
(which say nothing of the content: each object has a fresh random id and key). Peers see
nothing: staging is local to each node. Deviating store: it can delete objects (a resume
then fails naming the party: "cannot resume") but cannot make a node accept altered data.

>>> import tempfile
>>> st = Staging(DirObjectStore(tempfile.mkdtemp()), key=bytes(32))
>>> rec = st.put("jobs/j1/model.json", b'{"w": [0.5, -1.25]}')
>>> rec.size > 19, len(rec.sha256)
(True, 64)
>>> st.get("jobs/j1/model.json", sha256=rec.sha256)
b'{"w": [0.5, -1.25]}'
>>> b"0.5" in st.store.get("jobs/j1/model.json")   # the store holds ciphertext only
False
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, CryptoError, ResourceError

__all__ = [
    "ArtifactRecord",
    "ArtifactTampered",
    "DirObjectStore",
    "ObjectStore",
    "S3ObjectStore",
    "Staging",
    "StorageError",
    "StorageFull",
    "load_or_create_key",
    "make_object_store",
    "read_s3_uri",
]

_MAGIC = b"JMLSTG1\0"
_HEADER = struct.Struct(">8s16sI")  # magic, object id, frame size
FRAME = 1 << 20  # plaintext bytes per frame: a large artifact is never held twice in one buffer
_TAG = 16


class StorageError(ResourceError):
    """An object store failed (unreachable, refused, missing object); the message names the
    party's store and the object, never its content."""

    safe_text = True


class StorageFull(StorageError):
    """The object store (or disk) has no room left for an artifact (ENOSPC, quota)."""


class ArtifactTampered(CryptoError):
    """A stored artifact is not what this node wrote: its digest differs from the job store's
    record, or its authenticated encryption does not verify."""

    safe_text = True


@dataclass(frozen=True)
class ArtifactRecord:
    """What the job store keeps of a staged object: its name, the SHA-256 and size of the stored bytes.

    >>> ArtifactRecord("a", "00" * 32, 3).to_json()["size"]
    3
    """

    name: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (what the node sends to the coordinator)."""
        return {"name": self.name, "sha256": self.sha256, "size": self.size}


# -- backends ---------------------------------------------------------------------------
def _check_name(name: str) -> str:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(f"object names are relative paths without '.' or '..' parts, got {name!r}", field="name")
    return name


class ObjectStore(ABC):
    """Where staged objects live: bytes under '/'-separated names."""

    @abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Store `data` under `name` (replacing an object of that name)."""

    @abstractmethod
    def get(self, name: str) -> bytes:
        """The bytes stored under `name` (`StorageError` if there is none)."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove `name` (nothing if absent)."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """The names starting with `prefix`, sorted."""


class DirObjectStore(ObjectStore):
    """Objects as files under `root`. `quota_bytes`: a write that would take the directory
    past it fails with `StorageFull` and leaves nothing behind (a full disk, reproducibly);
    a real ENOSPC from the file system gives the same error.

    >>> import tempfile
    >>> s = DirObjectStore(tempfile.mkdtemp(), quota_bytes=10)
    >>> s.put("a/b", b"12345"); s.list("a/")
    ['a/b']
    >>> s.put("a/c", b"123456")
    Traceback (most recent call last):
    ...
    jointml.orchestration.staging.StorageFull: the object store at directory quota 10 bytes is full: ...
    """

    def __init__(self, root: str | Path, quota_bytes: int | None = None, label: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.quota_bytes = quota_bytes
        self.label = label or ("directory" if quota_bytes is None else f"directory quota {quota_bytes} bytes")

    def _path(self, name: str) -> Path:
        return self.root / _check_name(name)

    def used_bytes(self) -> int:
        """Bytes held by every object under the root."""
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        if self.quota_bytes is not None:
            old = path.stat().st_size if path.is_file() else 0
            over = self.used_bytes() - old + len(data) - self.quota_bytes
            if over > 0:
                raise StorageFull(f"the object store at {self.label} is full: writing {name!r} ({len(data)} bytes) "
                                  f"needs {over} more byte(s)")
        tmp = path.with_name(path.name + f".tmp-{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(f"the object store at {self.label} is full (no space left on the device) "
                                  f"writing {name!r}") from None
            raise StorageError(f"the object store at {self.label} could not write {name!r}: "
                               f"{errno.errorcode.get(e.errno or 0, 'error')}") from None

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"the object store at {self.label} has no object {name!r}") from None

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[str]:
        out = [p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()]
        return sorted(n for n in out if n.startswith(prefix) and ".tmp-" not in n)


class S3ObjectStore(ObjectStore):
    """Objects in an S3 bucket (boto3; the `s3` extra), under an optional key `prefix`.

    `endpoint_url` points at an S3-compatible server (MinIO, Ceph, moto's test server);
    credentials come from the arguments or boto3's usual chain (environment, profile).
    `create_bucket`: make the bucket when it does not exist (deployments usually pre-create it).
    """

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 create_bucket: bool = False):
        from ..core.optional import require

        require("boto3", "s3", feature="S3 staging")
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.label = f"s3://{bucket}/{self.prefix}"
        cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                     signature_version="s3v4")
        self.s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1",
                               aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, config=cfg)
        if create_bucket:
            self._ensure_bucket()

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._call("create bucket", self.bucket, lambda: self.s3.create_bucket(Bucket=self.bucket))

    def _call(self, what: str, name: str, fn: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", "error"))
            if code in ("NoSuchKey", "404"):
                raise StorageError(f"the object store at {self.label} has no object {name!r}") from None
            if code in ("EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "InsufficientStorage"):
                raise StorageFull(f"the object store at {self.label} is full: {what} {name!r} refused ({code})") from None
            raise StorageError(f"the object store at {self.label} refused to {what} {name!r} ({code})") from None
        except BotoCoreError as e:
            raise StorageError(f"the object store at {self.label} is unreachable ({type(e).__name__}) "
                               f"while trying to {what} {name!r}") from None

    def put(self, name: str, data: bytes) -> None:
        key = self.prefix + _check_name(name)
        self._call("write", name, lambda: self.s3.put_object(Bucket=self.bucket, Key=key, Body=data))

    def get(self, name: str) -> bytes:
        key = self.prefix + _check_name(name)
        return bytes(self._call("read", name, lambda: self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()))

    def delete(self, name: str) -> None:
        key = self.prefix + _check_name(name)
        self._call("delete", name, lambda: self.s3.delete_object(Bucket=self.bucket, Key=key))

    def list(self, prefix: str = "") -> list[str]:
        out: list[str] = []

        def pages() -> None:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                out.extend(o["Key"][len(self.prefix):] for o in page.get("Contents", []))

        self._call("list", prefix or "/", pages)
        return sorted(out)


def make_object_store(cfg: dict[str, Any], base: Path | None = None) -> ObjectStore:
    """An object store from a node's `staging:` config: `{backend: dir, root: PATH,
    quota_bytes: N}` or `{backend: s3, bucket: B, prefix: P, endpoint_url: URL, region: R,
    create_bucket: bool}` (S3 credentials from boto3's chain, or `access_key_id` /
    `secret_access_key`).

    >>> import tempfile
    >>> make_object_store({"backend": "dir", "root": tempfile.mkdtemp(), "quota_bytes": 100}).quota_bytes
    100
    """
    backend = str(cfg.get("backend", "dir"))
    if backend == "dir":
        if "root" not in cfg:
            raise ConfigError("staging backend 'dir' needs 'root' (a directory)", field="staging.root")
        root = Path(cfg["root"])
        q = cfg.get("quota_bytes")
        return DirObjectStore(root if root.is_absolute() or base is None else base / root,
                              quota_bytes=int(q) if q is not None else None)
    if backend == "s3":
        if "bucket" not in cfg:
            raise ConfigError("staging backend 's3' needs 'bucket'", field="staging.bucket")
        return S3ObjectStore(str(cfg["bucket"]), prefix=str(cfg.get("prefix", "")), endpoint_url=cfg.get("endpoint_url"),
                             region=cfg.get("region"), access_key_id=cfg.get("access_key_id"),
                             secret_access_key=cfg.get("secret_access_key"),
                             create_bucket=bool(cfg.get("create_bucket", False)))
    raise ConfigError(f"unknown staging backend {backend!r} (use 'dir' or 's3')", field="staging.backend")


def read_s3_uri(uri: str, cfg: dict[str, Any] | None = None) -> bytes:
    """The bytes of `s3://bucket/key` (a data source kept in the owner's object store, read
    as it is: the owner's own data, in its own store). The endpoint and credentials are
    those of `cfg` (the node's `staging:` section) when it is an S3 one, else boto3's chain.

    >>> read_s3_uri("https://x/y")
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: field 'data_sources': not an s3://bucket/key location: 'https://x/y'
    """
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise ConfigError(f"not an s3://bucket/key location: {uri!r}", field="data_sources")
    c = cfg if cfg is not None and cfg.get("backend") == "s3" else {}
    store = S3ObjectStore(bucket, endpoint_url=c.get("endpoint_url"), region=c.get("region"),
                          access_key_id=c.get("access_key_id"), secret_access_key=c.get("secret_access_key"))
    return store.get(key)


def load_or_create_key(path: str | Path) -> bytes:
    """The owner's 32-byte staging key from `path`, made (from the OS CSPRNG, file mode 0600)
    when the file does not exist yet. It never leaves the node.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "staging.key"
    >>> load_or_create_key(p) == load_or_create_key(p), oct(p.stat().st_mode & 0o777)
    (True, '0o600')
    """
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    key = p.read_bytes()
    if len(key) != 32:
        raise ConfigError(f"the staging key file {p} must hold 32 bytes, it holds {len(key)}", field="staging.key_file")
    return key


# -- encryption and records ---------------------------------------------------------------
def _frame_key(key: bytes, object_id: bytes, name: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(hashes.SHA256(), 32, salt=object_id, info=b"jointml-staging-v1|" + name.encode()).derive(key)


def _nonce(i: int, last: bool) -> bytes:
    return i.to_bytes(11, "big") + (b"\1" if last else b"\0")


def seal(key: bytes, name: str, data: bytes, frame: int = FRAME) -> bytes:
    """`data` encrypted for object `name` (framed AES-GCM, see the module docstring)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = _HEADER.pack(_MAGIC, secrets.token_bytes(16), frame)
    aead = AESGCM(_frame_key(key, header[8:24], name))
    n = max(1, -(-len(data) // frame))
    out = [header]
    for i in range(n):
        out.append(aead.encrypt(_nonce(i, i == n - 1), data[i * frame:(i + 1) * frame], header))
    return b"".join(out)


def unseal(key: bytes, name: str, blob: bytes) -> bytes:
    """The plaintext of a sealed object; `ArtifactTampered` if any frame does not verify."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) < _HEADER.size + _TAG:
        raise ArtifactTampered(f"staged object {name!r} is too short to be one this node wrote")
    magic, object_id, frame = _HEADER.unpack(blob[:_HEADER.size])
    if magic != _MAGIC or not 0 < frame <= 1 << 26:
        raise ArtifactTampered(f"staged object {name!r} is not in the staging format")
    header, body, step = blob[:_HEADER.size], memoryview(blob)[_HEADER.size:], frame + _TAG
    aead = AESGCM(_frame_key(key, object_id, name))
    n = max(1, -(-len(body) // step))
    out = []
    try:
        for i in range(n):
            out.append(aead.decrypt(_nonce(i, i == n - 1), bytes(body[i * step:(i + 1) * step]), header))
    except InvalidTag:
        raise ArtifactTampered(f"staged object {name!r} was changed, cut short or swapped in the object store "
                               "(its authenticated encryption does not verify)") from None
    return b"".join(out)


class Staging:
    """Artifacts of one node through an `ObjectStore`, encrypted with the owner's `key`."""

    def __init__(self, store: ObjectStore, key: bytes):
        if len(key) != 32:
            raise ConfigError("the staging key must be 32 bytes", field="staging.key_file")
        self.store, self._key = store, key

    def put(self, name: str, data: bytes) -> ArtifactRecord:
        """Encrypt and store `data` as `name`; the record of what was stored."""
        blob = seal(self._key, name, data)
        self.store.put(name, blob)
        return ArtifactRecord(name, hashlib.sha256(blob).hexdigest(), len(blob))

    def get(self, name: str, sha256: str | None = None) -> bytes:
        """The plaintext of `name`, after checking the stored bytes' digest against `sha256`
        (the job store's record) when given."""
        blob = self.store.get(name)
        if sha256 is not None and hashlib.sha256(blob).hexdigest() != sha256:
            raise ArtifactTampered(f"staged object {name!r} differs from the job store's record (SHA-256 "
                                   f"{sha256[:16]}...): it was changed or replaced in the object store")
        return unseal(self._key, name, blob)

    def put_dir(self, local: Path, prefix: str) -> list[ArtifactRecord]:
        """Every file under `local`, staged as `prefix/<relative path>`."""
        return [self.put(f"{prefix}/{p.relative_to(local).as_posix()}", p.read_bytes())
                for p in sorted(local.rglob("*")) if p.is_file()]

    def get_dir(self, records: Iterable[ArtifactRecord], prefix: str, local: Path) -> int:
        """Write the objects of `records` under `prefix/` into `local` (digests checked); how many."""
        n = 0
        for r in records:
            if not r.name.startswith(prefix + "/"):
                continue
            dest = local / _check_name(r.name[len(prefix) + 1:])
            dest.parent.mkdir(parents=True, exist_ok=True)
            data = self.get(r.name, r.sha256)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, dest)  # a crash never leaves a half-written file that looks complete
            n += 1
        return n
