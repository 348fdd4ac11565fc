"""Serving a TEE-hosted model (SIMULATED TEE): the bank's serving process hosts the enclave, the
partner attests it through the bank's link and uploads its rows on its own attested session."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time

import numpy as np
import pandas as pd
import pytest

from jointml.apps.tee_train import PROGRAM, make_estimator, model_decision_function, train_in_tee, training_config
from jointml.demo.credit_demo import make_demo_files
from jointml.runtime import ClusterConfig, simulate
from jointml.serving.predictor import PartyPredictor, open_source
from jointml.serving.server import BankService, PartnerService, create_app
from jointml.serving.tee_model import save_tee_model
from jointml.tee import Enclave, PartyIdentity, Policy, TeeDevice, TrustedPlatform, Verifier, load_platform, measure

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

COLS = {"bank": ["duration_in_month", "credit_amount", "number_of_existing_credits_at_this_bank"],
        "partner": ["installment_rate_in_percentage_of_disposable_income", "present_residence_since", "age_in_years",
                    "number_of_people_being_liable_to_provide_maintenance_for"]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_demo_files(tmp_path_factory.mktemp("tee-serve-data"))


@pytest.fixture(scope="module")
def platform_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tee-platform"))


def _frames(files):
    return {p: pd.read_csv(files[p], dtype={"id": str}).set_index("id") for p in ("bank", "partner")}


def _shared_ids(files):
    f = _frames(files)
    return sorted(set(f["bank"].index) & set(f["partner"].index))


def _tee_train(files, out, platform_dir, model):
    """Train in the enclave on the shared ids (each party uploads its own numeric columns), export
    for serving; the bank also gets the model itself (a result party may) for the plaintext twin."""
    frames, ids = _frames(files), _shared_ids(files)
    idents = {p: PartyIdentity(p) for p in ("bank", "partner")}
    cfg = training_config({p: i.public_key for p, i in idents.items()}, feature_parties=["bank", "partner"],
                          label_party="bank", result_parties=["bank"], model=model)
    enclave = Enclave(PROGRAM, cfg, platform_dir=platform_dir)
    platform = load_platform(platform_dir)
    policy = Policy({measure(PROGRAM, cfg)}, (TrustedPlatform.of(platform),), allow_simulation=True)
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()

    def prog(ctx):
        tee = TeeDevice(ctx, enclave, ["bank", "partner"], identity=idents[ctx.me], verifier=Verifier(policy))
        own = frames[ctx.me].loc[ids]
        blocks = {p: ctx.party(p).run(lambda p=p: own[COLS[p]].to_numpy(np.float64)) for p in ("bank", "partner")}
        y = ctx.party("bank").run(lambda: (own["creditability"] == "bad").to_numpy(np.float64))
        model = train_in_tee(tee, blocks, y, columns=COLS, row_ids_sha256=digest)
        mid = save_tee_model(ctx, tee, model, out, label_party="bank", columns=COLS[ctx.me], identity=idents[ctx.me],
                             platform=platform)
        got = model.reveal(to="bank", op="get_model")
        tee.close()
        return mid, (got.value if ctx.me == "bank" else None)

    try:
        res = simulate(prog, ["bank", "partner"], mode="thread")
    finally:
        enclave.close()
    return out, res["bank"][1], res["bank"][0]


_CACHE: dict = {}


def _trained(files, tmp_path_factory, platform_dir, tag="v1", model=None):
    if tag not in _CACHE:
        _CACHE[tag] = _tee_train(files, tmp_path_factory.mktemp(f"tee-model-{tag}"), platform_dir,
                                 model or {"type": "logistic_regression", "C": 1.0, "max_iter": 1000})
    return _CACHE[tag]


def _ports(n):
    from jointml.bench.chaos import free_ports  # n free loopback ports, bound together then released

    return free_ports(n)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from jointml.net.certs import create_dev_pki

    d = tmp_path_factory.mktemp("tee-serve-certs")
    names = ["bank", "partner"]
    create_dev_pki(d / "certs", names)
    return ClusterConfig.from_dict({"parties": {n: {"address": f"127.0.0.1:{p}", "cert": f"certs/{n}.crt",
                                                    "key": f"certs/{n}.key"} for n, p in zip(names, _ports(2))},
                                    "ca": "certs/ca.crt", "connect_timeout": 10}, base=d)


class Servers:
    def __init__(self, model_dir, cluster, files, platform_dir, timeout=2.0, partner_dir=None):
        self.partner = PartnerService(str(partner_dir or model_dir), "partner", cluster,
                                      open_source(str(files["partner"])))
        self.thread = threading.Thread(target=self.partner.run, daemon=True)
        self.thread.start()
        self.bank = BankService(str(model_dir), "bank", cluster, open_source(str(files["bank"])), timeout=timeout,
                                tee_platform_dir=platform_dir)
        self.bank.start()
        self.client = TestClient(create_app(self.bank))

    def close(self):
        self.partner.stop()
        self.bank.stop()
        self.thread.join(5)


def _twin(files, model, ids):
    """The plaintext twin: the enclave's model (from `get_model`) on the joined rows."""
    f = _frames(files)
    X = np.hstack([f[p].loc[ids, COLS[p]].to_numpy(np.float64) for p in ("bank", "partner")])
    return model_decision_function(model, X), X


def test_tee_model_served_scores_equal_batch_twin(files, tmp_path_factory, platform_dir, cluster, monkeypatch):
    """Scores from the enclave equal the trained model on the same joined rows (and a scikit-learn
    fit of the same configuration in plaintext); unknown ids and malformed requests are answered;
    the partner's answer to the bank is its found flags, its rows cross only as ciphertext."""
    import jointml.serving.server as srv

    d, model, model_id = _trained(files, tmp_path_factory, platform_dir)
    seen = []
    real = srv.Channel.recv

    def spy(self, step, **kw):
        got = real(self, step, **kw)
        seen.append((self.ctx.me, step, got))
        return got

    monkeypatch.setattr(srv.Channel, "recv", spy)
    s = Servers(d, cluster, files, platform_dir)
    try:
        assert s.bank.wait_ready(60), s.bank.problem
        ids = _shared_ids(files)[:40]
        want, X = _twin(files, model, ids)
        seen.clear()
        r = s.client.post("/v1/predict", json={"ids": ids})
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        np.testing.assert_allclose([x["score"] for x in res], want, atol=1e-9)
        np.testing.assert_allclose([x["probability"] for x in res], 1 / (1 + np.exp(-want)), atol=1e-9)
        # the same configuration fitted in plaintext here gives the same scores (deterministic solver)
        frames, all_ids = _frames(files), _shared_ids(files)
        Xa = np.hstack([frames[p].loc[all_ids, COLS[p]].to_numpy(np.float64) for p in ("bank", "partner")])
        clf = make_estimator({"type": "logistic_regression", "C": 1.0, "max_iter": 1000}).fit(
            Xa, (frames["bank"].loc[all_ids, "creditability"] == "bad").to_numpy(float))
        np.testing.assert_allclose([x["score"] for x in res], clf.decision_function(X), atol=1e-6)
        # what the bank received from the partner: found flags and the model id, then (relayed to
        # the enclave) one AES-GCM record that holds none of the partner's feature values in the clear
        at_bank = [m for me, step, m in seen if me == "bank" and step == "ans"]
        final = [m for m in at_bank if "relay" not in m.meta]
        assert len(final) == 1 and set(final[0].meta) == {"found", "model_id"} and not final[0].arrays
        relayed = [m for m in at_bank if "relay" in m.meta]
        assert [m.meta["relay"] for m in relayed] == ["call"] and relayed[0].arrays[0].dtype == np.uint8
        record = relayed[0].arrays[0].tobytes()
        block = _frames(files)["partner"].loc[ids, COLS["partner"]].to_numpy(np.float64)
        assert block.tobytes()[:64] not in record and block[0].tobytes() not in record
        one = s.client.post("/v1/predict", json={"id": ids[0]}).json()["results"][0]
        assert abs(one["score"] - want[0]) < 1e-9
        partner_ids = set(_frames(files)["partner"].index)
        lonely = next(i for i in _frames(files)["bank"].index if i not in partner_ids)
        res = s.client.post("/v1/predict", json={"ids": [ids[1], lonely, "no-such-id"]}).json()["results"]
        assert abs(res[0]["score"] - want[1]) < 1e-9
        assert res[1] == {"id": lonely, "error": "unknown id at a partner"} and "error" in res[2]
        assert s.client.post("/v1/predict", json={"id": lonely}).status_code == 404
        for bad in ({}, {"ids": []}, {"id": ids[0], "features": {"zz": [1]}}, {"ids": "x"}):
            r = s.client.post("/v1/predict", json=bad)
            assert r.status_code == 422 and r.json()["detail"], bad
        m = s.client.get("/v1/model").json()
        assert m["model"] == "tee" and m["model_id"] == model_id and m["tee"]["simulation"] is True
        h = s.client.get("/v1/health").json()
        assert h["status"] == "ok" and "SIMULATED TEE" in h["enclave"]["platform"]
    finally:
        s.close()


@pytest.mark.slow
def test_tee_attestation_refused(files, tmp_path_factory, platform_dir, cluster):
    """The partner's verifier allow-lists only its saved measurement: an enclave of another
    configuration (here: one that would also give the partner the scores) is refused, and the
    bank serves nothing; a client whose identity key is not in the configuration gets no session."""
    from jointml.serving.tee_model import verifier_for
    from jointml.tee import EnclaveError, EnclaveSession

    d, _, _ = _trained(files, tmp_path_factory, platform_dir)
    s = Servers(d, cluster, files, platform_dir)
    rogue = None
    try:
        assert s.bank.wait_ready(60), s.bank.problem
        part = PartyPredictor.load(d, "partner").tee
        stranger = PartyIdentity("partner")  # the right name, a key the configuration does not list
        with pytest.raises(EnclaveError):
            EnclaveSession(s.bank.enclave.enclave, stranger, verifier_for(part))
        # the partner's own identity gets a session, but neither the scores nor the model (policy:
        # result_parties = [bank]); its uploads are all it can do
        from jointml.serving.tee_model import _identity

        own = EnclaveSession(s.bank.enclave.enclave, _identity(d, "partner"), verifier_for(part))
        for op in ("predict", "get_model", "seal_model"):
            with pytest.raises(EnclaveError, match="AccessDenied"):
                own.call(op, {"request": "r"})
        own.close()
        cfg = {**part["config"], "result_parties": ["bank", "partner"]}
        rogue = Enclave(PROGRAM, cfg, platform_dir=platform_dir)
        real, s.bank.enclave.enclave = s.bank.enclave.enclave, rogue
        with s.bank.lock:
            s.bank._drop("test: the bank now hosts another enclave")
        for _ in range(400):
            if s.bank.problem and "allow-list" in s.bank.problem:
                break
            time.sleep(0.05)
        assert "measurement" in s.bank.problem and "allow-list" in s.bank.problem, s.bank.problem
        r = s.client.post("/v1/predict", json={"id": _shared_ids(files)[0]})
        assert r.status_code == 503 and "allow-list" in r.json()["detail"]
        s.bank.enclave.enclave = real
    finally:
        s.close()
        if rogue is not None:
            rogue.close()


def _copy_parts(src, dst, party):
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f".{party}." in f.name:
            shutil.copy(f, dst / f.name)


@pytest.mark.slow
def test_tee_mismatch_reload_and_partner_down(files, tmp_path_factory, tmp_path, platform_dir, cluster):
    """Model ids differ: refused (409); the same version at the bank and POST /v1/reload switches
    both (a new enclave for the new sealed model); a silent partner gives a 503 within the timeout."""
    a, _, id_a = _trained(files, tmp_path_factory, platform_dir)
    b, model_b, id_b = _trained(files, tmp_path_factory, platform_dir, "v2", {"type": "gbdt", "n_estimators": 5,
                                                                                "max_depth": 2})
    bank_dir, partner_dir = tmp_path / "bank", tmp_path / "partner"
    _copy_parts(a, bank_dir, "bank")
    _copy_parts(b, partner_dir, "partner")
    s = Servers(bank_dir, cluster, files, platform_dir, timeout=2.0, partner_dir=partner_dir)
    try:
        for _ in range(1200):
            if s.bank.problem and "model ids differ" in s.bank.problem:
                break
            time.sleep(0.05)
        ids = _shared_ids(files)[:5]
        r = s.client.post("/v1/predict", json={"ids": ids})
        assert r.status_code == 409 and "model ids differ" in r.json()["detail"], r.text
        _copy_parts(b, bank_dir, "bank")
        old = s.bank.enclave
        r = s.client.post("/v1/reload")
        assert r.status_code == 200, r.text
        assert r.json()["model_id"] == id_b == s.partner.predictor.model_id and r.json()["kind"] == "gbdt"
        assert not old.alive and s.bank.enclave.alive  # the old enclave is shut down
        got = s.client.post("/v1/predict", json={"ids": ids})
        assert got.status_code == 200, got.text
        np.testing.assert_allclose([x["score"] for x in got.json()["results"]], _twin(files, model_b, ids)[0],
                                   atol=1e-9)
        _copy_parts(a, partner_dir, "partner")  # the partner alone changes: refused, both keep v2
        r = s.client.post("/v1/reload")
        assert r.status_code == 409 and s.partner.predictor.model_id == id_b
        assert s.client.post("/v1/predict", json={"ids": ids}).status_code == 200
        s.partner.stop()
        s.thread.join(5)
        t0 = time.monotonic()
        r = s.client.post("/v1/predict", json={"id": ids[0]})
        assert r.status_code == 503 and time.monotonic() - t0 < 4, r.text
        assert id_a != id_b
    finally:
        s.close()


def test_tee_part_files(files, tmp_path_factory, platform_dir):
    """Each party's part names the measurement recomputed from the configuration; the sealed model
    and its digest are at the bank only; the identity key file is private (0600)."""
    d, _, model_id = _trained(files, tmp_path_factory, platform_dir)
    parts = {p: json.loads((d / f"tee.{p}.json").read_text()) for p in ("bank", "partner")}
    assert parts["bank"]["measurement"] == parts["partner"]["measurement"] == measure(PROGRAM, parts["bank"]["config"])
    assert "sealed" in parts["bank"] and "sealed" not in parts["partner"]
    assert not list(d.glob("tee_model.partner*"))
    assert all(parts[p]["model_id"] == model_id and parts[p]["columns"] == COLS[p] for p in parts)
    assert (d / "tee_identity.partner.pem").stat().st_mode & 0o077 == 0
    blob = (d / "tee_model.bank.sealed").read_bytes()
    assert b"credit_amount" not in blob  # sealed: the model's columns and coefficients are not in the clear
