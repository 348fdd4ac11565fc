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
    if depth > 8:
        raise WireFormatError("meta nested too deeply")
    if meta is None or isinstance(meta, (bool, int, float, str)):
        return
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


def decode(body: bytes | bytearray | memoryview) -> Message:
    """Decode and validate a frame body. Never evaluates or unpickles anything.

    >>> decode(b"".join(bytes(b) for b in encode("data", "t", 7))).seq
    7
    >>> decode(b"\\x05\\x00")
    Traceback (most recent call last):
    ...
    jointml.core.errors.WireFormatError: truncated frame: no header length
    """
    mv = memoryview(body)
    if mv.nbytes < _HLEN.size:
        raise WireFormatError("truncated frame: no header length")
    (hlen,) = _HLEN.unpack_from(mv, 0)
    if hlen > MAX_HEADER or _HLEN.size + hlen > mv.nbytes:
        raise WireFormatError(f"malformed frame: header length {hlen} exceeds frame of {mv.nbytes} bytes")
    try:
        h = json.loads(bytes(mv[_HLEN.size : _HLEN.size + hlen]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireFormatError(f"malformed frame header: {e}") from None
    if not isinstance(h, dict) or h.get("v") != WIRE_VERSION:
        raise WireFormatError("malformed frame header: missing or unsupported version")
    kind, tag, seq, desc, meta = h.get("k"), h.get("t"), h.get("s"), h.get("a"), h.get("m", {})
    if not isinstance(kind, str) or not isinstance(tag, str) or not isinstance(seq, int):
        raise WireFormatError("malformed frame header: bad field types")
    if not isinstance(desc, list) or not isinstance(meta, dict):
        raise WireFormatError("malformed frame header: bad field types")
    off = _HLEN.size + hlen
    arrays: list[npt.NDArray[Any]] = []
    for d in desc:
        if not (isinstance(d, list) and len(d) == 2 and isinstance(d[0], str) and isinstance(d[1], list)):
            raise WireFormatError("malformed array descriptor")
        name, shape = d
        dt = ALLOWED_DTYPES.get(name)
        if dt is None:
            raise WireFormatError(f"dtype '{name}' not allowed on the wire")
        if len(shape) > MAX_DIMS or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise WireFormatError(f"bad array shape {shape!r}")
        count = 1
        for s in shape:
            count *= s
        nbytes = count * dt.itemsize
        if off + nbytes > mv.nbytes:
            raise WireFormatError(f"truncated frame: array needs {nbytes} bytes, {mv.nbytes - off} left")
        arrays.append(np.frombuffer(mv[off : off + nbytes], dtype=dt).reshape(shape) if nbytes else np.empty(shape, dtype=dt))
        off += nbytes
    if off != mv.nbytes:
        raise WireFormatError(f"malformed frame: {mv.nbytes - off} trailing bytes")
    return Message(kind=kind, tag=tag, seq=seq, arrays=arrays, meta=meta)
