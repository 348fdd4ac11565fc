"""ECDH-PSI: correctness against Python sets, alignment, errors, streaming, leakage."""

from __future__ import annotations

import hashlib
import secrets

import numpy as np
import pandas as pd
import pytest

from jointml.core.workers import WorkerPool as CurvePool
from jointml.net.link import InProcessLink
from jointml.psi import DuplicateKeyError, PsiError, _curve, _keys, ecdh, psi_align, psi_frame
from jointml.psi._curve import CHUNK
from jointml.runtime import PartyFailed, simulate

TWO = ["bank", "partner"]
THREE = ["bank", "partner", "insurer"]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)  # test data only, not secrets


def _run(data: dict, parties=TWO, mode: str = "thread", **kw) -> dict:
    """Run psi_align at every party on data[party]; returns {party: PsiResult}."""

    def prog(ctx):
        return psi_align(ctx, data[ctx.me], **kw)

    return simulate(prog, parties, mode=mode, timeout=120)


def _aligned_keys(res, data, cols=None) -> dict:
    out = {}
    for p, r in res.items():
        if r is None or r.positions is None:
            out[p] = None
            continue
        d = data[p]
        if isinstance(d, pd.DataFrame):
            out[p] = list(d.iloc[r.positions][cols].itertuples(index=False, name=None))
        else:
            out[p] = [d[i] for i in r.positions]
    return out


def _check_aligned(res, data, expected: set, cols=None):
    keys = _aligned_keys(res, data, cols)
    got = [k for k in keys.values() if k is not None]
    assert got, "nobody learned the intersection"
    for k in got:
        assert k == got[0], "row i differs between parties"
    assert len(got[0]) == len(expected) and set(got[0]) == expected
    for r in res.values():
        if r is not None and r.positions is not None:
            assert r.positions.dtype == np.int64 and r.size == len(expected)
            assert len(np.unique(r.positions)) == r.size


# -- correctness ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["str", "int"])
def test_matches_python_set_intersection(kind):
    g = _rng(1 if kind == "str" else 2)
    universe = g.choice(10**9, size=1500, replace=False)
    a = g.choice(universe, size=700, replace=False)
    b = g.choice(universe, size=600, replace=False)
    if kind == "str":
        a = [f"cust-{x}" for x in a]
        b = [f"cust-{x}" for x in b]
    else:
        a, b = list(map(int, a)), list(map(int, b))
    data = {"bank": a, "partner": b}
    res = _run(data)
    _check_aligned(res, data, set(a) & set(b))
    assert res["bank"].set_sizes == {"bank": 700, "partner": 600}
    assert res["partner"].set_sizes == {"partner": 600, "bank": 700}


def test_multi_column_keys_and_frames():
    bank = pd.DataFrame({"id": [1, 2, 3, 4, 5], "phone": ["555-1", "555-2", "555-3", "555-4", "555-5"], "limit": range(5)})
    # id 2 with another phone is a different key; "3" as text never equals 3.
    partner = pd.DataFrame({"cid": [5, 2, 1, 9], "tel": ["555-5", "555-0", "555-1", "555-9"], "spend": [1.0, 2.0, 3.0, 4.0]})
    data = {"bank": bank, "partner": partner}

    def prog(ctx):
        cols = {"bank": ["id", "phone"], "partner": ["cid", "tel"]}
        out = psi_frame(ctx, data[ctx.me], key_columns=cols, sort_by="bank")
        return out

    res = simulate(prog, TWO, mode="thread")
    assert res["bank"]["id"].tolist() == [1, 5] and res["partner"]["cid"].tolist() == [1, 5]
    assert res["bank"]["limit"].tolist() == [0, 4] and res["partner"]["spend"].tolist() == [3.0, 1.0]
    assert list(res["bank"].index) == [0, 1]


def test_party_objects_in_and_out():
    def prog(ctx):
        b = ctx.party("bank").run(lambda: pd.DataFrame({"id": ["a", "b", "c"], "x": [1, 2, 3]}))
        p = ctx.party("partner").run(lambda: pd.DataFrame({"id": ["c", "z", "a"], "y": [7, 8, 9]}))
        out = psi_frame(ctx, {"bank": b, "partner": p}, key_columns="id")
        assert set(out) == {"bank", "partner"}
        return out[ctx.me].value

    res = simulate(prog, TWO, mode="thread")
    assert res["bank"]["id"].tolist() == res["partner"]["id"].tolist()
    assert sorted(res["bank"]["id"]) == ["a", "c"]


@pytest.mark.parametrize(
    "a,b",
    [([], []), ([], ["x", "y"]), (["x", "y"], []), (["a", "b"], ["c", "d"])],
    ids=["both-empty", "bank-empty", "partner-empty", "disjoint"],
)
def test_empty_and_disjoint(a, b):
    data = {"bank": a, "partner": b}
    res = _run(data)
    for p in TWO:
        assert res[p].size == 0 and res[p].positions.shape == (0,)
    frame = {"bank": pd.DataFrame({"id": pd.Series(a, dtype=object)}), "partner": pd.DataFrame({"id": pd.Series(b, dtype=object)})}
    out = simulate(lambda ctx: psi_frame(ctx, frame[ctx.me], key_columns=["id"]), TWO, mode="thread")
    assert len(out["bank"]) == 0 and len(out["partner"]) == 0


def test_one_common_id():
    data = {"bank": [f"u{i}" for i in range(50)], "partner": [f"v{i}" for i in range(40)] + ["u17"]}
    res = _run(data)
    _check_aligned(res, data, {"u17"})
    assert res["bank"].positions.tolist() == [17] and res["partner"].positions.tolist() == [40]


def test_reveal_to_one_party():
    g = _rng(3)
    a = [int(x) for x in g.choice(5000, size=400, replace=False)]
    b = [int(x) for x in g.choice(5000, size=300, replace=False)]
    data = {"bank": a, "partner": b}
    res = _run(data, reveal_to="partner")
    assert res["bank"].positions is None and res["bank"].size is None and not res["bank"].revealed
    assert res["bank"].set_sizes == {"bank": 400, "partner": 300}  # its own and the receiver's: nothing else
    _check_aligned(res, data, set(a) & set(b))
    assert np.all(np.diff(res["partner"].positions) > 0)  # receiver: ascending row order
    with pytest.raises(PsiError, match="not revealed"):
        res["bank"].take(a)


def test_three_parties_and_order_alignment():
    g = _rng(4)
    sets = {p: [f"id{x}" for x in g.choice(2000, size=900, replace=False)] for p in THREE}
    expected = set(sets["bank"]) & set(sets["partner"]) & set(sets["insurer"])
    res = _run(sets, parties=THREE)
    _check_aligned(res, sets, expected)
    # sort_by a follower: every party's rows come in that follower's row order.
    res = _run(sets, parties=THREE, sort_by="insurer")
    _check_aligned(res, sets, expected)
    assert np.all(np.diff(res["insurer"].positions) > 0)
    # reveal_to: only that party learns; it leads the chain.
    res = _run(sets, parties=THREE, reveal_to="insurer")
    assert res["bank"].positions is None and res["partner"].positions is None
    assert set(sets["insurer"][i] for i in res["insurer"].positions) == expected


def test_parties_subset_returns_none_elsewhere():
    data = {"bank": ["a", "b"], "partner": ["b", "c"]}

    def prog(ctx):
        r = psi_align(ctx, data, parties=["bank", "partner"])  # dict: each takes its own
        return None if r is None else r.positions.tolist()

    res = simulate(prog, THREE, mode="thread")
    assert res["insurer"] is None and res["bank"] == [1] and res["partner"] == [0]


# -- streaming ---------------------------------------------------------------------------
def test_streaming_small_batches_same_result(tmp_path):
    g = _rng(5)
    bank = pd.DataFrame({"id": [f"{x:07d}" for x in g.choice(10**6, size=333, replace=False)], "v": g.normal(size=333)})
    partner = pd.concat([bank.sample(120, random_state=1), pd.DataFrame({"id": ["0000001", "x"], "v": [0.0, 1.0]})])
    partner = partner.sample(frac=1.0, random_state=2).reset_index(drop=True)
    bank.to_csv(tmp_path / "bank.csv", index=False)
    partner.to_csv(tmp_path / "partner.csv", index=False)
    expected = set(bank["id"]) & set(partner["id"])

    def prog(ctx, source):
        path = str(tmp_path / f"{ctx.me}.csv")
        if source == "csv":
            src = path  # ids read as text: leading zeros kept
        elif source == "chunks":
            src = pd.read_csv(path, chunksize=17, dtype={"id": str})
        else:
            src = pd.read_csv(path, dtype={"id": str})
        r = psi_align(ctx, src, key_columns=["id"], batch_size=10)
        return r.positions, r.take(path, read_csv_kwargs={"dtype": {"id": str}})["id"].tolist()

    results = {s: simulate(prog, TWO, mode="thread", args=(s,)) for s in ("memory", "csv", "chunks")}
    for s, res in results.items():
        assert res["bank"][1] == res["partner"][1], s
        assert set(res["bank"][1]) == expected and len(res["bank"][1]) == len(expected), s
        assert sorted(res["bank"][0].tolist()) == sorted(results["memory"]["bank"][0].tolist()), s


def test_psi_frame_refuses_one_shot_iterators():
    data = {"bank": iter([pd.DataFrame({"id": [1, 2]})]), "partner": pd.DataFrame({"id": [2]})}
    with pytest.raises(PartyFailed, match="reads the data twice"):
        simulate(lambda ctx: psi_frame(ctx, data[ctx.me], key_columns=["id"]), TWO, mode="thread", timeout=30)


def test_pool_workers_same_result():
    # Force the worker processes on a small input: same digests in, same points out.
    d = secrets.token_bytes(32 * (CHUNK + 5))
    k = _curve.new_secret()
    tasks = [(d[i : i + 32 * CHUNK], k) for i in range(0, len(d), 32 * CHUNK)]
    with CurvePool(2) as pool:
        par = b"".join(pool.imap(_curve.h2c_exp, tasks))
    assert par == _curve.h2c_exp(d, k)
    data = {"bank": list(range(0, 600, 2)), "partner": list(range(0, 600, 3))}
    res = _run(data, n_jobs=2)
    _check_aligned(res, data, set(data["bank"]) & set(data["partner"]))


def test_process_mode_over_tls():
    # Parties are daemonic processes here: their curve workers must still start (n_jobs=2).
    data = {"bank": [f"p{i}" for i in range(300)], "partner": [f"p{i}" for i in range(150, 400)]}
    res = _run(data, mode="process", n_jobs=2)
    _check_aligned(res, data, {f"p{i}" for i in range(150, 300)})
    assert res["bank"].stats["bytes_sent"] > 0 and res["bank"].stats["mults"] == 300 + 250
    assert res["bank"].stats["workers"] == 2 and res["partner"].stats["workers"] == 2


# -- errors --------------------------------------------------------------------------------
def test_duplicates_rejected_with_party_and_count():
    data = {"bank": ["a", "b", "secret-id-7", "c", "secret-id-7", "b", "b"], "partner": ["a"]}
    with pytest.raises(PartyFailed) as ei:
        _run(data)
    e = ei.value
    assert e.party == "bank" and e.error_type == "DuplicateKeyError"
    assert "2 key value(s)" in str(e) and "3 surplus rows" in str(e)
    assert "secret-id-7" not in str(e) and "secret-id-7" not in e.traceback  # the peer may see this message
    with pytest.raises(DuplicateKeyError) as ei:
        _keys.check_unique(_keys.digest_keys(pd.DataFrame({"k": [1, 1, 2], "s": ["x", "x", "x"]}), None, "bank")[0], "bank", ["k", "s"])
    assert ei.value.party == "bank" and ei.value.n_keys == 1 and ei.value.n_rows == 1


@pytest.mark.parametrize(
    "bank,partner,match",
    [
        ([1, 2], ["1", "2"], "integer and string ids never match"),
        ([1, None, 3], [1], "1 missing values"),
        ([1.5, 2.0], [1], "non-integer float"),
        ([1, "a"], [1], "mixes value types"),
    ],
)
def test_bad_keys_clear_errors(bank, partner, match):
    data = {"bank": pd.Series(bank, dtype=object if None in bank or "a" in bank else None), "partner": partner}
    with pytest.raises(PartyFailed, match=match):
        _run(data)


def test_mismatched_parameters_fail_fast():
    def prog(ctx):
        return psi_align(ctx, ["a"], reveal_to="bank" if ctx.me == "bank" else None)

    with pytest.raises(PartyFailed, match="reveal_to"):
        simulate(prog, TWO, mode="thread", timeout=30)


def test_received_points_are_validated():
    k = _curve.new_secret()
    good = _curve.h2c_exp(bytes(32), k)
    twist = next(u for u in range(2, 100) if not _curve.on_curve(u)).to_bytes(32, "little")
    with pytest.raises(_curve.InvalidPoint, match="not on Curve25519"):
        _curve.exp_received(good + twist, k)
    with pytest.raises(_curve.InvalidPoint, match="small order|not on"):
        _curve.exp_received((1).to_bytes(32, "little") if _curve.on_curve(1) else (_curve.P - 1).to_bytes(32, "little"), k)
    big = np.frombuffer(good + (_curve.P).to_bytes(32, "little"), dtype=np.uint8).reshape(2, 32)
    assert _curve.check_canonical(big) == 1 and _curve.check_canonical(big[:1]) == -1


# -- leakage -------------------------------------------------------------------------------
def test_messages_carry_no_raw_ids_or_plain_hashes(monkeypatch):
    bodies: list[tuple[str, str, bytes]] = []
    orig = InProcessLink._write

    def record(self, bufs, nbytes):
        bodies.append((self.me, self.peer, b"".join(bytes(b) for b in bufs)))
        return orig(self, bufs, nbytes)

    monkeypatch.setattr(InProcessLink, "_write", record)
    data = {"bank": [f"alice.smith+{i}@example.com" for i in range(60)], "partner": [f"alice.smith+{i}@example.com" for i in range(30, 90)]}
    res = _run(data)
    _check_aligned(res, data, set(data["bank"]) & set(data["partner"]))
    for sender, _receiver, body in bodies:
        ids = data[sender]
        digests, _, _ = _keys.digest_keys(ids, None, sender)
        points = _curve.hash_to_curve(digests)
        assert b"example.com" not in body and b"alice.smith" not in body
        for i in range(len(ids)):
            assert digests[32 * i : 32 * i + 12] not in body, "a plain digest crossed the link"
            assert points[32 * i : 32 * i + 12] not in body, "an unmasked H(id) crossed the link"
            assert hashlib.sha256(ids[i].encode()).digest()[:12] not in body
    assert len(bodies) >= 4


def test_fresh_secrets_each_run(monkeypatch):
    seen = []
    orig = _curve.new_secret
    monkeypatch.setattr(_curve, "new_secret", lambda: seen.append(orig()) or seen[-1])
    data = {"bank": ["a", "b"], "partner": ["b"]}
    _run(data)
    _run(data)
    assert len(seen) == 4 and len(set(seen)) == 4


def test_docstring_examples():
    import doctest

    import jointml.bench.psi as bench_psi
    from jointml.core import workers as _pool
    from jointml.psi import _keys as keys_mod

    for mod in (ecdh, _curve, keys_mod, _pool, bench_psi):
        r = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert r.failed == 0 and r.attempted > 0, mod.__name__
