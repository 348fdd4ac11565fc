"""Online serving (jointml.serving): both servers over mutual TLS, scores equal `predict_job`."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest

from jointml.demo.credit_demo import make_demo_files
from jointml.jobs import PipelineSpec, predict_job, simulate_pipeline
from jointml.runtime import ClusterConfig, simulate
from jointml.serving.predictor import PartyPredictor, TableSource, open_source
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
    "ss_lr": {"ss_lr.train": {"label": LABEL, "pos_label": "bad", "features": "raw", "epochs": 2}},
    "secureboost": {"secureboost.train": {"label": LABEL, "pos_label": "bad", "features": "raw", "key_bits": 512,
                                          "n_estimators": 3, "max_depth": 3, "max_bin": 16}},
}


@pytest.fixture(scope="module", params=sorted(TRAIN))
def trained(request, files, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"serve-{request.param}")
    simulate_pipeline(_spec(files, out, TRAIN[request.param]), mode="thread", verbose=False)
    return request.param, out / "model"


def _ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


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
    def __init__(self, model_dir, cluster, files, timeout=2.0, partner_dir=None, unknown="error"):
        self.partner = PartnerService(str(partner_dir or model_dir), "partner", cluster,
                                      open_source(str(files["partner"])), unknown=unknown)
        self.thread = threading.Thread(target=self.partner.run, daemon=True)
        self.thread.start()
        self.bank = BankService(str(model_dir), "bank", cluster, open_source(str(files["bank"])), timeout=timeout)
        self.bank.start()
        self.client = TestClient(create_app(self.bank))

    def close(self):
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
