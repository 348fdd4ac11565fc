"""Issue 11 item 2 (WOE): a deviating label holder that encrypts 2^i instead of its 0/1 labels
reads the partner's bins from the per-bin sums; 0/1 proofs make every party refuse it."""

import inspect

import numpy as np
import pandas as pd
import pytest

from jointml.core.errors import CryptoError
from jointml.data.frames import from_pandas
from jointml.data.preprocessing import EqualFrequencyBinner
from jointml.data.secure.woe import vertical_woe
from jointml.he import HeDevice, PublicKey, generate_keypair
from jointml.he.proofs import proof_width, prove_binary, verify_binary
from jointml.runtime import PartyFailed, simulate

ROWS = 10
BANK = pd.DataFrame({"y": [1, 0, 1, 0, 0, 1, 0, 0, 1, 0]})
SHOP = pd.DataFrame({"spend": [5.0, 1.0, 6.0, 2.0, 7.0, 1.5, 2.5, 3.0, 9.0, 4.0]})
BLOCK = 32  # bits per row in the attacker's encoding: more than all slots of the column


@pytest.fixture(scope="module")
def key():
    return generate_keypair(512)


def _proven(pk, ys, context="ctx"):
    cts, alphas = pk.encrypt_with_witnesses(ys)
    return cts, prove_binary(pk, ys, cts, alphas, context)


def test_honest_proofs_verify(key):
    pk, sk = key
    ys = [0, 1, 1, 0, 1]
    cts, proofs = _proven(pk, ys)
    assert proofs.shape == (5, proof_width(pk)) and proofs.dtype == np.uint8
    assert verify_binary(pk, cts, proofs, "ctx").all()
    assert sk.decrypt_residues(cts) == ys
    # the parallel path (pool) gives the same verdicts
    many = [i % 2 for i in range(40)]
    cts2, alphas2 = pk.encrypt_with_witnesses(many, n_jobs=2)
    proofs2 = prove_binary(pk, many, cts2, alphas2, "ctx", n_jobs=2)
    assert verify_binary(pk, cts2, proofs2, "ctx", n_jobs=2).all()


def test_proof_refused_for_other_ciphertext_context_row_key_or_tampering(key):
    pk, _ = key
    cts, proofs = _proven(pk, [0, 1, 1])
    assert not verify_binary(pk, cts[::-1], proofs, "ctx")[[0, 2]].any()  # other ciphertexts
    assert not verify_binary(pk, cts, proofs, "other job").any()  # other context
    assert not verify_binary(pk, cts, proofs, "ctx", start=1).any()  # other row indices
    rerand = [c * r % pk.nsq for c, r in zip(cts, pk.nonces(3))]  # same plaintexts, other ciphertexts
    assert not verify_binary(pk, rerand, proofs, "ctx").any()
    for byte in (0, 20, 40, proof_width(pk) - 1):  # challenges, responses
        bad = proofs.copy()
        bad[:, byte] ^= 1
        assert not verify_binary(pk, cts, bad, "ctx").any()
    huge = proofs.copy()
    huge[:, 32] = 0xFF  # z_0 beyond its bound
    assert not verify_binary(pk, cts, huge, "ctx").any()
    other_pk, _ = generate_keypair(512)
    assert not verify_binary(other_pk, cts, proofs, "ctx").any()  # another key (another run)
    with pytest.raises(CryptoError, match="proofs"):
        verify_binary(pk, cts, proofs[:2], "ctx", party="bank")


def test_encryption_of_two_cannot_be_proven(key):
    pk, sk = key
    for claimed in (0, 1):
        cts, alphas = pk.encrypt_with_witnesses([2, 4])  # the attacker's 2^i
        proofs = prove_binary(pk, [claimed, claimed], cts, alphas, "ctx")
        assert not verify_binary(pk, cts, proofs, "ctx").any()
    with pytest.raises(ValueError):  # an honest prover refuses outright
        prove_binary(pk, [2], cts[:1], alphas[:1], "ctx")


def _attack_prog(record, label_proofs):
    """The bank deviates: it encrypts 2^(BLOCK*i) for row i, and keeps the raw decrypted sums."""
    ys = [int(v) for v in BANK["y"]]
    weights = [1 << (BLOCK * i) for i in range(ROWS)]
    real_encrypt, real_decrypt = PublicKey.encrypt_residues, HeDevice.decrypt

    def evil_encrypt(self, residues, **kw):
        if [int(r) for r in residues] == ys:
            residues = weights
        return real_encrypt(self, residues, **kw)

    def spying_decrypt(self, enc):
        record.extend(self._secret.decrypt_residues(list(enc.data.ravel())))
        return real_decrypt(self, enc)

    def prog(ctx):
        vdf = from_pandas(ctx, {"bank": lambda: BANK, "shop": lambda: SHOP})
        try:
            vertical_woe(ctx, vdf, "y", method="quantile", max_bins=3, key_bits=512, label_proofs=label_proofs)
        except Exception as e:  # noqa: BLE001 - the test looks at every party's outcome
            return e
        return None

    return prog, evil_encrypt, spying_decrypt


def _run_attack(monkeypatch, label_proofs):
    record: list[int] = []
    prog, evil_encrypt, spying_decrypt = _attack_prog(record, label_proofs)
    monkeypatch.setattr(PublicKey, "encrypt_residues", evil_encrypt)
    monkeypatch.setattr(HeDevice, "decrypt", spying_decrypt)
    try:
        out = simulate(prog, ["bank", "shop"], mode="thread")
    except PartyFailed:  # without proofs: the garbled sums fail the bank after it has read them
        out = None
    return record, out


def test_attack_without_proofs_recovers_every_partner_bin(monkeypatch):
    record, _ = _run_attack(monkeypatch, label_proofs=False)
    assert len(record) == 1  # one compressed ciphertext: every pre-bin sum of 'spend'
    slot_bits = ROWS.bit_length() + 2
    value = record[0]
    recovered = []
    for i in range(ROWS):  # row i's block holds 2^(slot_bits * its pre-bin)
        block = (value >> (BLOCK * i)) & ((1 << BLOCK) - 1)
        assert block & (block - 1) == 0 and block  # one bit: the row's bin
        recovered.append((block.bit_length() - 1) // slot_bits)
    true_bins = np.asarray(EqualFrequencyBinner(n_bins=3, handle_unknown="missing").fit(SHOP).transform(SHOP))[:, 0]
    assert recovered == true_bins.tolist()  # 100 % of the partner's rows


def test_attack_with_proofs_refused_at_every_party_before_any_sum(monkeypatch):
    record, out = _run_attack(monkeypatch, label_proofs=True)
    assert record == []  # nothing was summed nor decrypted
    for party in ("bank", "shop"):
        err = out[party]
        assert isinstance(err, CryptoError), (party, err)
        assert err.party == "bank" and "not proven to encrypt 0 or 1" in str(err)
        assert f"{ROWS - 1} of {ROWS} rows" in str(err)  # row 0: 2^0 = 1 is a valid label
        assert "checked by 'shop'" in str(err)


def _woe(label_proofs):
    def prog(ctx):
        vdf = from_pandas(ctx, {"bank": lambda: BANK, "shop": lambda: SHOP})
        w = vertical_woe(ctx, vdf, "y", method="quantile", max_bins=3, key_bits=512, label_proofs=label_proofs)
        if ctx.me == "bank":
            cw = w.col["spend"]
            return sorted(zip(cw.pos.tolist(), cw.neg.tolist())), round(w.iv["spend"], 12)
        return w.col["spend"].n_bins

    return simulate(prog, ["bank", "shop"], mode="thread")


def test_woe_with_proofs_equals_without():
    assert _woe(True) == _woe(False)


def test_label_proofs_parameter_on_by_default():
    from jointml.jobs.components.woe import woe_binning

    assert inspect.signature(vertical_woe).parameters["label_proofs"].default is True
    sig = inspect.signature(getattr(woe_binning, "__wrapped__", woe_binning))
    if "label_proofs" in sig.parameters:
        assert sig.parameters["label_proofs"].default is True
