"""Oblivious transfer: base OT (simplest OT on ristretto255), IKNP, KKRT16.

Correctness against the plaintext choice, views (what the sender receives does not
depend on the choice bits; the receiver's unchosen message is pseudorandom and unrelated
to what it holds), and refusal of malformed points.
"""

from __future__ import annotations

import numpy as np
import pytest

from jointml.core.errors import CryptoError
from jointml.core.prg import Prg
from jointml.mpc.ot import IknpReceiver, IknpSender, KkrtReceiver, KkrtSender, base_receive, base_send
from jointml.mpc.ot import ristretto as rg
from jointml.mpc.ot.prims import pack_bits, transpose_bits, unpack_bits
from jointml.runtime import PartyFailed, simulate
from jointml.runtime.collectives import Channel

PARTIES = ["alice", "bob"]  # alice sends, bob receives


class RecordingChannel(Channel):
    """A real channel that also keeps every array this party received: its view."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.view: list[np.ndarray] = []

    def recv(self, step, **kw):
        got = super().recv(step, **kw)
        self.view.extend(got.arrays)
        return got


def _run(sender, receiver):
    def prog(ctx):
        ch = RecordingChannel(ctx, "bob" if ctx.me == "alice" else "alice", "test-ot")
        out = sender(ch) if ctx.me == "alice" else receiver(ch)
        return out, ch.view

    return simulate(prog, PARTIES, mode="thread")


def _bits(n, seed):
    return Prg(seed.encode().ljust(16, b"\0")).bits(n).astype(np.uint8)


def test_transpose_matches_unpacked_reference():
    m = Prg(b"t" * 16).random((136, 24), np.uint8)  # 136 x 192 bits
    t = transpose_bits(m, 192)
    assert (unpack_bits(t, 136) == unpack_bits(m, 192).T).all()
    assert (pack_bits(unpack_bits(m, 192)) == m).all()


def test_ristretto_rejects_non_group_encodings():
    good = rg.encode(rg.mul(7, rg.BASE))
    assert rg.equal(rg.decode(good), rg.mul(7, rg.BASE))
    odd = bytes([good[0] | 1]) + good[1:]  # a negative field element: never canonical
    big = ((2**255 - 19) + 2).to_bytes(32, "little")  # >= p
    for bad in (odd, big, b"\xff" * 32, good[:31]):
        with pytest.raises(CryptoError):
            rg.decode(bad)
    # Most random even strings are not group elements: the decoder is strict.
    rejected = 0
    for i in range(40):
        cand = bytearray(Prg(b"r" * 16, str(i)).bytes(32))
        cand[0] &= 0xFE
        cand[31] &= 0x7F
        try:
            rg.decode(bytes(cand))
        except CryptoError:
            rejected += 1
    assert rejected > 20


def test_base_ot_correct_and_other_key_unrelated():
    c = _bits(64, "base")
    out = _run(lambda ch: base_send(ch, 64), lambda ch: base_receive(ch, c))
    (k0, k1), _ = out["alice"]
    kc, bob_view = out["bob"]
    assert (kc == np.where(c[:, None] == 1, k1, k0)).all()
    other = np.where(c[:, None] == 1, k0, k1)
    assert (other != kc).any(axis=1).all()
    # The unchosen key is nowhere in the receiver's view (A only) nor among its keys.
    seen = {bytes(r) for r in kc} | {bytes(a[i : i + 16]) for a in bob_view for i in range(0, a.size - 15)}
    assert not any(bytes(r) in seen for r in other)


def test_base_ot_sender_view_independent_of_choices():
    # The B points the sender receives are uniform group elements for either choice:
    # their encodings' bit frequencies match the all-0 and all-1 choice runs.
    freqs = []
    for bit in (0, 1):
        c = np.full(128, bit, np.uint8)
        view = _run(lambda ch: base_send(ch, 128), lambda ch, c=c: base_receive(ch, c))["alice"][1]
        b = view[0]  # the received B points (A is sent, not received)
        freqs.append(unpack_bits(b[:, 1:31], 240).mean())
    assert abs(freqs[0] - 0.5) < 0.02 and abs(freqs[1] - 0.5) < 0.02


@pytest.mark.parametrize("bad", ["identity", "noncanonical", "offgroup"])
def test_base_ot_refuses_malformed_points(bad):
    pts = {"identity": bytes(32), "noncanonical": b"\xff" * 32}
    if bad == "offgroup":  # the first even string that does not decode
        for i in range(100):
            cand = bytearray(Prg(b"o" * 16, str(i)).bytes(32))
            cand[0] &= 0xFE
            cand[31] &= 0x7F
            try:
                rg.decode(bytes(cand))
            except CryptoError:
                pts[bad] = bytes(cand)
                break

    def fake_sender(ch):
        ch.send("co15-A", arrays=[np.frombuffer(pts[bad], np.uint8)])
        return None

    def fake_receiver(ch):
        ch.recv("co15-A")
        ch.send("co15-B", arrays=[np.frombuffer(pts[bad], np.uint8).reshape(1, 32)])
        return None

    with pytest.raises(PartyFailed, match="CryptoError: base OT: A from 'alice'") as ei:  # names the sender
        _run(fake_sender, lambda ch: base_receive(ch, [1]))
    assert ei.value.party == "bob"
    with pytest.raises(PartyFailed, match=r"CryptoError: base OT: B\[0\] from 'bob'") as ei:
        _run(lambda ch: base_send(ch, 1), fake_receiver)
    assert ei.value.party == "alice"


def test_iknp_random_correlated_and_chosen_ot():
    m = 3001  # not a multiple of 8
    r = _bits(m, "iknp")
    delta = Prg(b"d" * 16).random(16, np.uint8)
    m0 = Prg(b"a" * 16).random((m, 24), np.uint8)
    m1 = Prg(b"b" * 16).random((m, 24), np.uint8)

    def sender(ch):
        s = IknpSender(ch)
        x = s.rot(m)
        c0 = s.cot(delta, m)
        s.send(m0, m1)
        return x, c0

    def receiver(ch):
        s = IknpReceiver(ch)
        return s.rot(r), s.cot(r), s.receive(r, 24)

    out = _run(sender, receiver)
    ((x0, x1), c0), _ = out["alice"]
    (x, c, msg), _ = out["bob"]
    pick = r[:, None] == 1
    assert (x == np.where(pick, x1, x0)).all()
    assert (np.where(pick, x0, x1) != x).any(axis=1).all()  # the unchosen key differs
    assert (c == np.where(pick, c0 ^ delta, c0)).all()
    assert (msg == np.where(pick, m1, m0)).all()
    # Random-OT keys are fresh per OT: no repeats across the batch and between the two sides.
    assert len({bytes(k) for k in np.vstack([x0, x1])}) == 2 * m


def test_iknp_sender_view_independent_of_choices():
    # u = G(k0) ^ G(k1) ^ r per column: balanced bits and no correlation with r.
    r = _bits(4096, "view")
    out = _run(lambda ch: IknpSender(ch).rot(4096), lambda ch: IknpReceiver(ch).rot(r))
    u = [a for a in out["alice"][1] if a.shape == (128, 512)][0]
    bits = unpack_bits(u, 4096).astype(np.float64)  # (128, 4096)
    assert abs(bits.mean() - 0.5) < 0.01
    corr = ((2 * bits - 1) * (2 * r.astype(np.float64) - 1)).mean(axis=1)  # per column vs r
    assert np.abs(corr).max() < 5 / np.sqrt(4096)
    for bit in (0, 1):  # all-equal choices give balanced u too
        same = np.full(1024, bit, np.uint8)
        v = _run(lambda ch: IknpSender(ch).rot(1024), lambda ch, s=same: IknpReceiver(ch).rot(s))["alice"][1]
        u = [a for a in v if a.shape == (128, 128)][0]
        assert abs(unpack_bits(u, 1024).mean() - 0.5) < 0.01


def test_kkrt_oprf_and_one_of_n():
    m = 700
    xs = Prg(b"x" * 16).random((m, 16), np.uint8)
    others = Prg(b"y" * 16).random((m, 16), np.uint8)
    msgs = Prg(b"n" * 16).random((50, 16, 8), np.uint8)
    choice = Prg(b"c" * 16).integers_below(16, 50).astype(np.int64)

    def sender(ch):
        k = KkrtSender(ch)
        k.extend(m)
        same = k.eval(np.arange(m), xs)
        diff = k.eval(np.arange(m), others)
        shifted = k.eval((np.arange(m) + 1) % m, xs)  # the right input at the wrong instance
        KkrtSender(ch).send_n(msgs)
        return same, diff, shifted

    def receiver(ch):
        return KkrtReceiver(ch).oprf(xs), KkrtReceiver(ch).receive_n(choice, 16, 8)

    out = _run(sender, receiver)
    (same, diff, shifted), _ = out["alice"]
    (y, got), _ = out["bob"]
    assert (y == same).all()
    assert (y != diff).any(axis=1).all() and (y != shifted).any(axis=1).all()
    # pseudorandom outputs: balanced bits, no repeats
    assert abs(unpack_bits(diff, 128).mean() - 0.5) < 0.02
    assert len({bytes(v) for v in np.vstack([same, diff])}) == 2 * m
    assert (got == msgs[np.arange(50), choice]).all()


def test_kkrt_sender_view_independent_of_inputs():
    # u's columns are masked by the seeds the sender does not hold: equal inputs at every
    # instance (a worst case for structure) look as balanced as random ones.
    for xs in (np.zeros((512, 16), np.uint8), Prg(b"q" * 16).random((512, 16), np.uint8)):
        out = _run(lambda ch: KkrtSender(ch).extend(512), lambda ch, xs=xs: KkrtReceiver(ch).oprf(xs))
        u = [a for a in out["alice"][1] if a.shape == (512, 64)][0]
        bits = unpack_bits(u, 512)
        assert abs(bits.mean() - 0.5) < 0.01
        # rows of u for identical inputs are not equal (no row-wise pattern shows through)
        assert len({bytes(r) for r in u}) == 512
