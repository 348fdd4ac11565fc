"""Wire format: a small JSON header plus raw ndarray buffers. No pickle, no eval.

Frame body (the transport adds an 8-byte length prefix):

    uint32 little-endian header length | header (UTF-8 JSON) | array buffers, in order

Header: ``{"v": 1, "k": kind, "t": tag, "s": seq, "a": [[dtype, shape], ...], "m": meta}``
where meta is a JSON object of plain scalars/lists. Only the dtypes in `ALLOWED_DTYPES`
may cross a link; sizes are checked against the frame length before any buffer is
touched, and receivers check dtype and shape against what the protocol expects.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Sequence, Union

import numpy as np
import numpy.typing as npt

from .errors import WireFormatError

WIRE_VERSION = 1
ALLOWED_DTYPES: dict[str, np.dtype[Any]] = {
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "int64": np.dtype(np.int64),
    "float64": np.dtype(np.float64),
    "bool": np.dtype(np.bool_),
}
MAX_HEADER = 1 << 20
MAX_DIMS = 8
#: Largest dimension (and product of the non-zero dimensions) of one array: 2^48 elements.
MAX_DIM = 1 << 48
#: Most arrays in one frame.
MAX_ARRAYS = 1 << 16
#: Deepest nesting of meta containers (the meta object itself is depth 0).
MAX_META_DEPTH = 8
#: Deepest bracket nesting of a whole header: its object, the meta object, then meta's own nesting.
MAX_HEADER_DEPTH = MAX_META_DEPTH + 2
_HEADER_KEYS = {"v", "k", "t", "s", "a", "m"}
# A JSON string, or an unterminated one up to the end: never backtracks (linear time).
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_HLEN = struct.Struct("<I")

#: What a frame body is written as: the header bytes, then one buffer per array.
Buffers = list[Union[bytes, bytearray, memoryview]]


@dataclass
class Message:
    """A decoded frame.

    >>> m = decode(b"".join(bytes(b) for b in encode("data", "x", 0, [np.arange(3)])))
    >>> m.expect([np.int64], [(3,)])[0].tolist()
    [0, 1, 2]
    """

    kind: str
    tag: str
    seq: int
    arrays: list[npt.NDArray[Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def expect(
        self,
        dtypes: Sequence[npt.DTypeLike] | None = None,
        shapes: Sequence[Sequence[int] | None] | None = None,
        party: str = "?",
    ) -> list[npt.NDArray[Any]]:
        """Check the arrays' count, dtypes and shapes against what the protocol expects."""
        where = f"message '{self.tag}' from {party}"
        if dtypes is not None:
            if len(dtypes) != len(self.arrays):
                raise WireFormatError(f"{where}: expected {len(dtypes)} arrays, got {len(self.arrays)}")
            for i, (a, d) in enumerate(zip(self.arrays, dtypes)):
                if a.dtype != np.dtype(d):
                    raise WireFormatError(f"{where}: array {i} has dtype {a.dtype}, expected {np.dtype(d)}")
        if shapes is not None:
            for i, (a, s) in enumerate(zip(self.arrays, shapes)):
                if s is not None and tuple(a.shape) != tuple(s):
                    raise WireFormatError(f"{where}: array {i} has shape {a.shape}, expected {tuple(s)}")
        return self.arrays


def _check_meta(meta: Any, depth: int = 0) -> None:
    """Meta must be JSON data: containers nested at most `MAX_META_DEPTH` deep, finite numbers."""
    if isinstance(meta, float) and not math.isfinite(meta):
        raise WireFormatError("meta may not carry NaN or infinity")
    if meta is None or isinstance(meta, (bool, int, float, str)):
        return
    if depth > MAX_META_DEPTH:
        raise WireFormatError("meta nested too deeply")
    if isinstance(meta, (list, tuple)):
        for v in meta:
            _check_meta(v, depth + 1)
        return
    if isinstance(meta, dict):
        for k, v in meta.items():
            if not isinstance(k, str):
                raise WireFormatError("meta keys must be strings")
            _check_meta(v, depth + 1)
        return
    raise WireFormatError(f"meta values must be JSON scalars/lists/dicts, got {type(meta).__name__}")


def encode(
    kind: str, tag: str, seq: int, arrays: Sequence[npt.ArrayLike] = (), meta: dict[str, Any] | None = None
) -> Buffers:
    """Encode a frame body as a list of buffers (header first) to write in order.

    >>> bufs = encode("data", "t", 0, [np.zeros(2)], {"rows": 2})
    >>> len(bufs), body_size(bufs) > 16
    (2, True)
    >>> encode("data", "t", 0, [np.array(["text"])])
    Traceback (most recent call last):
    ...
    jointml.core.errors.WireFormatError: dtype <U4 may not cross a link
    """
    arrs: list[npt.NDArray[Any]] = []
    desc: list[list[Any]] = []
    for x in arrays:
        a = np.asarray(x)
        if not a.flags.c_contiguous:
            a = a.copy(order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
        name = a.dtype.name
        if name not in ALLOWED_DTYPES:
            raise WireFormatError(f"dtype {a.dtype} may not cross a link")
        desc.append([name, list(a.shape)])
        arrs.append(a)
    meta = meta or {}
    _check_meta(meta)
    header = json.dumps({"v": WIRE_VERSION, "k": kind, "t": tag, "s": seq, "a": desc, "m": meta}, separators=(",", ":")).encode()
    if len(header) > MAX_HEADER:
        raise WireFormatError("header too large")
    bufs: Buffers = [_HLEN.pack(len(header)) + header]
    for a in arrs:
        if a.nbytes:
            bufs.append(memoryview(a.reshape(-1)).cast("B"))  # type: ignore[arg-type]  # ndarray is a buffer
    return bufs


def body_size(bufs: Buffers) -> int:
    """The frame body's length in bytes (without the transport's length prefix).

    >>> body_size([b"abc", memoryview(np.zeros(2))])
    19
    """
    return sum(len(b) if isinstance(b, (bytes, bytearray)) else b.nbytes for b in bufs)


def _reject_constant(name: str) -> Any:
    raise WireFormatError(f"malformed frame header: {name} is not allowed")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):  # e.g. 1e999: json parses it as inf
        raise WireFormatError("malformed frame header: non-finite number")
    return v


# One decoder for every frame (json.loads with hooks would build a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _too_deep(hb: bytes) -> bool:
    """Whether a JSON text nests brackets deeper than `MAX_HEADER_DEPTH` (strings skipped).

    Linear and non-recursive, so json never gets to recurse on a hostile header.

    >>> _too_deep(b'{"a":[[1],"[[[[[[[[[[[[[["]}'), _too_deep(b"[" * 11 + b"]" * 11)
    (False, True)
    """
    if hb.count(b"[") + hb.count(b"{") <= MAX_HEADER_DEPTH:
        return False  # fast path: fewer openings than the limit
    brackets = _JSON_STRING.sub(b"", hb).translate(None, _NOT_BRACKET)
    steps = np.frombuffer(brackets, dtype=np.uint8)
    depth = np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1))
    return bool(depth.size and depth.max() > MAX_HEADER_DEPTH)


def _parse_header(hb: bytes) -> dict[str, Any]:
    """Parse and type-check the JSON header (depth-limited, NaN/Infinity refused)."""
    if _too_deep(hb):
        raise WireFormatError("malformed frame header: nested too deeply")
    try:
        h = _DECODER.decode(hb.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        if isinstance(e, WireFormatError):
            raise
        raise WireFormatError(f"malformed frame header: {e}") from None
    if not isinstance(h, dict) or h.keys() != _HEADER_KEYS:
        raise WireFormatError("malformed frame header: wrong fields")
    v, kind, tag, seq, desc, meta = h["v"], h["k"], h["t"], h["s"], h["a"], h["m"]
    if type(v) is not int or v != WIRE_VERSION:
        raise WireFormatError("malformed frame header: missing or unsupported version")
    if type(kind) is not str or type(tag) is not str or type(seq) is not int or not 0 <= seq < 1 << 63:
        raise WireFormatError("malformed frame header: bad field types")
    if type(desc) is not list or len(desc) > MAX_ARRAYS or type(meta) is not dict:
        raise WireFormatError("malformed frame header: bad field types")
    return h


def _array_layout(desc: list[Any]) -> list[tuple[np.dtype[Any], tuple[int, ...], int]]:
    """(dtype, shape, nbytes) of each array descriptor, checked before anything is allocated."""
    out = []
    for d in desc:
        if not (type(d) is list and len(d) == 2 and type(d[0]) is str and type(d[1]) is list):
            raise WireFormatError("malformed array descriptor")
        name, shape = d
        dt = ALLOWED_DTYPES.get(name)
        if dt is None:
            raise WireFormatError(f"dtype '{name[:40]}' not allowed on the wire")
        if len(shape) > MAX_DIMS or not all(type(s) is int and 0 <= s <= MAX_DIM for s in shape):
            raise WireFormatError(f"bad array shape {str(shape)[:80]}")
        count, bound = 1, 1
        for s in shape:
            count *= s
            bound *= max(s, 1)
        if bound > MAX_DIM:  # also for empty arrays: numpy refuses shapes whose full size overflows
            raise WireFormatError(f"bad array shape {str(shape)[:80]}")
        out.append((dt, tuple(shape), count * dt.itemsize))
    return out


def decode(body: bytes | bytearray | memoryview) -> Message:
    """Decode and validate a frame body. Never evaluates or unpickles anything.

    Checks are O(header): the header's nesting depth, JSON grammar (no NaN/Infinity),
    the type of every field, and that the arrays' dtypes and shapes account for exactly
    the bytes after the header, all before any array is created. Arrays are views of
    `body` (no copy). Anything malformed raises `WireFormatError`, and nothing else.

    >>> decode(b"".join(bytes(b) for b in encode("data", "t", 7))).seq
    7
    >>> decode(b"\\x05\\x00")
    Traceback (most recent call last):
    ...
    jointml.core.errors.WireFormatError: truncated frame: no header length
    >>> nested = b'{"v":1,"k":"d","t":"t","s":0,"a":[],"m":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    >>> decode(_HLEN.pack(len(nested)) + nested)
    Traceback (most recent call last):
    ...
    jointml.core.errors.WireFormatError: malformed frame header: nested too deeply
    """
    mv = memoryview(body)
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    if mv.nbytes < _HLEN.size:
        raise WireFormatError("truncated frame: no header length")
    (hlen,) = _HLEN.unpack_from(mv, 0)
    if hlen > MAX_HEADER or _HLEN.size + hlen > mv.nbytes:
        raise WireFormatError(f"malformed frame: header length {hlen} exceeds frame of {mv.nbytes} bytes")
    h = _parse_header(bytes(mv[_HLEN.size : _HLEN.size + hlen]))
    layout = _array_layout(h["a"])
    off = _HLEN.size + hlen
    need = sum(n for _, _, n in layout)
    if off + need != mv.nbytes:
        what = "truncated frame" if off + need > mv.nbytes else "malformed frame"
        raise WireFormatError(f"{what}: arrays need {need} bytes, {mv.nbytes - off} follow the header")
    arrays: list[npt.NDArray[Any]] = []
    for dt, shape, nbytes in layout:
        arrays.append(np.frombuffer(mv[off : off + nbytes], dtype=dt).reshape(shape) if nbytes else np.empty(shape, dtype=dt))
        off += nbytes
    return Message(kind=h["k"], tag=h["t"], seq=h["s"], arrays=arrays, meta=h["m"])
