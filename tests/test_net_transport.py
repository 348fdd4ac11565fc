"""The TLS transport without a reader thread (issue 20) and injected WAN latency (issue 17)."""

import socket
import threading
import time

import numpy as np
import pytest

from jointml.core.errors import ConfigError, PeerClosed, ProtocolOutOfSync
from jointml.net import InProcessLink, create_dev_pki
from jointml.net.link import Shaper
from jointml.net.tcp import TlsFiles, connect_all


def _pair(tmp_path, **kw):
    """Two parties connected over loopback mutual TLS: {name: Communicator}."""
    return _cluster(tmp_path, ["alice", "bob"], **kw)


def _both(fa, fb):
    """Run fa and fb at once (the two parties), re-raising a failure; returns their results."""
    res, errs = [None, None], []

    def wrap(i, f):
        try:
            res[i] = f()
        except Exception as e:  # noqa: BLE001
            errs.append(e)

    ts = [threading.Thread(target=wrap, args=(i, f)) for i, f in enumerate((fa, fb))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errs, errs
    return res


def test_tls_simultaneous_large_sends_do_not_deadlock(tmp_path):
    # 24 MB each way at once, far beyond the socket buffers: each blocked sender must read
    # the other's bytes meanwhile (there is no reader thread any more).
    c = _pair(tmp_path)
    xa = np.arange(3_000_000, dtype=np.uint64)
    xb = xa[::-1].copy()

    def party(me, other, x):
        c[me].send(other, "big", x)
        return c[me].recv_array(other, "big", np.uint64, x.shape)

    ga, gb = _both(lambda: party("alice", "bob", xa), lambda: party("bob", "alice", xb))
    assert (ga == xb).all() and (gb == xa).all()
    for v in c.values():
        v.close()


@pytest.mark.parametrize("reader", ["inline", "thread"])
def test_tls_many_small_frames_keep_order_and_tags(tmp_path, monkeypatch, reader):
    # several frames (and tags) queued before the receiver reads: parsed from one read, in order;
    # a wrong tag is still caught (also with the reader thread kept for comparisons)
    monkeypatch.setenv("JOINTML_NET_READER", reader)
    c = _pair(tmp_path)
    assert all(link._threaded == (reader == "thread") for comm in c.values() for link in comm.links.values())
    for i in range(50):
        c["alice"].send("bob", f"t{i % 3}", np.full(i % 7, i, dtype=np.int64))
    time.sleep(0.05)
    for i in range(50):
        got = c["bob"].recv("alice", f"t{i % 3}").arrays[0]
        assert got.tolist() == [i] * (i % 7)
    c["alice"].send("bob", "mul")
    with pytest.raises(ProtocolOutOfSync, match="expected message 'trunc'"):
        c["bob"].recv("alice", "trunc", timeout=5)
    for v in c.values():
        v.close()


def test_tls_peer_close_while_waiting_fails_fast(tmp_path):
    c = _pair(tmp_path)
    threading.Timer(0.2, c["alice"].close).start()
    t0 = time.perf_counter()
    with pytest.raises(PeerClosed, match="alice"):
        c["bob"].recv("alice", "never", timeout=20)
    assert time.perf_counter() - t0 < 5
    c["bob"].close()


def _ping_pong(comm_a, comm_b, n):
    def a():
        t0 = time.perf_counter()
        for _ in range(n):
            comm_a.send("bob", "ping", np.zeros(4))
            comm_a.recv("bob", "pong")
        return time.perf_counter() - t0

    def b():
        for _ in range(n):
            comm_b.recv("alice", "ping")
            comm_b.send("alice", "pong", np.zeros(4))

    return _both(a, b)[0]


def test_injected_delay_makes_a_round_trip_cost_two_delays_over_tls(tmp_path):
    c = _pair(tmp_path, delay_ms=20)
    n = 5
    dt = _ping_pong(c["alice"], c["bob"], n)
    assert dt >= n * 2 * 0.020  # each round trip crosses the (delayed) link twice
    assert dt < n * 2 * 0.020 + 2.0
    for v in c.values():
        v.close()


def test_injected_delay_from_the_environment_in_process(monkeypatch):
    from jointml.net.link import Communicator

    monkeypatch.setenv("JOINTML_NET_DELAY_MS", "15")
    la, lb = InProcessLink.pair("alice", "bob")
    ca, cb = Communicator("alice", {"bob": la}), Communicator("bob", {"alice": lb})
    dt = _ping_pong(ca, cb, 4)
    assert dt >= 4 * 2 * 0.015
    # a simultaneous exchange (both send, then both receive) is one delay, not two
    t0 = time.perf_counter()
    _both(lambda: (ca.send("bob", "x", np.zeros(1)), ca.recv("bob", "x")),
          lambda: (cb.send("alice", "x", np.zeros(1)), cb.recv("alice", "x")))
    assert 0.015 <= time.perf_counter() - t0 < 0.015 * 2 + 0.5
    monkeypatch.setenv("JOINTML_NET_DELAY_MS", "soon")
    with pytest.raises(ConfigError, match="JOINTML_NET_DELAY_MS"):
        InProcessLink.pair("alice", "bob")


def test_bandwidth_cap_serialises_messages():
    la, lb = InProcessLink.pair("alice", "bob", bandwidth_mbps=80)  # 10 MB/s
    t0 = time.perf_counter()
    for _ in range(4):
        la.send("x", np.zeros(125_000, dtype=np.uint64))  # 1 MB each: 0.1 s each at 10 MB/s
    for _ in range(4):
        lb.recv("x")
    assert time.perf_counter() - t0 >= 0.4
    s = Shaper(delay_ms=0, bandwidth_mbps=8)
    assert s.due(5.0, 10**6) == pytest.approx(6.0)  # 1 MB at 1 MB/s


def test_benchmarks_doc_transport_examples_run():
    """docs/benchmarks.md, section "SS-LR and transport": its examples run as doctests."""
    import doctest
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    section = text[text.index("## SS-LR and transport"):]
    section = section[: section.find("\n## ", 5)] if "\n## " in section[5:] else section
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for i, code in enumerate(blocks):
        runner.run(parser.get_doctest(code, {"np": np}, f"benchmarks.md[{i}]", "docs/benchmarks.md", 0))
    assert runner.summarize(verbose=False).failed == 0


def _cluster(tmp_path, names, **kw):
    """Parties connected pairwise over loopback mutual TLS, each link set up in its own thread."""
    certs = create_dev_pki(tmp_path, names)
    ls, addrs = {}, {}
    for n in names:
        s = socket.create_server(("127.0.0.1", 0))
        ls[n], addrs[n] = s, ("127.0.0.1", s.getsockname()[1])
    out, errs = {}, {}

    def run(n):
        try:
            tls = TlsFiles(certs[n].ca, certs[n].cert, certs[n].key)
            out[n] = connect_all(n, addrs, tls, listener=ls[n], connect_timeout=10.0, order=names, **kw)
        except Exception as e:  # noqa: BLE001
            errs[n] = e

    ts = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs, errs
    return out


RING_WORDS = 8_000_000  # 64 MB per message: far beyond the socket buffers (8 MB each way here)


def _ring_party(comm, me, names, words):
    """Send a large array to the next party, then receive the previous party's."""
    i = names.index(me)
    nxt, prev = names[(i + 1) % len(names)], names[(i - 1) % len(names)]
    comm.send(nxt, "ring", np.full(words, i + 1, dtype=np.uint64))
    got = comm.recv_array(prev, "ring", np.uint64, (words,))
    return int(got[0]), int(got[-1])


def test_tls_ring_of_three_large_sends_does_not_deadlock_with_inline_reading(tmp_path, monkeypatch):
    # A -> B -> C -> A, each message larger than the socket buffers, every party sending
    # before it receives: each sender blocks on a peer that is itself blocked sending to a
    # third party. A waiter that reads only the link it writes to deadlocks here (the inline
    # reader before the poller did); one that reads every link of the party drains the ring.
    monkeypatch.setenv("JOINTML_NET_READER", "inline")
    names = ["alice", "bob", "carol"]
    c = _cluster(tmp_path, names, recv_timeout=30)
    assert all(not link._threaded for comm in c.values() for link in comm.links.values())
    res, errs = {}, []

    def run(me):
        try:
            res[me] = _ring_party(c[me], me, names, RING_WORDS)
        except Exception as e:  # noqa: BLE001
            errs.append(e)

    ts = [threading.Thread(target=run, args=(n,), daemon=True) for n in names]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    stuck = [t.name for t in ts if t.is_alive()]
    for comm in c.values():
        comm.close()
    assert not stuck, "the ring deadlocked"
    assert not errs, errs
    assert res == {"alice": (3, 3), "bob": (1, 1), "carol": (2, 2)}


def _ring_program(ctx, words):
    return _ring_party(ctx.comm, ctx.me, list(ctx.parties), words)


@pytest.mark.slow
def test_ring_of_three_large_sends_between_party_processes(monkeypatch):
    # the real case: each party its own process, polling only its own links
    from jointml.runtime import simulate

    monkeypatch.setenv("JOINTML_NET_READER", "inline")
    names = ["alice", "bob", "carol"]
    res = simulate(_ring_program, names, mode="process", args=(RING_WORDS,), timeout=120, recv_timeout=60)
    assert res == {"alice": (3, 3), "bob": (1, 1), "carol": (2, 2)}


def test_concurrent_waiters_of_two_clusters_in_one_process_are_each_woken(tmp_path, monkeypatch):
    # inline links of one process share one poller: one waiting thread polls for all and the
    # others wait for it to read their frames. Four parties of two clusters ping-pong at once
    # (four threads waiting together); a follower not woken at once would wait out the
    # leader's 1 s poll on almost every message.
    monkeypatch.setenv("JOINTML_NET_READER", "inline")
    c1 = _cluster(tmp_path / "one", ["alice", "bob"])
    c2 = _cluster(tmp_path / "two", ["carol", "dave"])
    n, errs, done = 300, [], []

    def ping(comm, peer, first):
        try:
            for i in range(n):
                if first:
                    comm.send(peer, "ping", np.full(3, i, dtype=np.int64))
                    assert comm.recv_array(peer, "pong", np.int64, (3,)).tolist() == [i + 1] * 3
                else:
                    got = comm.recv_array(peer, "ping", np.int64, (3,))
                    comm.send(peer, "pong", got + 1)
            done.append(peer)
        except Exception as e:  # noqa: BLE001
            errs.append(e)

    jobs = [(c1["alice"], "bob", True), (c1["bob"], "alice", False), (c2["carol"], "dave", True), (c2["dave"], "carol", False)]
    ts = [threading.Thread(target=ping, args=j, daemon=True) for j in jobs]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    elapsed = time.perf_counter() - t0
    for comm in (*c1.values(), *c2.values()):
        comm.close()
    assert not errs, errs
    assert len(done) == 4
    assert elapsed < 30, f"{4 * n} messages took {elapsed:.1f} s: waiters were not woken"


def test_reader_mode_is_checked(monkeypatch):
    from jointml.net.tcp import reader_mode

    monkeypatch.delenv("JOINTML_NET_READER", raising=False)
    assert reader_mode() == "inline"
    monkeypatch.setenv("JOINTML_NET_READER", "Thread ")
    assert reader_mode() == "thread"
    monkeypatch.setenv("JOINTML_NET_READER", "threads")
    with pytest.raises(ConfigError, match="JOINTML_NET_READER"):
        reader_mode()


def test_spinning_waiter_exchanges_correctly_and_bad_spin_is_refused(tmp_path, monkeypatch):
    # JOINTML_NET_SPIN_US: a waiting leader polls without sleeping first (opt-in); messages
    # still arrive in order whether they come within the spin or after it
    import jointml.net.tcp as tcp

    monkeypatch.setenv("JOINTML_NET_READER", "inline")
    monkeypatch.setenv("JOINTML_NET_SPIN_US", "300")
    monkeypatch.setattr(tcp, "_POLLER", None)  # a poller reading the setting now
    c = _cluster(tmp_path, ["alice", "bob"])
    assert tcp._poller().spin == 0.0003

    def b():
        for i in range(100):
            got = c["bob"].recv_array("alice", "ping", np.int64, (2,))
            if i % 10 == 0:
                time.sleep(0.002)  # an answer later than the spin
            c["bob"].send("alice", "pong", got * 2)

    def a():
        out = []
        for i in range(100):
            c["alice"].send("bob", "ping", np.array([i, -i]))
            out.append(c["alice"].recv_array("bob", "pong", np.int64, (2,)).tolist())
        return out

    got, _ = _both(a, b)
    assert got == [[2 * i, -2 * i] for i in range(100)]
    for comm in c.values():
        comm.close()
    monkeypatch.setattr(tcp, "_POLLER", None)
    monkeypatch.setenv("JOINTML_NET_SPIN_US", "fast")
    with pytest.raises(ConfigError, match="JOINTML_NET_SPIN_US"):
        tcp._spin_seconds()
