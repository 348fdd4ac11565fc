import numpy as np
import pytest

from jointml.core import FixedPoint, Prg, matmul, wire
from jointml.core.backend.numpy import matmul_limbs
from jointml.core.errors import EncodingRangeError, WireFormatError
from jointml.core.ring import as_ring, to_signed


def test_fixed_point_round_trip_and_negatives():
    fp = FixedPoint(18)
    x = np.array([0.0, -1.5, 3.25, 1e-5, -1234.5678, 2.0**30])
    np.testing.assert_allclose(fp.decode(fp.encode(x)), x, atol=2**-18)
    assert fp.encode(np.array([])).shape == (0,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 2.0**45])
def test_fixed_point_rejects_unrepresentable(bad):
    with pytest.raises(EncodingRangeError):
        FixedPoint(18).encode(np.array([1.0, bad]))


def test_fixed_point_configurable_bits():
    fp = FixedPoint(30)
    assert fp.decode(fp.encode(0.1)) == pytest.approx(0.1, abs=2**-30)
    with pytest.raises(ValueError):
        FixedPoint(50)


def test_ring_signed_views():
    x = np.array([-3, 0, 5], dtype=np.int64)
    assert (to_signed(as_ring(x)) == x).all()
    with pytest.raises(TypeError):
        as_ring(np.array([1.5]))


@pytest.mark.parametrize("shape", [((200, 700), (700, 180)), ((3, 5), (5, 4)), ((1, 1), (1, 1)), ((40, 700), (700, 3)), ((2, 3000), (3000, 2)), ((7,), (7, 2)), ((2, 9), (9,))])
def test_ring_matmul_matches_integer_matmul(shape):
    g = np.random.default_rng(0)
    a = g.integers(0, 2**64, size=shape[0], dtype=np.uint64)
    b = g.integers(0, 2**64, size=shape[1], dtype=np.uint64)
    assert (matmul(a, b) == np.matmul(a, b)).all()
    if a.shape[-1] > 4:
        assert (matmul_limbs(a, b) == np.matmul(a, b)).all()


@pytest.mark.parametrize("va,vb", [(2**64 - 1, 2**63), (2**21 + 2**43, 2**63 + 2**21 + 2**43), (2**22 - 1 + 2**44, 2**21 - 1), (0, 2**64 - 1)])
def test_ring_matmul_extreme_limbs(va, vb):
    a = np.full((3, 1500), va, dtype=np.uint64)
    b = np.full((1500, 2), vb, dtype=np.uint64)
    assert (matmul_limbs(a, b) == np.matmul(a, b)).all()
    a = np.full((150, 600), va, dtype=np.uint64)
    b = np.full((600, 140), vb, dtype=np.uint64)
    assert (matmul(a, b) == np.matmul(a, b)).all()


def test_prg_is_deterministic_per_seed_and_stream():
    a, b = Prg(b"s" * 16, "x"), Prg(b"s" * 16, "x")
    assert (np.concatenate([a.uint64(3), a.uint64(1000)]) == b.uint64(1003)).all()
    c = Prg(b"s" * 16, "y")
    assert not (c.uint64(10) == Prg(b"s" * 16, "x").uint64(10)).any()
    with pytest.raises(ValueError):
        Prg(b"short")


def test_prg_stream_is_aes_ctr_across_chunk_edges():
    """Draws written in place (and through the 15-byte tail) give exactly the AES-128-CTR
    keystream, whatever the split of sizes: parties that share a seed must agree."""
    import hashlib

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    chunk = Prg._CHUNK
    for n in [1, 15, 16, 17, 31, 4095, chunk - 3, chunk + 40]:
        key = hashlib.sha256(b"jointml-prg|s|" + b"k" * 16).digest()[:16]
        ref = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor().update(bytes(2 * n + 10))
        p = Prg(b"k" * 16, "s")
        assert p.bytes(n) + p.bytes(n + 10) == ref, n


def test_prg_output_looks_uniform():
    x = Prg().uint64(200_000)
    bits = np.unpackbits(x.view(np.uint8))
    assert abs(bits.mean() - 0.5) < 0.002
    # every byte value appears about equally often
    counts = np.bincount(x.view(np.uint8), minlength=256)
    assert counts.min() > 0.85 * counts.mean()


def test_prg_other_dtypes_and_bounds():
    p = Prg()
    assert p.random((4, 3), np.uint8).dtype == np.uint8
    v = p.integers_below(10, 10000)
    assert v.min() >= 0 and v.max() <= 9
    assert set(np.unique(p.bits(1000))) <= {0, 1}


def test_wire_round_trip():
    arrs = [np.arange(6, dtype=np.uint64).reshape(2, 3), np.array([1.5, -2.0]), np.zeros((0, 4), dtype=np.uint8)]
    body = b"".join(bytes(b) for b in wire.encode("data", "t1", 7, arrs, {"k": [1, "x"]}))
    msg = wire.decode(body)
    assert msg.tag == "t1" and msg.seq == 7 and msg.meta == {"k": [1, "x"]}
    for a, b in zip(arrs, msg.arrays):
        assert a.dtype == b.dtype and (a == b).all() and a.shape == b.shape
    msg.expect([np.uint64, np.float64, np.uint8], [(2, 3), (2,), (0, 4)])
    with pytest.raises(WireFormatError):
        msg.expect([np.uint64, np.uint64, np.uint8])
    with pytest.raises(WireFormatError):
        msg.expect(None, [(3, 2), None, None])


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x05\x00\x00\x00abc",
        b"\x02\x04\x00\x00abc",
        b'\x0b\x00\x00\x00{"v":1,"k":' + b"x" * 0,
        wire.encode_raw(b"d", b"t", 0, [], b'{"v":1')[:-3],
    ],
)
def test_wire_rejects_malformed(body):
    with pytest.raises(WireFormatError):
        wire.decode(body)


def test_wire_rejects_bad_dtype_and_truncation():
    with pytest.raises(WireFormatError, match="not allowed"):
        wire.decode(wire.encode_raw(b"data", b"x", 0, [(17, [1])], b"", b"\0" * 8))
    with pytest.raises(WireFormatError, match="truncated"):
        wire.decode(wire.encode_raw(b"data", b"x", 0, [(4, [4])], b"", b"\0" * 8))
    with pytest.raises(WireFormatError):
        wire.decode(wire.encode_raw(b"data", b"x", 0, [(4, [2**64 - 1])], b""))
    with pytest.raises(WireFormatError):
        wire.encode("data", "x", 0, [np.array(["a"], dtype=object)])
    with pytest.raises(WireFormatError):
        wire.encode("data", "x", 0, [], {"f": object()})
