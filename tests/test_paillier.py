"""Correctness tests for jointml.he (Paillier, DJN variant). Small keys keep them fast."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import gmpy2
import numpy as np
import pytest

import jointml.he as he
from jointml.core import workers as parallel
from jointml.he import (
    EncryptedArray,
    PublicKey,
    SlotLayout,
    compress,
    concatenate,
    encrypt_packed,
    generate_keypair,
    pack,
    paillier,
    unpack,
)


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(512)


@pytest.fixture(scope="module")
def other_keys():
    return generate_keypair(512)


@pytest.fixture(scope="module")
def keys1024():
    return generate_keypair(1024)


@pytest.fixture(scope="module", autouse=True)
def _stop_pool():
    yield
    parallel.shutdown()


def enc_dec(keys, x, **kw):
    pk, sk = keys
    return sk.decrypt(pk.encrypt(x, **kw))


# ----------------------------------------------------------------- keys


@pytest.mark.parametrize("bits", [256, 512, 1024])
def test_keygen_sizes(bits):
    pk, sk = generate_keypair(bits)
    assert pk.n.bit_length() == bits
    p, q = sk._p, sk._q
    assert p != q and p * q == pk.n
    assert p.bit_length() == q.bit_length() == bits // 2
    assert gmpy2.is_prime(p) and gmpy2.is_prime(q)
    assert 1 < pk.hs < pk.nsq and gmpy2.gcd(pk.hs, pk.n) == 1


@pytest.mark.parametrize("bits", [255, 100, 0])
def test_keygen_rejects_bad_sizes(bits):
    with pytest.raises(ValueError):
        generate_keypair(bits)


def test_keys_are_fresh(keys, other_keys):
    assert keys[0].n != other_keys[0].n


def test_no_insecure_randomness_in_source():
    src = "\n".join(p.read_text() for p in Path(he.__file__).parent.glob("*.py"))
    assert not re.search(r"^\s*(import random|from random)", src, re.M)
    assert "np.random" not in src and "numpy.random" not in src
    assert "random_state" not in src and "mpz_random" not in src and "mpz_urandomb" not in src


def test_private_key_not_picklable(keys):
    with pytest.raises(TypeError):
        pickle.dumps(keys[1])
    assert "p=" not in repr(keys[1])


# ------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    "x",
    [
        np.array([0.0, 1.5, -2.25, 3.0e-6, -7.0e5]),
        np.zeros(4),
        -np.arange(5, dtype=np.float64),
        np.array([[1.0, -2.0, 3.5], [0.0, 1e9, -1e-9]]),
        np.array([42.0]),
    ],
)
def test_float_round_trip(keys, x):
    out = enc_dec(keys, x)
    assert out.dtype == np.float64 and out.shape == x.shape
    np.testing.assert_allclose(out, x, rtol=0, atol=2.0**-32)


def test_int_round_trip_keeps_ints(keys):
    x = np.array([[0, -1, 2**40], [-(2**62), 7, 2**63 - 1]], dtype=np.int64)
    out = enc_dec(keys, x)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, x)


def test_large_values_within_range(keys):
    pk, sk = keys
    big = int(pk.max_int)
    x = np.empty(3, dtype=object)
    x[:] = [big, -big, 3**200]
    assert sk.decrypt(pk.encrypt(x)).tolist() == [big, -big, 3**200]
    np.testing.assert_allclose(enc_dec(keys, np.array([1e100, -1e100])), [1e100, -1e100], rtol=1e-15)


def test_out_of_range_is_rejected(keys):
    pk, _ = keys
    x = np.empty(1, dtype=object)
    x[0] = int(pk.max_int) + 1
    with pytest.raises(OverflowError):
        pk.encrypt(x)
    with pytest.raises(ValueError):
        pk.encrypt(np.array([1.0, np.nan]))
    with pytest.raises(ValueError):
        pk.encrypt(np.array([np.inf]))


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0)])
def test_empty_arrays(keys, shape):
    pk, sk = keys
    ct = pk.encrypt(np.zeros(shape))
    assert ct.shape == shape and ct.to_wire().shape == (0, pk.ciphertext_bytes)
    assert sk.decrypt(ct).shape == shape
    assert sk.decrypt(ct.sum()).tolist() == 0.0


def test_scalar_and_single_element(keys):
    pk, sk = keys
    ct = pk.encrypt(-3.5)
    assert ct.shape == () and sk.decrypt(ct).tolist() == -3.5
    one = pk.encrypt(np.array([7]))
    assert len(one) == 1 and sk.decrypt(one).tolist() == [7]


def test_frac_bits_controls_precision(keys):
    out = enc_dec(keys, np.array([0.1]), frac_bits=4)
    assert out[0] == 0.125  # round(0.1 * 16) / 16
    assert enc_dec(keys, np.array([2.6]), frac_bits=0).tolist() == [3]


# --------------------------------------------------------- homomorphic ops


@pytest.fixture(scope="module")
def ab(keys):
    a = np.array([[1.5, -2.0, 0.0], [3.25, 4.0, -5.5]])
    b = np.array([[0.5, 2.0, -1.0], [-3.0, 1.0, 2.5]])
    pk = keys[0]
    return a, b, pk.encrypt(a), pk.encrypt(b)


def test_add_sub_neg(keys, ab):
    sk = keys[1]
    a, b, ea, eb = ab
    np.testing.assert_allclose(sk.decrypt(ea + eb), a + b)
    np.testing.assert_allclose(sk.decrypt(ea - eb), a - b)
    np.testing.assert_allclose(sk.decrypt(-ea), -a)
    np.testing.assert_allclose(sk.decrypt(ea + b), a + b)
    np.testing.assert_allclose(sk.decrypt(b + ea), a + b)  # numpy on the left defers to us
    np.testing.assert_allclose(sk.decrypt(ea - b), a - b)
    np.testing.assert_allclose(sk.decrypt(b - ea), b - a)
    np.testing.assert_allclose(sk.decrypt(ea + 1), a + 1)
    np.testing.assert_allclose(sk.decrypt(ea + eb[0]), a + b[0])  # broadcasting


def test_scalar_multiply(keys, ab):
    sk = keys[1]
    a, b, ea, _ = ab
    np.testing.assert_allclose(sk.decrypt(ea * 3), a * 3)
    np.testing.assert_allclose(sk.decrypt(ea * -7), a * -7)
    np.testing.assert_allclose(sk.decrypt(-2 * ea), -2 * a)
    np.testing.assert_allclose(sk.decrypt(ea * 0), np.zeros_like(a))
    np.testing.assert_allclose(sk.decrypt(ea * b), a * b, atol=1e-9)
    np.testing.assert_allclose(sk.decrypt(b * ea), a * b, atol=1e-9)
    np.testing.assert_allclose(sk.decrypt(ea * np.array([1, -1, 2])), a * [1, -1, 2])
    np.testing.assert_allclose(sk.decrypt(ea / 4), a / 4, atol=1e-9)
    assert (ea * 0.5).frac_bits == ea.frac_bits + he.DEFAULT_FRAC_BITS
    with pytest.raises(TypeError):
        ea * ea


def test_int_arithmetic_is_exact(keys):
    pk, sk = keys
    x = np.array([3, -4, 5])
    ct = pk.encrypt(x)
    out = sk.decrypt(ct * -3 + x - 1)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, x * -3 + x - 1)


def test_sum_over_axes(keys, ab):
    sk = keys[1]
    a, _, ea, _ = ab
    np.testing.assert_allclose(sk.decrypt(ea.sum()), a.sum())
    np.testing.assert_allclose(sk.decrypt(ea.sum(axis=0)), a.sum(axis=0))
    np.testing.assert_allclose(sk.decrypt(ea.sum(axis=1)), a.sum(axis=1))
    np.testing.assert_allclose(sk.decrypt(ea.sum(axis=-1, keepdims=True)), a.sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(sk.decrypt(ea.sum(axis=(0, 1))), a.sum())


def test_matmul(keys):
    pk, sk = keys
    x = np.array([[1, 2, -3], [0, 1, 4]])
    v = np.array([0.5, -1.0, 2.0])
    ev = pk.encrypt(v)
    np.testing.assert_allclose(sk.decrypt(x @ ev), x @ v)
    em = pk.encrypt(np.array([[1.0, 2.0], [3.0, -4.0]]))
    w = np.array([[2, 0, 1], [1, 1, -1]])
    np.testing.assert_allclose(sk.decrypt(em @ w), np.array([[1.0, 2.0], [3.0, -4.0]]) @ w)
    np.testing.assert_allclose(sk.decrypt(w.T @ em), w.T @ np.array([[1.0, 2.0], [3.0, -4.0]]))


def test_scale_alignment(keys):
    pk, sk = keys
    a = pk.encrypt(np.array([1.5, -0.25]), frac_bits=8)
    b = pk.encrypt(np.array([0.125, 2.0]), frac_bits=16)
    s = a + b
    assert s.frac_bits == 16
    np.testing.assert_allclose(sk.decrypt(s), [1.625, 1.75])
    i = pk.encrypt(np.array([1, 2]))
    f = i + np.array([0.5, 0.25])  # int ciphertext, float plaintext: ciphertext is rescaled
    assert f.frac_bits == he.DEFAULT_FRAC_BITS
    np.testing.assert_allclose(sk.decrypt(f), [1.5, 2.25])
    np.testing.assert_allclose(sk.decrypt(i + pk.encrypt(np.array([0.5, 0.5]))), [1.5, 2.5])
    with pytest.raises(ValueError):
        b.rescale(4)


def test_overflow_detection(keys):
    pk, sk = keys
    ct = pk.encrypt(np.array([1.0]))
    with pytest.raises(OverflowError):  # tracked bound exceeds n//3
        ct * (2**600)
    # A peer's ciphertext has no known bound; the overflow then shows at decryption.
    peer = EncryptedArray.from_wire(pk, pk.encrypt(np.array([1])).to_wire())
    big = peer * int(pk.max_int // 2) * 2 + 5
    with pytest.raises(OverflowError):
        sk.decrypt(big)


def test_encryption_is_randomised(keys):
    pk, sk = keys
    for method in ("djn", "textbook"):
        ct = pk.encrypt(np.array([5, 5, 5]), method=method)
        assert len({int(c) for c in ct.data}) == 3
        assert sk.decrypt(ct).tolist() == [5, 5, 5]
    r = pk.encrypt(np.array([1.25]))
    rr = r.rerandomize()
    assert r.data[0] != rr.data[0] and sk.decrypt(rr).tolist() == [1.25]


def test_textbook_and_djn_agree(keys1024):
    pk, sk = keys1024
    x = np.array([-3.5, 0.0, 1e6, 2.0**-20])
    t = pk.encrypt(x, method="textbook")
    d = pk.encrypt(x, method="djn")
    np.testing.assert_array_equal(sk.decrypt(t), sk.decrypt(d))
    np.testing.assert_allclose(sk.decrypt(t + d), 2 * x)
    with pytest.raises(ValueError):
        pk.encrypt(x, method="rsa")


def test_wrong_key(keys, other_keys):
    pk, sk = keys
    _, sk2 = other_keys
    ct = pk.encrypt(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="key"):
        sk2.decrypt(ct)
    # Bypassing the key check: the residues are unrelated to the plaintext.
    cts = [int(c) % sk2.public_key.nsq for c in ct.data]
    assert sk2.decrypt_residues(cts) != [1, 2, 3]
    with pytest.raises(ValueError, match="different keys"):
        ct + other_keys[0].encrypt(np.array([1, 2, 3]))


def test_indexing_and_shape(keys, ab):
    sk = keys[1]
    a, _, ea, _ = ab
    assert ea.shape == (2, 3) and ea.ndim == 2 and ea.size == 6 and len(ea) == 2
    np.testing.assert_allclose(sk.decrypt(ea[1]), a[1])
    np.testing.assert_allclose(sk.decrypt(ea[:, 1:]), a[:, 1:])
    np.testing.assert_allclose(sk.decrypt(ea[1, 2]), a[1, 2])
    np.testing.assert_allclose(sk.decrypt(ea[[1, 0]]), a[[1, 0]])
    np.testing.assert_allclose(sk.decrypt(ea.T), a.T)
    np.testing.assert_allclose(sk.decrypt(ea.reshape(3, 2)), a.reshape(3, 2))
    np.testing.assert_allclose([sk.decrypt(row) for row in ea], a)
    np.testing.assert_allclose(sk.decrypt(concatenate([ea, ea[:1]])), np.concatenate([a, a[:1]]))
    with pytest.raises(TypeError):
        len(ea[0, 0])


# --------------------------------------------------------------- packing


def test_plain_pack_unpack():
    v = np.array([[1, 2, 3], [255, 0, 7]])
    packed = pack(v, slot_bits=8)
    assert packed.tolist() == [1 + (2 << 8) + (3 << 16), 255 + (7 << 16)]
    np.testing.assert_array_equal(unpack(packed, 8, 3), v)
    s = np.array([[-3, 5, -128 + 1], [0, -1, 127]])
    np.testing.assert_array_equal(unpack(pack(s, 8, signed=True), 8, 3, signed=True), s)
    with pytest.raises(OverflowError):
        pack(np.array([[256]]), 8)
    with pytest.raises(ValueError):
        pack(np.array([[-1]]), 8)
    # Sums of packings are packings of sums while every slot keeps headroom.
    many = np.arange(60).reshape(20, 3)
    total = sum(pack(many, 16).tolist())
    np.testing.assert_array_equal(unpack([total], 16, 3)[0], many.sum(axis=0))


def test_packed_gradients(keys1024):
    pk, sk = keys1024
    rng = np.random.default_rng(0)  # test data only, not key material
    g = rng.uniform(-1, 1, 50)
    h = rng.uniform(0, 0.25, 50)
    gh = np.stack([g, h], axis=1)
    bits = 1 + 20 + he.headroom_bits(50) + 1
    ct = encrypt_packed(pk, gh, slot_bits=bits, frac_bits=20)
    assert ct.shape == (50,)
    np.testing.assert_allclose(sk.decrypt(ct), gh, atol=2.0**-20)
    bins = np.array([0, 1, 2, 3, 4] * 10)
    sums = concatenate([ct[bins == b].sum(keepdims=True) for b in range(5)])
    expect = np.stack([gh[bins == b].sum(axis=0) for b in range(5)])
    np.testing.assert_allclose(sk.decrypt(sums), expect, atol=50 * 2.0**-20)
    small = compress(sums)  # 5 pairs of 2 slots in one ciphertext
    assert small.shape == (1,)
    np.testing.assert_allclose(sk.decrypt(small), expect, atol=50 * 2.0**-20)
    np.testing.assert_allclose(sk.decrypt(ct * 2), 2 * gh, atol=2.0**-19)
    np.testing.assert_allclose(sk.decrypt(ct + gh), 2 * gh, atol=2.0**-19)


def test_packed_slot_overflow_detected(keys):
    pk, _ = keys
    ct = encrypt_packed(pk, np.array([[100, 100]]), slot_bits=9)
    with pytest.raises(OverflowError):
        ct * 3  # 300 does not fit a signed 9-bit slot
    with pytest.raises(ValueError):
        encrypt_packed(pk, np.ones((1, 100), dtype=int), slot_bits=64)  # 6400 bits > 512-bit key


def test_compress_round_trip(keys):
    pk, sk = keys
    x = np.arange(-30, 30).reshape(3, 20)
    ct = pk.encrypt(x)
    small = compress(ct, slot_bits=12)
    assert small.shape[-1] < 20 and small.layout.compressed
    np.testing.assert_array_equal(sk.decrypt(small), x)
    capped = compress(ct, slot_bits=12, per_ciphertext=3)
    assert capped.shape == (3, 7)
    np.testing.assert_array_equal(sk.decrypt(capped), x)
    np.testing.assert_array_equal(sk.decrypt(small + small), 2 * x)
    f = pk.encrypt(np.array([0.5, -0.25, 1.75]), frac_bits=8)
    np.testing.assert_allclose(sk.decrypt(compress(f, slot_bits=16)), [0.5, -0.25, 1.75])
    u = compress(pk.encrypt(np.array([1, 2, 255])), slot_bits=8, signed=False)
    np.testing.assert_array_equal(sk.decrypt(u), [1, 2, 255])
    with pytest.raises(OverflowError):
        compress(pk.encrypt(np.array([5000])), slot_bits=8)
    with pytest.raises(TypeError):
        small.sum()
    with pytest.raises(TypeError):
        small[0]


def test_compress_empty_and_rerandomised(keys):
    pk, sk = keys
    assert sk.decrypt(compress(pk.encrypt(np.zeros((2, 0), dtype=int)), slot_bits=8)).shape == (2, 0)
    ct = pk.encrypt(np.array([1, 2]))
    a = compress(ct, slot_bits=8)
    b = compress(ct, slot_bits=8)
    assert a.data[0] != b.data[0]  # fresh randomness: the key holder cannot match inputs


# --------------------------------------------------------- serialization


def test_wire_round_trip(keys):
    pk, sk = keys
    x = np.array([[1.5, -2.0], [0.0, 8.0]])
    ct = pk.encrypt(x)
    wire = ct.to_wire()
    assert wire.dtype == np.uint8 and wire.shape == (4, pk.ciphertext_bytes)
    back = EncryptedArray.from_wire(pk, wire, shape=(2, 2), frac_bits=ct.frac_bits)
    np.testing.assert_allclose(sk.decrypt(back), x)
    assert back.bound is None
    d = json.loads(json.dumps(pk.to_dict()))
    pk2 = PublicKey.from_dict(d)
    assert pk2 == pk and hash(pk2) == hash(pk)
    np.testing.assert_allclose(sk.decrypt(pk2.encrypt(x)), x)
    packed = compress(encrypt_packed(pk, np.array([[1, -2], [3, 4], [5, 6]]), slot_bits=16))
    header = json.loads(json.dumps({"shape": packed.shape, "layout": packed.layout.to_dict()}))
    layout = SlotLayout.from_dict(header["layout"])
    back = EncryptedArray.from_wire(pk, packed.to_wire(), header["shape"], 0, layout)
    np.testing.assert_array_equal(sk.decrypt(back), [[1, -2], [3, 4], [5, 6]])
    for bad in ({"slot_bits": "16", "slot_shape": [2], "signed": True}, {"slot_bits": 16}, [16],
                {"slot_bits": 16, "slot_shape": [0], "signed": True},
                {"slot_bits": 16, "slot_shape": [2], "signed": True, "n_values": -1}):
        with pytest.raises(ValueError):
            SlotLayout.from_dict(bad)


def test_wire_rejects_malformed(keys):
    pk, sk = keys
    good = pk.encrypt(np.array([1, 2])).to_wire()
    w = pk.ciphertext_bytes
    with pytest.raises(ValueError, match="uint8"):
        pk.ciphertexts_from_wire(good.astype(np.int64))
    with pytest.raises(ValueError, match="shape"):
        pk.ciphertexts_from_wire(good.ravel())
    with pytest.raises(ValueError, match="shape"):
        pk.ciphertexts_from_wire(good[:, 1:])
    with pytest.raises(ValueError, match="ndarray"):
        pk.ciphertexts_from_wire(good.tobytes())
    with pytest.raises(ValueError, match="ciphertext 1: .*range"):
        pk.ciphertexts_from_wire(np.stack([good[0], np.zeros(w, np.uint8)]))
    with pytest.raises(ValueError, match="range"):
        pk.ciphertexts_from_wire(np.full((1, w), 255, np.uint8))  # >= n^2
    nsq = np.frombuffer(int(pk.nsq).to_bytes(w, "big"), np.uint8)[None]
    with pytest.raises(ValueError, match="range"):
        pk.ciphertexts_from_wire(nsq)
    p = np.frombuffer(int(sk._p).to_bytes(w, "big"), np.uint8)[None]
    with pytest.raises(ValueError, match="gcd"):
        pk.ciphertexts_from_wire(p)
    with pytest.raises(ValueError, match="shape"):
        EncryptedArray.from_wire(pk, good, shape=(3,))
    with pytest.raises(ValueError):
        EncryptedArray.from_wire(pk, good, frac_bits=-1)
    for bad in (0, -5, pk.nsq, 1.5, "7", True):
        with pytest.raises(ValueError):
            pk.validate_ciphertext(bad)


def test_public_key_dict_rejects_malformed(keys):
    d = keys[0].to_dict()
    for broken in (
        {**d, "scheme": "rsa"},
        {**d, "n": "zz"},
        {k: v for k, v in d.items() if k != "hs"},
        {**d, "hs": "0"},
        {**d, "key_bits": 2048},
        {**d, "n": format(int(keys[0].n) * 2, "x")},
        [("n", d["n"])],
    ):
        with pytest.raises(ValueError):
            PublicKey.from_dict(broken)


# ------------------------------------------------------------------ docs


@pytest.mark.parametrize("module", ["encoding", "packing", "paillier", "parallel"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"jointml.he.{module}"))
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------- parallel


def test_parallel_paths_match_serial(keys, monkeypatch):
    pk, sk = keys
    monkeypatch.setattr(paillier, "ENCRYPT_PARALLEL_THRESHOLD", {"djn": 8, "textbook": 8})
    monkeypatch.setattr(paillier, "DECRYPT_PARALLEL_THRESHOLD", 8)
    monkeypatch.setattr(paillier, "POWMOD_PARALLEL_BITS", 1)
    x = np.linspace(-3, 3, 40).reshape(8, 5)
    ct = pk.encrypt(x, n_jobs=2)
    assert parallel._pools  # the pool really ran
    np.testing.assert_allclose(sk.decrypt(ct, n_jobs=2), x)
    np.testing.assert_allclose(sk.decrypt(ct, n_jobs=1), x)
    np.testing.assert_allclose(sk.decrypt(ct * -3, n_jobs=2), -3 * x)
    np.testing.assert_allclose(sk.decrypt(pk.encrypt(x, method="textbook", n_jobs=2)), x)
    np.testing.assert_allclose(sk.decrypt(ct.rerandomize(n_jobs=2)), x)
    with pytest.raises(ValueError):
        pk.encrypt(x, n_jobs=0)
