"""The HE device: an additively homomorphic key pair held by one party, used like the MPC device.

``he = HeDevice(ctx, holder="bank")`` (every party calls it: SPMD) makes the holder
generate a key pair and announce the public key. ``scheme`` picks the cryptosystem:
``"ou"`` (Okamoto-Uchiyama, :mod:`jointml.he.ou`; the default: at the same 2048-bit key,
i.e. ~112-bit security, it encrypts ~3x, adds ~3x and decrypts ~4x faster per ciphertext
than Paillier, with a 679-bit instead of a 2046-bit plaintext) or ``"paillier"`` (DJN
Paillier, :mod:`jointml.he.paillier`). Both give the same API below. Then:

* ``x.to(he)``: the owner of a PartyObject encrypts it under the holder's key and sends
  the ciphertexts to the parties that compute on them (default: every other party of
  the device). The result is an :class:`HeArray` handle at every party; the
  ciphertexts exist at the owner and the receivers.
* ``c.group_sum(codes, n_bins)``: at the party owning the plaintext ``codes`` (a bin
  per row and column), the encrypted sum of every (column, bin), optionally per group
  (tree node) of rows. The operation SecureBoost's histograms and vertical WOE need.
* ``s.reveal(to=holder)``: the computing party compresses and re-randomises the
  ciphertexts and sends them to the key holder, which decrypts: a PartyObject there.

Messages go through :mod:`jointml.runtime.collectives` with tags from the context's
counter; every ciphertext received is validated (count, range, invertibility) before
use, and every header field is checked.

Security model: semi-honest parties; the holder must not collude with a computing
party (the holder's private key never leaves it). What each party learns:

* the **key holder**: the plaintext of what is revealed to it (e.g. per-bin sums), and
  the public metadata of each message (shapes, scale, slot layout); nothing about
  which rows were combined, since results are re-randomised before they are sent;
* a **computing party**: the shape, fixed-point scale and slot layout of the
  ciphertexts it receives (the slot width reveals the magnitude of the encrypted
  values to within a factor of 2 when the sender sizes slots from its data), nothing
  else (semantic security of Paillier under DCRA, of OU under the p-subgroup assumption);
* **other parties**: the public key and that a transfer took place.

Keys below 2048 bits are refused (:class:`~jointml.core.errors.ParameterError` on
``key_bits``) unless ``JOINTML_INSECURE_TEST_KEYS=1`` is set (tests only: the test
suite's root ``conftest.py`` sets it); the 512-bit keys of the examples are there for
speed.

>>> def prog(ctx):
...     he = HeDevice(ctx, "bank", key_bits=512)          # 512 bits: examples only, for speed
...     y = ctx.party("bank").run(lambda: np.array([1, 0, 1, 1])).to(he)
...     codes = ctx.party("shop").run(lambda: np.array([[0], [1], [1], [0]]))
...     counts = y.group_sum(codes, [2]).reveal(to="bank")
...     return counts.value.tolist() if ctx.me == "bank" else None
>>> simulate(prog, ["bank", "shop"], mode="thread")["bank"]
[2, 1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.errors import CryptoError, NotOwnerError, ParameterError
from ..runtime.collectives import broadcast, send_to
from .grouped import grouped_sums
from .layout import SlotLayout
from .ou import SCHEME as OU_SCHEME
from .ou import OUPublicKey, generate_ou_keypair
from .packing import compress_ciphertexts, encrypt_packed
from .paillier import (
    DEFAULT_KEY_BITS,
    DEFAULT_WINDOW,
    EncryptedArray,
    NoncePool,
    PublicKey,
    check_key_bits,
    generate_keypair,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime.context import PartyContext
    from ..runtime.device import PartyObject

__all__ = ["HeDevice", "HeArray", "SCHEMES", "DEFAULT_SCHEME", "check_scheme"]

#: The cryptosystems an HE device can use (``scheme=``).
SCHEMES = ("ou", "paillier")
#: Okamoto-Uchiyama: fastest at equal key size (2048 bits, ~112-bit security); see the module doc.
DEFAULT_SCHEME = "ou"


def check_scheme(scheme: Any, *, party: str | None = None, field: str = "scheme") -> str:
    """`scheme` checked against :data:`SCHEMES` (ParameterError naming `field` otherwise).

    >>> check_scheme("ou")
    'ou'
    """
    if scheme not in SCHEMES:
        raise ParameterError(f"unknown HE scheme {scheme!r}: use one of {list(SCHEMES)}", party=party, field=field)
    return str(scheme)


class HeDevice:
    """A key pair of `scheme` ("ou" or "paillier") held by `holder`; the public key is known to `parties`.

    Every party of the context constructs it at the same program point (the holder
    generates the key and broadcasts the public key). `parties` (default: all) are
    the parties that may encrypt and compute. `window` is the holder's local
    fixed-base table width (Paillier up to 12: ~30 % faster encryption than 8, ~80 MB per
    process at 2048 bits; OU up to 14: ~77 MB for its nonce table at 14, ~20 MB at 12, the g
    table growing only as far as the plaintexts need);
    it is not part of the key. `scheme` is "ou" (default) or "paillier". `n_jobs` sizes the local worker pool.

    >>> def prog(ctx):
    ...     he = HeDevice(ctx, "bank", key_bits=512)   # 512 bits: examples only
    ...     return he.public_key.key_bits, he.is_holder
    >>> simulate(prog, ["bank", "shop"], mode="thread")["shop"]
    (512, False)
    """

    #: PublicKey or OUPublicKey (same interface; Paillier-only extras such as the label
    #: proofs of vertical WOE need scheme="paillier"), None at a non-member
    public_key: Any

    def __init__(
        self,
        ctx: PartyContext,
        holder: str,
        *,
        key_bits: int = DEFAULT_KEY_BITS,
        parties: Sequence[str] | None = None,
        window: int = DEFAULT_WINDOW,
        n_jobs: int | None = None,
        scheme: str = DEFAULT_SCHEME,
    ) -> None:
        members = list(ctx.parties) if parties is None else list(parties)
        if holder not in ctx.parties:
            raise ParameterError(f"key holder '{holder}' is not a party of this job {ctx.parties}", field="holder")
        if holder not in members:
            members.insert(0, holder)
        self.ctx, self.holder, self.parties = ctx, holder, members
        self.key_bits, self.n_jobs = check_key_bits(key_bits, party=holder), n_jobs
        self.scheme = check_scheme(scheme)
        self._secret: Any = None
        pk: Any = None  # PublicKey or OUPublicKey
        if ctx.me == holder:
            keygen = generate_ou_keypair if self.scheme == OU_SCHEME else generate_keypair
            pk, self._secret = keygen(self.key_bits, window=window)
        got = broadcast(ctx, holder, meta={"pk": pk.to_dict()} if pk is not None else None, to=members,
                        name="he:pk")
        if ctx.me in members and pk is None:
            pk = _public_key_from(got.meta.get("pk"), holder, self.key_bits, self.scheme)
        self.public_key = pk
        self._nonces = NoncePool(pk, n_jobs) if pk is not None else None

    @property
    def is_holder(self) -> bool:
        """True at the key holder."""
        return self.ctx.me == self.holder

    @property
    def is_member(self) -> bool:
        """True at the parties that hold the public key."""
        return self.ctx.me in self.parties

    def prefetch(self, count: int) -> None:
        """Start computing `count` encryption nonces in the background (this party only).

        A member about to encrypt `count` values calls it ahead of time, e.g. while its
        peers work; the next encryption then costs one multiplication per value.
        """
        if self._nonces is not None:
            self._nonces.prefetch(count)

    def encrypt_local(self, values: Any, *, frac_bits: int | None = None, slot_bits: int | None = None) -> EncryptedArray:
        """Encrypt at this party (a member) with the device's nonce pool (see :meth:`prefetch`).

        With `slot_bits`, the last axis is packed into one ciphertext per row (signed
        slots, see :func:`~jointml.he.encrypt_packed`). No message is sent.

        >>> def prog(ctx):
        ...     he = HeDevice(ctx, "bank", key_bits=512)   # 512 bits: examples only
        ...     he.prefetch(2)
        ...     enc = he.encrypt_local(np.array([[0.5, 2.0], [1.0, -1.0]]), slot_bits=24, frac_bits=4)
        ...     return he.decrypt(enc.sum()).tolist()
        >>> simulate(prog, ["bank"], mode="thread")["bank"]
        [1.5, 1.0]
        """
        if self.public_key is None or self._nonces is None:
            raise NotOwnerError(f"party '{self.ctx.me}' is not a member of the HE device {self.parties}")
        arr = np.asarray(values)
        count = arr.size if slot_bits is None else arr.size // max(1, arr.shape[-1] if arr.ndim else 1)
        nonces = self._nonces.take(count)
        if slot_bits is not None:
            return encrypt_packed(self.public_key, arr, slot_bits, frac_bits, nonces=nonces, n_jobs=self.n_jobs)
        return self.public_key.encrypt(arr, frac_bits, nonces=nonces, n_jobs=self.n_jobs)

    def decrypt(self, enc: EncryptedArray) -> np.ndarray:
        """Decrypt at the key holder (local; :meth:`HeArray.reveal` is the transfer)."""
        if self._secret is None:
            raise NotOwnerError(f"only the key holder '{self.holder}' can decrypt, not '{self.ctx.me}'")
        return self._secret.decrypt(enc, n_jobs=self.n_jobs)

    def transfer_in(self, obj: PartyObject, *, to: Sequence[str] | None = None, frac_bits: int | None = None,
                    slot_bits: int | None = None, name: str = "he:ct") -> HeArray:
        """``obj.to(he)``: the owner encrypts `obj` and sends the ciphertexts to `to`
        (default: every other member). Returns the handle at every party."""
        owner = obj.owner
        receivers = [p for p in self.parties if p != owner] if to is None else [p for p in to if p != owner]
        if owner not in self.parties or any(p not in self.parties for p in receivers):
            raise ParameterError(f"parties {[owner, *receivers]} must be members of the HE device {self.parties}",
                                 field="to")
        enc: EncryptedArray | None = None
        meta: dict[str, Any] | None = None
        wire: list[np.ndarray] = []
        if self.ctx.me == owner:
            enc = self.encrypt_local(obj.value, frac_bits=frac_bits, slot_bits=slot_bits)
            meta = _header(enc)
            wire = [enc.to_wire()]
        got = send_to(self.ctx, owner, receivers, meta=meta, arrays=wire, name=name)
        located = [owner, *receivers]
        if got is None:
            return HeArray(self, located, None)
        if enc is None:
            enc = _from_message(self.public_key, got.meta, got.arrays, owner)
        return HeArray(self, located, enc, wire=got.arrays[0])

    def __repr__(self) -> str:
        return f"HeDevice(holder={self.holder}, parties={self.parties}, scheme={self.scheme}, key_bits={self.key_bits})"


class HeArray:
    """Ciphertexts under an :class:`HeDevice`'s key, held by the parties `located`.

    `data` (an :class:`~jointml.he.EncryptedArray`) exists at those parties only; every
    other party holds the handle, so SPMD code reads the same everywhere.
    """

    def __init__(self, device: HeDevice, located: Sequence[str], data: EncryptedArray | None,
                 *, wire: np.ndarray | None = None) -> None:
        self.device = device
        self.located = list(located)
        self.data = data
        self._wire = wire

    @property
    def is_local(self) -> bool:
        """True where the ciphertexts are."""
        return self.data is not None

    def _held(self) -> EncryptedArray:
        """The ciphertexts, at a party that holds them."""
        if self.data is None:
            raise NotOwnerError(f"party '{self.device.ctx.me}' does not hold these ciphertexts (they are at {self.located})")
        return self.data

    def group_sum(self, codes: PartyObject, n_bins: Sequence[int], *, groups: PartyObject | None = None,
                  n_groups: int = 1, rows: PartyObject | None = None) -> HeArray:
        """Encrypted sums per (group, column, bin), at the owner of `codes`.

        `codes` (rows, columns) holds each row's bin per column (``< n_bins[j]``) and
        `groups` (rows,) each row's group (``< n_groups``; default: one group), both in
        plaintext at one party that holds the ciphertexts (one per row, packed or not);
        `rows` (at the same party) selects the rows that take part, in the order of
        `codes` (default: all). The result is flat, group-major then column then bin, located at that party
        only. No message is sent.
        """
        p = codes.owner
        if groups is not None and groups.owner != p:
            raise ParameterError(f"codes and groups must be at the same party, not '{p}' and '{groups.owner}'",
                                 field="groups")
        if p not in self.located:
            raise ParameterError(f"party '{p}' does not hold these ciphertexts (they are at {self.located})",
                                 field="codes")
        if self.device.ctx.me != p:
            return HeArray(self.device, [p], None)
        enc = self._held()
        c = np.asarray(codes.value)
        c = c.reshape(-1, 1) if c.ndim == 1 else c
        nb = np.asarray(n_bins, dtype=np.int64)
        g = np.zeros(len(c), np.int64) if groups is None else np.asarray(groups.value, np.int64)
        wire = self._wire if self._wire is not None else enc.to_wire()
        if rows is not None:
            if rows.owner != p:
                raise ParameterError(f"rows must be at '{p}', not at '{rows.owner}'", field="rows")
            wire = wire[np.asarray(rows.value, dtype=np.int64)]
        _check_codes(c, nb, g, n_groups, len(wire), p)
        sums = grouped_sums(wire, enc.public_key.nsq, c, g, n_groups, nb, n_jobs=self.device.n_jobs)
        data = np.empty(len(sums), dtype=object)
        data[:] = sums
        return HeArray(self.device, [p], EncryptedArray(enc.public_key, data, enc.frac_bits, None, enc.layout))

    def reveal(self, to: str | None = None, *, slot_bits: int | None = None, expect: int | None = None,
               name: str = "he:reveal") -> PartyObject:
        """Decrypt at the key holder: the computing party compresses (packed arrays, or
        unpacked ones with `slot_bits`: the caller guarantees the values fit) or just
        re-randomises, sends, and the holder decrypts. `expect` (the number of values
        the holder awaits) is checked when given. Returns a PartyObject at the holder.
        """
        dev = self.device
        holder = dev.holder if to is None else to
        if holder != dev.holder:
            raise ParameterError(f"HE values are revealed to the key holder '{dev.holder}' only, not to '{holder}'",
                                 field="to")
        sender = next((p for p in self.located if p != holder), self.located[0])
        meta: dict[str, Any] | None = None
        arrays: list[np.ndarray] = []
        if dev.ctx.me == sender and sender != holder:
            small = _for_transport(self._held(), slot_bits, dev.n_jobs)
            meta, arrays = _header(small), [small.to_wire()]
        got = send_to(dev.ctx, sender, holder, meta=meta, arrays=arrays, name=name) if sender != holder else None
        if dev.ctx.me != holder:
            return dev.ctx.party(holder).put(None)
        enc = self._held() if got is None else _from_message(dev.public_key, got.meta, got.arrays, sender)
        n_values = enc.layout.n_values if enc.layout is not None and enc.layout.compressed else None
        if expect is not None and n_values is not None and n_values != expect:
            raise CryptoError(f"sent {n_values} values, expected {expect}", party=sender)
        return dev.ctx.party(holder).put(dev.decrypt(enc))

    def __repr__(self) -> str:
        shape = None if self.data is None else self.data.shape
        return f"HeArray(at={self.located}, shape={shape}, holder={self.device.holder})"


# ----------------------------------------------------------------------------- helpers


def _public_key_from(d: Any, holder: str, key_bits: int, scheme: str) -> PublicKey | OUPublicKey:
    want = "ou" if scheme == OU_SCHEME else "paillier-djn"
    if not isinstance(d, dict) or d.get("scheme") != want:  # a key of another scheme than the job's is refused
        got = d.get("scheme") if isinstance(d, dict) else type(d).__name__
        raise CryptoError(f"public key of scheme {got!r}, expected {want!r}", party=holder, field="pk")
    try:
        pk: PublicKey | OUPublicKey = OUPublicKey.from_dict(d) if scheme == OU_SCHEME else PublicKey.from_dict(d)
    except CryptoError as e:
        raise CryptoError(str(e), party=holder, field="pk") from None
    if pk.key_bits != key_bits:  # a weaker key than the job asked for is refused
        raise CryptoError(f"public key has {pk.key_bits} bits, expected {key_bits}", party=holder, field="pk")
    return pk


def _header(enc: EncryptedArray) -> dict[str, Any]:
    return {"shape": list(enc.shape), "frac_bits": enc.frac_bits,
            "layout": None if enc.layout is None else enc.layout.to_dict()}


def _from_message(pk: Any, meta: dict, arrays: list, sender: str) -> EncryptedArray:
    """Rebuild (and validate) ciphertexts a peer sent with :func:`_header` metadata."""
    if pk is None:
        raise NotOwnerError("this party has no public key of the HE device")
    shape, frac_bits, layout = meta.get("shape"), meta.get("frac_bits"), meta.get("layout")
    if len(arrays) != 1 or not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
        raise CryptoError("malformed ciphertext message (arrays or shape)", party=sender)
    if type(frac_bits) is not int or not 0 <= frac_bits <= 1024:
        raise CryptoError(f"invalid fixed-point scale {frac_bits!r}", party=sender, field="frac_bits")
    try:
        lay = None if layout is None else SlotLayout.from_dict(layout)
        return EncryptedArray.from_wire(pk, arrays[0], tuple(shape), frac_bits, lay)
    except (CryptoError, ParameterError) as e:
        raise CryptoError(str(e), party=sender) from None


def _check_codes(c: np.ndarray, nb: np.ndarray, g: np.ndarray, n_groups: int, rows: int, party: str) -> None:
    if c.shape[0] != rows or g.shape != (rows,) or c.shape[1] != len(nb):
        raise ParameterError(f"codes {c.shape} / groups {g.shape} do not match {rows} rows and {len(nb)} columns",
                             party=party, field="codes")
    if rows and (c.min() < 0 or (c >= nb[None, :]).any() or g.min() < 0 or g.max() >= n_groups):
        raise ParameterError("a bin or group index is out of range", party=party, field="codes")


def _for_transport(enc: EncryptedArray, slot_bits: int | None, n_jobs: int | None) -> EncryptedArray:
    """Compress (when the slot width is known) and re-randomise before the holder sees it."""
    lay = enc.layout
    flat = enc.data.reshape(-1).tolist()
    if lay is not None and not lay.compressed:
        return compress_ciphertexts(enc.public_key, flat, lay.slot_bits, enc.frac_bits, unit_shape=lay.slot_shape,
                                    signed=lay.signed, n_jobs=n_jobs)
    if lay is None and slot_bits is not None and enc.ndim == 1:
        return compress_ciphertexts(enc.public_key, flat, slot_bits, enc.frac_bits, n_jobs=n_jobs)
    return enc.rerandomize(n_jobs=n_jobs)
