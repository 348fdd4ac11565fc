"""Federated learning over mutual-TLS links: a client whose certificate is not from the cluster's CA
cannot join (refused at link setup); with the cluster's certificates, SecAgg+ runs over the links."""

from __future__ import annotations

import socket
import threading

import numpy as np

from jointml.core.errors import AuthenticationError, PeerUnreachable
from jointml.ml.fl import SecAggParams, SecAggSession
from jointml.net import create_dev_pki
from jointml.net.tcp import TlsFiles, connect_all
from jointml.runtime.collectives import broadcast
from jointml.runtime.context import PartyContext

NAMES = ["agg", "bank-a", "bank-b", "bank-c"]


def _run_parties(tls_for, program=None, connect_timeout=3.0):
    ls, addrs = {}, {}
    for n in NAMES:
        s = socket.create_server(("127.0.0.1", 0))
        ls[n], addrs[n] = s, ("127.0.0.1", s.getsockname()[1])
    out, errs = {}, {}

    def run(n):
        try:
            comm = connect_all(n, addrs, tls_for(n), listener=ls[n], connect_timeout=connect_timeout, order=NAMES)
            try:
                out[n] = program(PartyContext(n, NAMES, comm)) if program else None
            finally:
                comm.close()
        except Exception as e:  # noqa: BLE001
            errs[n] = e

    ts = [threading.Thread(target=run, args=(n,)) for n in NAMES]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out, errs


def _secagg(ctx):
    sa = SecAggSession(ctx, "agg", NAMES[1:], SecAggParams(threshold=2, min_signers=2))
    x = None if ctx.me == "agg" else np.full(3, float(NAMES.index(ctx.me)))
    res = sa.aggregate(x, dim=3)
    broadcast(ctx, "agg", meta={})
    return None if res is None else res.total.tolist()


def test_client_with_a_certificate_from_another_ca_is_refused(tmp_path):
    good = create_dev_pki(tmp_path / "cluster", NAMES)
    rogue = create_dev_pki(tmp_path / "rogue", NAMES)

    def tls(n):
        c = rogue[n] if n == "bank-b" else good[n]
        return TlsFiles(c.ca, c.cert, c.key)

    out, errs = _run_parties(tls, _secagg, connect_timeout=1.5)
    assert isinstance(errs.get("bank-b"), (AuthenticationError, PeerUnreachable))
    others = [n for n in NAMES if n != "bank-b"]
    assert all(isinstance(errs.get(n), (AuthenticationError, PeerUnreachable)) for n in others), errs
    assert not out  # nobody started the protocol


def test_secagg_over_tls_links_with_cluster_certificates(tmp_path):
    good = create_dev_pki(tmp_path, NAMES)
    out, errs = _run_parties(lambda n: TlsFiles(good[n].ca, good[n].cert, good[n].key), _secagg)
    assert not errs, errs
    assert np.allclose(out["agg"], 1 + 2 + 3, atol=3 * SecAggParams().quant_step)
