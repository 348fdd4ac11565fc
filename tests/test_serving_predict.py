"""Online serving (jointml.serving): both servers over mutual TLS, scores equal `predict_job`."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pandas as pd
import pytest

from jointml.demo.credit_demo import make_demo_files
from jointml.jobs import PipelineSpec, predict_job, simulate_pipeline
from jointml.runtime import ClusterConfig, simulate
from jointml.serving.predictor import MPC_MODELS, PartyPredictor, TableSource, open_source
from jointml.serving.server import BankService, PartnerService, create_app

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

LABEL = "creditability"


def _spec(files, out, train):
    steps = [{"psi": {"key": "id", "sort_by": "bank"}}, {"encode": {"label": LABEL}},
             {"split": {"test_fraction": 0.3, "seed": 1}}]
    if "ss_lr.train" in train:
        steps.append({"scale": {"label": LABEL}})
    steps.append(train)
    return PipelineSpec.from_dict({
        "parties": ["bank", "partner", "dealer"],
        "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
        "inputs": {"bank": str(files["bank"]), "partner": str(files["partner"])}, "steps": steps, "output": str(out)})


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_demo_files(tmp_path_factory.mktemp("serve-data"))


TRAIN = {
    "ss_xgb": {"ss_xgb.train": {"label": LABEL, "pos_label": "bad", "features": "raw", "n_estimators": 2, "max_depth": 2,
                                "max_bin": 8}},
    "ss_lr": {"ss_lr.train": {"label": LABEL, "pos_label": "bad", "features": "raw", "epochs": 2}},
    "secureboost": {"secureboost.train": {"label": LABEL, "pos_label": "bad", "features": "raw", "key_bits": 512,
                                          "n_estimators": 3, "max_depth": 3, "max_bin": 16}},
}


_CACHE: dict = {}


def _train(files, tmp_path_factory, model, tag=""):
    key = (model, tag)
    if key not in _CACHE:
        out = tmp_path_factory.mktemp(f"serve-{model}{tag}")
        simulate_pipeline(_spec(files, out, TRAIN[model]), mode="thread", verbose=False)
        _CACHE[key] = out / "model"
    return _CACHE[key]


@pytest.fixture(scope="module", params=["secureboost", "ss_lr"])
def trained(request, files, tmp_path_factory):
    return request.param, _train(files, tmp_path_factory, request.param)


def _ports(n):
    from jointml.bench.chaos import free_ports  # n free loopback ports, bound together then released

    return free_ports(n)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from jointml.net.certs import create_dev_pki

    d = tmp_path_factory.mktemp("serve-certs")
    names = ["bank", "partner", "dealer"]
    create_dev_pki(d / "certs", names)
    ports = _ports(3)
    return ClusterConfig.from_dict({"parties": {n: {"address": f"127.0.0.1:{p}", "cert": f"certs/{n}.crt",
                                                    "key": f"certs/{n}.key"} for n, p in zip(names, ports)},
                                    "ca": "certs/ca.crt", "connect_timeout": 10}, base=d)


class Servers:
    def __init__(self, model_dir, cluster, files, timeout=2.0, partner_dir=None, unknown="error", key_bits=512):
        self.partner = PartnerService(str(partner_dir or model_dir), "partner", cluster,
                                      open_source(str(files["partner"])), unknown=unknown)
        self.thread = threading.Thread(target=self.partner.run, daemon=True)
        self.thread.start()
        self.dealer = None
        if PartyPredictor.load(model_dir, "bank").model in MPC_MODELS:  # SS-XGB: the dealer serves too
            self.dealer = PartnerService(str(model_dir), "dealer", cluster, None)
            threading.Thread(target=self.dealer.run, daemon=True).start()
        self.bank = BankService(str(model_dir), "bank", cluster, open_source(str(files["bank"])), timeout=timeout,
                                key_bits=key_bits)
        self.bank.start()
        self.client = TestClient(create_app(self.bank))

    def close(self):
        if self.dealer is not None:
            self.dealer.stop()
        self.partner.stop()
        self.bank.stop()
        self.thread.join(5)


@pytest.fixture()
def servers(trained, cluster, files):
    s = Servers(trained[1], cluster, files)
    assert s.bank.wait_ready(20), s.bank.problem
    yield s
    s.close()


def test_scores_equal_predict_job(trained, servers, files):
    """Served scores equal the batch `predict_job` on the same rows, for each model type."""
    model, d = trained
    got = simulate(predict_job, ["bank", "partner", "dealer"], mode="thread",
                   args=(str(d), {"bank": str(files["bank"]), "partner": str(files["partner"])}, "bank"))["bank"]
    ids, want = got["ids"][:40], np.asarray(got["scores"][:40])
    r = servers.client.post("/v1/predict", json={"ids": ids})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["id"] for x in res] == ids
    served = np.array([x["probability"] for x in res])
    # SS-LR batch scoring applies an MPC sigmoid approximation to a fixed-point margin; trees are exact
    tol = 2e-3 if model == "ss_lr" else 1e-9
    np.testing.assert_allclose(served, want, atol=tol)
    one = servers.client.post("/v1/predict", json={"id": ids[0]}).json()["results"][0]
    assert abs(one["probability"] - want[0]) < tol


@pytest.fixture()
def lr(files, tmp_path_factory, cluster):
    s = Servers(_train(files, tmp_path_factory, "ss_lr"), cluster, files)
    assert s.bank.wait_ready(20), s.bank.problem
    yield s
    s.close()


def _some_ids(files, n=5):
    bank = pd.read_csv(files["bank"], dtype={"id": str})
    partner = pd.read_csv(files["partner"], dtype={"id": str})
    return sorted(set(bank["id"]) & set(partner["id"]))[:n]


def test_unknown_ids_and_malformed_requests(lr, files):
    ids = _some_ids(files, 2)
    r = lr.client.post("/v1/predict", json={"ids": [ids[0], "no-such-id", ids[1]]})
    assert r.status_code == 200
    res = r.json()["results"]
    assert "probability" in res[0] and "probability" in res[2] and res[1] == {"id": "no-such-id",
                                                                              "error": "unknown id at a partner"}
    assert lr.client.post("/v1/predict", json={"id": "no-such-id"}).status_code == 404
    for bad in ({}, {"id": ids[0], "ids": ids}, {"ids": []}, {"ids": "x"}, {"id": ids[0], "features": {"zz": [1]}},
                {"id": ids[0], "features": {"duration_in_month": [1, 2]}}):
        r = lr.client.post("/v1/predict", json=bad)
        assert r.status_code == 422 and r.json()["detail"], bad
    assert lr.client.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    m = lr.client.get("/metrics").text
    assert 'jointml_serve_requests_total{outcome="ok"} 1' in m and "jointml_serve_latency_seconds_bucket" in m


def test_bank_features_in_request_override_its_source(lr, files):
    """The label holder's own feature values may come with the request (e.g. a new application)."""
    ids = _some_ids(files, 1)
    cols = lr.bank.predictor.columns
    base = lr.client.post("/v1/predict", json={"id": ids[0]}).json()["results"][0]["score"]
    row = pd.read_csv(files["bank"], dtype={"id": str}).set_index("id").loc[ids[0]]
    c = next(c for c in cols if np.issubdtype(type(row[c]), np.number))
    same = lr.client.post("/v1/predict", json={"id": ids[0], "features": {c: [float(row[c])]}}).json()["results"][0]
    moved = lr.client.post("/v1/predict", json={"id": ids[0], "features": {c: [float(row[c]) + 10]}}).json()["results"][0]
    assert abs(same["score"] - base) < 1e-12 and abs(moved["score"] - base) > 1e-6


def test_health_model_and_openapi(lr):
    h = lr.client.get("/v1/health").json()
    assert h["status"] == "ok" and h["partners"] == ["partner"]
    m = lr.client.get("/v1/model").json()
    assert m["model"] == "ss_lr" and m["model_id"] == lr.partner.predictor.model_id and m["manifest"]["sha256"]
    assert "/v1/predict" in lr.client.get("/openapi.json").json()["paths"]


class SlowSource(TableSource):
    """A feature store that answers slowly (a real plug-in: a table behind a slow lookup)."""

    delay = 0.0

    def columns(self, ids):
        time.sleep(self.delay)
        return super().columns(ids)


def test_partner_silent_or_down_gives_503_within_timeout(files, tmp_path_factory, cluster):
    s = Servers(_train(files, tmp_path_factory, "ss_lr"), cluster, files, timeout=0.5)
    try:
        slow = SlowSource(pd.read_csv(files["partner"], dtype={"id": str}), "id")
        s.partner.source = slow
        assert s.bank.wait_ready(20)
        ids = _some_ids(files, 1)
        slow.delay = 2.0
        t0 = time.monotonic()
        r = s.client.post("/v1/predict", json={"id": ids[0]})
        assert r.status_code == 503 and "did not answer within 0.5 s" in r.json()["detail"]
        assert time.monotonic() - t0 < 1.5
        slow.delay = 0.0
        assert s.bank.wait_ready(20), s.bank.problem  # the link is dialled again
        assert s.client.post("/v1/predict", json={"id": ids[0]}).status_code == 200
        s.partner.stop()
        s.thread.join(5)
        t0 = time.monotonic()
        r = s.client.post("/v1/predict", json={"id": ids[0]})
        assert r.status_code == 503 and time.monotonic() - t0 < 1.5, r.text
        assert s.client.get("/v1/health").json()["status"] == "unavailable"
    finally:
        s.close()


def _copy_parts(src, dst, party):
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name.split(".")[-2] == party or f.name.endswith(f".{party}.json"):
            shutil.copy(f, dst / f.name)


def test_model_id_mismatch_refused_and_reload_switches(files, tmp_path_factory, tmp_path, cluster):
    a = _train(files, tmp_path_factory, "ss_lr")
    b = _train(files, tmp_path_factory, "ss_lr", tag="-v2")
    bank_dir, partner_dir = tmp_path / "bank", tmp_path / "partner"
    _copy_parts(a, bank_dir, "bank")
    _copy_parts(b, partner_dir, "partner")
    s = Servers(bank_dir, cluster, files, partner_dir=partner_dir)
    try:
        for _ in range(200):
            if s.bank.problem and "model ids differ" in s.bank.problem:
                break
            time.sleep(0.05)
        ids = _some_ids(files, 3)
        r = s.client.post("/v1/predict", json={"ids": ids})
        assert r.status_code == 409 and "model ids differ" in r.json()["detail"]
        _copy_parts(b, bank_dir, "bank")  # version 2 at the bank too: reload switches both
        r = s.client.post("/v1/reload")
        assert r.status_code == 200, r.text
        assert r.json()["model_id"] == s.partner.predictor.model_id == PartyPredictor.load(b, "bank").model_id
        got = s.client.post("/v1/predict", json={"ids": ids}).json()
        want = simulate(predict_job, ["bank", "partner", "dealer"], mode="thread",
                        args=(str(b), {"bank": str(files["bank"]), "partner": str(files["partner"])}, "bank"))["bank"]
        pos = {i: k for k, i in enumerate(want["ids"])}
        np.testing.assert_allclose([x["probability"] for x in got["results"]],
                                   [want["scores"][pos[i]] for i in ids], atol=2e-3)
        _copy_parts(a, partner_dir, "partner")  # the partner alone changes: reload refused, v2 kept
        r = s.client.post("/v1/reload")
        assert r.status_code == 409 and s.partner.predictor.model_id == got["model_id"]
        assert s.client.post("/v1/predict", json={"ids": ids}).status_code == 200
    finally:
        s.close()


def test_bank_never_receives_partner_features(servers, files, monkeypatch):
    """View test: what reaches the bank per request is the partner's partial (a score per id, or
    its leaf masks) and the found flags, nothing else."""
    lr = servers
    import jointml.serving.server as srv

    seen = []
    real = srv.Channel.recv

    def spy(self, step, **kw):
        got = real(self, step, **kw)
        seen.append(got)
        return got

    monkeypatch.setattr(srv.Channel, "recv", spy)
    ids = _some_ids(files, 4)
    assert lr.client.post("/v1/predict", json={"ids": ids}).status_code == 200
    assert len(seen) == 1
    msg = seen[0]
    assert set(msg.meta) == {"found", "model_id"}
    dtypes, shapes = lr.bank.predictor.partial_shapes(4)
    assert [(a.dtype, a.shape) for a in msg.arrays] == [(np.dtype(d), s) for d, s in zip(dtypes, shapes)]
    if lr.bank.predictor.model == "ss_lr":  # one float per id, none of them a feature value
        assert msg.arrays[0].shape == (4,)
        partner = pd.read_csv(files["partner"], dtype={"id": str}).set_index("id").loc[ids]
        raw = {float(v) for v in partner.select_dtypes("number").to_numpy().ravel()}
        assert not raw & set(msg.arrays[0].tolist())
    else:  # bits only: one per leaf of every tree
        assert msg.arrays[0].dtype == np.uint8 and msg.arrays[0].shape[1] * 8 < sum(len(t["left"]) for t in lr.bank.predictor.trees) + 8


def test_cli_serve_two_processes(files, tmp_path_factory, tmp_path, cluster):
    """`jointml serve` at each organisation (two OS processes, TLS link), scored over real HTTP."""
    import os
    import subprocess
    import sys

    import httpx
    import yaml

    d = _train(files, tmp_path_factory, "secureboost")
    cfile = tmp_path / "cluster.yaml"
    cfile.write_text(yaml.safe_dump({"parties": {n: {"address": f"{s.host}:{s.port}", "cert": str(s.cert), "key": str(s.key)}
                                                 for n, s in cluster.parties.items()}, "ca": str(cluster.ca)}))
    http = _ports(1)[0]
    cmd = [sys.executable, "-m", "jointml.cli.main", "serve", "--model", str(d), "--cluster", str(cfile)]
    procs = [subprocess.Popen([*cmd, "--party", "partner", "--features", str(files["partner"])], env=os.environ.copy()),
             subprocess.Popen([*cmd, "--party", "bank", "--features", str(files["bank"]), "--port", str(http)],
                              env=os.environ.copy())]
    try:
        url = f"http://127.0.0.1:{http}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).json()["status"] == "ok":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        ids = _some_ids(files, 3)
        r = httpx.post(f"{url}/v1/predict", json={"ids": ids}, timeout=5)
        assert r.status_code == 200, r.text
        want = simulate(predict_job, ["bank", "partner", "dealer"], mode="thread",
                        args=(str(d), {"bank": str(files["bank"]), "partner": str(files["partner"])}, "bank"))["bank"]
        pos = {i: k for k, i in enumerate(want["ids"])}
        np.testing.assert_allclose([x["probability"] for x in r.json()["results"]],
                                   [want["scores"][pos[i]] for i in ids], atol=1e-9)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def test_unknown_id_scored_as_missing_when_the_partner_says_so(files, tmp_path_factory, cluster):
    """`unknown="missing"` at the partner: its part of an unknown id is an all-missing row
    (SS-LR on scaled raw features: the training mean of each feature, i.e. a zero partial)."""
    d = _train(files, tmp_path_factory, "ss_lr")
    s = Servers(d, cluster, files, unknown="missing")
    try:
        assert s.bank.wait_ready(20)
        partner_ids = set(pd.read_csv(files["partner"], dtype={"id": str})["id"])
        lonely = next(i for i in pd.read_csv(files["bank"], dtype={"id": str})["id"] if i not in partner_ids)
        r = s.client.post("/v1/predict", json={"id": lonely})
        assert r.status_code == 200, r.text
        bank = PartyPredictor.load(d, "bank")
        own = bank.partial(bank.features(open_source(str(files["bank"])).rows([lonely])[0]))
        assert abs(r.json()["results"][0]["score"] - (own[0][0] + bank.intercept)) < 1e-12
    finally:
        s.close()


def test_compiled_trees_equal_leaf_masks(files, tmp_path_factory):
    """The partner's vectorised leaf masks equal SecureBoost's own `leaf_masks`, NaN included."""
    from jointml.core.prg import public_rng
    from jointml.ml.tree.secureboost.feature_holder import leaf_masks

    d = _train(files, tmp_path_factory, "secureboost")
    for party in ("bank", "partner"):
        p = PartyPredictor.load(d, party)
        X = p.features(open_source(str(files[party])).rows(_some_ids(files, 200))[0])
        X[public_rng(3).random(X.shape) < 0.1] = np.nan
        want = np.concatenate([leaf_masks(tr, X) for tr in p.trees], axis=1)
        ct = p._compiled_trees()
        np.testing.assert_array_equal(ct.masks(X), want)
        wire = p.partial(X)[0]  # the partner's wire layout: `width` bytes per tree, pad bits zero
        assert wire.shape == (len(X), len(p.trees) * ct.width)
        bits = np.unpackbits(wire, axis=1).astype(bool)
        np.testing.assert_array_equal(bits[:, ct.pos], want)
        assert bits.sum() == want.sum()


@pytest.fixture(scope="module")
def demo_model(files, tmp_path_factory):
    """The credit demo's default model (label-only PSI, WOE binning without woe_to_owner, SS-LR
    with weights revealed to their owners), short training, test-size Paillier keys."""
    from jointml.jobs.credit import CreditJobConfig, credit_pipeline

    out = tmp_path_factory.mktemp("serve-demo")
    cfg = CreditJobConfig(inputs={"bank": str(files["bank"]), "partner": str(files["partner"])}, key_bits=512,
                          model={"epochs": 1, "batch_size": 128, "learning_rate": 1.0, "l2": 0.001, "sigmoid": "poly"},
                          output_dir=str(out), verbose=False)
    simulate_pipeline(credit_pipeline(cfg, ["bank", "partner", "dealer"]), mode="thread", verbose=False)
    from jointml.serving.masked import commit_tables

    # export: the bank's encrypted WOE tables are fixed, the partner keeps their digest
    got = simulate(commit_tables, ["bank", "partner", "dealer"], mode="thread", args=(str(out / "model"), 512))
    assert got["bank"] == got["partner"] and got["dealer"] == {}
    return out / "model"


def test_demo_default_model_served_masked(demo_model, cluster, files, monkeypatch):
    """The demo's default model: the partner knows its bins and weights, the bank its WOE values;
    served scores equal `predict_job`, and the partner's answer is ciphertexts only (the bank never
    sees a bin, the partner never a WOE value in plaintext)."""
    import jointml.serving.server as srv

    partner = PartyPredictor.load(demo_model, "partner")
    assert partner.masked and partner.weights is not None
    assert all(partner._prep["woe"].col[c].woe is None for c in partner.columns)  # no WOE value at the partner
    seen = []
    real = srv.Channel.recv

    def spy(self, step, **kw):
        got = real(self, step, **kw)
        seen.append((step, got))
        return got

    monkeypatch.setattr(srv.Channel, "recv", spy)
    s = Servers(demo_model, cluster, files)
    try:
        assert s.bank.wait_ready(60), s.bank.problem
        want = simulate(predict_job, ["bank", "partner", "dealer"], mode="thread",
                        args=(str(demo_model), {"bank": str(files["bank"]), "partner": str(files["partner"])},
                              "bank"))["bank"]
        ids = want["ids"][:12]  # more ids than slots of a 512-bit key: two ciphertexts
        seen.clear()
        r = s.client.post("/v1/predict", json={"ids": ids})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose([x["probability"] for x in r.json()["results"]], want["scores"][:12], atol=2e-3)
        # what reached the bank: found flags and packed Paillier ciphertexts under its own key
        answers = [m for step, m in seen if step == "ans"]
        assert len(answers) == 1 and set(answers[0].meta) == {"found", "model_id"}
        tables = s.bank.tables["partner"]
        assert [a.shape for a in answers[0].arrays] == [tables.answer_shape(12)]
        # the partner's partial the bank decrypted equals the plaintext twin x_bins -> WOE -> . w
        bank = PartyPredictor.load(demo_model, "bank")
        df = open_source(str(files["partner"])).rows(ids)[0]
        bins = partner.features(df).astype(int)
        woe = np.stack([bank.masked_tables("partner")[c][bins[:, j]] for j, c in enumerate(partner.columns)], axis=1)
        np.testing.assert_allclose(tables.decode(answers[0].arrays, 12), woe @ partner.weights, atol=1e-5)
        one = s.client.post("/v1/predict", json={"id": ids[0]}).json()["results"][0]
        assert abs(one["probability"] - want["scores"][0]) < 2e-3
        res = s.client.post("/v1/predict", json={"ids": [ids[1], "no-such-id"]}).json()["results"]
        assert abs(res[0]["probability"] - want["scores"][1]) < 2e-3 and res[1]["error"] == "unknown id at a partner"
        old_key = tables.public_key
        assert s.client.post("/v1/reload").status_code == 200  # the committed key and tables again
        assert s.bank.tables["partner"].public_key == old_key
        again = s.client.post("/v1/predict", json={"id": ids[0]}).json()["results"][0]
        assert abs(again["probability"] - want["scores"][0]) < 2e-3
    finally:
        s.close()


def test_masked_setup_refuses_tampered_tables(demo_model):
    """The partner checks the bank's setup: the columns it names, the layout, every ciphertext."""
    from jointml.core.errors import CryptoError
    from jointml.serving.masked import BankTables, PartnerTables

    bank, partner = PartyPredictor.load(demo_model, "bank"), PartyPredictor.load(demo_model, "partner")
    meta, arrays = BankTables(bank.masked_tables("partner"), 512).offer()
    with pytest.raises(CryptoError, match="columns"):
        PartnerTables.accept({**meta, "columns": meta["columns"][::-1]}, arrays, partner.weights, partner.columns)
    with pytest.raises(CryptoError):
        PartnerTables.accept(meta, [arrays[0][:-1]], partner.weights, partner.columns)
    bad = arrays[0].copy()
    bad[0] = 0
    with pytest.raises(CryptoError, match="ciphertext 0"):
        PartnerTables.accept(meta, [bad], partner.weights, partner.columns)


@pytest.fixture(scope="module")
def card_model(files, tmp_path_factory):
    """SS-LR on WOE features known to their owners, with a `scorecard` step (points per bin)."""
    out = tmp_path_factory.mktemp("serve-card")
    spec = PipelineSpec.from_dict({
        "parties": ["bank", "partner", "dealer"],
        "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
        "inputs": {"bank": str(files["bank"]), "partner": str(files["partner"])},
        "steps": [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3, "seed": 1}},
                  {"woe_binning": {"label": LABEL, "pos_label": "bad", "key_bits": 512, "max_bins": 4,
                                   "n_prebins": 8, "woe_to_owner": True}},
                  {"ss_lr.train": {"epochs": 2}}, {"scorecard": {"reasons": 0}}],
        "output": str(out)})
    simulate_pipeline(spec, mode="thread", verbose=False)
    return out / "model"


def test_scorecard_points_and_reason_codes(card_model, cluster, files, monkeypatch):
    """Points equal the scorecard's base points plus every party's bin points (the plaintext twin
    from both parties' tables); the bank's reasons are its own most adverse features; the
    partner names only the columns of its reason policy, as codes, and sends no points."""
    import json

    import jointml.serving.server as srv

    cards = {p: json.loads((card_model.parent / f"scorecard.{p}.json").read_text()) for p in ("bank", "partner")}
    preds = {p: PartyPredictor.load(card_model, p) for p in ("bank", "partner")}
    policy = {preds["partner"].columns[0]: "P01", preds["partner"].columns[1]: "P02"}
    seen = []
    real = srv.Channel.recv

    def spy(self, step, **kw):
        got = real(self, step, **kw)
        seen.append((step, got))
        return got

    monkeypatch.setattr(srv.Channel, "recv", spy)
    s = Servers(card_model, cluster, files)
    s.partner.reason_codes = policy
    try:
        assert s.bank.wait_ready(30), s.bank.problem
        ids = _some_ids(files, 6)
        seen.clear()
        r = s.client.post("/v1/predict", json={"ids": ids, "reasons": 2})
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        twin, lost = np.full(len(ids), cards["bank"]["base_points"]), {}
        for p in ("bank", "partner"):
            bins = preds[p].bins(open_source(str(files[p])).rows(ids)[0])
            for j, c in enumerate(preds[p].columns):
                table = np.array([b["points"] for b in cards[p]["points"][c]])
                twin += table[bins[:, j]]
                lost[(p, c)] = table.max() - table[bins[:, j]]
        np.testing.assert_allclose([x["points"] for x in res], twin, atol=1e-6)
        for n, x in enumerate(res):
            own = sorted((c for (p, c) in lost if p == "bank" and lost[(p, c)][n] > 0), key=lambda c: -lost[("bank", c)][n])
            assert [y["feature"] for y in x["reasons"]] == own[:2]
            named = sorted((c for c in policy if lost[("partner", c)][n] > 0), key=lambda c: -lost[("partner", c)][n])
            assert x["partner_reasons"] == {"partner": [policy[c] for c in named]}
        answer = next(m for step, m in seen if step == "ans")
        assert set(answer.meta) == {"found", "model_id", "reasons"}  # codes only: no points, no bins
        assert {c for row in answer.meta["reasons"] for c in row} <= set(policy.values())
        assert s.client.get("/v1/model").json()["scorecard"]["pdo"] == cards["bank"]["pdo"]
    finally:
        s.close()


def test_ss_xgb_served_under_mpc_online(files, tmp_path_factory, cluster, monkeypatch):
    """SS-XGB (leaf weights secret-shared): bank, partner and dealer score each request under MPC;
    the scores equal `predict_job`; the dealer's requests carry the number of ids only; the
    partner's answer carries found flags only (its split bits enter the MPC secret-shared)."""
    import jointml.serving.server as srv

    d = _train(files, tmp_path_factory, "ss_xgb")
    seen = []
    real_send = srv.Channel.send

    def spy(self, step, **kw):
        arrays = kw.get("arrays", ())
        seen.append((self.peer, step, dict(kw.get("meta") or {}), [arrays] if isinstance(arrays, np.ndarray)
                     else list(arrays)))
        return real_send(self, step, **kw)

    monkeypatch.setattr(srv.Channel, "send", spy)
    s = Servers(d, cluster, files)
    try:
        assert s.dealer is not None and s.bank.wait_ready(30), s.bank.problem
        want = simulate(predict_job, ["bank", "partner", "dealer"], mode="thread",
                        args=(str(d), {"bank": str(files["bank"]), "partner": str(files["partner"])}, "bank"))["bank"]
        ids = want["ids"][:7]
        partner_ids = set(pd.read_csv(files["partner"], dtype={"id": str})["id"])
        lonely = next(i for i in pd.read_csv(files["bank"], dtype={"id": str})["id"] if i not in partner_ids)
        seen.clear()
        r = s.client.post("/v1/predict", json={"ids": [*ids, lonely]})
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        np.testing.assert_allclose([x["probability"] for x in res[:7]], want["scores"][:7], atol=2e-3)
        assert res[7] == {"id": lonely, "error": "unknown id at a partner"}
        to_dealer = [m for peer, step, m, _ in seen if peer == "dealer" and step == "req"]
        assert to_dealer == [{"op": "predict", "n": 8, "model_id": s.bank.predictor.model_id}]
        from_partner = [(m, a) for peer, step, m, a in seen if peer == "bank" and step == "ans"
                        and m.get("found") is not None]
        assert len(from_partner) == 1 and set(from_partner[0][0]) == {"found", "model_id"} and not from_partner[0][1]
        one = s.client.post("/v1/predict", json={"id": ids[0]}).json()["results"][0]
        assert abs(one["probability"] - want["scores"][0]) < 2e-3
    finally:
        s.close()


def test_masked_tables_swapped_by_the_bank_are_refused(demo_model, cluster, files, tmp_path):
    """The bank replaces its committed tables (a probe: a distinct power of two per bin would
    read the partner's bins from the sum): the partner refuses them at serving start and on a
    model switch, with a message naming the commitment; the committed ones are accepted."""
    from jointml.serving.masked import BankTables, _save_offer, offer_digest

    d = tmp_path / "model"
    shutil.copytree(demo_model, d)
    bank = PartyPredictor.load(d, "bank")
    honest = BankTables.committed(bank.masked_tables("partner"), d, "bank", "partner", bank.model_id)
    assert honest is not None
    probe = {c: np.array([2.0 ** k for k in range(len(t))]) for c, t in bank.masked_tables("partner").items()}
    swapped = BankTables(probe, 512, party="bank")
    meta, arrays = swapped.offer()
    _save_offer(d, "bank", "partner", bank.model_id, swapped, meta, arrays,
                offer_digest(meta, arrays, bank.model_id, "partner"))
    s = Servers(d, cluster, files)
    try:
        for _ in range(600):
            if s.bank.problem and "committed" in s.bank.problem:
                break
            time.sleep(0.05)
        assert "differ from the ones committed" in s.bank.problem, s.bank.problem
        r = s.client.post("/v1/predict", json={"id": _some_ids(files, 1)[0]})
        assert r.status_code == 503 and "committed" in r.json()["detail"]
        assert "masked" not in s.partner.predictor._prep  # nothing of the probe was accepted
        hmeta, harrays = honest.offer()  # the bank puts the committed tables back: accepted, served
        _save_offer(d, "bank", "partner", bank.model_id, honest, hmeta, harrays,
                    offer_digest(hmeta, harrays, bank.model_id, "partner"))
        r = s.client.post("/v1/reload")
        assert r.status_code == 200, r.text
        assert s.client.post("/v1/predict", json={"id": _some_ids(files, 1)[0]}).status_code == 200
        _save_offer(d, "bank", "partner", bank.model_id, swapped, meta, arrays, "x")  # swapped again: switch refused
        r = s.client.post("/v1/reload")
        assert r.status_code == 409 and "committed" in r.json()["detail"]
        assert s.bank.tables["partner"].public_key == honest.public_key
        assert s.client.post("/v1/predict", json={"id": _some_ids(files, 1)[0]}).status_code == 200
    finally:
        s.close()


def test_serve_commit_cli(demo_model, tmp_path):
    """`jointml serve-commit` (every party's parts in one folder): the partner's stored digest is
    the SHA-256 of the bank's stored offer, and the bank's restored tables decode what they encode."""
    import json

    from click.testing import CliRunner

    from jointml.cli.main import main
    from jointml.serving.masked import BankTables, PartnerTables, offer_digest

    d = tmp_path / "model"
    shutil.copytree(demo_model, d)
    for f in d.glob("masked_*"):
        f.unlink()
    r = CliRunner().invoke(main, ["serve-commit", "--model", str(d), "--key-bits", "512"])
    assert r.exit_code == 0, r.output
    digest = json.loads((d / "masked_commit.partner.json").read_text())["sha256"]
    assert f"SHA-256 {digest}" in r.output
    bank, partner = PartyPredictor.load(d, "bank"), PartyPredictor.load(d, "partner")
    t = BankTables.committed(bank.masked_tables("partner"), d, "bank", "partner", bank.model_id)
    meta, arrays = t.offer()
    assert offer_digest(meta, arrays, bank.model_id, "partner") == digest
    got = PartnerTables.accept(meta, arrays, partner.weights, partner.columns).partial(np.zeros((3, len(partner.columns)),
                                                                                                  dtype=np.int64))
    want = sum(bank.masked_tables("partner")[c][0] * w for c, w in zip(partner.columns, partner.weights))
    np.testing.assert_allclose(t.decode(got, 3), [want] * 3, atol=1e-5)
