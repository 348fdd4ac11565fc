"""Fuzzing the wire decoder (issue 11, item 11): whatever bytes a peer sends, `wire.decode`
returns a well-formed `Message` or raises `WireFormatError` -- never `RecursionError`,
`OverflowError`, `MemoryError`, numpy's `ValueError`, a NaN in a header, or an allocation
larger than the frame.

Frames come from hypothesis: random bytes, valid frames with bytes flipped, inserted or
cut, headers with a field replaced by a hostile JSON value (NaN, huge integers, deep
nesting, wrong types), and array descriptors that lie about the frame's length. Each
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

_HLEN = struct.Struct("<I")
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
fields = st.sampled_from(["v", "k", "t", "s", "a", "m", "extra"])


def _frame(header: dict, body: bytes = b"", raw: bool = False) -> bytes:
    hb = json.dumps(header, separators=(",", ":"), allow_nan=True).encode() if not raw else header  # type: ignore[union-attr]
    return _HLEN.pack(len(hb)) + hb + body


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
    hb = b'{"v":1,"k":"d","t":"t","s":0,"a":[],"m":{"x":' + inner + b"}}"
    if rng.random() < 0.2:
        hb = inner  # the whole header is the nest
    return _frame(hb, raw=True)  # type: ignore[arg-type]


def _hostile_header(rng: random.Random, value: object, key: str) -> bytes:
    header: dict = {"v": 1, "k": "data", "t": "t", "s": 0, "a": [["uint8", [4]]], "m": {}}
    if key == "extra":
        header["zz"] = value
    elif rng.random() < 0.15:
        del header[key]
    else:
        header[key] = value
    if rng.random() < 0.5:
        header["m"] = {"x": value}
    body = bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 4, 5, 64])))
    return _frame(header, body)


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
    elif op == 3 and len(b) >= 4:  # lie about the header length
        b[:4] = _HLEN.pack(rng.choice([0, 1, len(b) - 4, len(b), 1 << 20, (1 << 20) + 1, 2**32 - 1]))
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
    _check(_HLEN.pack(len(raw)) + raw)
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
    "header",
    [
        b'{"v":1,"k":"d","t":"t","s":0,"a":[],"m":{"x":NaN}}',
        b'{"v":1,"k":"d","t":"t","s":0,"a":[],"m":{"x":-Infinity}}',
        b'{"v":1,"k":"d","t":"t","s":0,"a":[],"m":{"x":1e999}}',
        b'{"v":true,"k":"d","t":"t","s":0,"a":[],"m":{}}',
        b'{"v":1,"k":"d","t":"t","s":true,"a":[],"m":{}}',
        b'{"v":1,"k":"d","t":"t","s":-1,"a":[],"m":{}}',
        b'{"v":1,"k":"d","t":"t","s":0,"a":[["uint8",[true]]],"m":{}}',
        b'{"v":1,"k":"d","t":"t","s":0,"a":[["uint64",[0,1180591620717411303424]]],"m":{}}',
        b'{"v":1,"k":"d","t":"t","s":0,"a":[["uint64",[2147483648,2147483648]]],"m":{}}',
        b'{"v":1,"k":"d","t":"t","s":0,"a":[],"m":{},"x":1}',
        b'{"v":1,"k":"d","t":"t","s":0,"a":[]}',
        b'{"v":1,"k":"d","t":"t","s":0,"a":[],"m":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"[" * 200_000,
        b'"\\' * 200_000,
    ],
)
def test_known_hostile_headers_raise_wire_format_error(header):
    with pytest.raises(WireFormatError):
        wire.decode(_HLEN.pack(len(header)) + header)


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
