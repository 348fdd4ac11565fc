"""TEE training: the registered enclave program ``jointml.apps.tee_train`` (SIMULATED TEE).

One program module, measured together with its configuration, serves these uses:

*Centralised training* (``on_call``): data owners, each on its own attested session,
``upload`` their aligned column blocks (the label party also its labels); ``train``
fits, in plaintext *inside* the enclave with scikit-learn, a logistic regression
(``model: {"type": "logistic_regression"}``) or gradient-boosted trees (``"gbdt"``);
``get_model`` returns the model (plain arrays, see :func:`export_model` and
:func:`model_decision_function`) only to the parties named in ``result_parties`` of the
measured configuration -- anybody else gets a PermissionError. Data and model never
leave the enclave except encrypted to a result party's session. In an SPMD program the
same steps read ``x.to(tee)``, ``tee.run("train")``, ``model.reveal(to=...)`` on a
:class:`~jointml.tee.device.TeeDevice` (:func:`train_in_tee`).

*Online prediction*: each feature party sends its block of a request's rows
(``predict_upload``); a result party then gets the scores (``predict``). A result
party can have the model sealed (``seal_model``) for host storage and loaded into a
later enclave of the same measurement (``load_model``), e.g. a prediction server.

*Hybrid (train in TEE, predict under MPC)*: with an ``mpc`` entry in the
configuration, each listed compute party fetches its secret share of the trained LR
model (``model_share``) and the parties predict under MPC (:mod:`jointml.apps.hybrid`).

*Cluster work* (``on_task``, driven by :class:`~jointml.tee.manager.ClusterManager`):
a data owner ``ingest``\\ s shards through its session; the enclave returns them
encrypted under the cluster data key for the host to store. Tasks ``shard_stats``
(per-shard Gram matrix X'X, X'y, n) and ``combine`` (sum in shard order, ridge solve)
read and write only data-key ciphertexts, so any enclave of the cluster can run any
task, results are bit-identical whichever enclave ran them, and ``release`` decrypts
the final result for a result party only (:func:`sharded_ridge_job`).

Security model: the enclave is trusted (in SIMULATION: trusted by assumption, see the
:mod:`jointml.tee` docstring); hosts, the cluster manager and the network are not --
they see sizes, timing and ciphertext. Each result party learns the trained model
(including the other parties' column names) and the scores of prediction requests;
other data owners learn only the training summary (row and feature counts). The host
chooses which encrypted shards a cluster job combines (it could leave some out):
cluster-job integrity beyond per-blob authenticity is not yet enforced.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..core.errors import AccessDenied, ConfigError, DataError, ModelError, ParameterError, ResourceError
from ..core.fixedpoint import DEFAULT_FRAC_BITS
from ..tee import channel as ch

if TYPE_CHECKING:  # pragma: no cover - the enclave imports only what its program runs (and is measured)
    from ..runtime.device import PartyObject
    from ..tee.device import Sealed, TeeDevice
    from ..tee.manager import ClusterManager

PROGRAM = "jointml.apps.tee_train"
MAX_DELAY = 30.0
MAX_PENDING = 1000


def training_config(parties: Mapping[str, bytes], *, feature_parties: Sequence[str], label_party: str,
                    result_parties: Sequence[str], model: Mapping[str, Any] | None = None,
                    peer_policy: Mapping[str, Any] | None = None, mpc: Mapping[str, Any] | None = None) -> dict:
    """The (measured) configuration of a training enclave. `parties`: name -> Ed25519 identity public key.

    `result_parties` receive the model in plaintext (may be empty); `mpc`
    (``{"protocol": "semi2k"|"aby3", "parties": [...], "frac_bits": 18}``) lets the
    listed compute parties fetch secret shares of it instead (hybrid mode).

    >>> cfg = training_config({"alice": b"k" * 32}, feature_parties=["alice"], label_party="alice",
    ...                       result_parties=["alice"])
    >>> cfg["model"]["type"], cfg["result_parties"]
    ('logistic_regression', ['alice'])
    """
    for p in list(feature_parties) + [label_party] + list(result_parties):
        if p not in parties:
            raise ConfigError(f"party {p!r} has no identity key in the enclave configuration")
    cfg = {"parties": {k: bytes(v).hex() for k, v in parties.items()}, "feature_parties": list(feature_parties),
           "label_party": label_party, "result_parties": list(result_parties),
           "model": dict(model or {"type": "logistic_regression", "C": 1.0, "max_iter": 1000})}
    if peer_policy is not None:
        cfg["peer_policy"] = dict(peer_policy)
    if mpc is not None:
        for p in mpc["parties"]:
            if p not in parties:
                raise ConfigError(f"MPC party {p!r} has no identity key in the enclave configuration")
        cfg["mpc"] = {"protocol": str(mpc["protocol"]), "parties": list(mpc["parties"]),
                      "frac_bits": int(mpc.get("frac_bits", DEFAULT_FRAC_BITS))}
    return cfg


def row_ids_digest(ids) -> str:
    """A digest of aligned row ids: parties that upload the same rows send the same digest.

    >>> row_ids_digest([3, 1, 2]) == row_ids_digest(np.array([3, 1, 2]))
    True
    """
    return hashlib.sha256(np.ascontiguousarray(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()


def _finite(a: np.ndarray, party: str, what: str) -> None:
    if not np.isfinite(a).all():
        raise DataError(f"{what} from party {party!r} contains NaN or infinite values")


def make_estimator(mcfg: Mapping[str, Any]):
    """The scikit-learn estimator a model configuration names (deterministic: fixed random_state).

    >>> type(make_estimator({"type": "gbdt", "n_estimators": 5})).__name__
    'GradientBoostingClassifier'
    """
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
    raise ConfigError(f"unsupported model type {mcfg.get('type')!r}")


def export_model(clf, kind: str) -> dict:
    """A fitted model as plain arrays + JSON meta (what crosses the channel; never pickle).

    >>> clf = make_estimator({"type": "logistic_regression"}).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    >>> [a.shape for a in export_model(clf, "logistic_regression")["arrays"]]
    [(1,), (1,)]
    """
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
    """Scores (log-odds) of a model received from ``get_model`` on joined columns X.

    >>> from types import SimpleNamespace
    >>> m = SimpleNamespace(meta={"type": "logistic_regression"}, arrays=[np.array([2.0]), np.array([-1.0])])
    >>> model_decision_function(m, [[0.5], [1.0]]).tolist()
    [0.0, 1.0]
    """
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
    raise ModelError(f"unknown model type {model.meta['type']!r}")


class _ExportedModel:
    """A model restored from its exported arrays (after ``load_model``)."""

    def __init__(self, m: dict):
        from types import SimpleNamespace

        self._m = SimpleNamespace(meta={"type": m["type"], **m["meta"]}, arrays=m["arrays"])

    def decision_function(self, X):
        return model_decision_function(self._m, X)


class EnclaveProgram:
    """Runs inside the enclave process (see :mod:`jointml.tee._boot`); the host never calls it.

    >>> EnclaveProgram.__module__
    'jointml.apps.tee_train'
    """

    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self.cfg = rt.config
        self.uploads: dict[str, dict] = {}
        self.model: dict | None = None
        self.estimator: Any = None  # a fitted scikit-learn model or an _ExportedModel
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
                raise ModelError("no model trained yet")
            m = self.model
            return ({"columns": m["columns"], "type": m["type"], "n_samples": m["n"], **m["meta"]},
                    list(m["arrays"]))
        if op == "seal_model":
            # for host storage: only an enclave with this very measurement can load it again
            self._require_result_party(party, "the sealed model")
            if self.model is None:
                raise ModelError("no model trained yet")
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
        raise ParameterError(f"unknown operation {op!r}")

    def _require_result_party(self, party: str, what: str) -> None:
        if party not in self.cfg.get("result_parties", ()):
            raise AccessDenied(f"party {party!r} is not a result party of this enclave and may not receive {what}")

    def _upload(self, party, meta, arrays):
        if party not in self.cfg["feature_parties"] and party != self.cfg["label_party"]:
            raise AccessDenied(f"party {party!r} does not hold data for this job")
        if not arrays:
            raise DataError(f"upload from {party!r} has no arrays")
        X = arrays[0]
        if X.dtype != np.float64 or X.ndim != 2:
            raise DataError(f"features from {party!r}: expected a 2-D float64 array, got {X.dtype} {X.shape}")
        cols = meta.get("columns")
        if not isinstance(cols, list) or len(cols) != X.shape[1]:
            raise DataError(f"features from {party!r}: {X.shape[1]} columns but {cols!r} names")
        _finite(X, party, "features")
        rec = {"X": X.copy(), "columns": [str(c) for c in cols], "rows": meta.get("row_ids_sha256")}
        if party == self.cfg["label_party"]:
            if len(arrays) != 2:
                raise DataError(f"label party {party!r} must upload labels")
            y = arrays[1]
            if y.shape != (X.shape[0],):
                raise DataError(f"labels from {party!r}: shape {y.shape}, expected ({X.shape[0]},)")
            _finite(y.astype(np.float64), party, "labels")
            if not set(np.unique(y).tolist()) <= {0, 1}:
                raise DataError(f"labels from {party!r} must be 0/1")
            rec["y"] = y.astype(np.float64)
        self.uploads[party] = rec
        return {"rows": int(X.shape[0]), "features": int(X.shape[1])}, []

    def _train(self, party, meta):
        fp = self.cfg["feature_parties"]
        missing = [p for p in fp + [self.cfg["label_party"]] if p not in self.uploads]
        if missing:
            raise DataError(f"cannot train: no data from {missing}")
        n = {p: self.uploads[p]["X"].shape[0] for p in fp}
        if len(set(n.values())) != 1:
            raise DataError(f"row counts differ between parties: {n}")
        digests = {p: self.uploads[p]["rows"] for p in fp}
        if len(set(digests.values())) != 1:
            raise DataError("parties' row ids differ (data not aligned); digests " + str(digests))
        X = np.hstack([self.uploads[p]["X"] for p in fp])
        y = self.uploads[self.cfg["label_party"]]["y"]
        mcfg = self.cfg["model"]
        kind = mcfg.get("type")
        if kind not in ("logistic_regression", "gbdt"):
            raise ConfigError(f"unsupported model type {kind!r} (logistic_regression, gbdt)")
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
        (coef..., intercept) once into additive shares over Z_2^64 from the cryptographic PRG
        (:func:`jointml.mpc.sharing.split`): compute party i gets
        share i (semi2k) or shares (i, i+1 mod 3) (aby3). No
        single party can learn the model from its share(s)."""
        mpc = self.cfg.get("mpc")
        if not mpc:
            raise AccessDenied("this enclave is not configured to share its model with an MPC device")
        parties, proto, f = list(mpc["parties"]), mpc["protocol"], int(mpc.get("frac_bits", DEFAULT_FRAC_BITS))
        if party not in parties:
            raise AccessDenied(f"party {party!r} is not a compute party of the configured MPC device {parties}")
        if self.model is None or self.model["type"] != "logistic_regression":
            raise ModelError("model shares need a trained logistic_regression model")
        if self.shares is None:  # one split, handed out party by party (EncodingRangeError if out of range)
            from ..mpc import sharing  # the MPC engine is measured into this program (tee.attestation)

            self.shares = sharing.split(np.concatenate(self.model["arrays"]), proto, parties=len(parties), frac_bits=f)
        i = parties.index(party)
        mine = list(self.shares[i])
        return {"protocol": proto, "parties": parties, "frac_bits": f, "columns": self.model["columns"],
                "widths": self.model["widths"], "index": i}, mine

    def _predict_upload(self, party, meta, arrays):
        """Online prediction: a feature party submits its block of a request's rows."""
        if self.model is None:
            raise ModelError("no model trained yet")
        fp = self.cfg["feature_parties"]
        if party not in fp:
            raise AccessDenied(f"party {party!r} holds no features of this model")
        (X,) = arrays
        width = self.model["widths"][fp.index(party)]
        if X.dtype != np.float64 or X.ndim != 2 or X.shape[1] != width:
            raise DataError(f"prediction block from {party!r}: expected float64 (rows, {width}), got {X.dtype} {X.shape}")
        _finite(X, party, "prediction features")
        rid = str(meta["request"])
        if rid not in self.pending and len(self.pending) >= MAX_PENDING:
            raise ResourceError(f"too many pending prediction requests ({MAX_PENDING})")
        self.pending.setdefault(rid, {})[party] = X.copy()
        return {"request": rid, "received": sorted(self.pending[rid])}, []

    def _predict(self, party, meta):
        self._require_result_party(party, "predictions")
        rid = str(meta["request"])
        blocks = self.pending.get(rid, {})
        missing = [p for p in self.cfg["feature_parties"] if p not in blocks]
        if missing:
            raise DataError(f"prediction request {rid!r}: no features yet from {missing}", public=True)
        n = {p: b.shape[0] for p, b in blocks.items()}
        if len(set(n.values())) != 1:
            raise DataError(f"prediction request {rid!r}: row counts differ {n}")
        del self.pending[rid]
        X = np.hstack([blocks[p] for p in self.cfg["feature_parties"]])
        return {"request": rid}, [np.asarray(self.estimator.decision_function(X), dtype=np.float64).reshape(-1)]

    def _ingest(self, party, meta, arrays):
        if party not in self.cfg["parties"]:
            raise AccessDenied(f"party {party!r} unknown")
        X, y = arrays
        if X.dtype != np.float64 or X.ndim != 2 or y.shape != (X.shape[0],):
            raise DataError(f"shard from {party!r}: bad shapes {X.shape} / {y.shape}")
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
            if len(arrays) != n_shards or n_shards < 1:
                raise DataError(f"combine needs {n_shards} (at least one) shard results, got {len(arrays)}")
            G: np.ndarray | None = None
            v: np.ndarray | None = None
            n = 0
            for i, blob in enumerate(arrays):  # fixed order: same bits whichever enclave computed each shard
                g, b, c = ch.unpack(self.rt.decrypt_data(blob.tobytes(), f"{job}|stats|{i}")).arrays
                G = g.copy() if G is None else G + g
                v = b.copy() if v is None else v + b
                n += int(c[0])
            assert G is not None and v is not None  # at least one shard
            lam = float(meta.get("l2", 1.0))
            reg = lam * np.eye(G.shape[0])
            reg[-1, -1] = 0.0  # do not penalise the intercept
            w = np.linalg.solve(G + reg, v)
            out = self.rt.encrypt_data(ch.pack("result", {}, [w, np.array([n], dtype=np.int64)]), f"{job}|result")
            return {"job": job}, [ch.as_bytes_array(out)]
        raise ParameterError(f"unknown task {op!r}")


# ------------------------------------------------------------------------------------
# SPMD helpers (parties and hosts)
# ------------------------------------------------------------------------------------


def train_in_tee(tee: TeeDevice, X: Mapping[str, PartyObject], y: PartyObject, *,
                 columns: Mapping[str, Sequence[str]] | None = None, row_ids_sha256: str = "") -> Sealed:
    """Every party of the program (SPMD): send each block to the enclave, train inside; the sealed model.

    `X`: feature party -> its aligned block (a PartyObject); `y`: the label holder's labels,
    sent with its own block (the label holder must hold features). `columns` (read at each
    owner; default ``<party>_x<i>``) and the row-id digest (:func:`row_ids_digest`) travel
    with the data. The label holder starts training; ``model.reveal(to=p, op="get_model")``
    then hands the model to a result party only.

    >>> import tempfile
    >>> from jointml.tee import Enclave, PartyIdentity, Policy, TeeDevice, TrustedPlatform, Verifier, load_platform, measure
    >>> d = tempfile.mkdtemp()
    >>> ids = {p: PartyIdentity(p) for p in ("alice", "bob")}
    >>> cfg = training_config({p: i.public_key for p, i in ids.items()}, feature_parties=["alice", "bob"],
    ...                       label_party="alice", result_parties=["alice"], model={"type": "gbdt", "n_estimators": 3})
    >>> enclave = Enclave(PROGRAM, cfg, platform_dir=d)
    >>> policy = Policy({measure(PROGRAM, cfg)}, (TrustedPlatform.of(load_platform(d)),), allow_simulation=True)
    >>> def prog(ctx):
    ...     tee = TeeDevice(ctx, enclave, ["alice", "bob"], identity=ids[ctx.me], verifier=Verifier(policy))
    ...     X = np.arange(24.0).reshape(12, 2) % 5  # public example data
    ...     y = ctx.party("alice").run(lambda: (X[:, 0] > 2).astype(float))
    ...     blocks = {"alice": ctx.party("alice").run(lambda: X[:, :1]), "bob": ctx.party("bob").run(lambda: X[:, 1:])}
    ...     model = train_in_tee(tee, blocks, y)
    ...     got = model.reveal(to="alice", op="get_model")
    ...     return model.meta["rows"], (got.value.meta["columns"] if ctx.me == "alice" else None)
    >>> simulate(prog, ["alice", "bob"], mode="thread")["alice"]
    (12, {'alice': ['alice_x0'], 'bob': ['bob_x0']})
    >>> enclave.close()
    """
    ctx = tee.ctx
    if y.owner not in X:
        raise ParameterError(f"the label holder '{y.owner}' uploads its labels with its own feature block", field="X")
    for p, block in X.items():
        meta = None
        if ctx.me == p:
            width = int(np.asarray(block.value).shape[1])
            names = list(columns[p]) if columns and p in columns else [f"{p}_x{i}" for i in range(width)]
            meta = {"columns": names, "row_ids_sha256": row_ids_sha256}
        obj = ctx.party(p).run(lambda a, b: (a, b), block, y) if p == y.owner else block
        obj.to(tee, op="upload", meta=meta)
    return tee.run("train", by=y.owner)


def sharded_ridge_job(manager: ClusterManager, job: str, shard_blobs: Sequence[bytes], *, l2: float = 1.0,
                      delay: float = 0.0) -> bytes:
    """Ridge regression over encrypted shards: per-shard statistics, then a combine task.

    Returns the data-key ciphertext of the result; a result party gets it decrypted
    through its own session (``release``). The manager only relays data-key ciphertexts.

    >>> sharded_ridge_job.__module__  # runs on a ClusterManager of this program (see tests/test_tee.py)
    'jointml.apps.tee_train'
    """
    from ..tee.manager import Task

    stats = manager.run([Task({"op": "shard_stats", "job": job, "shard": i, "delay": delay},
                              [np.frombuffer(b, np.uint8)]) for i, b in enumerate(shard_blobs)])
    (out,) = manager.run([Task({"op": "combine", "job": job, "n_shards": len(shard_blobs), "l2": l2},
                               [s[0] for s in stats])])
    return out[0].tobytes()
