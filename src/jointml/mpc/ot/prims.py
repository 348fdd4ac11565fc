"""Symmetric building blocks of OT extension and garbling, vectorised over whole buffers.

* `FixedKeyAes` / `tccr`: the tweakable circular-correlation-robust hash of Guo, Katz,
  Wang and Yu (S&P 2020, "Efficient and secure multiparty computation from fixed-key
  block ciphers"): H(i, x) = pi(sigma(x) ^ i) ^ sigma(x), where pi is AES-128 under a
  fixed public key and sigma(xL || xR) = (xL ^ xR || xL) is a linear orthomorphism.
  Secure in the ideal-permutation model when no (tweak, input) pair repeats; it is
  the correlation-robust hash of IKNP (inputs q and q ^ s) and the garbling hash of
  half-gates (inputs W and W ^ R). One AES-ECB call over the whole buffer.
* `mmo_chain`: a wide-input hash for KKRT's 512-bit rows: the TCCR applied block by
  block, each block's input XORed with the previous output (random-oracle heuristic
  in the ideal-permutation model, as libOTe's AES-based hashing of KKRT rows).
* `expand`: AES-128-CTR keystreams from many 16-byte seeds (the PRG G of IKNP/KKRT),
  keeping each stream open so a protocol can draw it chunk by chunk.
* `transpose_bits`: an (r x c)-bit matrix, rows packed little-endian into bytes, to its
  (c x r) transpose, by 64x64 bit-block transposes on uint64 words (six rounds of
  masked swaps over cache-sized batches) instead of unpacking it into bytes.

>>> x = np.arange(32, dtype=np.uint8).reshape(2, 16)
>>> tccr(np.array([1, 2], np.uint64), x).shape
(2, 16)
>>> m = np.arange(16 * 3, dtype=np.uint8).reshape(16, 3)            # 16 x 24 bits
>>> bool((transpose_bits(transpose_bits(m, 24), 16) == m).all())
True
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ...core.errors import ParameterError

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]

#: The fixed public AES key of the hash (any public key works in the ideal-permutation model;
#: derived from a label so it is reproducible and not hand-picked).
FIXED_KEY = hashlib.sha256(b"jointml-fixed-key-aes-v1").digest()[:16]
_ECB = Cipher(algorithms.AES(FIXED_KEY), modes.ECB())


def aes_ecb(blocks: U8, key: bytes | None = None) -> U8:
    """AES-128 of each 16-byte block of a C-contiguous uint8 array (fixed key unless `key`).

    >>> aes_ecb(np.zeros((3, 16), np.uint8)).shape
    (3, 16)
    """
    cipher = _ECB if key is None else Cipher(algorithms.AES(key), modes.ECB())
    buf = np.ascontiguousarray(blocks, dtype=np.uint8)
    if buf.size % 16:
        raise ParameterError(f"AES blocks: {buf.size} bytes is not a multiple of 16", field="blocks")
    # update_into wants 15 bytes of room past the end: write into a slightly larger buffer
    room = np.empty(buf.size + 16, np.uint8)
    if buf.size:
        cipher.encryptor().update_into(buf.data.cast("B"), room.data.cast("B"))
    return room[: buf.size].reshape(buf.shape)


def _sigma(x: U64) -> U64:
    """sigma(xL || xR) = (xL ^ xR || xL) on (n, 2) uint64 words ([:, 0] low, [:, 1] high)."""
    out = np.empty_like(x)
    out[:, 0] = x[:, 0] ^ x[:, 1]
    out[:, 1] = x[:, 0]
    return out


def tccr(tweaks: U64 | npt.NDArray[Any], x: U8) -> U8:
    """H(i, x) = AES(sigma(x) ^ i) ^ sigma(x) for each row x (16 bytes) and tweak i (uint64 or (n, 2)).

    >>> x = np.zeros((2, 16), np.uint8)
    >>> h = tccr(np.array([0, 1], np.uint64), x)
    >>> bool((h[0] != h[1]).any())          # the tweak separates equal inputs
    True
    """
    w = np.ascontiguousarray(x, dtype=np.uint8).reshape(-1, 16).view(np.uint64)
    return tccr64(tweaks, w).view(np.uint8).reshape(-1, 16)


def tccr64(tweaks: U64 | npt.NDArray[Any], x: U64) -> U64:
    """`tccr` on blocks held as (n, 2) uint64 words (low word first); returns (n, 2) uint64.

    >>> x, tw = np.zeros((2, 16), np.uint8), np.array([0, 1], np.uint64)
    >>> bool((tccr64(tw, x.view(np.uint64)).view(np.uint8) == tccr(tw, x)).all())
    True
    """
    w = _sigma(x)
    tw = np.asarray(tweaks, dtype=np.uint64)
    v = w.copy()
    if tw.ndim == 2:
        v ^= tw
    else:
        v[:, 0] ^= tw
    out = aes_ecb(v.view(np.uint8)).view(np.uint64)
    out ^= w
    return out


def mmo_chain(tweaks: U64, rows: U8, out_bytes: int = 16) -> U8:
    """A hash of each row (a multiple of 16 bytes) to `out_bytes` <= 16 bytes: TCCR chained over blocks.

    >>> r = np.zeros((2, 64), np.uint8); r[1, 63] = 1
    >>> h = mmo_chain(np.zeros(2, np.uint64), r)
    >>> h.shape, bool((h[0] != h[1]).any())
    ((2, 16), True)
    """
    n, width = rows.shape
    acc = np.zeros((n, 16), np.uint8)
    for b in range(0, width, 16):
        acc = tccr(tweaks, acc ^ rows[:, b : b + 16])
    return np.ascontiguousarray(acc[:, :out_bytes])


class Expander:
    """AES-128-CTR keystreams from `k` 16-byte seeds (one stream per seed), drawn chunk by chunk.

    >>> e = Expander(np.zeros((2, 16), np.uint8))
    >>> e.next(5).shape
    (2, 5)
    """

    def __init__(self, seeds: U8):
        seeds = np.ascontiguousarray(seeds, dtype=np.uint8)
        # The seed is a fresh uniform 128-bit key (a base-OT output); the stream is AES-CTR under it.
        self._enc = [Cipher(algorithms.AES(bytes(s)), modes.CTR(bytes(16))).encryptor() for s in seeds]
        self._zeros = bytes(0)

    def next(self, nbytes: int) -> U8:
        """The next `nbytes` of every stream, as a (k, nbytes) array."""
        k = len(self._enc)
        if len(self._zeros) < nbytes:
            self._zeros = bytes(nbytes)
        zeros = memoryview(self._zeros)[:nbytes]
        # Row i is written straight into the buffer; update_into may touch 15 bytes past the
        # row (the start of row i + 1, written next), hence 16 spare bytes at the end.
        flat = np.empty(k * nbytes + 16, np.uint8)
        mv = flat.data.cast("B")
        for i, enc in enumerate(self._enc):
            enc.update_into(zeros, mv[i * nbytes : (i + 1) * nbytes + 15])
        return flat[: k * nbytes].reshape(k, nbytes)


_MASKS = [(j, np.uint64(sum(1 << c for c in range(64) if not c & j))) for j in (32, 16, 8, 4, 2, 1)]
_WORDS = 1 << 15  # words per block of work: 256 KiB, so the six passes below stay in cache


def _transpose64(x: U64) -> None:
    """Transpose, in place, each 64x64 bit matrix of x (B, 64): word k = row k, bit c = column c.

    Six rounds of block swaps (Hacker's Delight 7-3): round j exchanges the (row k, column
    c + j) and (row k + j, column c) entries for k, c with bit j clear."""
    b = x.shape[0]
    for j, mask in _MASKS:
        v = x.reshape(b, 64 // (2 * j), 2, j)
        lo, hi = v[:, :, 0, :], v[:, :, 1, :]
        t = (lo >> np.uint64(j)) ^ hi
        t &= mask
        hi ^= t
        lo ^= t << np.uint64(j)


def transpose_bits(m: U8, cols: int) -> U8:
    """Transpose a bit matrix: `m` is (rows, cols/8) bytes, bit j of row i at byte j//8, bit j%8
    (little-endian bit order); returns (cols, rows/8). `rows` and `cols` must be multiples of 8.

    Works on 64x64 bit blocks held as 64 uint64 words (`_transpose64`), a cache-sized
    batch of blocks at a time: ~3x faster than transposing 8x8 blocks, which needs a
    byte-strided gather.

    >>> m = np.zeros((8, 2), np.uint8); m[3, 1] = 1 << 2     # row 3, column 10
    >>> t = transpose_bits(m, 16); int(np.flatnonzero(t)[0]), int(t[10, 0])  # row 10, column 3
    (10, 8)
    """
    rows = m.shape[0]
    if rows % 8 or cols % 8 or m.shape[1] != cols // 8:
        raise ParameterError(f"bit transpose: shape {m.shape} for {cols} columns (need multiples of 8)", field="m")
    r64, c64 = -(-rows // 64) * 64, -(-cols // 64) * 64
    if (r64, c64) != (rows, cols):
        padded = np.zeros((r64, c64 // 8), np.uint8)
        padded[:rows, : cols // 8] = m
        return np.ascontiguousarray(transpose_bits(padded, c64)[:cols, : rows // 8])
    g, cw = rows // 64, cols // 64
    w = np.ascontiguousarray(m).view(np.uint64).reshape(g, 64, cw)
    out = np.empty((cw, 64, g), np.uint64)
    g_step, c_step = max(1, _WORDS // (64 * cw)), max(1, _WORDS // 64)
    for g0 in range(0, g, g_step):
        for c0 in range(0, cw, c_step):
            blk = np.ascontiguousarray(w[g0 : g0 + g_step, :, c0 : c0 + c_step].transpose(0, 2, 1))
            _transpose64(blk.reshape(-1, 64))
            out[c0 : c0 + blk.shape[1], :, g0 : g0 + blk.shape[0]] = blk.transpose(1, 2, 0)
    return out.reshape(cols, g).view(np.uint8)


def pack_bits(bits: npt.NDArray[Any]) -> U8:
    """0/1 values -> packed bytes, little-endian bit order (the layout of `transpose_bits`).

    >>> pack_bits(np.array([1, 0, 0, 0, 0, 0, 0, 0, 1], np.uint8)).tolist()
    [1, 1]
    """
    return np.packbits(np.asarray(bits, dtype=np.uint8), axis=-1, bitorder="little")


def unpack_bits(packed: U8, count: int) -> U8:
    """Packed bytes -> the first `count` 0/1 values (little-endian bit order).

    >>> unpack_bits(np.array([5], np.uint8), 3).tolist()
    [1, 0, 1]
    """
    return np.unpackbits(packed, axis=-1, count=count, bitorder="little")
