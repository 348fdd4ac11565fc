"""Staging through a real S3-protocol server process (moto's standalone server, a test
server, started here on loopback) and a local directory: artifacts round-trip, the stored
objects are ciphertext, tampering (a changed byte, a swapped object, a cut-short object, a
digest that differs from the job store's record) is detected, a directory quota fails
like a full disk and leaves nothing half-written."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

pytest.importorskip("sqlalchemy")

from jointml.orchestration.staging import (  # noqa: E402
    ArtifactTampered,
    DirObjectStore,
    Staging,
    StorageError,
    StorageFull,
    make_object_store,
)

SECRET = b"id,amount\nACCT-4711,125000\nACCT-4712,9900\n" * 50


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's S3 server in its own process (`python -m moto.server`), on a free loopback port."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto.server", reason="moto[server] (the `test` extra) is not installed")
    from jointml.bench.chaos import s3_test_server

    with s3_test_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


def _s3(url, bucket="jointml-test"):
    return make_object_store({"backend": "s3", "bucket": bucket, "endpoint_url": url, "access_key_id": "test",
                              "secret_access_key": "test", "create_bucket": True, "prefix": "bank"})


def test_s3_round_trip_stores_ciphertext_and_detects_tampering(s3_server):
    store = _s3(s3_server)
    st = Staging(store, key=os.urandom(32))
    rec = st.put("jobs/j1/checkpoints/after-0/frame.csv", SECRET)
    big = st.put("jobs/j1/out/model.bin", os.urandom((1 << 20) + 5000))  # two frames
    assert st.get(rec.name, rec.sha256) == SECRET
    assert len(st.get(big.name, big.sha256)) == (1 << 20) + 5000
    assert store.list("jobs/j1/") == [rec.name, big.name]
    # what the server holds, read with a plain S3 client: ciphertext, its digest is the record's
    raw = store.s3.get_object(Bucket="jointml-test", Key="bank/" + rec.name)["Body"].read()
    assert b"ACCT-4711" not in raw and b"125000" not in raw
    assert hashlib.sha256(raw).hexdigest() == rec.sha256 and rec.size == len(raw)
    # one byte changed by the store: refused by the record, and by the AEAD without one
    bad = bytearray(raw)
    bad[100] ^= 1
    store.s3.put_object(Bucket="jointml-test", Key="bank/" + rec.name, Body=bytes(bad))
    with pytest.raises(ArtifactTampered, match="differs from the job store's record"):
        st.get(rec.name, rec.sha256)
    with pytest.raises(ArtifactTampered, match="does not verify"):
        st.get(rec.name)
    # an object swapped for another of this owner's objects, and one cut short by a frame
    store.put(rec.name, store.get(big.name))
    with pytest.raises(ArtifactTampered):
        st.get(rec.name)
    blob = store.get(big.name)
    store.put(big.name, blob[: len(blob) - 5000 - 16])  # the last frame dropped: the first is not marked last
    with pytest.raises(ArtifactTampered):
        st.get(big.name)
    # another owner's key cannot read it
    st.put(rec.name, SECRET)
    with pytest.raises(ArtifactTampered):
        Staging(store, key=os.urandom(32)).get(rec.name)
    with pytest.raises(StorageError, match="no object"):
        st.get("jobs/j1/missing")


def test_s3_directory_round_trip(s3_server, tmp_path):
    st = Staging(_s3(s3_server, "jointml-dirs"), key=os.urandom(32))
    src = tmp_path / "src"
    (src / "model").mkdir(parents=True)
    (src / "checkpoint.json").write_text('{"version": 1}')
    (src / "model" / "part.json").write_bytes(SECRET)
    recs = st.put_dir(src, "jobs/j2/after-1")
    assert [r.name for r in recs] == ["jobs/j2/after-1/checkpoint.json", "jobs/j2/after-1/model/part.json"]
    assert st.get_dir(recs, "jobs/j2/after-1", tmp_path / "back") == 2
    assert (tmp_path / "back" / "model" / "part.json").read_bytes() == SECRET


def test_directory_quota_is_a_full_disk(tmp_path):
    store = DirObjectStore(tmp_path / "objects", quota_bytes=4096)
    st = Staging(store, key=os.urandom(32))
    st.put("a", b"x" * 1000)
    with pytest.raises(StorageFull, match="is full") as e:
        st.put("b", b"y" * 4000)
    assert str(tmp_path) not in str(e.value)  # the message names no path (it goes to the coordinator)
    assert store.list() == ["a"]  # nothing half-written
    store.delete("a")
    st.put("b", b"y" * 4000)  # room again
    shutil.rmtree(tmp_path / "objects")


def test_the_orchestration_page_examples_run():
    import doctest
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "orchestration.md"
    got = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert got.attempted >= 8 and got.failed == 0
