"""TEE layer (SIMULATED enclaves): attestation, sealing, channels, training, cluster manager."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import pytest

from jointml.apps.tee_train import row_ids_digest, sharded_ridge_job, training_config
from jointml.tee import (
    AttestationError,
    ChannelError,
    ClusterManager,
    Enclave,
    EnclaveError,
    EnclaveSession,
    PartyIdentity,
    Policy,
    Quote,
    SealingError,
    SoftwareSimulationPlatform,
    Task,
    TrustedPlatform,
    Verifier,
    measure,
    seal,
    unseal,
)
from jointml.tee import channel as ch
from jointml.tee.attestation import make_quote
from jointml.tee.enclave import wait_until

PROGRAM = "jointml.apps.tee_train"
M_A = "aa" * 32
M_B = "bb" * 32


@pytest.fixture(scope="module")
def plat_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tee-platform"))


@pytest.fixture(scope="module")
def plat(plat_dir):
    return SoftwareSimulationPlatform(plat_dir)


@pytest.fixture(scope="module")
def ids():
    return {"alice": PartyIdentity("alice"), "bob": PartyIdentity("bob")}


def _policy(plat, measurements, **kw):
    kw.setdefault("allow_simulation", True)
    return Policy(frozenset(measurements), (TrustedPlatform.of(plat),), **kw)


def _quote(plat, nonce, measurement=M_A, debug=False):
    return make_quote(plat, program=PROGRAM, measurement=measurement, x25519=b"\1" * 32, ed25519=b"\2" * 32,
                      nonce=nonce, debug=debug)


# -- attestation -----------------------------------------------------------------------


def test_quote_accepted_and_labelled_simulation(plat):
    v = Verifier(_policy(plat, [M_A]))
    q = _quote(plat, v.challenge())
    assert q.platform == "jointml-software-simulation" and q.simulation is True
    att = v.verify(Quote.from_dict(q.to_dict()))  # survives JSON round trip
    assert att.measurement == M_A and att.x25519 == b"\1" * 32


def test_wrong_measurement_refused(plat):
    v = Verifier(_policy(plat, [M_A]))
    with pytest.raises(AttestationError, match="not on the allow-list"):
        v.verify(_quote(plat, v.challenge(), measurement=M_B))


def test_stale_and_replayed_nonce_refused(plat):
    now = [1000.0]
    v = Verifier(_policy(plat, [M_A], max_nonce_age=30), clock=lambda: now[0])
    n = v.challenge()
    now[0] += 31
    with pytest.raises(AttestationError, match="stale nonce"):
        v.verify(_quote(plat, n))
    n = v.challenge()
    q = _quote(plat, n)
    v.verify(q)
    with pytest.raises(AttestationError, match="already used"):
        v.verify(q)  # replay of an accepted quote
    with pytest.raises(AttestationError, match="not issued"):
        v.verify(_quote(plat, "cd" * 32))


def test_bad_signature_refused(plat, tmp_path):
    v = Verifier(_policy(plat, [M_A, M_B]))
    q = _quote(plat, v.challenge())
    forged = dataclasses.replace(q, measurement=M_B)  # field changed after signing
    with pytest.raises(AttestationError, match="signature is invalid"):
        v.verify(forged)
    other = SoftwareSimulationPlatform(tmp_path / "other")  # a key the verifier does not trust
    with pytest.raises(AttestationError, match="not a trusted platform"):
        v.verify(_quote(other, v.challenge()))
    # signed by the other key but claiming the trusted platform's id
    q2 = _quote(other, v.challenge())
    q2 = dataclasses.replace(q2, platform_id=plat.platform_id)
    q2 = dataclasses.replace(q2, signature=other.sign_quote(q2.body()).hex())
    with pytest.raises(AttestationError, match="signature is invalid"):
        v.verify(q2)


def test_simulation_refused_under_hardware_only_policy(plat):
    v = Verifier(Policy(frozenset([M_A]), (TrustedPlatform.of(plat),)))  # default: allow_simulation=False
    with pytest.raises(AttestationError, match=r"software simulation.*allow_simulation=False"):
        v.verify(_quote(plat, v.challenge()))
    # a simulation key cannot pass off a quote as hardware
    v = Verifier(_policy(plat, [M_A]))
    q = dataclasses.replace(_quote(plat, v.challenge()), simulation=False)
    q = dataclasses.replace(q, signature=plat.sign_quote(q.body()).hex())
    with pytest.raises(AttestationError, match="claims to be hardware"):
        v.verify(q)


def test_debug_enclave_refused_unless_allowed(plat):
    v = Verifier(_policy(plat, [M_A]))
    with pytest.raises(AttestationError, match="debug"):
        v.verify(_quote(plat, v.challenge(), debug=True))
    v = Verifier(_policy(plat, [M_A], allow_debug=True))
    v.verify(_quote(plat, v.challenge(), debug=True))


def test_malformed_quote_refused(plat):
    v = Verifier(_policy(plat, [M_A]))
    d = _quote(plat, v.challenge()).to_dict()
    d["simulation"] = "no"
    with pytest.raises(AttestationError, match="malformed quote"):
        v.verify(d)


# -- sealing ---------------------------------------------------------------------------


def test_sealing(plat, tmp_path):
    blob = seal(plat, M_A, "model", b"secret weights")
    assert b"secret weights" not in blob
    assert unseal(plat, M_A, "model", blob) == b"secret weights"
    with pytest.raises(SealingError, match="different program"):
        unseal(plat, M_B, "model", blob)
    # rewriting the header to claim the other measurement does not help: the key differs
    forged = blob.replace(M_A.encode(), M_B.encode())
    with pytest.raises(SealingError, match="authentication failed"):
        unseal(plat, M_B, "model", forged)
    with pytest.raises(SealingError, match="purpose"):
        unseal(plat, M_A, "data", blob)
    tampered = bytearray(blob)
    tampered[-5] ^= 1
    with pytest.raises(SealingError, match="authentication failed"):
        unseal(plat, M_A, "model", bytes(tampered))
    with pytest.raises(SealingError, match="authentication failed"):  # other machine's sealing root
        unseal(SoftwareSimulationPlatform(tmp_path / "m2"), M_A, "model", blob)


# -- channels --------------------------------------------------------------------------


def test_channel_replay_tamper_reflection():
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    e, c = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    t = ch.session_transcript("alice", ch.x25519_public(c), ch.x25519_public(e), M_A)
    client = ch.client_channel(c, ch.x25519_public(e), t)
    server = ch.enclave_channel(e, ch.x25519_public(c), t)
    r1, r2 = client.encrypt(b"one"), client.encrypt(b"two")
    assert server.decrypt(r1) == b"one"
    with pytest.raises(ChannelError, match="replayed or reordered"):
        server.decrypt(r1)
    bad = bytearray(r2)
    bad[12] ^= 1
    with pytest.raises(ChannelError, match="authentication failed"):
        server.decrypt(bytes(bad))
    assert server.decrypt(r2) == b"two"
    with pytest.raises(ChannelError):  # a client record reflected back to the client
        client.decrypt(r1)
    assert client.decrypt(server.encrypt(b"back")) == b"back"


# -- enclave processes -----------------------------------------------------------------


def _credit_data():
    from jointml.datasets import load_germancredit

    df = load_germancredit()
    y = (df.pop("creditability") == "bad").to_numpy(np.float64)
    cols = list(df.columns)
    blocks = {"alice": df[cols[:10]], "bob": df[cols[10:]]}
    idx = np.random.default_rng(7).permutation(len(df))  # public split of aligned row ids
    tr, te = idx[:700], idx[700:]
    out = {}
    for p, b in blocks.items():  # each party one-hot encodes and standardises its own columns
        X = pd.get_dummies(b, dtype=np.float64)
        mu, sd = X.iloc[tr].mean(), X.iloc[tr].std(ddof=0).replace(0, 1)
        X = (X - mu) / sd
        out[p] = (X.to_numpy(np.float64), list(X.columns))
    return out, y, tr, te


@pytest.mark.parametrize("model", [{"type": "logistic_regression", "C": 1.0, "max_iter": 1000},
                                   {"type": "gbdt", "n_estimators": 60, "max_depth": 3, "random_state": 0}],
                         ids=["lr", "gbdt"])
def test_tee_training_german_credit_matches_plaintext(plat, plat_dir, ids, model):
    from sklearn.metrics import roc_auc_score

    from jointml.apps.tee_train import make_estimator, model_decision_function

    data, y, tr, te = _credit_data()
    cfg = training_config({k: v.public_key for k, v in ids.items()}, feature_parties=["alice", "bob"],
                          label_party="alice", result_parties=["alice"], model=model)
    policy = _policy(plat, [measure(PROGRAM, cfg)])
    with Enclave(PROGRAM, cfg, platform_dir=plat_dir) as enc:
        sa = EnclaveSession(enc, ids["alice"], Verifier(policy))
        sb = EnclaveSession(enc, ids["bob"], Verifier(policy))
        digest = row_ids_digest(tr)
        sa.call("upload", {"columns": data["alice"][1], "row_ids_sha256": digest}, [data["alice"][0][tr], y[tr]])
        sb.call("upload", {"columns": data["bob"][1], "row_ids_sha256": digest}, [data["bob"][0][tr]])
        summary = sb.call("train").meta  # any data owner may start training ...
        assert summary["rows"] == 700 and summary["type"] == model["type"]
        got = sa.call("get_model")  # ... but only alice receives the model
        with pytest.raises(EnclaveError, match="not a result party"):
            sb.call("get_model")
        # online prediction served by the enclave: each party sends its block, alice gets the scores
        sa.call("predict_upload", {"request": "r1"}, [data["alice"][0][te]])
        with pytest.raises(EnclaveError, match="no features yet from"):
            sa.call("predict", {"request": "r1"})
        sb.call("predict_upload", {"request": "r1"}, [data["bob"][0][te]])
        with pytest.raises(EnclaveError, match="not a result party"):
            sb.call("predict", {"request": "r1"})
        online = sa.call("predict", {"request": "r1"}).arrays[0]
        # an identity the configuration does not list cannot open a session
        with pytest.raises(EnclaveError, match="not a party"):
            EnclaveSession(enc, PartyIdentity("mallory"), Verifier(policy))
        # bob's name with another key: signature check fails
        with pytest.raises(EnclaveError, match="signature is invalid"):
            EnclaveSession(enc, PartyIdentity("bob"), Verifier(policy))
        relayed = [b for _, b in enc.relay_log]
    Xall = np.hstack([data["alice"][0], data["bob"][0]])
    tee_scores = model_decision_function(got, Xall[te])
    np.testing.assert_allclose(tee_scores, online, rtol=1e-9, atol=1e-9)
    auc_tee = roc_auc_score(y[te], tee_scores)
    ref = make_estimator(model) if model["type"] == "gbdt" else None
    if ref is None:
        from sklearn.linear_model import LogisticRegression

        ref = LogisticRegression(C=1.0, max_iter=1000)
    ref.fit(Xall[tr], y[tr])
    plain = ref.decision_function(Xall[te])
    auc_plain = roc_auc_score(y[te], plain)
    assert auc_tee > 0.7
    assert abs(auc_tee - auc_plain) <= 0.005
    # the host relayed only ciphertext: no row of either party, no labels, no model, no scores
    model_bytes = got.arrays[0].tobytes()[:64] if model["type"] == "logistic_regression" else got.arrays[2].tobytes()[:64]
    secrets_ = [data["alice"][0][tr][0].tobytes(), data["bob"][0][tr][5].tobytes(), y[tr][:64].tobytes(),
                data["bob"][0][te][3].tobytes(), model_bytes, online[:8].tobytes()]
    assert relayed and not any(s in f for s in secrets_ for f in relayed)


def test_party_refuses_enclave_with_other_measurement(plat, plat_dir, ids):
    cfg = training_config({k: v.public_key for k, v in ids.items()}, feature_parties=["alice", "bob"],
                          label_party="alice", result_parties=["alice"])
    other = dict(cfg, result_parties=["alice", "bob"])  # host started a program with a different config
    with Enclave(PROGRAM, other, platform_dir=plat_dir) as enc:
        with pytest.raises(AttestationError, match="not on the allow-list"):
            EnclaveSession(enc, ids["alice"], Verifier(_policy(plat, [measure(PROGRAM, cfg)])))
        with pytest.raises(AttestationError, match="allow_simulation=False"):
            EnclaveSession(enc, ids["alice"], Verifier(Policy(frozenset([enc.measurement]), (TrustedPlatform.of(plat),))))
        assert not any(b"upload" in f for _, f in enc.relay_log)  # nothing was sent


def _cluster_setup(plat, ids):
    cfg = training_config({k: v.public_key for k, v in ids.items()}, feature_parties=["alice"], label_party="alice",
                          result_parties=["alice"],
                          peer_policy=Policy(trusted_platforms=(TrustedPlatform.of(plat),), allow_simulation=True).to_config())
    return cfg, _policy(plat, [measure(PROGRAM, cfg)])


def test_cluster_kill_midjob_reassign_and_admit(plat, plat_dir, ids):
    cfg, policy = _cluster_setup(plat, ids)
    g = np.random.default_rng(3)  # public test data
    X = g.normal(size=(600, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 + 0.1 * g.normal(size=600)
    shards = np.array_split(np.arange(600), 6)
    with ClusterManager(PROGRAM, cfg, policy, platform_dir=plat_dir, heartbeat_interval=0.1) as mgr:
        mgr.admit()
        mgr.admit()
        alice = EnclaveSession(mgr.members["enclave-1"].enclave, ids["alice"], Verifier(policy))
        blobs = [alice.call("ingest", {"job": "j1", "shard": i}, [X[s], y[s]]).arrays[0].tobytes()
                 for i, s in enumerate(shards)]
        ref = alice.call("release", {"job": "j1"}, [np.frombuffer(sharded_ridge_job(mgr, "j1", blobs), np.uint8)])
        w_ref = ref.arrays[0]
        Xb = np.hstack([X, np.ones((600, 1))])
        reg = np.eye(5)
        reg[-1, -1] = 0
        np.testing.assert_allclose(w_ref, np.linalg.solve(Xb.T @ Xb + reg, Xb.T @ y), rtol=1e-9)

        # second run: slow tasks; kill enclave-2 while it holds a task, admit enclave-3 mid-job
        import threading

        victim = mgr.members["enclave-2"]
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", sharded_ridge_job(mgr, "j1", blobs, delay=0.4)))
        t.start()
        assert wait_until(lambda: victim.current is not None, 10)
        victim.enclave.kill()  # SIGKILL mid-task
        mgr.admit("enclave-3")
        t.join(60)
        assert "r" in out
        assert not victim.alive and set(mgr.alive_members) == {"enclave-1", "enclave-3"}
        assert any("reassigned" in e for e in mgr.events)
        assert mgr.members["enclave-3"].tasks_done or mgr.members["enclave-1"].tasks_done
        res = alice.call("release", {"job": "j1"}, [np.frombuffer(out["r"], np.uint8)])
        assert np.array_equal(res.arrays[0], w_ref)  # bit-identical result
        # the newcomer got the data key over the attested channel: it can run a task itself
        e3 = mgr.members["enclave-3"].enclave
        e3.request("task", {"op": "shard_stats", "job": "j1", "shard": 0}, [np.frombuffer(blobs[0], np.uint8)])

        # the manager/host never saw plaintext data or the data key (unsealed here only because
        # the SIMULATED platform's sealing root is a file readable by this test)
        key = unseal(plat, measure(PROGRAM, cfg), "cluster-data-key", mgr.sealed_data_key)
        frames = [f for _, f in mgr.relay_log]
        assert len(key) == 32 and frames
        assert not any(key in f for f in frames)
        assert not any(X[s][0].tobytes() in f or y[s][:8].tobytes() in f for s in shards for f in frames)
        assert not any(w_ref.tobytes() in f for f in frames)


def test_cluster_refuses_bad_admission_and_forged_key(plat, plat_dir, ids, tmp_path):
    cfg, policy = _cluster_setup(plat, ids)
    strict = Policy(policy.allowed_measurements, policy.trusted_platforms)  # hardware only
    with ClusterManager(PROGRAM, cfg, strict, platform_dir=plat_dir) as mgr:
        with pytest.raises(AttestationError, match="allow_simulation=False"):
            mgr.admit()
        assert mgr.alive_members == []
    # a host cannot inject its own data key: the enclave checks the sender's quote
    with Enclave(PROGRAM, cfg, platform_dir=plat_dir) as enc:
        rogue = SoftwareSimulationPlatform(tmp_path / "rogue")
        nonce = enc.request("challenge").meta["nonce"]
        q = make_quote(rogue, program=PROGRAM, measurement=enc.measurement, x25519=b"\1" * 32, ed25519=b"\2" * 32,
                       nonce=nonce, debug=False)
        with pytest.raises(EnclaveError, match="not a trusted platform"):
            enc.request("key_import", {"quote": q.to_dict(), "eph": "00" * 32, "signature": "00" * 64},
                        [np.zeros(48, np.uint8)])
        with pytest.raises(EnclaveError, match="no cluster data key"):
            enc.request("task", {"op": "shard_stats", "job": "j", "shard": 0}, [np.zeros(64, np.uint8)])


def test_heartbeat_detects_hung_enclave(plat, plat_dir, ids):
    import os
    import signal

    cfg, policy = _cluster_setup(plat, ids)
    with ClusterManager(PROGRAM, cfg, policy, platform_dir=plat_dir, heartbeat_interval=0.1,
                        heartbeat_timeout=0.5) as mgr:
        name = mgr.admit()
        m = mgr.members[name]
        os.kill(m.enclave.pid, signal.SIGSTOP)  # hung, not dead
        assert wait_until(lambda: not m.alive, 10)
        assert any("missed heartbeat" in e for e in mgr.events)


def test_large_frames_round_trip(plat, plat_dir, ids):
    """Multi-megabyte records both ways (raw pipes return short reads)."""
    cfg, policy = _cluster_setup(plat, ids)
    with ClusterManager(PROGRAM, cfg, policy, platform_dir=plat_dir) as mgr:
        mgr.admit()
        alice = EnclaveSession(mgr.members["enclave-1"].enclave, ids["alice"], Verifier(policy))
        X = np.arange(250_000 * 8, dtype=np.float64).reshape(250_000, 8) / 7.0
        y = np.zeros(250_000)
        blob = alice.call("ingest", {"job": "big", "shard": 0}, [X, y]).arrays[0]
        assert blob.nbytes > 16_000_000
        (stats,) = mgr.run([Task({"op": "shard_stats", "job": "big", "shard": 0}, [blob])])
        (res,) = mgr.run([Task({"op": "combine", "job": "big", "n_shards": 1, "l2": 1.0}, stats)])
        w = alice.call("release", {"job": "big"}, res).arrays[0]
        assert w.shape == (9,) and np.isfinite(w).all()


def _small_training(plat, ids, **kw):
    cfg = training_config({k: v.public_key for k, v in ids.items()}, feature_parties=["alice", "bob"],
                          label_party="alice", result_parties=["alice"], **kw)
    g = np.random.default_rng(5)  # public test data
    X = g.normal(size=(300, 6))
    y = (X[:, 0] - X[:, 4] + 0.3 * g.normal(size=300) > 0).astype(np.float64)
    return cfg, _policy(plat, [measure(PROGRAM, cfg)]), X, y


def test_session_replay_refused(plat, plat_dir, ids):
    cfg, policy, X, y = _small_training(plat, ids)
    with Enclave(PROGRAM, cfg, platform_dir=plat_dir) as enc:
        sa = EnclaveSession(enc, ids["alice"], Verifier(policy))
        sa.call("upload", {"columns": list("abc"), "row_ids_sha256": "r"}, [X[:, :3], y])
        from jointml.core import wire

        sent = [wire.decode(f) for d, f in enc.relay_log if d == "to_enclave"]
        sess = next(m for m in sent if m.kind == "session")
        call = next(m for m in sent if m.kind == "call")
        with pytest.raises(EnclaveError, match="replayed or reordered"):
            enc.request("call", call.meta, call.arrays)  # same session
        new_sid = enc.request("session", sess.meta).meta["session"]  # replayed session request
        assert new_sid != sa.session
        with pytest.raises(EnclaveError, match="authentication failed"):
            enc.request("call", {"session": new_sid}, call.arrays)
        sa.call("upload", {"columns": list("abc"), "row_ids_sha256": "r"}, [X[:, :3], y])  # alice unaffected


def test_sealed_model_loaded_only_by_same_measurement(plat, plat_dir, ids):
    from jointml.apps.tee_train import model_decision_function

    cfg, policy, X, y = _small_training(plat, ids)
    with Enclave(PROGRAM, cfg, platform_dir=plat_dir) as enc:
        sa = EnclaveSession(enc, ids["alice"], Verifier(policy))
        sb = EnclaveSession(enc, ids["bob"], Verifier(policy))
        sa.call("upload", {"columns": list("abc"), "row_ids_sha256": "r"}, [X[:, :3], y])
        sb.call("upload", {"columns": list("def"), "row_ids_sha256": "r"}, [X[:, 3:]])
        sa.call("train")
        model = sa.call("get_model")
        sealed = sa.call("seal_model").arrays[0]
        with pytest.raises(EnclaveError, match="not a result party"):
            sb.call("seal_model")
    # a later prediction server with the same measurement loads it and serves predictions
    with Enclave(PROGRAM, cfg, platform_dir=plat_dir) as server:
        sa = EnclaveSession(server, ids["alice"], Verifier(policy))
        sb = EnclaveSession(server, ids["bob"], Verifier(policy))
        assert sa.call("load_model", arrays=[sealed]).meta["n_samples"] == 300
        sa.call("predict_upload", {"request": "q"}, [X[:7, :3]])
        sb.call("predict_upload", {"request": "q"}, [X[:7, 3:]])
        scores = sa.call("predict", {"request": "q"}).arrays[0]
        np.testing.assert_allclose(scores, model_decision_function(model, X[:7]), rtol=1e-12)
    # another program configuration (another measurement) cannot unseal it
    other_cfg, other_policy, _, _ = _small_training(plat, ids, model={"type": "logistic_regression", "C": 0.5})
    with Enclave(PROGRAM, other_cfg, platform_dir=plat_dir) as other:
        sa = EnclaveSession(other, ids["alice"], Verifier(other_policy))
        with pytest.raises(EnclaveError, match="different program"):
            sa.call("load_model", arrays=[sealed])


def test_cluster_auto_replaces_dead_enclave(plat, plat_dir, ids):
    cfg, policy = _cluster_setup(plat, ids)
    with ClusterManager(PROGRAM, cfg, policy, platform_dir=plat_dir, heartbeat_interval=0.1,
                        auto_replace=True) as mgr:
        mgr.admit()
        first = mgr.admit()
        mgr.members[first].enclave.kill()
        assert wait_until(lambda: len(mgr.alive_members) == 2 and first not in mgr.alive_members, 15)
        assert any("to replace " + first in e for e in mgr.events)


@pytest.mark.parametrize("protocol", ["semi2k", "aby3"])
def test_hybrid_train_in_tee_predict_under_mpc(plat, plat_dir, protocol):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from jointml.apps.hybrid import fetch_model_share, predict, secret_model
    from jointml.mpc import MpcDevice
    from jointml.runtime import simulate

    ids3 = {p: PartyIdentity(p) for p in ("alice", "bob", "carol")}
    compute = ["alice", "bob"] if protocol == "semi2k" else ["alice", "bob", "carol"]
    data, y, tr, te = _credit_data()
    cfg = training_config({k: v.public_key for k, v in ids3.items()}, feature_parties=["alice", "bob"],
                          label_party="alice", result_parties=[],  # nobody gets the plaintext model
                          mpc={"protocol": protocol, "parties": compute, "frac_bits": 18})
    policy = _policy(plat, [measure(PROGRAM, cfg)])
    with Enclave(PROGRAM, cfg, platform_dir=plat_dir) as enc:
        s = {p: EnclaveSession(enc, ids3[p], Verifier(policy)) for p in ids3}
        dg = row_ids_digest(tr)
        s["alice"].call("upload", {"columns": data["alice"][1], "row_ids_sha256": dg}, [data["alice"][0][tr], y[tr]])
        s["bob"].call("upload", {"columns": data["bob"][1], "row_ids_sha256": dg}, [data["bob"][0][tr]])
        s["alice"].call("train")
        with pytest.raises(EnclaveError, match="not a result party"):
            s["alice"].call("get_model")
        shares = {p: fetch_model_share(s[p]) for p in compute}
        if protocol == "semi2k":
            with pytest.raises(EnclaveError, match="not a compute party"):
                s["carol"].call("model_share")
        again = fetch_model_share(s["alice"])  # the same split every time
        assert all(np.array_equal(a, b) for a, b in zip(again.shares, shares["alice"].shares, strict=True))
    d = data["alice"][0].shape[1] + data["bob"][0].shape[1]
    Xa, Xb = data["alice"][0][te], data["bob"][0][te]

    def prog(ctx):
        dev = dict(parties=["alice", "bob"], dealer="carol") if protocol == "semi2k" else dict(parties=compute)
        mpc = MpcDevice(ctx, protocol=protocol, **dev)
        w = secret_model(mpc, shares.get(ctx.me), d + 1)  # each party uses only its own share
        feats = {"alice": ctx.party("alice").run(lambda: Xa), "bob": ctx.party("bob").run(lambda: Xb)}
        out = predict(mpc, feats, w, to="alice")
        return out.value if ctx.me == "alice" else None

    scores = simulate(prog, ["alice", "bob", "carol"], mode="thread")["alice"]
    Xall = np.hstack([data["alice"][0], data["bob"][0]])
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(Xall[tr], y[tr]).decision_function(Xall[te])
    np.testing.assert_allclose(scores, ref, atol=5e-3)
    assert abs(roc_auc_score(y[te], scores) - roc_auc_score(y[te], ref)) <= 0.005


# -- TECC: MPC parties each in a separately attested enclave ----------------------------


@pytest.fixture(scope="module")
def tecc_dirs(tmp_path_factory):
    """One simulated platform per TECC role (the enclaves refuse two roles on one platform)."""
    from jointml.tee.tecc import role_platform_dirs

    return role_platform_dirs(tmp_path_factory.mktemp("tecc-platforms"))


@pytest.fixture(scope="module")
def tecc_plats(tecc_dirs):
    return {r: SoftwareSimulationPlatform(d) for r, d in tecc_dirs.items()}


def _tecc_policy(plats, measurements):
    return Policy(frozenset(measurements), tuple(TrustedPlatform.of(p) for p in plats.values()), allow_simulation=True)


def _tecc_setup(plats, epochs=30):
    from jointml.apps.tecc import role_measurements, tecc_config

    ids2 = {p: PartyIdentity(p) for p in ("alice", "bob")}
    peer = _tecc_policy(plats, []).to_config()
    cfg = tecc_config({k: v.public_key for k, v in ids2.items()}, feature_parties=["alice", "bob"],
                      label_party="alice", result_parties=["alice"], peer_policy=peer, epochs=epochs)
    return ids2, cfg, role_measurements(cfg)


def _tecc_sessions(cl, ids2, meas, plats):
    from jointml.apps.tecc import ROLES

    return {p: {r: EnclaveSession(cl.enclaves[r], ids2[p], Verifier(_tecc_policy(plats, [meas[r]]))) for r in ROLES}
            for p in ids2}


def test_tecc_credit_lr_matches_plaintext(tecc_plats, tecc_dirs):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from jointml.apps.tecc import ROLES, TeccCluster, plaintext_reference, reconstruct, share_input

    ids2, cfg, meas = _tecc_setup(tecc_plats)
    assert len(set(meas.values())) == 3  # the role is part of each enclave's measurement
    data, y, tr, te = _credit_data()
    with TeccCluster(cfg, platform_dir=tecc_dirs) as cl:
        s = _tecc_sessions(cl, ids2, meas, tecc_plats)
        # a data owner checks each enclave against the measurement of its role
        with pytest.raises(AttestationError, match="not on the allow-list"):
            EnclaveSession(cl.enclaves["p1"], ids2["alice"], Verifier(_tecc_policy(tecc_plats, [meas["p0"]])))
        share_input(s["alice"], "X@alice", data["alice"][0][tr])
        share_input(s["alice"], "y", y[tr])
        share_input(s["bob"], "X@bob", data["bob"][0][tr])
        with pytest.raises(EnclaveError, match="may not provide input"):
            share_input(s["bob"], "y", y[tr])
        summary = cl.run()
        assert {v["rows"] for v in summary.values()} == {700} and all(v["rounds"] > 0 for v in summary.values())
        with pytest.raises(EnclaveError, match="not a result party"):
            reconstruct(s["bob"])
        w = reconstruct(s["alice"])
        # an enclave cannot pass itself off as another role to its peers
        e0, e1, e2 = (cl.enclaves[r] for r in ROLES)
        nonce = e0.request("task", {"op": "peer_challenge", "peer": "p1", "run_id": cl.run_id}).meta["nonce"]
        with pytest.raises(EnclaveError, match="measurement of another role"):
            e0.request("task", {"op": "peer_connect", "peer": "p1", "quote": e2.attest(nonce).to_dict()})
        frames = [f for _, f in cl.relay_log]
    Xall = np.hstack([data["alice"][0], data["bob"][0]])
    ref = plaintext_reference(Xall[tr], y[tr], epochs=30)
    np.testing.assert_allclose(w, ref, atol=2e-3)
    auc = roc_auc_score(y[te], Xall[te] @ w[:-1] + w[-1])
    auc_sk = roc_auc_score(y[te], LogisticRegression(max_iter=1000).fit(Xall[tr], y[tr]).decision_function(Xall[te]))
    assert abs(auc - auc_sk) <= 0.005
    # hosts relayed only ciphertext: no input row, no labels, no model
    probes = [data["alice"][0][tr][0].tobytes(), data["bob"][0][tr][1].tobytes(), y[tr][:32].tobytes(),
              np.rint(ref * 2**18).astype(np.int64).tobytes()[:32]]
    assert frames and not any(p in f for p in probes for f in frames)


def test_tecc_enclave_death_fails_fast(tecc_plats, tecc_dirs):
    import threading

    from jointml.apps.tecc import TeccCluster, share_input

    ids2, cfg, meas = _tecc_setup(tecc_plats, epochs=2000)
    g = np.random.default_rng(1)  # public test data
    X = g.normal(size=(50, 3))
    with TeccCluster(cfg, platform_dir=tecc_dirs) as cl:
        s = _tecc_sessions(cl, ids2, meas, tecc_plats)
        share_input(s["alice"], "X@alice", X[:, :2])
        share_input(s["alice"], "y", (X[:, 0] > 0).astype(float))
        share_input(s["bob"], "X@bob", X[:, 2:])
        err = {}
        t = threading.Thread(target=lambda: err.setdefault("e", pytest.raises(EnclaveError, cl.run)))
        t0 = time.monotonic()
        t.start()
        time.sleep(0.5)
        cl.enclaves["p1"].kill()
        t.join(30)
        assert not t.is_alive() and time.monotonic() - t0 < 30
        assert "tecc-p1" in str(err["e"].value) or "p1" in str(err["e"].value)


def test_reconstruct_detects_inconsistent_share():
    from jointml.apps.tecc import reconstruct
    from jointml.core import wire

    comps = [np.array([5, 6], np.uint64), np.array([7, 8], np.uint64), np.array([9, 10], np.uint64)]

    class Fake:
        def __init__(self, i, bad=False):
            self.i, self.bad = i, bad

        def call(self, op):
            second = comps[(self.i + 1) % 3] + np.uint64(self.bad)
            return wire.Message("ok", "t", 0, [comps[self.i], second], {})

    total = (comps[0] + comps[1] + comps[2]).view(np.int64) / 2.0**18
    assert np.array_equal(reconstruct({"p0": Fake(0), "p1": Fake(1), "p2": Fake(2)}), total)
    with pytest.raises(ValueError, match="enclave p1 returned a share inconsistent"):
        reconstruct({"p0": Fake(0), "p1": Fake(1, bad=True), "p2": Fake(2)})


def test_unknown_program_refused_at_boot(plat_dir):
    with pytest.raises(EnclaveError, match="unknown enclave program"):
        Enclave("os.system", {}, platform_dir=plat_dir)


# -- TeeDevice: the enclave as a device of an SPMD program --------------------------------


def test_tee_device_transfer_run_reveal(plat, plat_dir, ids):
    from jointml.apps.tee_train import model_decision_function, train_in_tee
    from jointml.core.errors import ParameterError
    from jointml.runtime import simulate
    from jointml.tee import Sealed, TeeDevice, TeeDeviceError

    cfg, policy, X, y = _small_training(plat, ids)
    with Enclave(PROGRAM, cfg, platform_dir=plat_dir) as enc:
        def prog(ctx):
            tee = TeeDevice(ctx, enc, ["alice", "bob"], identity=ids[ctx.me], verifier=Verifier(policy))
            assert tee.measurement == measure(PROGRAM, cfg)
            blocks = {"alice": ctx.party("alice").run(lambda: X[:, :3]), "bob": ctx.party("bob").run(lambda: X[:, 3:])}
            labels = ctx.party("alice").run(lambda: y)
            model = train_in_tee(tee, blocks, labels, row_ids_sha256=row_ids_digest(np.arange(300)))
            assert isinstance(model, Sealed) and model.meta["rows"] == 300 and model.meta["features"] == 6
            got = model.reveal(to="alice", op="get_model")
            with pytest.raises(TeeDeviceError, match="not a result party"):  # raised at both parties
                model.reveal(to="bob", op="get_model")
            with pytest.raises(ParameterError, match="code is never sent"):
                tee.run(lambda: 0, by="alice")
            return got.value if ctx.me == "alice" else None

        out = simulate(prog, ["alice", "bob"], mode="thread")
        relayed = [b for _, b in enc.relay_log]
    scores = model_decision_function(out["alice"], X)
    ref = __import__("sklearn.linear_model", fromlist=["x"]).LogisticRegression(C=1.0, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(scores, ref.decision_function(X), rtol=1e-6, atol=1e-6)
    assert not any(X[:, 3:][0].tobytes() in f or y[:64].tobytes() in f for f in relayed)  # ciphertext only


def test_tee_device_refuses_unattested_enclave_at_every_party(plat, plat_dir, ids):
    from jointml.runtime import simulate
    from jointml.tee import TeeDevice

    cfg, policy, X, y = _small_training(plat, ids)
    other = dict(cfg, result_parties=["alice", "bob"])  # the host started another configuration
    with Enclave(PROGRAM, other, platform_dir=plat_dir) as enc:
        def prog(ctx):
            with pytest.raises(AttestationError, match="not on the allow-list"):
                TeeDevice(ctx, enc, ["alice", "bob"], identity=ids[ctx.me], verifier=Verifier(policy))
            return True

        assert simulate(prog, ["alice", "bob"], mode="thread") == {"alice": True, "bob": True}
        assert not any(b"upload" in f or b"session" in f for d, f in enc.relay_log if d == "to_enclave")


def test_outsider_shares_round_trip_and_layout():
    """What the enclave programs use for parties outside an MPC program: mpc.sharing + the protocol's import/export."""
    from jointml.core.errors import EncodingRangeError, ParameterError
    from jointml.mpc import MpcDevice, sharing
    from jointml.runtime import simulate

    v = np.array([[1.25, -3.5], [0.0, 1e4]])
    for proto, n in (("semi2k", 2), ("semi2k", 3), ("aby3", 3)):
        parts = sharing.split(v, proto, parties=n, frac_bits=18)
        np.testing.assert_array_equal(sharing.combine(parts, proto, frac_bits=18), v)
        assert all(len(p) == (2 if proto == "aby3" else 1) for p in parts)
    with pytest.raises(ParameterError):
        sharing.split(v, "aby3", parties=2, frac_bits=18)
    with pytest.raises(EncodingRangeError):
        sharing.split(np.array([np.nan]), "aby3", frac_bits=18)
    parts = sharing.split(v, "aby3", frac_bits=18)

    def prog(ctx):  # imported shares compute like any secret; exported ones combine again
        mpc = MpcDevice(ctx, protocol="aby3")
        x = mpc.import_share(parts[mpc.parties.index(ctx.me)], v.shape)
        return (x * 2.0).export_share()

    out = simulate(prog, ["p0", "p1", "p2"], mode="thread")
    np.testing.assert_allclose(sharing.combine([out[p] for p in ("p0", "p1", "p2")], "aby3", frac_bits=18), 2 * v,
                               atol=1e-4)


def test_tee_layer_imports_no_application():
    """tee/ is infrastructure: no import of apps/, ml/ or jobs/ (programs are named by path only)."""
    import ast
    from pathlib import Path

    import jointml.tee

    for f in Path(jointml.tee.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                assert not mod.startswith(("..apps", "..ml", "..jobs", "jointml.apps", "jointml.ml")), (f.name, mod)
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith(("jointml.apps", "jointml.ml")) for a in node.names), f.name
