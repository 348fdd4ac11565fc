"""`jointml bench lr`: SS-LR training throughput on synthetic vertically partitioned data.

Two data parties (D/2 features each, labels at the first) and a dealer, as separate
processes over TLS. Reports training samples per second, bytes per sample and the
test AUC, beside numpy mini-batch SGD and scikit-learn on the same data in the same run.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from ..core.prg import public_rng
from ..mpc import MpcDevice
from ..runtime import simulate
from .anchors import spu_lr_same_run


def make_data(rows: int, features: int, seed: int = 0):
    """Public synthetic data: (X_train, y_train, X_test, y_test), max(1000, rows/10) test rows.

    >>> [a.shape for a in make_data(1200, 4)]
    [(200, 4), (200,), (1000, 4), (1000,)]
    """
    # Public synthetic benchmark data: numpy's generator protects nothing here.
    g = public_rng(seed)
    X = g.normal(size=(rows, features))
    w = g.normal(size=features) * (2.0 / np.sqrt(features))
    logits = X @ w - 0.5
    y = (g.random(rows) < 1 / (1 + np.exp(-logits))).astype(np.float64)
    n_test = max(1000, rows // 10)
    return X[:-n_test], y[:-n_test], X[-n_test:], y[-n_test:]


def _pingpong_peer(role: str, tls: dict, port: int, rounds: int, size: int, out: Any) -> None:
    """One end of the raw TLS ping-pong: `size`-byte messages, stdlib ssl, no framework."""
    import socket
    import struct

    from ..net.tcp import TlsFiles, client_context, server_context

    files = TlsFiles(**tls)
    if role == "server":
        lst = socket.create_server(("127.0.0.1", port))
        out.put(("port", lst.getsockname()[1]))
        raw, _ = lst.accept()
        lst.close()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = server_context(files).wrap_socket(raw, server_side=True)
    else:
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = client_context(files).wrap_socket(raw, server_hostname="bob")
    msg = struct.pack("<Q", size) + bytes(size)
    buf = bytearray(len(msg))

    def read_one() -> None:
        mv, got = memoryview(buf), 0
        while got < len(buf):
            k = s.recv_into(mv[got:])
            if k == 0:
                raise ConnectionError("peer closed")
            got += k

    s.sendall(msg) if role == "client" else read_one()  # warm up (and the TLS 1.3 tickets)
    s.sendall(msg) if role == "server" else read_one()
    t0 = time.perf_counter()
    for _ in range(rounds):
        if role == "client":
            s.sendall(msg)
            read_one()
        else:
            read_one()
            s.sendall(msg)
    dt = time.perf_counter() - t0
    if role == "client":
        out.put(("rtt_us", dt / rounds * 1e6))
    s.close()


def tls_round_trip(rounds: int = 2000, size: int = 64) -> float:
    """Microseconds per round trip of a `size`-byte message between two Python processes over
    loopback TLS 1.3 (stdlib ssl, TCP_NODELAY, no framework): the floor of one protocol round.

    >>> tls_round_trip(rounds=20) > 0
    True
    """
    import multiprocessing as mp
    import shutil
    import tempfile

    from ..net.certs import create_dev_pki

    tmp = tempfile.mkdtemp(prefix="jointml-pingpong-")
    try:
        certs = create_dev_pki(tmp, ["alice", "bob"], days=1)
        tls = {p: {"ca": certs[p].ca, "cert": certs[p].cert, "key": certs[p].key} for p in ("alice", "bob")}
        ctx: Any = mp.get_context("fork" if os.name == "posix" else "spawn")
        q = ctx.Queue()
        srv = ctx.Process(target=_pingpong_peer, args=("server", tls["bob"], 0, rounds, size, q), daemon=True)
        srv.start()
        _, port = q.get(timeout=30)
        cli = ctx.Process(target=_pingpong_peer, args=("client", tls["alice"], port, rounds, size, q), daemon=True)
        cli.start()
        _, rtt = q.get(timeout=120)
        for pr in (cli, srv):
            pr.join(timeout=5)
        return float(rtt)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _link_pingpong(ctx, rounds, size):
    from ..runtime.collectives import send_to

    x = np.zeros(size // 8, dtype=np.uint64)
    check = {"dtypes": [np.uint64], "shapes": [x.shape]}

    def one():
        send_to(ctx, "alice", "bob", arrays=[x], name="ping", **check)
        send_to(ctx, "bob", "alice", arrays=[x], name="pong", **check)

    for _ in range(min(rounds, 100)):  # warm up
        one()
    t0 = time.perf_counter()
    for _ in range(rounds):
        one()
    return (time.perf_counter() - t0) / rounds * 1e6


def link_round_trip(rounds: int = 2000, size: int = 64) -> float:
    """Microseconds per round trip of a `size`-byte array message between two party processes
    through jointml's collectives and links (TLS, wire format, tags, sequence numbers, dtype
    and shape checked): `tls_round_trip` plus what the framework adds per protocol round.

    >>> link_round_trip(rounds=20) > 0
    True
    """
    res = simulate(_link_pingpong, ["alice", "bob"], mode="process", args=(rounds, size))
    return float(res["alice"])


def _program(ctx, rows, features, epochs, batch_size, lr, sigmoid, protocol):
    from ..ml.linear import SSLogisticRegression

    Xtr, ytr, Xte, yte = make_data(rows, features)
    h = features // 2
    parts = ["alice", "bob"] if protocol == "semi2k" else ["alice", "bob", "carol"]
    mpc = MpcDevice(ctx, parts, protocol=protocol, dealer="dealer" if protocol == "semi2k" else None)
    xa = ctx.party("alice").run(lambda: Xtr[:, :h])
    xb = ctx.party("bob").run(lambda: Xtr[:, h:])
    y = ctx.party("alice").run(lambda: ytr)
    model = SSLogisticRegression(mpc, epochs=epochs, batch_size=batch_size, learning_rate=lr, sigmoid=sigmoid, reveal="shared")
    ctx.reset_stats()
    t0 = time.perf_counter()
    model.fit({"alice": xa, "bob": xb}, y)
    seconds = time.perf_counter() - t0
    stats = ctx.stats()
    p = model.predict(
        {"alice": ctx.party("alice").run(lambda: Xte[:, :h]), "bob": ctx.party("bob").run(lambda: Xte[:, h:])}, to="alice"
    )
    auc = None
    if ctx.me == "alice":
        from ..data.metrics import roc_auc

        auc = float(roc_auc(yte, p.value))
    return {
        "seconds": seconds,
        "stats": stats,
        "auc": auc,
        "samples": model.n_samples_seen_,
        "setup_seconds": model.setup_seconds_,
        "epoch_seconds": [h["seconds"] for h in model.history_],
        "batches": model.n_iter_,
        "loop_rounds": model.loop_rounds_,
        "loop_seconds": model.loop_seconds_,
    }


def _baseline(rows, features, epochs, batch_size, lr):
    from ..data.metrics import roc_auc

    Xtr, ytr, Xte, yte = make_data(rows, features)
    w = np.zeros(features)
    b = 0.0
    t0 = time.perf_counter()
    n = len(Xtr)
    for _ in range(epochs):
        for lo in range(0, n, batch_size):
            xb, yb = Xtr[lo : lo + batch_size], ytr[lo : lo + batch_size]
            r = 1 / (1 + np.exp(-(xb @ w + b))) - yb
            w -= lr * (xb.T @ r) / len(yb)
            b -= lr * r.mean()
    sgd_s = time.perf_counter() - t0
    sgd_auc = float(roc_auc(yte, xb_score(Xte, w, b)))
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    sk = LogisticRegression(max_iter=1000).fit(Xtr, ytr)
    sk_s = time.perf_counter() - t0
    sk_auc = float(roc_auc(yte, sk.decision_function(Xte)))
    return {"sgd_seconds": sgd_s, "sgd_auc": sgd_auc, "sklearn_seconds": sk_s, "sklearn_auc": sk_auc}


def xb_score(X, w, b):
    """Linear scores X @ w + b.

    >>> xb_score(np.ones((2, 3)), np.array([1.0, 2.0, 3.0]), 0.5).tolist()
    [6.5, 6.5]
    """
    return X @ w + b


def run(
    rows: int = 100_000,
    features: int = 100,
    epochs: int = 1,
    batch_size: int = 1024,
    learning_rate: float = 0.5,
    sigmoid: str = "seg3",
    protocol: str = "semi2k",
    anchor: bool = False,
    delay_ms: float | None = None,
    bandwidth_mbps: float | None = None,
    tls_rtt: bool = True,
) -> dict:
    """SS-LR training figures beside numpy SGD and scikit-learn measured in the same run; with
    `anchor`, SPU's LR epoch is measured now too and the ratio to it reported.

    Also: rounds per batch and microseconds per round of the batch loop, and (`tls_rtt`) the
    round trip of a raw stdlib-TLS ping-pong between two processes measured now, so the
    cost of one protocol round can be read against the transport's floor, and the same
    ping-pong through jointml's links (`link_round_trip_us`: the transport's own cost). `delay_ms` /
    `bandwidth_mbps` inject a one-way latency / bandwidth cap into every link
    (`jointml.net.link.injected_latency`)."""
    from ..net.link import injected_latency

    spu = spu_lr_same_run() if anchor else None
    rtt = tls_round_trip() if tls_rtt else None
    link_rtt = link_round_trip() if tls_rtt else None
    cluster = ["alice", "bob", "dealer"] if protocol == "semi2k" else ["alice", "bob", "carol"]
    with injected_latency(delay_ms, bandwidth_mbps):
        res = simulate(
            _program,
            cluster,
            mode="process",
            args=(rows, features, epochs, batch_size, learning_rate, sigmoid, protocol),
            options={"warm_heap_mb": 256},
        )
    base = _baseline(rows, features, epochs, batch_size, learning_rate)
    a = res["alice"]
    loop_rounds = max(r["loop_rounds"] for r in res.values())
    loop_seconds = max(r["loop_seconds"] for r in res.values())
    seconds = max(r["seconds"] for r in res.values())
    total = sum(r["stats"]["bytes_sent"] for r in res.values())
    return {
        "figure": "ss_lr_train",
        "protocol": protocol,
        "rows": rows,
        "features": features,
        "epochs": epochs,
        "batch_size": batch_size,
        "sigmoid": sigmoid,
        "samples_per_second": round(a["samples"] / seconds),
        "bytes_per_sample": round(total / a["samples"], 1),
        "rounds": max(r["stats"]["rounds"] for r in res.values()),
        "rounds_per_batch": round(loop_rounds / max(a["batches"], 1), 2),
        "us_per_round": round(loop_seconds / max(loop_rounds, 1) * 1e6, 1),
        "tls_round_trip_us": None if rtt is None else round(rtt, 1),
        "round_over_tls_rtt": None if rtt is None else round(loop_seconds / max(loop_rounds, 1) * 1e6 / rtt, 2),
        "link_round_trip_us": None if link_rtt is None else round(link_rtt, 1),
        "delay_ms": delay_ms,
        "bandwidth_mbps": bandwidth_mbps,
        "auc": round(a["auc"], 4),
        "baseline_auc": round(base["sklearn_auc"], 4),
        "baseline_sgd_auc": round(base["sgd_auc"], 4),
        "seconds": round(seconds, 3),
        "setup_seconds": round(a["setup_seconds"], 3),
        "loop_samples_per_second": round(a["samples"] / max(a["epoch_seconds"][-1], 1e-9)),
        "baseline_seconds": round(base["sgd_seconds"], 4),
        "baseline_sklearn_seconds": round(base["sklearn_seconds"], 4),
        "spu_samples_per_second_same_run": spu,
        "ratio_to_spu_same_run": round(a["samples"] / seconds / spu, 2) if spu else None,
    }


if __name__ == "__main__":
    import json
    import sys

    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    features = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    print(json.dumps(run(rows, features)))
