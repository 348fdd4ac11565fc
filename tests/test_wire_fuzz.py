"""Fuzzing the wire decoder (issue 11, item 11): whatever bytes a peer sends, `wire.decode`
returns a well-formed `Message` or raises `WireFormatError` -- never `RecursionError`,
`OverflowError`, `MemoryError`, numpy's `ValueError`, a NaN in a header, or an allocation
larger than the frame.

Frames come from hypothesis: random bytes, valid frames with bytes flipped, inserted or
cut, headers with a field of the fixed binary header lying (version, lengths, array count,
dtype code, dimensions, padding, non-UTF-8 names), metas carrying a hostile JSON value
(NaN, huge integers, deep nesting, wrong types), and array descriptors that lie about the
frame's length. Each
hypothesis example expands into a batch of frames with a seeded `random.Random` (test
input only, nothing secret), so the slow test decodes well over 100,000 frames in
about half a minute.
"""

from __future__ import annotations

import json
import math
import random
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jointml.core import wire
from jointml.core.errors import WireFormatError

_FIXED = struct.Struct("<BBHHHIQ")  # the format's fixed header, spelled out (not imported: a hostile peer's view)
BATCH = 50
FRAMES = {"n": 0}

hostile_values = st.sampled_from(
    [
        float("nan"), float("inf"), -float("inf"), 10**30, -(10**30), 2**63, -1, True, False, None, "",
        "x" * 300, [], {}, [[[[[[[[[[[[1]]]]]]]]]]]], {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {}}}}}}}}}},
        ["uint64", [2**62, 2**62]], ["uint64", [0, 2**70]], ["float64", [-1]], ["object", [1]], ["<U4", [1]],
        [["uint8", [1]]] * 3, 1.5, "1", [1, 2, 3],
    ]
)
#: the fixed header's fields a hostile frame lies in: version, kind/tag/meta lengths, array count, reserved, seq
fields = st.sampled_from(["v", "k", "t", "a", "r", "m", "s", "code", "ndim", "dims", "utf8", "pad", "meta"])
_FIELD = {"v": 0, "k": 1, "t": 2, "a": 3, "r": 4, "m": 5, "s": 6}
_LIES = [0, 1, 2, 7, 8, 9, 255, 256, 65535, 2**20, 2**20 + 1, 2**32 - 1, 2**63, 2**64 - 1]


def _meta_json(value: object) -> bytes:
    return json.dumps({"x": value}, separators=(",", ":"), allow_nan=True).encode()


def _valid(rng: random.Random) -> bytes:
    arrays = []
    for _ in range(rng.randrange(4)):
        name = rng.choice(sorted(wire.ALLOWED_DTYPES))
        shape = tuple(rng.randrange(4) for _ in range(rng.randrange(3)))
        arrays.append(np.zeros(shape, dtype=wire.ALLOWED_DTYPES[name]))
    meta = {"rows": rng.randrange(100), "name": "x" * rng.randrange(5), "f": rng.random(), "l": [1, [2, None]]}
    return b"".join(bytes(b) for b in wire.encode("data", f"tag{rng.randrange(9)}", rng.randrange(1 << 20), arrays, meta))


def _nested(rng: random.Random) -> bytes:
    depth = 100_000 if rng.random() < 0.01 else rng.choice([9, 10, 11, 12, 50, 1000, 3000])
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    inner = opener * depth + b"1" + closer * depth
    if rng.random() < 0.3:
        inner = inner[: rng.randrange(len(inner))]  # unbalanced
    mb = b'{"x":' + inner + b"}"
    if rng.random() < 0.2:
        mb = inner  # the whole meta is the nest
    return wire.encode_raw(b"d", b"t", 0, [], mb)


def _hostile_header(rng: random.Random, value: object, key: str) -> bytes:
    """A frame whose header lies in one field (or whose meta carries a hostile JSON value)."""
    arrays: list[tuple[int, list[int]]] = [(1, [4])]
    kind, tag, meta = b"data", b"t", _meta_json(value) if rng.random() < 0.5 else b""
    if key == "code":
        arrays = [(rng.choice([0, 8, 9, 255]), [4])]
    elif key == "ndim":
        arrays = [(1, [1] * rng.choice([9, 10, 40]))]
    elif key == "dims":
        arrays = [(4, rng.choice([[2**62, 2**62], [0, 2**63], [2**48 + 1], [2**31, 2**31], [2**64 - 1]]))]
    elif key == "utf8":
        kind, tag = rng.choice([(b"\xff", b"t"), (b"data", b"\xc3"), (b"\xed\xa0\x80", b"t")])
    elif key == "meta":
        meta = _meta_json(value) if rng.random() < 0.5 else json.dumps(value, allow_nan=True).encode()
    body = bytearray(wire.encode_raw(kind, tag, 0, arrays, meta, bytes(rng.randrange(256) for _ in range(4))))
    if key in _FIELD:
        vals = list(_FIXED.unpack_from(body, 0))
        i = _FIELD[key]
        limit = (1 << [8, 8, 16, 16, 16, 32, 64][i]) - 1
        vals[i] = min(rng.choice(_LIES), limit)
        _FIXED.pack_into(body, 0, *vals)
    elif key == "pad":
        hdr = len(body) - 4
        if hdr % 8 == 0 and body[hdr - 1] == 0:
            body[hdr - 1] = rng.randrange(1, 256)
    return bytes(body)


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    b = bytearray(frame)
    op = rng.randrange(6)
    if op == 0 and b:  # flip bytes
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 1:  # truncate
        del b[rng.randrange(len(b) + 1) :]
    elif op == 2:  # insert junk
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
    elif op == 3 and len(b) >= _FIXED.size:  # lie about one length in the fixed header
        vals = list(_FIXED.unpack_from(b, 0))
        i = rng.choice([1, 2, 3, 5])
        vals[i] = min(rng.choice(_LIES + [len(b), len(b) - _FIXED.size]), (1 << [8, 8, 16, 16, 16, 32][i]) - 1)
        _FIXED.pack_into(b, 0, *vals)
    elif op == 4:  # splice a piece of the header elsewhere
        i, j = sorted(rng.randrange(len(b) + 1) for _ in range(2))
        k = rng.randrange(len(b) + 1)
        b[k:k] = b[i:j]
    else:  # trailing bytes
        b += bytes(rng.randrange(1, 20))
    return bytes(b)


def _check(body: bytes) -> None:
    FRAMES["n"] += 1
    try:
        msg = wire.decode(body)
    except WireFormatError:
        return
    # accepted: it must be a well-formed message that fits in the frame
    assert isinstance(msg.kind, str) and isinstance(msg.tag, str)
    assert type(msg.seq) is int and msg.seq >= 0
    assert isinstance(msg.meta, dict)
    assert sum(a.nbytes for a in msg.arrays) <= len(body)
    assert all(a.dtype.name in wire.ALLOWED_DTYPES for a in msg.arrays)
    _assert_finite(msg.meta)


def _assert_finite(v: object) -> None:
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, float):
            assert math.isfinite(x)
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


def _batch(seed: int, raw: bytes, value: object, key: str) -> None:
    rng = random.Random(seed)
    _check(raw)
    _check(_FIXED.pack(2, 0, 0, 0, 0, 0, 0) + raw)
    _check(_FIXED.pack(2, 0, 0, 1, 0, 0, 0) + raw)
    for _ in range(BATCH - 2):
        kind = rng.randrange(5)
        if kind == 0:
            _check(_mutate(rng, _valid(rng)))
        elif kind == 1:
            _check(_nested(rng))
        elif kind == 2:
            _check(_hostile_header(rng, value, key))
        elif kind == 3:
            _check(_mutate(rng, _hostile_header(rng, value, key)))
        else:
            v = _valid(rng)
            _check(v[: rng.randrange(len(v))])  # truncated valid frame


frames_args = (st.integers(0, 2**32), st.binary(max_size=64), hostile_values, fields)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(*frames_args)
def test_wire_decoder_fuzz_fast(seed, raw, value, key):
    # ~2,000 frames in the default run
    _batch(seed, raw, value, key)


@pytest.mark.slow
def test_wire_decoder_fuzz_100k_frames():
    start = FRAMES["n"]

    @settings(max_examples=2_020, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(*frames_args)
    def run(seed, raw, value, key):
        _batch(seed, raw, value, key)

    run()
    assert FRAMES["n"] - start >= 100_000


def test_valid_frames_still_decode_and_share_the_buffer():
    rng = random.Random(1)
    for _ in range(200):
        body = bytearray(_valid(rng))
        msg = wire.decode(body)
        for a in msg.arrays:
            if a.nbytes:
                assert np.shares_memory(a, np.frombuffer(body, np.uint8))


@pytest.mark.parametrize(
    "body",
    [
        wire.encode_raw(b"d", b"t", 0, [], b'{"x":NaN}'),
        wire.encode_raw(b"d", b"t", 0, [], b'{"x":-Infinity}'),
        wire.encode_raw(b"d", b"t", 0, [], b'{"x":1e999}'),
        wire.encode_raw(b"d", b"t", 0, [], b"[1]"),  # meta that is not an object
        wire.encode_raw(b"d", b"t", 0, [], b'{"x":1'),  # truncated JSON
        wire.encode_raw(b"d", b"t", 0, [], b'\xff{"x":1}'),  # not UTF-8
        wire.encode_raw(b"d", b"t", 0, [], b"[" * 100_000 + b"]" * 100_000),
        wire.encode_raw(b"d", b"t", 0, [], b"[" * 200_000),
        wire.encode_raw(b"d", b"t", 0, [], b'"\\' * 200_000),
        wire.encode_raw(b"d", b"t", 2**63, [], b""),  # sequence number out of range
        wire.encode_raw(b"d", b"t", 0, [(4, [0, 2**63])], b""),  # an empty array numpy could not shape
        wire.encode_raw(b"d", b"t", 0, [(4, [2**31, 2**31])], b""),  # a size that lies about the frame
        wire.encode_raw(b"d", b"t", 0, [(0, [1])], b"", bytes(8)),  # no such dtype code
        wire.encode_raw(b"d", b"t", 0, [(4, [1] * 9)], b"", bytes(8)),  # too many dimensions
        wire.encode_raw(b"d", b"t", 0, [(4, [1])], b"", bytes(16)),  # trailing bytes
        wire.encode_raw(b"d", b"t", 0, [(4, [2])], b"", bytes(8)),  # truncated payload
        b"\x01" + wire.encode_raw(b"d", b"t", 0, [], b"")[1:],  # the old (JSON) format's version
        wire.encode_raw(b"d", b"t", 0, [], b"")[:-1] + b"\x01",  # non-zero padding
        bytes([2, 0, 0, 0, 1, 0]) + bytes(18),  # reserved field set
    ],
)
def test_known_hostile_frames_raise_wire_format_error(body):
    with pytest.raises(WireFormatError):
        wire.decode(body)


def test_encode_refuses_non_finite_meta():
    with pytest.raises(WireFormatError):
        wire.encode("data", "t", 0, (), {"x": float("nan")})


@pytest.mark.parametrize("bad", [["3"], [True], [-1], [2**60, 2**60], [1] * 9, "3", None, [1.5]])
def test_announced_shapes_from_peers_are_validated(bad):
    # the shape a secret's owner announces sizes every party's share: a garbage or
    # hostile one is a WireFormatError naming the party, not a crash or a huge allocation
    from jointml.mpc.shapes import received_fxp, received_shape

    with pytest.raises(WireFormatError, match="bob"):
        received_shape(bad, party="bob")
    assert received_shape([2, 0, 3]) == (2, 0, 3)
    with pytest.raises(WireFormatError):
        received_fxp(99, party="bob")
