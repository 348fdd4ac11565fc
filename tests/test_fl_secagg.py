"""SecAgg+: the opened sum against the plaintext sum (with and without dropouts), refusal beyond the
threshold, the aggregator's view of one client's masked vector, the consistency attacks refused,
wrong and missing shares named; Shamir sharing and the parameter bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jointml.core.errors import CryptoError, ParameterError
from jointml.core.prg import Prg
from jointml.ml.fl import shamir
from jointml.ml.fl.secagg import SecAggSession
from jointml.ml.fl.secagg_params import SecAggParams, binomial_tail, harary_neighbours, quantise
from jointml.runtime import simulate
from jointml.runtime.collectives import broadcast
from jointml.runtime.launcher import PartyFailed

AGG = "agg"


def _clients(n):
    return [f"c{i}" for i in range(1, n + 1)]


def _inputs(n, dim, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return {c: rng.normal(scale=scale, size=dim) for c in _clients(n)}


def _run(n, xs, params, drops=None, classes=None, dim=None):
    """Every party runs one round; the aggregator then announces the sum (so dropped clients wait)."""
    drops, classes = drops or {}, classes or {}
    clients = _clients(n)
    dim = dim or len(next(iter(xs.values())))

    def prog(ctx):
        cls = classes.get(ctx.me, SecAggSession)
        sa = cls(ctx, AGG, clients, params)
        out = sa.aggregate(xs.get(ctx.me), dim=dim, drop_at=drops.get(ctx.me))
        res = broadcast(ctx, AGG, arrays=[out.total] if out is not None else [], meta={
            "survivors": out.survivors if out is not None else None})
        if ctx.me == AGG:
            return out, sa.last_view_
        return res.meta["survivors"]

    return simulate(prog, [AGG, *clients], mode="thread", timeout=60)


def _plain(xs, who, p):
    return sum(np.clip(xs[c], -p.clip, p.clip) for c in who)


def test_sum_without_dropouts_equals_plaintext_sum():
    p = SecAggParams(clip=3.0, quant_bits=20)
    xs = _inputs(5, 64)
    out, _ = _run(5, xs, p)[AGG]
    assert out.count == 5 and out.dropped == []
    # stochastic rounding: at most one quantisation step per client and coordinate
    assert np.max(np.abs(out.total - _plain(xs, _clients(5), p))) <= 5 * p.quant_step
    assert out.params.degree == 4 and out.params.threshold == 3


def test_sum_with_dropouts_at_every_stage_below_threshold():
    # 8 clients, complete graph (7 neighbours), t = 4: c2 leaves before sending keys, c3 after
    # sharing its keys (its pairwise masks are rebuilt from its mask-key shares), c4 after
    # sending its masked input (kept: its self mask is removed with the others' shares)
    p = SecAggParams(threshold=4, min_signers=5, timeout=0.4)
    xs = _inputs(8, 32, seed=1)
    got = _run(8, xs, p, drops={"c2": "keys", "c3": "masked", "c4": "unmask"})
    out, view = got[AGG]
    alive = ["c1", "c4", "c5", "c6", "c7", "c8"]
    assert out.survivors == alive and out.dropped == ["c2", "c3"]
    assert np.max(np.abs(out.total - _plain(xs, alive, p))) <= len(alive) * p.quant_step
    assert "c3" in view["shares"] and "c3" not in view["masked"]


def test_sparse_graph_sum_and_dropout():
    # 10 clients on a degree-4 Harary graph (not complete), one dropout after sharing
    p = SecAggParams(degree=4, threshold=3, min_signers=6, timeout=0.4)
    xs = _inputs(10, 16, seed=2)
    out, _ = _run(10, xs, p, drops={"c7": "masked"})[AGG]
    alive = [c for c in _clients(10) if c != "c7"]
    assert out.params.degree == 4
    assert np.max(np.abs(out.total - _plain(xs, alive, p))) <= 9 * p.quant_step


def test_dropouts_beyond_threshold_are_refused():
    p = SecAggParams(threshold=3, min_signers=3, timeout=0.3)
    xs = _inputs(5, 8, seed=3)
    with pytest.raises(PartyFailed) as e:
        _run(5, xs, p, drops={"c1": "unmask", "c2": "unmask"})
    assert e.value.party == AGG and e.value.error_type == "ProtocolError"
    assert "threshold" in e.value.message


def test_server_view_of_a_masked_vector_is_uniform_and_independent_of_the_input():
    dim = 1 << 14
    p = SecAggParams(clip=1.0, quant_bits=16, bits=32)
    views = []
    for value in (0.0, 1.0):  # c1 sends all zeros, then all +clip (the most distinctive input)
        xs = {c: np.zeros(dim) for c in _clients(3)}
        xs["c1"] = np.full(dim, value)
        out, view = _run(3, xs, SecAggParams(clip=1.0, quant_bits=16, bits=32, threshold=2, min_signers=2))[AGG]
        y = view["masked"]["c1"][0]
        assert y.dtype == np.uint32
        for shift in (0, 8, 16, 24):  # every byte of the masked words is uniform (chi-square, 255 df)
            counts = np.bincount((y >> shift) & 0xFF, minlength=256)
            chi2 = float(((counts - dim / 256) ** 2 / (dim / 256)).sum())
            assert chi2 < 370, (value, shift, chi2)  # p < 1e-6 under uniformity
        q = quantise(xs["c1"], p, Prg())  # the plaintext encoding of the input
        assert np.mean(y.astype(np.uint64) == q) < 0.01
        views.append(y)
        assert abs(out.total.sum() - value * dim) <= 3 * dim * p.quant_step
    # the two views are indistinguishable: same first byte distribution (two-sample chi-square)
    a, b = (np.bincount(v & 0xFF, minlength=256) for v in views)
    chi2 = float(((a - b) ** 2 / np.maximum(a + b, 1)).sum())
    assert chi2 < 370


class _BothWays(SecAggSession):
    """A deviating aggregator: asks to unmask a dropped client also as alive (its b and s both)."""

    def _unmask_request(self, client, held, survivors):
        req = super()._unmask_request(client, held, survivors)
        return {"alive": req["alive"] + req["dropped"], "dropped": req["dropped"]}


class _Equivocating(SecAggSession):
    """A deviating aggregator: shows c1, c2 a survivor list without c4 (they would reveal c4's mask
    key) and the others the full one (they would reveal c4's self-mask seed)."""

    def _consistency_list(self, client, survivors):
        return [c for c in survivors if c != "c4"] if client in ("c1", "c2") else survivors

    def _unmask_request(self, client, held, survivors):
        mine = self._consistency_list(client, survivors)
        return {"alive": [v for v in held if v in mine], "dropped": [v for v in held if v not in mine]}


def test_consistency_check_refuses_a_client_both_dropped_and_alive():
    p = SecAggParams(threshold=3, min_signers=4, timeout=0.3)
    with pytest.raises(PartyFailed) as e:
        _run(6, _inputs(6, 4), p, drops={"c6": "masked"}, classes={AGG: _BothWays})
    assert e.value.error_type == "ProtocolError" and e.value.party.startswith("c")
    assert "['c6'] both as dropped and as alive" in e.value.message


def test_consistency_check_refuses_different_survivor_lists():
    p = SecAggParams(threshold=3, min_signers=4, timeout=0.3)
    with pytest.raises(PartyFailed) as e:
        _run(5, _inputs(5, 4), p, classes={AGG: _Equivocating})
    msgs = [e.value.message] + [m for _, m, _ in e.value.others.values()]
    assert any("does not verify on this survivor list" in m or "signers" in m for m in msgs), msgs


class _WrongShare(SecAggSession):
    def _unmask_answer(self, b_shares, sk_shares):
        first = next(iter(b_shares))
        bad = bytes([b_shares[first][0] ^ 1]) + b_shares[first][1:]
        return {"b": {**b_shares, first: bad}, "sk": sk_shares}


class _MissingShare(SecAggSession):
    def _unmask_answer(self, b_shares, sk_shares):
        return {"b": dict(list(b_shares.items())[1:]), "sk": sk_shares}


@pytest.mark.parametrize("cls,words", [(_WrongShare, "wrong b share"), (_MissingShare, "missing shares")])
def test_wrong_or_missing_share_names_the_client(cls, words):
    p = SecAggParams(threshold=3, min_signers=4)
    with pytest.raises(PartyFailed) as e:
        _run(5, _inputs(5, 4), p, classes={"c3": cls})
    assert e.value.error_type == "ProtocolError" and "party 'c3'" in e.value.message and words in e.value.message


def test_shamir_threshold_and_wrong_shares():
    secret = bytes(range(32))
    xs = list(range(1, 8))
    sh = shamir.split(secret, 4, xs)
    for subset in ([0, 1, 2, 3], [3, 4, 5, 6], [0, 2, 4, 6]):
        assert shamir.reconstruct({xs[i]: sh[i] for i in subset}, 4, 32) == secret
    # a wrong share is not detected by interpolation itself (callers check commitments): it
    # gives another secret, or one too large for its size
    bad = {xs[i]: sh[i] for i in range(4)}
    bad[1] = (bad[1] + 1) % shamir.PRIME
    assert shamir.reconstruct(bad, 4, 32) != secret
    bad[1] = (bad[1] + (1 << 300)) % shamir.PRIME
    with pytest.raises(CryptoError, match="share is wrong"):
        shamir.reconstruct(bad, 4, 32)
    with pytest.raises(CryptoError, match="at least 4"):
        shamir.reconstruct({1: sh[0]}, 4, 32)
    with pytest.raises(ParameterError):
        shamir.split(secret, 8, xs)


def test_parameters_bounds_graph_and_quantisation():
    p = SecAggParams.choose(100)
    b = p.failure_bounds(100)
    assert p.degree < 99 and b["privacy"] <= 2 ** -40 and b["correctness"] <= 2 ** -20
    assert p.threshold > p.degree // 2 and p.min_signers == (100 + 10) // 2 + 1
    assert binomial_tail(10, 0.3, 0) == 1.0 and math.isclose(binomial_tail(3, 0.5, 3), 0.125)
    with pytest.raises(ParameterError, match="threshold"):
        SecAggParams(threshold=2).resolved(5)
    with pytest.raises(ParameterError, match="bits"):
        SecAggParams(quant_bits=30, bits=32).resolved(10)
    g = harary_neighbours(_clients(12), 4, Prg(b"h" * 16))
    assert all(len(v) == 4 for v in g.values()) and all(u in g[v] for u in g for v in g[u])
    g = harary_neighbours(_clients(10), 5, Prg(b"h" * 16))  # odd degree, even n: diametric chords
    assert all(len(v) == 5 for v in g.values()) and all(u in g[v] for u in g for v in g[u])
    assert SecAggParams(degree=3, threshold=3).resolved(9).degree == 4  # odd degree, odd n: rounded up
    # stochastic rounding is unbiased
    q = SecAggParams(clip=1.0, quant_bits=4)
    x = np.full(20000, 0.123)
    est = quantise(x, q, Prg(b"r" * 16)).astype(float) * q.quant_step - q.clip
    assert abs(est.mean() - 0.123) < 3 * q.quant_step / math.sqrt(20000) * 2


def _proc_prog(ctx):
    clients = ["c1", "c2", "c3", "c4", "c5"]
    sa = SecAggSession(ctx, AGG, clients, SecAggParams(threshold=3, min_signers=3, timeout=1.0))
    x = {c: np.full(5, i + 1.0) for i, c in enumerate(clients)}.get(ctx.me)
    out = sa.aggregate(x, dim=5, drop_at="masked" if ctx.me == "c4" else None)
    broadcast(ctx, AGG, meta={})
    return None if out is None else out.total.tolist()


def test_secagg_across_processes_over_tls_links():
    # one process per party, mutual-TLS TCP links; c4 drops after sharing its keys; c5's 5.0 is clipped to 4.0
    out = simulate(_proc_prog, [AGG, "c1", "c2", "c3", "c4", "c5"], mode="process", timeout=120)[AGG]
    assert np.allclose(out, 1 + 2 + 3 + 4.0, atol=4 * SecAggParams().quant_step)


class _SlowOnce(SecAggSession):
    """A client that answers the unmask request of round 1 after the aggregator's timeout."""

    def _unmask_answer(self, b_shares, sk_shares):
        if self.round == 1:
            import time

            time.sleep(0.8)
        return super()._unmask_answer(b_shares, sk_shares)


def test_a_slow_client_counted_as_dropped_resyncs_for_the_next_round():
    clients = _clients(6)
    p = SecAggParams(threshold=3, min_signers=4, timeout=0.3)
    xs = _inputs(6, 8, seed=7)

    def prog(ctx):
        cls = _SlowOnce if ctx.me == "c2" else SecAggSession
        sa = cls(ctx, AGG, clients, p)
        outs = [sa.aggregate(xs.get(ctx.me), dim=8)]
        sa.close()  # the aggregator reads c2's late answer and its acknowledgement
        outs.append(sa.aggregate(xs.get(ctx.me), dim=8))
        return None if ctx.me != AGG else [(o.survivors, o.total) for o in outs]

    (s1, t1), (s2, t2) = simulate(prog, [AGG, *clients], mode="thread", timeout=60)[AGG]
    # round 1: c2's masked input counts (it answered that stage); its unmask answer came late and was drained
    assert s1 == clients and s2 == clients
    for t in (t1, t2):
        assert np.max(np.abs(t - _plain(xs, clients, p))) <= 6 * p.quant_step


class _KeySwap(SecAggSession):
    """A deviating aggregator: forwards its own X25519 mask key in place of c2's to c1 (a man in
    the middle that would learn the pairwise mask of c1 and c2), with c2's MAC or one it made up."""

    forged = False

    def _neighbour_keys(self, client, keys):
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        if client == "c1" and "c2" in keys:
            mine = np.frombuffer(X25519PrivateKey.generate().public_key().public_bytes_raw(), np.uint8)
            mac = np.frombuffer(bytes(16), np.uint8) if self.forged else keys["c2"][1]
            keys = {**keys, "c2": [mine, mac]}
        return keys


class _KeySwapForged(_KeySwap):
    forged = True


@pytest.mark.parametrize("cls", [_KeySwap, _KeySwapForged])
def test_substituted_public_key_is_refused(cls):
    with pytest.raises(PartyFailed) as e:
        _run(5, _inputs(5, 4), SecAggParams(threshold=3, min_signers=4), classes={AGG: cls})
    assert e.value.error_type == "ProtocolError" and "not authenticated by 'c2'" in e.value.message


class _ChosenGraph(SecAggSession):
    """A deviating aggregator: gives c1 the neighbours it likes (c2, c3, c4, c5) in place of
    the round's public graph (say, because it colludes with them)."""

    def _graph(self, parts, degree):
        g = super()._graph(parts, degree)
        chosen = ["c2", "c3", "c4", "c5"]
        if g["c1"] != chosen:
            g = {**g, "c1": chosen}
        return g


def test_graph_from_public_randomness_is_recomputed_and_a_chosen_one_refused():
    p = SecAggParams(degree=4, threshold=3, min_signers=6, timeout=0.4)

    def prog(ctx):
        sa = SecAggSession(ctx, AGG, _clients(10), p)
        others = _clients(10)[1:]
        return {"seed": sa.graph_seed(1, _clients(10)), "other_round": sa.graph_seed(2, _clients(10)),
                "other_parts": sa.graph_seed(1, others), "session2": SecAggSession(ctx, AGG, _clients(10), p).graph_seed(
                    1, _clients(10))}

    seen = simulate(prog, [AGG, *_clients(10)], mode="thread", timeout=60)
    # every party derives the same public seed; the same participants keep their graph within a
    # session (kept mask keys meet the same neighbours), other participants or a new session do not
    assert len({v["seed"] for v in seen.values()}) == 1
    assert seen[AGG]["seed"] == seen[AGG]["other_round"]
    assert seen[AGG]["seed"] != seen[AGG]["other_parts"] and seen[AGG]["seed"] != seen[AGG]["session2"]
    with pytest.raises(PartyFailed) as e:
        _run(10, _inputs(10, 4), p, classes={AGG: _ChosenGraph})
    assert e.value.party == "c1" and "public graph" in e.value.message


def test_hkdf_equals_the_rfc_5869_construction_of_cryptography():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from jointml.ml.fl.secagg import _hkdf

    ikm = bytes(range(32))
    for n in (16, 32, 64):
        want = HKDF(algorithm=hashes.SHA256(), length=n, salt=None, info=b"mask|x|3").derive(ikm)
        assert _hkdf(ikm, "mask|x|3", n) == want


class _BadEndorser(SecAggSession):
    """A deviating client: its endorsements of the survivor list are made-up MACs."""

    def _endorsement(self, key, rnd, signer, verifier, survivors):
        if signer == self.ctx.me:
            return bytes(16)
        return super()._endorsement(key, rnd, signer, verifier, survivors)


def test_endorsements_are_checked_one_bad_is_tolerated_too_many_refused():
    # 5 clients, min_signers 4: an honest client counts itself and the valid MACs addressed to it
    p = SecAggParams(threshold=3, min_signers=4, timeout=0.3)
    xs = _inputs(5, 4, seed=11)
    out, _ = _run(5, xs, p, classes={"c5": _BadEndorser})[AGG]  # 1 + 3 valid: enough
    assert out.count == 5 and np.max(np.abs(out.total - _plain(xs, _clients(5), p))) <= 5 * p.quant_step
    with pytest.raises(PartyFailed) as e:  # 1 + 2 valid at c1, c2, c3: refused before any share is revealed
        _run(5, xs, p, classes={"c4": _BadEndorser, "c5": _BadEndorser})
    msgs = [e.value.message] + [m for _, m, _ in e.value.others.values()]
    assert any("3 signers endorsed this survivor list" in m for m in msgs), msgs


def test_mask_key_kept_after_a_completed_round_and_renewed_after_a_rebuilt_one():
    clients = _clients(6)
    p = SecAggParams(threshold=3, min_signers=4, timeout=0.3)
    xs = _inputs(6, 8, seed=5)

    def prog(ctx):
        sa = SecAggSession(ctx, AGG, clients, p)
        outs, keys = [], []
        for rnd in range(3):  # c3 drops after sharing its keys in round 2: the aggregator rebuilds its s
            outs.append(sa.aggregate(xs.get(ctx.me), dim=8, drop_at="masked" if ctx.me == "c3" and rnd == 1 else None))
            if ctx.me == AGG:
                keys.append({c: a[0].tobytes() for c, a in sa.last_view_["keys"].items()})
        sa.close()
        return None if ctx.me != AGG else ([(o.survivors, o.total) for o in outs], keys)

    outs, keys = simulate(prog, [AGG, *clients], mode="thread", timeout=60)[AGG]
    assert [s for s, _ in outs] == [clients, [c for c in clients if c != "c3"], clients]
    for s, t in outs:
        assert np.max(np.abs(t - _plain(xs, s, p))) <= 6 * p.quant_step
    others = [c for c in clients if c != "c3"]
    assert all(keys[0][c] == keys[1][c] == keys[2][c] for c in others)  # kept: completed every round
    assert keys[0]["c3"] == keys[1]["c3"] != keys[2]["c3"]  # rebuilt in round 2: never serves again


def test_hmac_equals_the_standard_library():
    import hmac

    from jointml.ml.fl.secagg import _hmac

    for key in (b"", b"k" * 16, b"k" * 32, bytes(range(64))):
        for msg in (b"", b"m", bytes(range(200))):
            assert _hmac(key, msg) == hmac.digest(key, msg, "sha256")
