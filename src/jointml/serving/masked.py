"""Masked partial scores: serving a linear model whose partner does not know its own WOE values.

The credit demo's default model (SS-LR on WOE features, `woe_binning` without
`woe_to_owner`, weights revealed to their owners) leaves each partner column's WOE value per
bin at the label holder (the *bank*) only, while the partner knows its bin boundaries and its
own weights. Neither can compute the partner's partial score ``sum_j w_j * WOE_j[bin_j]``
alone. This module computes it with additively homomorphic encryption under a key of the
bank, so that the bank learns that one sum per id and nothing else:

- setup (once per link and model): the bank makes a Paillier key pair (DJN,
  `jointml.he.paillier`, 2048 bits by default) and sends the partner the encryption of every
  WOE value of the partner's columns, once per *slot* of a packed plaintext
  (``Enc(WOE_j[k] * 2**(F + B*s))``, F fixed-point bits, B bits per slot); the partner raises
  each to its own fixed-point weight: ``Enc(w_j * WOE_j[k] * 2**(B*s))``.
- per request: for the id in slot ``s`` of a ciphertext, the partner multiplies in the entry
  of the bin each of its features falls in (``m`` ciphertext products per id), starting from a
  fresh encryption of zero (re-randomisation: the bank, which made every ciphertext, must not
  recognise which were combined), and sends one ciphertext per `slots` ids; the bank decrypts
  and unpacks the partials, adds its own partial and the intercept.

What each party learns per request (semi-honest parties):

- the bank: the partner's partial score of each id (exactly as in the plain variant: it knows
  its own part and receives the total, so no protocol could hide it) and whether the partner
  holds the id; not the partner's bins, weights or features;
- the partner: the ids asked for, and when; nothing about the WOE values (IND-CPA ciphertexts
  under the bank's key), the scores or the bank's features.

Once per setup the partner learns the number of bins of each of its columns (it knows them)
and the public bounds below; the bank learns nothing from the setup. Hiding the partner's
partial from the bank would need the bank not to receive the score (or only a coarse
function of it, e.g. a decision computed under MPC): not offered, since the issue's API returns
the score. The probability is an invertible function of the score and reveals the same.

**Commitment** (`commit_tables`, run once by the bank and each masked partner after training,
`jointml serve-commit`; the credit demo runs it): the bank makes the key pair and encrypts the
tables *once*, keeps the key and the ciphertexts in its model part (``masked_offer.<bank>.<partner>.*``,
the private key in a mode-0600 file), and the partner checks the offer (key, layout, columns, every
ciphertext) and stores its SHA-256 (`offer_digest`: the canonical JSON of the model id, the
partner, the key and the layout, then the ciphertext bytes) in its own part
(``masked_commit.<partner>.json``). At every serving start and model switch the bank sends the
stored offer and the partner refuses any offer whose digest differs (`check_commitment`): the
tables cannot be swapped after the commitment, e.g. for a distinct power of two per bin that
would read the partner's bin of every feature from the sum. What the commitment does not
cover: tables the bank already chose badly before committing (the partner cannot see the WOE
values); the commitment binds them, so a later audit can open them with the bank's key.
Against a deviating partner: it can send any ciphertext (a wrong partial), as in the plain variant.

Cost (2048-bit key, B = 96, 21 slots per ciphertext; m partner features of K bins): setup
``21 * m * K`` encryptions at the bank and as many 32-bit exponentiations at the partner
(m = 12, K = 6: about 1,500 each, a second or two), 775 kB once; per id ``m`` modular
products at the partner, one ciphertext (512 bytes) and one decryption at the bank per 21 ids
(plus one re-randomisation each): a single id costs one decryption, a few ms.

>>> import pandas as pd
>>> bank = BankTables({"age": np.array([0.5, -0.25])}, key_bits=512)
>>> meta, arrays = bank.offer()
>>> partner = PartnerTables.accept(meta, arrays, np.array([2.0]), ["age"])
>>> answer = partner.partial(np.array([[0], [1]]))
>>> bank.decode(answer, 2).tolist()
[1.0, -0.5]
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import gmpy2
import numpy as np

from ..core.errors import CryptoError, ModelError

__all__ = ["BankTables", "PartnerTables", "FRAC_BITS", "SLOT_BITS", "offer_digest", "commit_tables",
           "check_commitment"]

#: fixed-point bits of a WOE value and of a weight (a partial carries 2 * FRAC_BITS)
FRAC_BITS = 20
#: bits per slot of a packed plaintext: a sum of up to 2**30 products |WOE| < 2**8, |w| < 2**12
SLOT_BITS = 96
MAX_ABS_WOE = 2.0 ** 8
MAX_ABS_WEIGHT = 2.0 ** 12
MAX_FEATURES = 2 ** 30


class BankTables:
    """The bank's side: its key pair, the encrypted WOE tables it offers, the decoding.

    `tables`: the partner's columns in the partner's order, each its WOE value per final bin.
    """

    def __init__(self, tables: dict[str, np.ndarray], key_bits: int = 2048, party: str | None = None,
                 keys: tuple[Any, Any] | None = None):
        from ..he.layout import SlotLayout, max_slots
        from ..he.paillier import check_key_bits, generate_keypair

        self.party = party
        bad = [c for c, t in tables.items() if not np.all(np.abs(np.asarray(t, float)) < MAX_ABS_WOE)]
        if bad:
            raise ModelError(f"WOE values of {bad} exceed {MAX_ABS_WOE:g} in absolute value: the masked serving "
                             "variant packs bounded values", party=party, field="woe")
        self.columns = list(tables)
        self.tables = [np.asarray(tables[c], dtype=np.float64) for c in self.columns]
        pair: tuple[Any, Any] = keys or generate_keypair(check_key_bits(key_bits, party=party))
        self.public_key, self._secret = pair
        self.slots = max_slots(int(self.public_key.n), SLOT_BITS)
        self.layout = SlotLayout(SLOT_BITS, (self.slots,), signed=True)
        self._offer: tuple[dict[str, Any], list[np.ndarray]] | None = None

    @classmethod
    def committed(cls, tables: dict[str, np.ndarray], directory: str | Path, party: str, partner: str,
                  model_id: str) -> BankTables | None:
        """The key and offer `commit_tables` stored for `partner` (None when there is none);
        a stored offer of another model or other columns is refused."""
        from ..he.paillier import PrivateKey, PublicKey

        d = Path(directory)
        f = d / OFFER.format(party=party, partner=partner)
        if not f.exists():
            return None
        try:
            doc = json.loads(f.read_text())
            pk = PublicKey.from_dict(doc["meta"]["key"])
            secret = json.loads((d / SECRET.format(party=party, partner=partner)).read_text())
            keys = (pk, PrivateKey.from_owner_dict(pk, secret))
            cts = np.load(d / CIPHERTEXTS.format(party=party, partner=partner), allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"the committed masked tables in {f} cannot be read ({type(e).__name__}: {e})",
                             party=party, field="masked") from None
        if doc.get("model_id") != model_id or doc["meta"].get("columns") != list(tables):
            raise ModelError(f"the committed masked tables in {f} are of model {doc.get('model_id')} (columns "
                             f"{doc['meta'].get('columns')}), not of {model_id}: run the commitment again",
                             party=party, field="masked")
        out = cls(tables, party=party, keys=keys)
        out._offer = (dict(doc["meta"]), [cts])
        return out

    def offer(self) -> tuple[dict[str, Any], list[np.ndarray]]:
        """The setup message: the public key, the layout, and every table entry encrypted once
        per slot (``Enc(WOE * 2**(F + B*s))``), rows ordered (column, bin, slot); made once
        (the same offer every time: it is what a commitment binds)."""
        if self._offer is None:
            self._offer = self._encrypt()
        return dict(self._offer[0]), list(self._offer[1])

    def _encrypt(self) -> tuple[dict[str, Any], list[np.ndarray]]:
        pk = self.public_key
        n = int(pk.n)
        residues = []
        for t in self.tables:
            for v in t:
                fixed = int(round(float(v) * 2 ** FRAC_BITS))
                residues += [(fixed << (SLOT_BITS * s)) % n for s in range(self.slots)]
        cts = pk.encrypt_residues(residues) if residues else []
        meta = {"key": pk.to_dict(), "columns": self.columns, "bins": [len(t) for t in self.tables],
                "slots": self.slots, "slot_bits": SLOT_BITS, "frac_bits": FRAC_BITS}
        return meta, [pk.ciphertexts_to_wire(cts) if cts else np.zeros((0, pk.ciphertext_bytes), np.uint8)]

    def answer_shape(self, n: int) -> tuple[int, int]:
        """The shape of the partner's answer for `n` ids (uint8 ciphertexts)."""
        return (-(-n // self.slots), self.public_key.ciphertext_bytes)

    def decode(self, arrays: list[np.ndarray], n: int) -> np.ndarray:
        """The partner's partial score of each of the `n` ids from its answer (float64)."""
        from ..he.encoding import to_signed

        cts = self.public_key.ciphertexts_from_wire(arrays[0], self.answer_shape(n)[0], party=self.party)
        packed = to_signed(self._secret.decrypt_residues(cts), int(self.public_key.n))
        slots = self.layout.unpack(np.asarray(packed, dtype=object)).ravel()[:n]
        return np.asarray([int(v) for v in slots], dtype=np.float64) / 2.0 ** (2 * FRAC_BITS)


class PartnerTables:
    """The partner's side: its weighted encrypted tables; `partial(bins)` is all it sends.

    Built from the bank's setup message by `accept`, which checks the key, the layout, the
    columns and every ciphertext before use.
    """

    def __init__(self, public_key: Any, weighted: list[list[list[Any]]], slots: int):
        self.public_key, self.weighted, self.slots = public_key, weighted, slots

    @classmethod
    def accept(cls, meta: dict[str, Any], arrays: list[np.ndarray], weights: np.ndarray, columns: list[str],
               party: str | None = None) -> PartnerTables:
        """Check the bank's setup message and weight its tables with this party's `weights`."""
        from ..he.layout import max_slots
        from ..he.paillier import PublicKey, check_key_bits

        pk = PublicKey.from_dict(meta.get("key"))  # type: ignore[arg-type]  # checked inside (CryptoError)
        check_key_bits(pk.key_bits, party=party)
        bins, slots = meta.get("bins"), meta.get("slots")
        if meta.get("columns") != list(columns) or not isinstance(bins, list) or len(bins) != len(columns):
            raise CryptoError(f"masked setup: the label holder's columns {meta.get('columns')} are not this "
                              f"party's {list(columns)}", party=party, field="columns")
        if meta.get("slot_bits") != SLOT_BITS or meta.get("frac_bits") != FRAC_BITS or type(slots) is not int or \
                not 1 <= slots <= max_slots(int(pk.n), SLOT_BITS) or not all(type(k) is int and k > 0 for k in bins):
            raise CryptoError("masked setup: malformed layout (slots, slot_bits, frac_bits, bins)", party=party)
        w = np.asarray(weights, dtype=np.float64)
        if len(w) != len(columns) or len(w) > MAX_FEATURES or not np.all(np.abs(w) < MAX_ABS_WEIGHT):
            raise ModelError(f"masked serving needs at most {MAX_FEATURES} weights below {MAX_ABS_WEIGHT:g} in "
                             "absolute value", party=party, field="weights")
        cts = pk.ciphertexts_from_wire(arrays[0] if arrays else None, sum(bins) * slots, party=party)
        nsq = pk.nsq
        weighted, at = [], 0
        for j, k in enumerate(bins):
            e = int(round(float(w[j]) * 2 ** FRAC_BITS))
            col = []
            for _ in range(k):
                col.append([gmpy2.powmod(c, e, nsq) for c in cts[at:at + slots]])  # e < 0: the inverse's power
                at += slots
            weighted.append(col)
        return cls(pk, weighted, slots)

    @property
    def bins(self) -> list[int]:
        return [len(c) for c in self.weighted]

    def partial(self, bins: np.ndarray) -> list[np.ndarray]:
        """The packed, re-randomised encryptions of the partials of the rows of `bins` (rows,
        columns: each feature's final bin), `slots` rows per ciphertext."""
        b = np.asarray(bins, dtype=np.int64)
        n = len(b)
        if b.ndim != 2 or b.shape[1] != len(self.weighted):
            raise ModelError(f"expected bins of shape (rows, {len(self.weighted)}), got {b.shape}", field="bins")
        over = [j for j, k in enumerate(self.bins) if len(b) and (b[:, j].min() < 0 or b[:, j].max() >= k)]
        if over:
            raise ModelError(f"bin indices of columns {over} fall outside the label holder's WOE tables (model "
                             "parts of different trainings?)", field="bins")
        pk = self.public_key
        nsq = pk.nsq
        out = pk.nonces(-(-n // self.slots), n_jobs=1)  # fresh encryptions of zero: re-randomised sums
        rows = b.tolist()
        for i, row in enumerate(rows):
            c, s = divmod(i, self.slots)
            acc = out[c]
            for j, k in enumerate(row):
                acc = acc * self.weighted[j][k][s] % nsq
            out[c] = acc
        return [pk.ciphertexts_to_wire(out) if out else np.zeros((0, pk.ciphertext_bytes), np.uint8)]


OFFER = "masked_offer.{party}.{partner}.json"
SECRET = "masked_offer.{party}.{partner}.key.json"
CIPHERTEXTS = "masked_offer.{party}.{partner}.npy"
COMMIT = "masked_commit.{party}.json"
_DIGEST_KEYS = ("key", "columns", "bins", "slots", "slot_bits", "frac_bits")


def offer_digest(meta: dict[str, Any], arrays: list[np.ndarray], model_id: str, partner: str) -> str:
    """SHA-256 of an offer's canonical encoding: the canonical JSON of the model id, the partner,
    the key and the layout, then the ciphertexts' wire bytes (fixed width, big-endian).

    >>> meta, arrays = BankTables({"age": np.array([0.5])}, key_bits=512).offer()
    >>> d = offer_digest(meta, arrays, "m1", "partner")
    >>> d == offer_digest(meta, arrays, "m1", "partner"), d == offer_digest(meta, arrays, "m2", "partner")
    (True, False)
    """
    head = {"model_id": model_id, "partner": partner, **{k: meta.get(k) for k in _DIGEST_KEYS}}
    h = hashlib.sha256(json.dumps(head, sort_keys=True, separators=(",", ":")).encode() + b"|")
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.uint8).tobytes())
    return h.hexdigest()


def check_commitment(directory: str | Path, party: str, model_id: str, meta: dict[str, Any],
                     arrays: list[np.ndarray]) -> None:
    """At a masked partner: refuse an offer that is not the one committed for `model_id`."""
    f = Path(directory) / COMMIT.format(party=party)
    if not f.exists():
        raise CryptoError(f"no commitment to the label holder's WOE tables in this party's model part ({f}): the "
                          "tables could be chosen now to read this party's bins; run `jointml serve-commit` at both "
                          "parties once after training", party=party, field="masked")
    try:
        doc = json.loads(f.read_text())
    except ValueError:
        raise CryptoError(f"the commitment {f} is not JSON", party=party, field="masked") from None
    if doc.get("model_id") != model_id:
        raise CryptoError(f"the commitment {f} is for model {doc.get('model_id')}, not {model_id}: run "
                          "`jointml serve-commit` for this model", party=party, field="masked")
    got = offer_digest(meta, arrays, model_id, party)
    if got != doc.get("sha256"):
        raise CryptoError(f"the label holder's encrypted WOE tables differ from the ones committed at export "
                          f"(SHA-256 {got[:16]}..., committed {str(doc.get('sha256'))[:16]}...): refused, they could "
                          "probe this party's features", party=party, field="masked")


def commit_tables(ctx: Any, model_dir: str | Path, key_bits: int = 2048) -> dict[str, str]:
    """Every party of the model (SPMD): fix the masked variant's encrypted WOE tables (see the
    module docstring); returns `{partner: digest}` (at the bank and at each masked partner; {}
    elsewhere and for a model without masked partners).

    >>> commit_tables.__module__  # tests/test_serving_predict.py runs it on the demo's model
    'jointml.serving.masked'
    """
    from ..runtime.collectives import Channel, all_gather, broadcast
    from .predictor import PartyPredictor

    d = Path(model_dir)
    pred = _load_or_none(PartyPredictor, d, ctx.me)
    # the label holder as each party's own record names it (a party without a part: None)
    views = all_gather(ctx, meta={"label": _record_label(d, ctx.me)}, name="masked-commit")
    found = next((r.meta["label"] for r in views.values() if r.meta.get("label")), None)
    if found not in ctx.parties:  # no model part anywhere: nothing to commit
        return {}
    label = str(found)
    # the label holder names the partners it commits to; only they take part
    named = broadcast(ctx, label, meta={"partners": sorted(pred.masked_partners) if pred is not None else []}
                      if ctx.me == label else None, name="masked-commit-partners").meta["partners"]
    uid = ctx.next_uid("masked-commit")
    out: dict[str, str] = {}
    if pred is not None and ctx.me == label:
        for p in named:
            t = BankTables(pred.masked_tables(p), key_bits, party=ctx.me)
            meta, arrays = t.offer()
            Channel(ctx, p, uid).send("offer", meta={"model_id": pred.model_id, **meta}, arrays=arrays)
            digest = offer_digest(meta, arrays, pred.model_id, p)
            back = Channel(ctx, p, uid).recv("digest").meta.get("sha256")
            if back != digest:
                raise CryptoError(f"partner '{p}' committed to another digest ({back})", party=p, field="masked")
            _save_offer(d, ctx.me, p, pred.model_id, t, meta, arrays, digest)
            out[p] = digest
    elif ctx.me in named:
        if pred is None or not pred.masked:
            raise ModelError(f"the label holder commits WOE tables for party '{ctx.me}', whose model part here is not "
                             "a masked one", party=ctx.me, field="masked")
        got = Channel(ctx, label, uid).recv("offer", dtypes=[np.uint8])
        assert pred.weights is not None
        PartnerTables.accept(got.meta, got.arrays, pred.weights, pred.columns, party=ctx.me)  # checks every ciphertext
        if got.meta.get("model_id") != pred.model_id:
            raise CryptoError(f"the label holder commits tables of model {got.meta.get('model_id')}, this party holds "
                              f"{pred.model_id}", party=ctx.me, field="model_id")
        digest = offer_digest(got.meta, got.arrays, pred.model_id, ctx.me)
        (d / COMMIT.format(party=ctx.me)).write_text(json.dumps(
            {"model_id": pred.model_id, "label_party": pred.label_party, "sha256": digest,
             "key_fingerprint": _fingerprint(got.meta["key"])}, indent=1))
        Channel(ctx, label, uid).send("digest", meta={"sha256": digest})
        out[ctx.me] = digest
    return out


def _fingerprint(key: dict[str, Any]) -> str:
    from ..he.paillier import PublicKey

    return str(PublicKey.from_dict(key).fingerprint)


def _record_label(d: Path, me: str) -> str | None:
    from ..jobs.saved import read_record

    rec = read_record(d, me)
    return None if rec is None else str(rec["label"]["party"])


def _load_or_none(cls: Any, d: Path, me: str) -> Any:
    """This party's predictor, or None: no part here, or a model serving does not take."""
    from ..jobs.saved import read_record

    rec = read_record(d, me)
    if rec is None or not (rec["columns"].get(me) or rec["label"]["party"] == me):
        return None
    try:
        return cls.load(d, me)
    except ModelError:
        return None


def _save_offer(d: Path, party: str, partner: str, model_id: str, t: BankTables, meta: dict[str, Any],
                arrays: list[np.ndarray], digest: str) -> None:
    fd = os.open(d / SECRET.format(party=party, partner=partner), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(t._secret.to_owner_dict()))
    np.save(d / CIPHERTEXTS.format(party=party, partner=partner), arrays[0], allow_pickle=False)
    (d / OFFER.format(party=party, partner=partner)).write_text(json.dumps(
        {"model_id": model_id, "partner": partner, "sha256": digest, "meta": meta}, indent=1))
