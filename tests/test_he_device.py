"""HeDevice (x.to(he), group_sum, reveal), the public HE fast paths and the shared worker pool.

512-bit keys here: tests only, for speed.
"""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

from jointml.core import workers
from jointml.core.errors import CryptoError, ParameterError
from jointml.he import (
    HeDevice,
    NoncePool,
    bytes_to_ints,
    compress_ciphertexts,
    encrypt_packed,
    generate_keypair,
    grouped_sums,
    ints_to_bytes,
)
from jointml.runtime import PartyFailed, simulate

KEY = 512


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(KEY)


@pytest.fixture(scope="module", autouse=True)
def _stop_pool():
    yield
    workers.shutdown()


def test_transfer_group_sum_reveal_match_plaintext():
    g = np.random.default_rng(0)  # public test data
    y = g.integers(0, 2, 200)
    codes = np.stack([g.integers(0, 4, 200), g.integers(0, 3, 200)], axis=1)
    groups = g.integers(0, 2, 200)
    rows = np.sort(g.choice(200, 150, replace=False))

    def prog(ctx):
        he = HeDevice(ctx, "bank", key_bits=KEY, n_jobs=1)
        enc = ctx.party("bank").run(lambda: y).to(he)
        shop = ctx.party("shop")
        sums = enc.group_sum(shop.put(codes[rows]), [4, 3], groups=shop.put(groups[rows]), n_groups=2,
                             rows=shop.put(rows))
        out = sums.reveal(to="bank", slot_bits=10, expect=14)
        return out.value.tolist() if ctx.me == "bank" else (enc.is_local, sums.is_local)

    res = simulate(prog, ["bank", "shop", "dealer"], mode="thread")
    want = []
    for gr in range(2):
        sel = rows[groups[rows] == gr]
        for j, nb in enumerate([4, 3]):
            want += np.bincount(codes[sel, j], weights=y[sel], minlength=nb).astype(int).tolist()
    assert res["bank"] == want
    # every other member receives the ciphertexts; only the owner of the codes sums
    assert res["shop"] == (True, True) and res["dealer"] == (True, False)


def test_packed_pairs_come_back_compressed():
    gh = np.array([[0.5, 0.25], [-1.0, 0.25], [0.75, 0.125], [0.25, 0.5]])

    def prog(ctx):
        he = HeDevice(ctx, "bank", key_bits=KEY, n_jobs=1)
        enc = ctx.party("bank").put(gh).to(he, slot_bits=24, frac_bits=8)
        sums = enc.group_sum(ctx.party("shop").put(np.array([[0], [1], [0], [1]])), [2])
        out = sums.reveal(expect=2)
        return out.value.tolist() if ctx.me == "bank" else enc.data.layout.slot_bits

    res = simulate(prog, ["bank", "shop"], mode="thread")
    assert res["bank"] == [[1.25, 0.375], [-0.75, 0.75]]
    assert res["shop"] == 24


def test_reveal_only_to_the_key_holder_and_codes_checked():
    def prog(ctx):
        he = HeDevice(ctx, "bank", key_bits=KEY, n_jobs=1)
        enc = ctx.party("bank").put(np.array([1, 2])).to(he)
        with pytest.raises(ParameterError, match="key holder 'bank' only"):
            enc.reveal(to="shop")
        if ctx.me == "shop":  # the check runs where the sums are computed
            with pytest.raises(ParameterError, match="out of range"):
                enc.group_sum(ctx.party("shop").put(np.array([0, 5])), [2])
        return True

    assert all(simulate(prog, ["bank", "shop"], mode="thread").values())


@pytest.mark.parametrize("scheme,keygen", [("paillier", "generate_keypair"), ("ou", "generate_ou_keypair")])
def test_weak_public_key_from_the_holder_is_refused(monkeypatch, scheme, keygen):
    import jointml.he.device as dev

    orig = getattr(dev, keygen)
    monkeypatch.setattr(dev, keygen, lambda bits, **kw: orig(256, **kw))

    def prog(ctx):
        HeDevice(ctx, "bank", key_bits=KEY, scheme=scheme)

    with pytest.raises(PartyFailed, match="party 'bank'.*256 bits, expected 512"):
        simulate(prog, ["bank", "shop"], mode="thread")


def test_wire_validation_names_count_and_party(keys):
    pk, sk = keys
    wire = pk.encrypt([1, 2, 3]).to_wire()
    assert [int(v) for v in sk.decrypt_residues(pk.ciphertexts_from_wire(wire, 3))] == [1, 2, 3]
    with pytest.raises(CryptoError, match="party 'shop'.*expected shape \\(2, "):
        pk.ciphertexts_from_wire(wire, 2, party="shop")
    bad = wire.copy()
    bad[1] = 0
    with pytest.raises(CryptoError, match="ciphertext 1: .*range"):
        pk.ciphertexts_from_wire(bad)
    assert pk.ciphertexts_to_wire(pk.ciphertexts_from_wire(wire)).tobytes() == wire.tobytes()
    assert [int(v) for v in bytes_to_ints(ints_to_bytes([7, 2**70], 16), 16)] == [7, 2**70]
    with pytest.raises(CryptoError, match="multiple of 16"):
        bytes_to_ints(b"\0" * 17, 16)


def test_nonce_pool_prefetches_on_low_priority_workers(keys):
    pk, sk = keys
    pool = NoncePool(pk, n_jobs=2)
    pool.prefetch(5)
    nonces = pool.take(7)  # 5 prefetched + 2 computed now
    assert len(nonces) == 7 and len(set(nonces)) == 7
    assert ("low", 2) in workers._pools
    assert sk.decrypt_residues(pk.encrypt_residues([3] * 7, nonces=nonces)) == [3] * 7
    with pytest.raises(ParameterError, match="nonces"):
        pk.encrypt_residues([1, 2], nonces=nonces[:1])


def test_compress_ciphertexts_and_grouped_sums_public(keys):
    pk, sk = keys
    ct = encrypt_packed(pk, np.array([[1, -2], [3, 4], [5, 6]]), slot_bits=16)
    small = compress_ciphertexts(pk, list(ct.data), 16, 0, unit_shape=(2,), per_ciphertext=2)
    assert small.shape == (2,)
    assert sk.decrypt(small).tolist() == [[1, -2], [3, 4], [5, 6]]
    sums = grouped_sums(pk.encrypt([1, 2, 3]).to_wire(), pk.nsq, np.array([[1], [1], [0]]), np.zeros(3, int), 1,
                        np.array([2]), n_jobs=1)
    assert sk.decrypt_residues(sums) == [3, 3]


def _pools_in_child(q):
    q.put(len(workers._pools))


def test_worker_pool_forgotten_after_fork():
    workers.map_chunks(abs, [(-1,), (-2,), (-3,)], n_jobs=2)
    assert workers._pools
    mp = multiprocessing.get_context("fork")
    q = mp.Queue()
    p = mp.Process(target=_pools_in_child, args=(q,))
    p.start()
    p.join(30)
    assert q.get(timeout=5) == 0  # the parent's pool is not the child's


def test_scoped_pools_end_with_their_last_scope():
    workers.shutdown()
    out: dict = {}
    barrier = threading.Barrier(2)

    def party(name):
        with workers.WorkerPool(2, priority="low") as pool:
            barrier.wait()  # both scopes share one pool
            out[name] = pool.map(pow, [(2, 5), (3, 3)])
            barrier.wait()

    ts = [threading.Thread(target=party, args=(n,)) for n in ("a", "b")]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert out == {"a": [32, 27], "b": [32, 27]}
    assert ("low", 2) not in workers._pools  # no worker outlives the run
    with pytest.raises(ParameterError, match="priority"):
        workers.map_chunks(abs, [(1,), (2,)], n_jobs=2, priority="urgent")
