"""Wire format: a fixed binary header, a JSON meta object, then raw ndarray buffers. No pickle, no eval.

Frame body (the transport adds an 8-byte length prefix), all integers little-endian:

    u8 version (2) | u8 len(kind) | u16 len(tag) | u16 array count | u16 reserved (0) | u32 len(meta) | u64 seq
    | kind (UTF-8) | tag (UTF-8) | per array: u8 dtype code, u8 ndim, ndim x u64 dimensions
    | meta (UTF-8 JSON object; absent when len(meta) is 0, meaning {})
    | zero padding to a multiple of 8 bytes | array buffers, in order (C order, native little-endian)

The fixed part is struct-packed, so a message on the hot path (no meta) costs no JSON
at either end. Only the dtypes in `ALLOWED_DTYPES` may cross a link; every field is
checked on receipt (version, lengths, dtype codes, dimensions, the zero padding, the
meta's nesting depth and grammar) and the arrays' sizes against the frame length before
any buffer is touched; receivers then check dtype and shape against what the protocol
expects. The padding keeps each array 8-byte aligned in the received buffer.

Version 1 (a JSON header) is not read any more: it was only ever a wire format between
parties running the same release, never persisted.
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

WIRE_VERSION = 2
ALLOWED_DTYPES: dict[str, np.dtype[Any]] = {
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "int64": np.dtype(np.int64),
    "float64": np.dtype(np.float64),
    "bool": np.dtype(np.bool_),
}
#: The one-byte code of each allowed dtype on the wire (fixed: part of the format).
DTYPE_CODES: dict[str, int] = {"uint8": 1, "uint16": 2, "uint32": 3, "uint64": 4, "int64": 5, "float64": 6, "bool": 7}
_CODE_OF: dict[np.dtype[Any], int] = {ALLOWED_DTYPES[n]: c for n, c in DTYPE_CODES.items()}
_DTYPE_OF: dict[int, np.dtype[Any]] = {c: ALLOWED_DTYPES[n] for n, c in DTYPE_CODES.items()}
#: Largest meta (JSON bytes) of one frame.
MAX_HEADER = 1 << 20
MAX_DIMS = 8
#: Largest dimension (and product of the non-zero dimensions) of one array: 2^48 elements.
MAX_DIM = 1 << 48
#: Most arrays in one frame.
MAX_ARRAYS = (1 << 16) - 1
#: Longest kind and tag (UTF-8 bytes).
MAX_KIND = 255
MAX_TAG = (1 << 16) - 1
#: Deepest nesting of meta containers (the meta object itself is depth 0).
MAX_META_DEPTH = 8
#: Deepest bracket nesting of a meta text: its object, then meta's own nesting.
MAX_HEADER_DEPTH = MAX_META_DEPTH + 1
# A JSON string, or an unterminated one up to the end: never backtracks (linear time).
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_FIXED = struct.Struct("<BBHHHIQ")
_ARRAY = struct.Struct("<BB")
_DIMS = [struct.Struct(f"<{k}Q") for k in range(MAX_DIMS + 1)]
_PAD = [bytes(k) for k in range(8)]

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
        if dtypes is not None:
            if len(dtypes) != len(self.arrays):
                raise WireFormatError(
                    f"message '{self.tag}' from {party}: expected {len(dtypes)} arrays, got {len(self.arrays)}")
            for i, (a, d) in enumerate(zip(self.arrays, dtypes)):
                if a.dtype.type is not d and a.dtype != np.dtype(d):  # (the first test: d a scalar type)
                    raise WireFormatError(
                        f"message '{self.tag}' from {party}: array {i} has dtype {a.dtype}, expected {np.dtype(d)}")
        if shapes is not None:
            for i, (a, s) in enumerate(zip(self.arrays, shapes)):
                if s is not None and a.shape != s and a.shape != tuple(s):
                    raise WireFormatError(
                        f"message '{self.tag}' from {party}: array {i} has shape {a.shape}, expected {tuple(s)}")
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


def _wire_array(x: npt.ArrayLike) -> tuple[npt.NDArray[Any], int]:
    """`x` as a C-contiguous native-order array of an allowed dtype, and that dtype's code."""
    a = np.asarray(x)
    code = _CODE_OF.get(a.dtype)
    if code is None:
        name = a.dtype.name
        if name not in ALLOWED_DTYPES:
            raise WireFormatError(f"dtype {a.dtype} may not cross a link")
        a = a.astype(ALLOWED_DTYPES[name])  # e.g. big-endian uint64: sent little-endian
        code = DTYPE_CODES[name]
    if not a.flags.c_contiguous:
        a = a.copy(order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
    if a.ndim > MAX_DIMS:
        raise WireFormatError(f"arrays of more than {MAX_DIMS} dimensions may not cross a link")
    return a, code


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
    kb, tb = kind.encode(), tag.encode()
    if len(kb) > MAX_KIND or len(tb) > MAX_TAG or len(arrays) > MAX_ARRAYS or not 0 <= seq < 1 << 63:
        raise WireFormatError("frame kind, tag, array count or sequence number out of range")
    arrs: list[npt.NDArray[Any]] = []
    parts = [b"", kb, tb]
    for x in arrays:
        a, code = _wire_array(x)
        shape = a.shape
        parts.append(_ARRAY.pack(code, len(shape)) + _DIMS[len(shape)].pack(*shape))
        arrs.append(a)
    mb = b""
    if meta:
        if not isinstance(meta, dict):
            raise WireFormatError(f"meta must be a dict, got {type(meta).__name__}")
        _check_meta(meta)
        mb = json.dumps(meta, separators=(",", ":")).encode()
        if len(mb) > MAX_HEADER:
            raise WireFormatError("frame meta too large")
        parts.append(mb)
    parts[0] = _FIXED.pack(WIRE_VERSION, len(kb), len(tb), len(arrs), 0, len(mb), seq)
    header = b"".join(parts)
    bufs: Buffers = [header + _PAD[-len(header) % 8]]
    for a in arrs:
        if a.nbytes:
            bufs.append(memoryview(a.reshape(-1)).cast("B"))  # type: ignore[arg-type]  # ndarray is a buffer
    return bufs


def encode_raw(kind: bytes, tag: bytes, seq: int, arrays: Sequence[tuple[int, Sequence[int]]], meta: bytes,
               payload: bytes = b"") -> bytes:
    """A frame body from already-encoded parts, checked for nothing: what a hostile peer could
    write (tests of `decode`). `arrays` are (dtype code, shape) descriptors, `meta` JSON bytes.

    >>> decode(encode_raw(b"data", b"t", 3, [(4, [2])], b'{"a":1}', bytes(16))).meta
    {'a': 1}
    >>> decode(encode_raw(b"data", b"t", 3, [(4, [2])], b'{"a":NaN}', bytes(16)))
    Traceback (most recent call last):
    ...
    jointml.core.errors.WireFormatError: malformed frame meta: NaN is not allowed
    """
    descs = b"".join(_ARRAY.pack(c, len(sh)) + struct.pack(f"<{len(sh)}Q", *sh) for c, sh in arrays)
    header = _FIXED.pack(WIRE_VERSION, len(kind), len(tag), len(arrays), 0, len(meta), seq) + kind + tag + descs + meta
    return header + bytes(-len(header) % 8) + payload


def body_size(bufs: Buffers) -> int:
    """The frame body's length in bytes (without the transport's length prefix).

    >>> body_size([b"abc", memoryview(np.zeros(2))])
    19
    """
    return sum(len(b) if isinstance(b, (bytes, bytearray)) else b.nbytes for b in bufs)


def _reject_constant(name: str) -> Any:
    raise WireFormatError(f"malformed frame meta: {name} is not allowed")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):  # e.g. 1e999: json parses it as inf
        raise WireFormatError("malformed frame meta: non-finite number")
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


def _parse_meta(mb: bytes) -> dict[str, Any]:
    """Parse and type-check the JSON meta (depth-limited, NaN/Infinity refused): a JSON object."""
    if _too_deep(mb):
        raise WireFormatError("malformed frame meta: nested too deeply")
    try:
        m = _DECODER.decode(mb.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        if isinstance(e, WireFormatError):
            raise WireFormatError(str(e).replace("frame header", "frame meta")) from None
        raise WireFormatError(f"malformed frame meta: {e}") from None
    if type(m) is not dict:
        raise WireFormatError("malformed frame meta: not a JSON object")
    return m


def _array_layout(mv: memoryview, off: int, count: int) -> tuple[list[tuple[np.dtype[Any], tuple[int, ...], int]], int, int]:
    """(dtype, shape, nbytes) of each array descriptor from `off` on, checked before anything is
    allocated, the offset after the descriptors and the arrays' total size (`struct.error` when
    the descriptors run past the frame)."""
    out = []
    need = 0
    for _ in range(count):
        code, ndim = _ARRAY.unpack_from(mv, off)
        dt = _DTYPE_OF.get(code)
        if dt is None:
            raise WireFormatError(f"dtype code {code} not allowed on the wire")
        if ndim > MAX_DIMS:
            raise WireFormatError(f"bad array shape: {ndim} dimensions")
        shape = _DIMS[ndim].unpack_from(mv, off + 2)
        off += 2 + 8 * ndim
        count_, bound = 1, 1
        for s in shape:
            count_ *= s
            bound *= s if s > 1 else 1
        if bound > MAX_DIM:  # also for empty arrays: numpy refuses shapes whose full size overflows
            raise WireFormatError(f"bad array shape {str(shape)[:80]}")
        nbytes = count_ * dt.itemsize
        need += nbytes
        out.append((dt, shape, nbytes))
    return out, off, need


def decode(body: bytes | bytearray | memoryview) -> Message:
    """Decode and validate a frame body. Never evaluates or unpickles anything.

    Checks are O(header): the version, every length against the frame, the dtype codes and
    dimensions, the zero padding, the meta's nesting depth and JSON grammar (no NaN/Infinity),
    and that the arrays' dtypes and shapes account for exactly the bytes after the header,
    all before any array is created. Arrays are views of `body` (no copy). Anything
    malformed raises `WireFormatError`, and nothing else.

    >>> decode(b"".join(bytes(b) for b in encode("data", "t", 7))).seq
    7
    >>> decode(b"\\x05\\x00")
    Traceback (most recent call last):
    ...
    jointml.core.errors.WireFormatError: truncated frame: no header
    >>> decode(encode_raw(b"d", b"t", 0, [], b"[" * 100_000 + b"]" * 100_000))
    Traceback (most recent call last):
    ...
    jointml.core.errors.WireFormatError: malformed frame meta: nested too deeply
    """
    mv = memoryview(body)
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    size = mv.nbytes
    if size < _FIXED.size:
        raise WireFormatError("truncated frame: no header")
    version, klen, tlen, narr, reserved, mlen, seq = _FIXED.unpack_from(mv, 0)
    if version != WIRE_VERSION:
        raise WireFormatError(f"unsupported wire format version {version} (this party speaks {WIRE_VERSION})")
    if reserved or seq >= 1 << 63 or mlen > MAX_HEADER:
        raise WireFormatError("malformed frame header: bad field values")
    off = _FIXED.size + klen + tlen
    try:
        layout, moff, need = _array_layout(mv, off, narr)
    except struct.error:
        raise WireFormatError("truncated frame: array descriptors run past its end") from None
    end = moff + mlen
    off = end + (-end % 8)
    if off > size:
        raise WireFormatError(f"truncated frame: header of {off} bytes, frame of {size}")
    if off != end and mv[end:off] != _PAD[off - end]:
        raise WireFormatError("malformed frame header: non-zero padding")
    try:
        kind = str(mv[_FIXED.size : _FIXED.size + klen], "utf-8")
        tag = str(mv[_FIXED.size + klen : _FIXED.size + klen + tlen], "utf-8")
    except UnicodeDecodeError:
        raise WireFormatError("malformed frame header: kind or tag is not UTF-8") from None
    meta = _parse_meta(bytes(mv[moff:end])) if mlen else {}
    if off + need != size:
        what = "truncated frame" if off + need > size else "malformed frame"
        raise WireFormatError(f"{what}: arrays need {need} bytes, {size - off} follow the header")
    arrays: list[npt.NDArray[Any]] = []
    for dt, shape, nbytes in layout:
        if nbytes:
            a = np.frombuffer(mv, dtype=dt, count=nbytes // dt.itemsize, offset=off)
            arrays.append(a if len(shape) == 1 else a.reshape(shape))
        else:
            arrays.append(np.empty(shape, dtype=dt))
        off += nbytes
    return Message(kind=kind, tag=tag, seq=seq, arrays=arrays, meta=meta)
