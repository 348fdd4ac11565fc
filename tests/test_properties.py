"""Property-based tests (hypothesis) of the exact layers everything else trusts.

- the ring Z_2^64: numpy uint64 add/mul/neg wrap exactly as Python integers mod 2^64,
  and `matmul` (float64 limbs through BLAS) equals a big-integer reference;
- fixed point: encode/decode round trip within 2^-f, signs, range errors;
- the wire codec: round trip over every allowed dtype, shape and JSON meta, and any
  truncated or corrupted frame raises `WireFormatError`, never another exception;
- Paillier slot packing and ciphertext compression round trips within slot bounds.

Each property runs a bounded number of examples with no deadline (a shared 2-core
machine): the whole file takes a few seconds.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jointml.core import RING_DTYPE, FixedPoint, matmul, wire
from jointml.core.errors import EncodingRangeError, WireFormatError
from jointml.he import compress, generate_keypair, pack, unpack

MOD = 1 << 64
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u64 = st.integers(min_value=0, max_value=MOD - 1)


def ring_arrays(shape):
    return hnp.arrays(np.uint64, shape, elements=st.integers(0, MOD - 1))


def py(a: np.ndarray) -> list:
    return [int(v) for v in np.asarray(a, dtype=RING_DTYPE).ravel()]


# --- ring ------------------------------------------------------------------------------


@FAST
@given(st.lists(st.tuples(u64, u64), min_size=1, max_size=20))
def test_ring_add_mul_neg_wrap_mod_2_64(pairs):
    a = np.array([p[0] for p in pairs], dtype=RING_DTYPE)
    b = np.array([p[1] for p in pairs], dtype=RING_DTYPE)
    with np.errstate(over="ignore"):
        assert py(a + b) == [(x + y) % MOD for x, y in pairs]
        assert py(a * b) == [(x * y) % MOD for x, y in pairs]
        assert py(-a) == [(-x) % MOD for x, _ in pairs]
        assert py(a - b) == [(x - y) % MOD for x, y in pairs]


@FAST
@given(st.data(), st.integers(1, 6), st.integers(1, 9), st.integers(1, 6))
def test_matmul_small_shapes_equal_big_int_reference(data, m, k, n):
    a = data.draw(ring_arrays((m, k)))
    b = data.draw(ring_arrays((k, n)))
    ref = [[sum(int(a[i, t]) * int(b[t, j]) for t in range(k)) % MOD for j in range(n)] for i in range(m)]
    assert matmul(a, b).tolist() == ref
    # 1-D operands behave as numpy's matmul does
    assert matmul(a[0], b).tolist() == ref[0]


@SLOW
@given(st.data(), st.integers(130, 150), st.integers(5, 12), st.integers(130, 150))
def test_matmul_blas_limb_path_equals_big_int_reference(data, m, k, n):
    # m*n > 64*(m+n): large enough that `matmul` takes the float64 limb path
    a = data.draw(ring_arrays((m, k)))
    b = data.draw(ring_arrays((k, n)))
    ref = (a.astype(object) @ b.astype(object)) % MOD
    assert (matmul(a, b).astype(object) == ref).all()


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([600, 2100, 4500]))
def test_matmul_long_inner_dimension_is_chunked_exactly(seed, k):
    # inner dimensions past the exact-float bounds (512 Karatsuba, 2048 limbs) are chunked;
    # numpy's integer matmul (exact mod 2^64, slow) is the reference here
    g = np.random.default_rng(seed)
    a = g.integers(0, MOD, size=(130, k), dtype=np.uint64, endpoint=False)
    b = g.integers(0, MOD, size=(k, 130), dtype=np.uint64, endpoint=False)
    assert np.array_equal(matmul(a, b), np.matmul(a, b))


# --- fixed point ----------------------------------------------------------------------


@FAST
@given(st.integers(0, 40), st.data())
def test_fixed_point_round_trip_within_resolution(f, data):
    fp = FixedPoint(f)
    bound = min(fp.max_abs * 0.999, 1e12)
    x = data.draw(hnp.arrays(np.float64, st.integers(0, 8), elements=st.floats(-bound, bound)))
    enc = fp.encode(x)
    assert enc.dtype == RING_DTYPE
    back = fp.decode(enc)
    assert np.all(np.abs(back - x) <= 2.0 ** (-f - 1) + np.abs(x) * 2.0**-52)
    # the sign lives in two's complement: negative values are the top half of the ring
    assert np.all((enc.view(np.int64) < 0) == (np.rint(x * fp.scale) < 0))


@FAST
@given(st.integers(0, 40), st.floats(1.0, 1e6))
def test_fixed_point_rejects_out_of_range(f, factor):
    fp = FixedPoint(f)
    with pytest.raises(EncodingRangeError):
        fp.encode([0.0, -fp.max_abs * factor])


@FAST
@given(st.sampled_from([np.nan, np.inf, -np.inf]), st.integers(0, 40))
def test_fixed_point_rejects_non_finite(v, f):
    with pytest.raises(EncodingRangeError):
        FixedPoint(f).encode(np.array([1.0, v]))


# --- wire codec -----------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
json_meta = st.dictionaries(
    st.text(max_size=6),
    st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=8),
    max_size=4,
)
wire_arrays = st.sampled_from(sorted(wire.ALLOWED_DTYPES)).flatmap(
    lambda name: hnp.arrays(wire.ALLOWED_DTYPES[name], hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
)


def frame(kind, tag, seq, arrays, meta) -> bytes:
    return b"".join(bytes(b) for b in wire.encode(kind, tag, seq, arrays, meta))


@FAST
@given(st.text(max_size=10), st.text(max_size=10), st.integers(0, 2**40), st.lists(wire_arrays, max_size=4), json_meta)
def test_wire_round_trip(kind, tag, seq, arrays, meta):
    msg = wire.decode(frame(kind, tag, seq, arrays, meta))
    assert (msg.kind, msg.tag, msg.seq) == (kind, tag, seq)
    assert msg.meta == json.loads(json.dumps(meta))
    assert len(msg.arrays) == len(arrays)
    for got, sent in zip(msg.arrays, arrays):
        assert got.dtype == sent.dtype and got.shape == sent.shape
        assert np.array_equal(got, sent, equal_nan=sent.dtype.kind == "f")


@FAST
@given(st.lists(wire_arrays, min_size=1, max_size=3), json_meta, st.data())
def test_wire_truncated_frame_raises_wire_format_error(arrays, meta, data):
    body = frame("data", "t", 1, arrays, meta)
    cut = data.draw(st.integers(0, len(body) - 1))
    assume(cut < len(body))
    with pytest.raises(WireFormatError):
        wire.decode(body[:cut])


@FAST
@given(st.lists(wire_arrays, max_size=3), json_meta, st.data())
def test_wire_corrupted_frame_never_raises_anything_else(arrays, meta, data):
    body = bytearray(frame("data", "t", 1, arrays, meta))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    try:
        msg = wire.decode(bytes(body))
    except WireFormatError:
        return
    # a flip that still parses must give well-formed, allowed arrays
    assert all(a.dtype.name in wire.ALLOWED_DTYPES for a in msg.arrays)


@FAST
@given(st.binary(max_size=64))
def test_wire_random_bytes_raise_wire_format_error_or_decode(body):
    try:
        wire.decode(body)
    except WireFormatError:
        pass



@FAST
@given(st.integers(0, 30), st.sampled_from(["list", "dict"]))
def test_wire_meta_depth_limit_is_exact_on_both_ends(depth, container):
    # meta nested up to MAX_META_DEPTH round-trips; deeper is refused by encode, and by
    # decode (without recursing) when a peer writes the header by hand
    value: object = 1
    for _ in range(depth):
        value = [value] if container == "list" else {"k": value}
    meta = {"x": value}
    body = wire.encode_raw(b"d", b"t", 0, [], json.dumps(meta).encode())
    if depth <= wire.MAX_META_DEPTH:
        assert wire.decode(frame("d", "t", 0, [], meta)).meta == meta
        assert wire.decode(body).meta == meta
    else:
        with pytest.raises(WireFormatError):
            wire.encode("d", "t", 0, [], meta)
        with pytest.raises(WireFormatError):
            wire.decode(body)


@FAST
@given(json_meta, st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]))
def test_wire_non_finite_numbers_in_headers_are_refused(meta, constant):
    text = json.dumps({**meta, "bad": 0})
    text = text.replace('"bad": 0', '"bad": ' + constant)
    with pytest.raises(WireFormatError):
        wire.decode(wire.encode_raw(b"d", b"t", 0, [], text.encode()))


@FAST
@given(st.text(max_size=10), st.lists(wire_arrays, max_size=4), json_meta)
def test_wire_arrays_arrive_aligned_and_any_byte_order_round_trips(tag, arrays, meta):
    # the header is padded to 8 bytes: the arrays start 8-byte aligned in the frame's buffer;
    # an array of another byte order is sent as the native dtype with the same values
    swapped = [a.astype(a.dtype.newbyteorder(">")) for a in arrays]
    body = bytearray(frame("data", tag, 3, swapped, meta))
    msg = wire.decode(body)
    before = 0  # the array bytes ahead of this array: the arrays start on an 8-byte boundary
    for got, sent in zip(msg.arrays, arrays):
        assert got.dtype == sent.dtype and got.dtype.isnative
        assert np.array_equal(got, sent, equal_nan=sent.dtype.kind == "f")
        if got.nbytes:
            assert got.ctypes.data % 8 == before % 8
        before += got.nbytes


@FAST
@given(st.integers(0, 6), st.integers(0, 2**64 - 1), st.lists(wire_arrays, max_size=2), st.sampled_from([{}, {"a": [1, "x"]}]))
def test_wire_a_lie_in_any_fixed_header_field_is_refused_or_consistent(field, value, arrays, meta):
    # overwrite one field of the fixed header with any value of its width: decode either
    # refuses the frame or returns a message whose arrays account for the frame exactly
    body = bytearray(frame("data", "t", 1, arrays, meta))
    fixed = struct.Struct("<BBHHHIQ")  # the fixed header, as a peer would write it
    vals = list(fixed.unpack_from(body, 0))
    vals[field] = value % (1 << [8, 8, 16, 16, 16, 32, 64][field])
    fixed.pack_into(body, 0, *vals)
    try:
        msg = wire.decode(bytes(body))
    except WireFormatError:
        return
    assert sum(a.nbytes for a in msg.arrays) <= len(body) and isinstance(msg.meta, dict)


def test_wire_encode_refuses_what_the_header_cannot_say():
    with pytest.raises(WireFormatError):
        wire.encode("k" * 256, "t", 0)
    with pytest.raises(WireFormatError):
        wire.encode("data", "t" * 65536, 0)
    with pytest.raises(WireFormatError):
        wire.encode("data", "t", 2**63)
    with pytest.raises(WireFormatError):
        wire.encode("data", "t", 0, [np.zeros((1,) * 9)])
    with pytest.raises(WireFormatError):
        wire.encode("data", "t", 0, [], ["not", "a", "dict"])  # type: ignore[arg-type]
    assert wire.decode(frame("é" * 127, "t" * 65535, 2**63 - 1, [], {})).seq == 2**63 - 1


# --- Paillier packing and compression ---------------------------------------------------


@FAST
@given(st.integers(2, 70), st.booleans(), st.data())
def test_pack_unpack_round_trip_within_slot_bounds(slot_bits, signed, data):
    limit = (1 << (slot_bits - 1)) - 1 if signed else (1 << slot_bits) - 1
    lo = -limit if signed else 0
    rows = data.draw(st.integers(1, 3))
    k = data.draw(st.integers(1, 6))
    values = data.draw(st.lists(st.lists(st.integers(lo, limit), min_size=k, max_size=k), min_size=rows, max_size=rows))
    packed = pack(np.array(values, dtype=object), slot_bits, signed=signed)
    back = unpack(packed, slot_bits, k, signed=signed)
    assert [[int(v) for v in r] for r in back] == values


@FAST
@given(st.integers(2, 40), st.booleans(), st.integers(1, 4))
def test_pack_rejects_values_outside_the_slot(slot_bits, signed, k):
    too_big = (1 << (slot_bits - 1)) if signed else (1 << slot_bits)
    with pytest.raises((OverflowError, ValueError)):
        pack(np.array([[too_big] * k], dtype=object), slot_bits, signed=signed)


@pytest.fixture(scope="module")
def keypair():
    return generate_keypair(512)


@SLOW
@given(st.integers(8, 48), st.integers(1, 2), st.integers(1, 9), st.data())
def test_compress_decrypt_round_trip(keypair, slot_bits, rows, m, data):
    pk, sk = keypair
    limit = (1 << (slot_bits - 1)) - 1
    values = np.array(
        data.draw(st.lists(st.lists(st.integers(-limit, limit), min_size=m, max_size=m), min_size=rows, max_size=rows)),
        dtype=np.int64,
    )
    ct = pk.encrypt(values)
    small = compress(ct, slot_bits=slot_bits)
    assert small.shape[-1] <= m
    assert sk.decrypt(small).tolist() == values.tolist()
