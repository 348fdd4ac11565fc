import socket
import threading

import numpy as np
import pytest

from jointml.core.errors import AuthenticationError, LinkTimeout, PeerClosed, PeerUnreachable, ProtocolOutOfSync, WireFormatError
from jointml.net import InProcessLink, create_dev_pki
from jointml.net.tcp import TlsFiles, connect_all


def test_in_process_link_counts_and_validates():
    a, b = InProcessLink.pair("alice", "bob")
    n = a.send("x", np.arange(5, dtype=np.uint64), meta={"k": 1})
    m = b.recv("x")
    assert (m.arrays[0] == np.arange(5)).all() and m.meta == {"k": 1}
    assert a.stats.bytes_sent == n + 8 == b.stats.bytes_recv
    assert a.stats.msgs_sent == 1


def test_out_of_sync_is_detected():
    a, b = InProcessLink.pair("alice", "bob")
    a.send("mul")
    with pytest.raises(ProtocolOutOfSync, match="expected message 'trunc'"):
        b.recv("trunc")


def test_recv_timeout_is_clear():
    a, b = InProcessLink.pair("alice", "bob", recv_timeout=0.1)
    with pytest.raises(LinkTimeout, match="bob"):
        a.recv("x")


def test_malformed_frame_rejected():
    a, b = InProcessLink.pair("alice", "bob")
    b.inject(b"\xff\xff\xff\x00garbage")
    with pytest.raises(WireFormatError, match="alice"):
        b.recv("x")


def test_peer_close_fails_fast():
    a, b = InProcessLink.pair("alice", "bob")
    a.close()
    with pytest.raises(PeerClosed):
        b.recv("x", timeout=5)


def _listeners(names):
    ls, addrs = {}, {}
    for n in names:
        s = socket.create_server(("127.0.0.1", 0))
        ls[n] = s
        addrs[n] = ("127.0.0.1", s.getsockname()[1])
    return ls, addrs


def _connect_parallel(names, addrs, ls, tls_for, timeout=5.0):
    out, errs = {}, {}

    def run(n):
        try:
            out[n] = connect_all(n, addrs, tls_for(n), listener=ls[n], connect_timeout=timeout, order=names)
        except Exception as e:  # noqa: BLE001
            errs[n] = e

    ts = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out, errs


def test_tls_links_exchange_data(tmp_path):
    names = ["alice", "bob", "carol"]
    certs = create_dev_pki(tmp_path, names)
    ls, addrs = _listeners(names)
    comms, errs = _connect_parallel(names, addrs, ls, lambda n: TlsFiles(certs[n].ca, certs[n].cert, certs[n].key))
    assert not errs, errs
    big = np.arange(3_000_000, dtype=np.uint64)
    comms["alice"].send("bob", "t", big)
    comms["carol"].send("bob", "t", big[:10])
    assert (comms["bob"].recv("alice", "t").arrays[0] == big).all()
    assert (comms["bob"].recv("carol", "t").arrays[0] == big[:10]).all()
    assert comms["alice"].stats()["bytes_sent"] > big.nbytes
    assert comms["alice"].stats()["rounds"] == 1
    # a closed peer is reported, not waited for
    comms["carol"].close()
    with pytest.raises(PeerClosed, match="carol"):
        comms["bob"].recv("carol", "u", timeout=10)
    for c in comms.values():
        c.close()


def test_tls_refuses_certificate_from_another_ca(tmp_path):
    names = ["alice", "bob"]
    good = create_dev_pki(tmp_path / "good", names)
    rogue = create_dev_pki(tmp_path / "rogue", names)
    ls, addrs = _listeners(names)
    tls = {"alice": TlsFiles(rogue["alice"].ca, rogue["alice"].cert, rogue["alice"].key), "bob": TlsFiles(good["bob"].ca, good["bob"].cert, good["bob"].key)}
    comms, errs = _connect_parallel(names, addrs, ls, tls.get, timeout=2.0)
    assert isinstance(errs.get("alice"), AuthenticationError)
    assert isinstance(errs.get("bob"), (AuthenticationError, PeerUnreachable))


def test_tls_refuses_party_impersonation(tmp_path):
    # mallory holds a valid cluster certificate but claims to be alice
    certs = create_dev_pki(tmp_path, ["alice", "bob", "mallory"])
    names = ["alice", "bob"]
    ls, addrs = _listeners(names)
    tls = {"alice": TlsFiles(certs["mallory"].ca, certs["mallory"].cert, certs["mallory"].key), "bob": TlsFiles(certs["bob"].ca, certs["bob"].cert, certs["bob"].key)}
    comms, errs = _connect_parallel(names, addrs, ls, tls.get, timeout=2.0)
    assert "bob" in errs
    assert isinstance(errs["bob"], (AuthenticationError, PeerUnreachable))
    assert "mallory" in str(errs["bob"]) or "alice" in str(errs["bob"])


def test_unreachable_peer_has_deadline(tmp_path):
    certs = create_dev_pki(tmp_path, ["alice", "bob"])
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens here
    with pytest.raises(PeerUnreachable, match="bob"):
        connect_all("alice", {"alice": ("127.0.0.1", 0), "bob": ("127.0.0.1", port)}, TlsFiles(certs["alice"].ca, certs["alice"].cert, certs["alice"].key), connect_timeout=0.5, order=["alice", "bob"])


# --- issue 11 item 8: an idle or hostile connection cannot stall link setup ------------------


def _idle_connections(addr, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(addr)
        socks.append(s)  # connected, never speaks TLS
    return socks


def _tls_for(certs):
    return lambda n: TlsFiles(certs[n].ca, certs[n].cert, certs[n].key)


def test_idle_unauthenticated_connection_does_not_block_cluster(tmp_path):
    names = ["alice", "bob", "carol"]
    certs = create_dev_pki(tmp_path, names)
    ls, addrs = _listeners(names)
    # an attacker connects first to the two parties that accept, and never sends a byte;
    # the per-connection handshake timeout (10 s) is longer than the whole deadline
    idle = _idle_connections(addrs["bob"], 1) + _idle_connections(addrs["carol"], 1)
    try:
        comms, errs = _connect_parallel(names, addrs, ls, _tls_for(certs), timeout=5.0)
        assert not errs, errs
        comms["alice"].send("carol", "t", np.arange(3))
        assert comms["carol"].recv_array("alice", "t", np.int64, (3,)).tolist() == [0, 1, 2]
        for c in comms.values():
            c.close()
    finally:
        for s in idle:
            s.close()


def test_flood_of_idle_connections_is_capped_and_cluster_still_forms(tmp_path):

    names = ["alice", "bob"]
    certs = create_dev_pki(tmp_path, names)
    ls, addrs = _listeners(names)
    idle = _idle_connections(addrs["bob"], 9)  # more than the 4 slots given to bob below
    out, errs = {}, {}

    def run(n, **kw):
        try:
            out[n] = connect_all(n, addrs, _tls_for(certs)(n), listener=ls[n], connect_timeout=10.0, order=names, **kw)
        except Exception as e:  # noqa: BLE001
            errs[n] = e

    ts = [threading.Thread(target=run, args=("alice",)), threading.Thread(target=run, args=("bob",), kwargs={"handshake_timeout": 1.0, "max_pending": 4})]
    try:
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errs, errs
        for c in out.values():
            c.close()
    finally:
        for s in idle:
            s.close()


# --- issue 11 item 11: frame size cap and lying length prefixes ----------------------------


def test_frame_larger_than_link_maximum_is_refused_before_reading(tmp_path):
    names = ["alice", "bob"]
    certs = create_dev_pki(tmp_path, names)
    ls, addrs = _listeners(names)
    out, errs = {}, {}

    def run(n):
        try:
            out[n] = connect_all(n, addrs, _tls_for(certs)(n), listener=ls[n], connect_timeout=5.0, order=names, max_frame=1 << 16)
        except Exception as e:  # noqa: BLE001
            errs[n] = e

    ts = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs, errs
    out["alice"].send("bob", "ok", np.zeros(10))
    assert out["bob"].recv_array("alice", "ok", np.float64, (10,)).shape == (10,)
    out["alice"].send("bob", "big", np.zeros(1 << 14))  # 128 KiB > 64 KiB
    with pytest.raises(WireFormatError, match="exceeds"):
        out["bob"].recv("alice", "big", timeout=10)
    for c in out.values():
        c.close()


def test_lying_length_prefix_does_not_allocate_up_front():
    from jointml.net import tcp

    a, b = socket.socketpair()
    try:
        a.sendall(b"x" * 1000)
        a.shutdown(socket.SHUT_WR)
        import tracemalloc

        tracemalloc.start()
        got = tcp._recv_exact(b, 1 << 30)  # claims 1 GiB, sends 1000 bytes
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert got is None
        assert peak < 64 << 20
        a2, b2 = socket.socketpair()
        payload = bytes(range(256)) * 300_000  # 76.8 MB: crosses several buffer doublings
        t = threading.Thread(target=a2.sendall, args=(payload,))
        t.start()
        assert tcp._recv_exact(b2, len(payload)) == payload
        t.join()
        a2.close()
        b2.close()
    finally:
        a.close()
        b.close()


# --- issue 11 item 4: pinned certificate fingerprints, SAN wins over CN ----------------------


def _reissued(certs, tmp_path, party):
    """A second, valid certificate for `party` from the same cluster CA (e.g. minted by whoever holds the CA key)."""
    from jointml.net.certs import issue_party_cert

    d = tmp_path / "reissued"
    d.mkdir(exist_ok=True)
    pc = issue_party_cert(d, party, certs[party].ca, certs[party].ca.parent / "ca.key")
    return TlsFiles(pc.ca, pc.cert, pc.key)


@pytest.mark.parametrize("impostor", ["alice", "bob"])  # alice dials, bob accepts
def test_pinned_fingerprint_mismatch_is_refused_at_link_setup(tmp_path, impostor):
    from jointml.net.certs import fingerprint

    names = ["alice", "bob"]
    certs = create_dev_pki(tmp_path, names)
    pins = {n: fingerprint(certs[n].cert) for n in names}
    tls = {n: TlsFiles(certs[n].ca, certs[n].cert, certs[n].key, pins={p: f for p, f in pins.items() if p != n}) for n in names}
    # correct pins: the cluster forms
    ls, addrs = _listeners(names)
    comms, errs = _connect_parallel(names, addrs, ls, tls.get)
    assert not errs, errs
    for c in comms.values():
        c.close()
    # the impostor has a CA-signed certificate for its name, but not the pinned one
    forged = _reissued(certs, tmp_path, impostor)
    tls[impostor] = TlsFiles(forged.ca, forged.cert, forged.key, pins=tls[impostor].pins)
    ls, addrs = _listeners(names)
    comms, errs = _connect_parallel(names, addrs, ls, tls.get, timeout=3.0)
    victim = "bob" if impostor == "alice" else "alice"
    assert victim in errs, errs
    assert isinstance(errs[victim], (AuthenticationError, PeerUnreachable))
    assert impostor in str(errs[victim])
    if impostor == "bob":  # the dialler reports the pin mismatch itself
        assert isinstance(errs["alice"], AuthenticationError) and "fingerprint" in str(errs["alice"])
        assert errs["alice"].party == "bob"
    for c in comms.values():
        c.close()


def test_certificate_party_name_is_its_san_not_its_cn(tmp_path):
    # mallory holds a cluster certificate whose SAN says 'mallory' and whose CN says 'alice'
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    names = ["alice", "bob"]
    certs = create_dev_pki(tmp_path, names)
    ca = x509.load_pem_x509_certificate(certs["bob"].ca.read_bytes())
    ca_key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("mallory")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "m.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "m.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    tls = {"alice": TlsFiles(certs["alice"].ca, tmp_path / "m.crt", tmp_path / "m.key"), "bob": _tls_for(certs)("bob")}
    ls, addrs = _listeners(names)
    comms, errs = _connect_parallel(names, addrs, ls, tls.get, timeout=2.0)
    assert "bob" in errs and isinstance(errs["bob"], (AuthenticationError, PeerUnreachable)), errs
    assert "mallory" in str(errs["bob"]) or "alice" in str(errs["bob"])
    for c in comms.values():
        c.close()
