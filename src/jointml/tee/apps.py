"""TEE applications: the registered enclave program ``jointml.tee.apps``.

One program module, measured together with its configuration, serves two uses:

*Centralised training* (``on_call``): data owners, each on its own attested session,
``upload`` their aligned column blocks (the label party also its labels); ``train``
fits, in plaintext *inside* the enclave with scikit-learn, a logistic regression
(``model: {"type": "logistic_regression"}``) or gradient-boosted trees (``"gbdt"``);
``get_model`` returns the model (plain arrays, see :func:`export_model` and
:func:`model_decision_function`) only to the parties named in ``result_parties`` of the
measured configuration -- anybody else gets a PermissionError. Data and model never
leave the enclave except encrypted to a result party's session.

*Online prediction*: each feature party sends its block of a request's rows
(``predict_upload``); a result party then gets the scores (``predict``). A result
party can have the model sealed (``seal_model``) for host storage and loaded into a
later enclave of the same measurement (``load_model``), e.g. a prediction server.

*Hybrid (train in TEE, predict under MPC)*: with an ``mpc`` entry in the
configuration, each listed compute party fetches its secret share of the trained LR
model (``model_share``) and the parties predict under MPC (:mod:`jointml.tee.hybrid`).

*Cluster work* (``on_task``, driven by :class:`~jointml.tee.manager.ClusterManager`):
a data owner ``ingest``\\ s shards through its session; the enclave returns them
encrypted under the cluster data key for the host to store. Tasks ``shard_stats``
(per-shard Gram matrix X'X, X'y, n) and ``combine`` (sum in shard order, ridge solve)
read and write only data-key ciphertexts, so any enclave of the cluster can run any
task, results are bit-identical whichever enclave ran them, and ``release`` decrypts
the final result for a result party only.

Security model: the enclave is trusted (in SIMULATION: trusted by assumption, see the
package docstring); hosts, the cluster manager and the network are not -- they see
sizes, timing and ciphertext. Each result party learns the trained model (including
the other parties' column names) and the scores of prediction requests; other data
owners learn only the training summary (row and feature counts). The host chooses
which encrypted shards a cluster job combines (it could leave some out): cluster-job
integrity beyond per-blob authenticity is not yet enforced.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any, Mapping, Sequence

import numpy as np

from . import channel as ch

MAX_DELAY = 30.0
MAX_PENDING = 1000


def training_config(parties: Mapping[str, bytes], *, feature_parties: Sequence[str], label_party: str,
                    result_parties: Sequence[str], model: Mapping[str, Any] | None = None,
                    peer_policy: Mapping[str, Any] | None = None, mpc: Mapping[str, Any] | None = None) -> dict:
    """The (measured) configuration of a training enclave. `parties`: name -> Ed25519 identity public key.

    `result_parties` receive the model in plaintext (may be empty); `mpc`
    (``{"protocol": "semi2k"|"aby3", "parties": [...], "frac_bits": 18}``) lets the
    listed compute parties fetch secret shares of it instead (hybrid mode)."""
    for p in list(feature_parties) + [label_party] + list(result_parties):
        if p not in parties:
            raise ValueError(f"party {p!r} has no identity key in the enclave configuration")
    cfg = {"parties": {k: bytes(v).hex() for k, v in parties.items()}, "feature_parties": list(feature_parties),
           "label_party": label_party, "result_parties": list(result_parties),
           "model": dict(model or {"type": "logistic_regression", "C": 1.0, "max_iter": 1000})}
    if peer_policy is not None:
        cfg["peer_policy"] = dict(peer_policy)
    if mpc is not None:
        for p in mpc["parties"]:
            if p not in parties:
                raise ValueError(f"MPC party {p!r} has no identity key in the enclave configuration")
        cfg["mpc"] = {"protocol": str(mpc["protocol"]), "parties": list(mpc["parties"]),
                      "frac_bits": int(mpc.get("frac_bits", 18))}
    return cfg


def row_ids_digest(ids) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()


def _finite(a: np.ndarray, party: str, what: str) -> None:
    if not np.isfinite(a).all():
        raise ValueError(f"{what} from party {party!r} contains NaN or infinite values")


def make_estimator(mcfg: Mapping[str, Any]):
    """The scikit-learn estimator a model configuration names (deterministic: fixed random_state)."""
    if mcfg.get("type") == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=float(mcfg.get("C", 1.0)), max_iter=int(mcfg.get("max_iter", 1000)))
    if mcfg.get("type") == "gbdt":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(n_estimators=int(mcfg.get("n_estimators", 100)),
                                          max_depth=int(mcfg.get("max_depth", 3)),
                                          learning_rate=float(mcfg.get("learning_rate", 0.1)),
                                          subsample=float(mcfg.get("subsample", 1.0)),
                                          random_state=int(mcfg.get("random_state", 0)))
    raise ValueError(f"unsupported model type {mcfg.get('type')!r}")


def export_model(clf, kind: str) -> dict:
    """A fitted model as plain arrays + JSON meta (what crosses the channel; never pickle)."""
    if kind == "logistic_regression":
        return {"meta": {}, "arrays": [clf.coef_.reshape(-1).astype(np.float64),
                                       np.asarray(clf.intercept_, dtype=np.float64).reshape(-1)]}
    trees = [e[0].tree_ for e in clf.estimators_]
    offsets = np.cumsum([0] + [t.node_count for t in trees]).astype(np.int64)
    cat = lambda f, dt: np.concatenate([np.asarray(f(t)).reshape(t.node_count) for t in trees]).astype(dt)  # noqa: E731
    prior = float(clf.init_.predict_proba(np.zeros((1, clf.n_features_in_)))[0, 1])
    init = float(np.log(prior / (1.0 - prior)))  # binomial log-loss: the raw score starts at the prior's log-odds
    return {"meta": {"learning_rate": float(clf.learning_rate), "init": init},
            "arrays": [offsets, cat(lambda t: t.feature, np.int64), cat(lambda t: t.threshold, np.float64),
                       cat(lambda t: t.children_left, np.int64), cat(lambda t: t.children_right, np.int64),
                       cat(lambda t: t.value[:, 0, 0], np.float64)]}


def model_decision_function(model, X: np.ndarray) -> np.ndarray:
    """Scores (log-odds) of a model received from ``get_model`` on joined columns X."""
    X = np.asarray(X, dtype=np.float64)
    if model.meta["type"] == "logistic_regression":
        coef, intercept = model.arrays
        return X @ coef + intercept[0]
    if model.meta["type"] == "gbdt":
        offsets, feat, thr, left, right, value = model.arrays
        X = X.astype(np.float32)  # scikit-learn trees compare float32 features with float64 thresholds
        out = np.full(X.shape[0], model.meta["init"])
        rows = np.arange(X.shape[0])
        for k in range(len(offsets) - 1):
            node = np.full(X.shape[0], offsets[k])
            while True:
                inner = left[node] != -1
                if not inner.any():
                    break
                go_left = X[rows, np.where(inner, feat[node], 0)] <= thr[node]
                nxt = np.where(go_left, left[node], right[node]) + offsets[k]
                node = np.where(inner, nxt, node)
            out += model.meta["learning_rate"] * value[node]
        return out
    raise ValueError(f"unknown model type {model.meta['type']!r}")


class _ExportedModel:
    """A model restored from its exported arrays (after ``load_model``)."""

    def __init__(self, m: dict):
        from types import SimpleNamespace

        self._m = SimpleNamespace(meta={"type": m["type"], **m["meta"]}, arrays=m["arrays"])

    def decision_function(self, X):
        return model_decision_function(self._m, X)


class EnclaveProgram:
    """Runs inside the enclave process (see :mod:`jointml.tee._boot`)."""

    def __init__(self, rt):
        self.rt = rt
        self.cfg = rt.config
        self.uploads: dict[str, dict] = {}
        self.model: dict | None = None
        self.estimator = None
        self.pending: dict[str, dict[str, np.ndarray]] = {}
        self.shares: list | None = None  # hybrid mode: one split of the model, handed out per party

    # -- party requests (decrypted from the party's session) ---------------------
    def on_call(self, party: str, op: str, meta: dict, arrays: list) -> tuple[dict, list]:
        if op == "upload":
            return self._upload(party, meta, arrays)
        if op == "train":
            return self._train(party, meta)
        if op == "get_model":
            self._require_result_party(party, "the model")
            if self.model is None:
                raise RuntimeError("no model trained yet")
            m = self.model
            return ({"columns": m["columns"], "type": m["type"], "n_samples": m["n"], **m["meta"]},
                    list(m["arrays"]))
        if op == "seal_model":
            # for host storage: only an enclave with this very measurement can load it again
            self._require_result_party(party, "the sealed model")
            if self.model is None:
                raise RuntimeError("no model trained yet")
            m = self.model
            blob = self.rt.seal("model", ch.pack("model", {k: m[k] for k in ("type", "columns", "widths", "n", "meta")},
                                                 m["arrays"]))
            return {}, [ch.as_bytes_array(blob)]
        if op == "load_model":
            self._require_result_party(party, "loading a model")
            (blob,) = arrays
            msg = ch.unpack(self.rt.unseal("model", blob.tobytes()))
            self.model = {**msg.meta, "arrays": list(msg.arrays)}
            self.estimator = _ExportedModel(self.model)
            return {"type": self.model["type"], "n_samples": self.model["n"]}, []
        if op == "model_share":
            return self._model_share(party)
        if op == "predict_upload":
            return self._predict_upload(party, meta, arrays)
        if op == "predict":
            return self._predict(party, meta)
        if op == "ingest":
            return self._ingest(party, meta, arrays)
        if op == "release":
            self._require_result_party(party, "the job result")
            job = str(meta["job"])
            (blob,) = arrays
            res = ch.unpack(self.rt.decrypt_data(blob.tobytes(), f"{job}|result"))
            return {"job": job}, list(res.arrays)
        raise ValueError(f"unknown operation {op!r}")

    def _require_result_party(self, party: str, what: str) -> None:
        if party not in self.cfg.get("result_parties", ()):
            raise PermissionError(f"party {party!r} is not a result party of this enclave and may not receive {what}")

    def _upload(self, party, meta, arrays):
        if party not in self.cfg["feature_parties"] and party != self.cfg["label_party"]:
            raise PermissionError(f"party {party!r} does not hold data for this job")
        if not arrays:
            raise ValueError(f"upload from {party!r} has no arrays")
        X = arrays[0]
        if X.dtype != np.float64 or X.ndim != 2:
            raise ValueError(f"features from {party!r}: expected a 2-D float64 array, got {X.dtype} {X.shape}")
        cols = meta.get("columns")
        if not isinstance(cols, list) or len(cols) != X.shape[1]:
            raise ValueError(f"features from {party!r}: {X.shape[1]} columns but {cols!r} names")
        _finite(X, party, "features")
        rec = {"X": X.copy(), "columns": [str(c) for c in cols], "rows": meta.get("row_ids_sha256")}
        if party == self.cfg["label_party"]:
            if len(arrays) != 2:
                raise ValueError(f"label party {party!r} must upload labels")
            y = arrays[1]
            if y.shape != (X.shape[0],):
                raise ValueError(f"labels from {party!r}: shape {y.shape}, expected ({X.shape[0]},)")
            _finite(y.astype(np.float64), party, "labels")
            if not set(np.unique(y).tolist()) <= {0, 1}:
                raise ValueError(f"labels from {party!r} must be 0/1")
            rec["y"] = y.astype(np.float64)
        self.uploads[party] = rec
        return {"rows": int(X.shape[0]), "features": int(X.shape[1])}, []

    def _train(self, party, meta):
        fp = self.cfg["feature_parties"]
        missing = [p for p in fp + [self.cfg["label_party"]] if p not in self.uploads]
        if missing:
            raise RuntimeError(f"cannot train: no data from {missing}")
        n = {p: self.uploads[p]["X"].shape[0] for p in fp}
        if len(set(n.values())) != 1:
            raise ValueError(f"row counts differ between parties: {n}")
        digests = {p: self.uploads[p]["rows"] for p in fp}
        if len(set(digests.values())) != 1:
            raise ValueError("parties' row ids differ (data not aligned); digests " + str(digests))
        X = np.hstack([self.uploads[p]["X"] for p in fp])
        y = self.uploads[self.cfg["label_party"]]["y"]
        mcfg = self.cfg["model"]
        kind = mcfg.get("type")
        if kind not in ("logistic_regression", "gbdt"):
            raise ValueError(f"unsupported model type {kind!r} (logistic_regression, gbdt)")
        t_imp = time.perf_counter()
        import sklearn.ensemble  # noqa: F401  first use pays the import, reported apart
        import sklearn.linear_model  # noqa: F401

        t0 = time.perf_counter()
        clf = make_estimator(mcfg)
        clf.fit(X, y)
        seconds = time.perf_counter() - t0
        self.estimator = clf
        self.shares = None
        self.model = {"type": kind, "columns": {p: self.uploads[p]["columns"] for p in fp},
                      "widths": [self.uploads[p]["X"].shape[1] for p in fp], "n": int(X.shape[0]),
                      **export_model(clf, kind)}
        self.uploads.clear()  # training data is not kept longer than needed
        return {"rows": int(X.shape[0]), "features": int(X.shape[1]), "fit_seconds": seconds,
                "import_seconds": t0 - t_imp, "type": kind}, []

    def _model_share(self, party):
        """Hybrid mode: this party's secret share of the trained LR model, for MPC prediction.

        The configuration's ``mpc`` entry (measured) names the protocol, the compute
        parties in order and the fixed-point bits. The enclave splits the encoded model
        (coef..., intercept) once into additive shares over Z_2^64 with OS randomness;
        compute party i gets share i (semi2k) or shares (i, i+1 mod 3) (aby3). No
        single party can learn the model from its share(s)."""
        mpc = self.cfg.get("mpc")
        if not mpc:
            raise PermissionError("this enclave is not configured to share its model with an MPC device")
        parties, proto, f = list(mpc["parties"]), mpc["protocol"], int(mpc.get("frac_bits", 18))
        if party not in parties:
            raise PermissionError(f"party {party!r} is not a compute party of the configured MPC device {parties}")
        if self.model is None or self.model["type"] != "logistic_regression":
            raise RuntimeError("model shares need a trained logistic_regression model")
        if self.shares is None:
            w = np.concatenate(self.model["arrays"])  # coef..., intercept
            bound = 2.0 ** (62 - f)
            if not np.all(np.abs(w) < bound):
                raise ValueError(f"model weight out of the fixed-point range |w| < {bound:g} (frac_bits={f})")
            enc = np.rint(w * 2.0 ** f).astype(np.int64).view(np.uint64)
            n = len(parties)
            if (proto, n) not in (("semi2k", n), ("aby3", 3)) or n < 2:
                raise ValueError(f"unsupported MPC device {proto} with {n} parties")
            rnd = [np.frombuffer(secrets.token_bytes(8 * w.size), dtype=np.uint64).copy() for _ in range(n - 1)]
            last = enc.copy()
            for r in rnd:
                last -= r
            self.shares = rnd + [last]
        i = parties.index(party)
        mine = [self.shares[i]] if proto == "semi2k" else [self.shares[i], self.shares[(i + 1) % 3]]
        return {"protocol": proto, "parties": parties, "frac_bits": f, "columns": self.model["columns"],
                "widths": self.model["widths"], "index": i}, mine

    def _predict_upload(self, party, meta, arrays):
        """Online prediction: a feature party submits its block of a request's rows."""
        if self.model is None:
            raise RuntimeError("no model trained yet")
        fp = self.cfg["feature_parties"]
        if party not in fp:
            raise PermissionError(f"party {party!r} holds no features of this model")
        (X,) = arrays
        width = self.model["widths"][fp.index(party)]
        if X.dtype != np.float64 or X.ndim != 2 or X.shape[1] != width:
            raise ValueError(f"prediction block from {party!r}: expected float64 (rows, {width}), got {X.dtype} {X.shape}")
        _finite(X, party, "prediction features")
        rid = str(meta["request"])
        if rid not in self.pending and len(self.pending) >= MAX_PENDING:
            raise RuntimeError(f"too many pending prediction requests ({MAX_PENDING})")
        self.pending.setdefault(rid, {})[party] = X.copy()
        return {"request": rid, "received": sorted(self.pending[rid])}, []

    def _predict(self, party, meta):
        self._require_result_party(party, "predictions")
        rid = str(meta["request"])
        blocks = self.pending.get(rid, {})
        missing = [p for p in self.cfg["feature_parties"] if p not in blocks]
        if missing:
            raise RuntimeError(f"prediction request {rid!r}: no features yet from {missing}")
        n = {p: b.shape[0] for p, b in blocks.items()}
        if len(set(n.values())) != 1:
            raise ValueError(f"prediction request {rid!r}: row counts differ {n}")
        del self.pending[rid]
        X = np.hstack([blocks[p] for p in self.cfg["feature_parties"]])
        return {"request": rid}, [np.asarray(self.estimator.decision_function(X), dtype=np.float64).reshape(-1)]

    def _ingest(self, party, meta, arrays):
        if party not in self.cfg["parties"]:
            raise PermissionError(f"party {party!r} unknown")
        X, y = arrays
        if X.dtype != np.float64 or X.ndim != 2 or y.shape != (X.shape[0],):
            raise ValueError(f"shard from {party!r}: bad shapes {X.shape} / {y.shape}")
        _finite(X, party, "features")
        job, shard = str(meta["job"]), int(meta["shard"])
        blob = self.rt.encrypt_data(ch.pack("shard", {}, [X, y.astype(np.float64)]), f"{job}|shard|{shard}")
        return {"job": job, "shard": shard}, [ch.as_bytes_array(blob)]

    # -- cluster tasks (inputs and outputs are data-key ciphertexts) -------------
    def on_task(self, op: str, meta: dict, arrays: list) -> tuple[dict, list]:
        job = str(meta["job"])
        if op == "shard_stats":
            shard = int(meta["shard"])
            (blob,) = arrays
            X, y = ch.unpack(self.rt.decrypt_data(blob.tobytes(), f"{job}|shard|{shard}")).expect(
                [np.float64, np.float64])
            delay = min(float(meta.get("delay", 0.0)), MAX_DELAY)  # test hook: a slow task, to be killed mid-way
            if delay > 0:
                time.sleep(delay)
            Xb = np.hstack([X, np.ones((X.shape[0], 1))])
            stats = [Xb.T @ Xb, Xb.T @ y, np.array([X.shape[0]], dtype=np.int64)]
            out = self.rt.encrypt_data(ch.pack("stats", {}, stats), f"{job}|stats|{shard}")
            return {"job": job, "shard": shard}, [ch.as_bytes_array(out)]
        if op == "combine":
            n_shards = int(meta["n_shards"])
            if len(arrays) != n_shards:
                raise ValueError(f"combine needs {n_shards} shard results, got {len(arrays)}")
            G = v = None
            n = 0
            for i, blob in enumerate(arrays):  # fixed order: same bits whichever enclave computed each shard
                g, b, c = ch.unpack(self.rt.decrypt_data(blob.tobytes(), f"{job}|stats|{i}")).arrays
                G = g.copy() if G is None else G + g
                v = b.copy() if v is None else v + b
                n += int(c[0])
            lam = float(meta.get("l2", 1.0))
            reg = lam * np.eye(G.shape[0])
            reg[-1, -1] = 0.0  # do not penalise the intercept
            w = np.linalg.solve(G + reg, v)
            out = self.rt.encrypt_data(ch.pack("result", {}, [w, np.array([n], dtype=np.int64)]), f"{job}|result")
            return {"job": job}, [ch.as_bytes_array(out)]
        raise ValueError(f"unknown task {op!r}")
