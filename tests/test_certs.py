"""Issue 11 item 4: key management (per-organisation keys and CSRs, a CA operator, pins, lifetimes)."""

import datetime as dt
import socket
import threading

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jointml.cli.main import main
from jointml.core.errors import AuthenticationError, ConfigError, CryptoError, PeerUnreachable
from jointml.net.certs import (
    cert_party_names,
    create_ca,
    create_dev_pki,
    create_request,
    fingerprint,
    sign_request,
)
from jointml.net.tcp import TlsFiles, connect_all
from jointml.runtime import ClusterConfig, run_party


def _cli(*args):
    return CliRunner().invoke(main, ["certs", *map(str, args)])


def _free_ports(n):
    ports = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    return ports


def _prog(ctx):
    from jointml.runtime.collectives import broadcast

    first = ctx.parties[0]
    got = broadcast(ctx, first, meta={"x": [0.0, 1.0, 2.0]} if ctx.me == first else None)
    return {"x": got.meta["x"]}


def test_csr_flow_forms_a_working_tls_cluster(tmp_path):
    names = ["bank", "partner", "dealer"]
    assert _cli("init-ca", "--out", tmp_path / "ca").exit_code == 0
    for n in names:
        # each organisation makes its own key; only the CSR goes to the CA operator
        r = _cli("request", "--party", n, "--out", tmp_path / n)
        assert r.exit_code == 0, r.output
        r = _cli("sign", "--ca", tmp_path / "ca", "--csr", tmp_path / n / f"{n}.csr", "--out", tmp_path / n / f"{n}.crt", "--days", 30)
        assert r.exit_code == 0, r.output
        assert r.output.startswith(f"{n}: certificate ")
        fp = _cli("fingerprint", tmp_path / n / f"{n}.crt").output.strip()
        assert fp == fingerprint(tmp_path / n / f"{n}.crt") and fp in r.output
    assert not (tmp_path / "ca" / "bank.key").exists()  # the CA operator never saw a party key
    cert = x509.load_pem_x509_certificate((tmp_path / "bank" / "bank.crt").read_bytes())
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=29) < life < dt.timedelta(days=31)
    ports = _free_ports(3)
    cfg = {
        "parties": {n: {"address": f"127.0.0.1:{p}", "cert": f"{n}/{n}.crt", "key": f"{n}/{n}.key",
                        "fingerprint": fingerprint(tmp_path / n / f"{n}.crt")} for n, p in zip(names, ports)},
        "ca": "ca/ca.crt",
        "connect_timeout": 20,
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert ClusterConfig.load(path).tls_for("bank").pins.keys() == {"partner", "dealer"}
    out, errs = {}, {}

    def go(n):
        try:
            out[n] = run_party(_prog, n, str(path))
        except Exception as e:  # noqa: BLE001
            errs[n] = e

    ts = [threading.Thread(target=go, args=(n,)) for n in names]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errs, errs
    assert out["dealer"]["x"] == [0.0, 1.0, 2.0]


def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_init_ca_refuses_to_replace_a_ca_without_force(tmp_path):
    assert _cli("init-ca", "--out", tmp_path).exit_code == 0
    before = _snapshot(tmp_path)
    r = _cli("init-ca", "--out", tmp_path)
    assert r.exit_code != 0 and "refusing to overwrite" in r.output
    assert _snapshot(tmp_path) == before
    with pytest.raises(ConfigError, match="refusing"):
        create_ca(tmp_path)
    assert _cli("init-ca", "--out", tmp_path, "--force").exit_code == 0
    assert _snapshot(tmp_path)["ca.key"] != before["ca.key"]


def test_dev_shortcut_refuses_to_replace_the_ca_or_a_key_without_force(tmp_path):
    assert _cli("--out", tmp_path, "bank", "partner", "dealer").exit_code == 0
    before = _snapshot(tmp_path)
    # re-running for one party used to replace the CA silently, breaking the other two
    r = _cli("--out", tmp_path, "bank")
    assert r.exit_code != 0 and "refusing to overwrite" in r.output and "ca.key" in r.output
    assert _snapshot(tmp_path) == before
    with pytest.raises(ConfigError):
        create_dev_pki(tmp_path, ["carol"])
    assert _snapshot(tmp_path) == before  # nothing written, not even the new party's files
    r = _cli("--out", tmp_path, "--force", "bank")
    assert r.exit_code == 0, r.output
    assert _snapshot(tmp_path)["ca.key"] != before["ca.key"]


def test_request_and_sign_refuse_to_overwrite(tmp_path):
    csr, key = create_request(tmp_path, "bank")
    k = key.read_bytes()
    r = _cli("request", "--party", "bank", "--out", tmp_path)
    assert r.exit_code != 0 and "refusing" in r.output
    assert key.read_bytes() == k
    assert (key.stat().st_mode & 0o777) == 0o600
    create_ca(tmp_path / "ca")
    sign_request(tmp_path / "ca", csr, tmp_path / "bank.crt")
    with pytest.raises(ConfigError, match="refusing"):
        sign_request(tmp_path / "ca", csr, tmp_path / "bank.crt")


def _csr(key, cn, dns=None):
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if dns is not None:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return b.sign(key, hashes.SHA256())


def test_sign_takes_the_party_from_the_san_and_checks_it(tmp_path):
    create_ca(tmp_path / "ca")
    key = ec.generate_private_key(ec.SECP256R1())
    cases = {"san_bank_cn_partner": (["bank"], None), "no_san": (None, "no DNS subject-alternative name"),
             "bad_name": (["1bank"], "invalid party name"), "two": (["bank", "partner"], "exactly one party")}
    for fname, (dns, err) in cases.items():
        path = tmp_path / f"{fname}.csr"
        path.write_bytes(_csr(key, "partner", dns).public_bytes(serialization.Encoding.PEM))
        if err is None:
            party, crt = sign_request(tmp_path / "ca", path, tmp_path / f"{fname}.crt")
            assert party == "bank"
            assert cert_party_names(x509.load_pem_x509_certificate(crt.read_bytes())) == {"bank"}
        else:
            with pytest.raises(ConfigError, match=err):
                sign_request(tmp_path / "ca", path, tmp_path / f"{fname}.crt")
    tampered = tmp_path / "tampered.csr"
    tampered.write_bytes(b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n")
    with pytest.raises(CryptoError):
        sign_request(tmp_path / "ca", tampered, tmp_path / "t.crt")


def test_cluster_config_rejects_a_malformed_fingerprint():
    with pytest.raises(ConfigError, match="fingerprint"):
        ClusterConfig.from_dict({"parties": {"bank": {"address": "h:1", "fingerprint": "sha1:abcd"}}, "ca": "ca.crt"})


# --- certificate lifetimes: TLS refuses expired and not-yet-valid certificates -----------------


def _cert_with_validity(tmp_path, party, not_before, not_after):
    """A certificate for `party` from the cluster CA in tmp_path, with the given validity window."""
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(party)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    d = tmp_path / "odd"
    d.mkdir(exist_ok=True)
    (d / f"{party}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / f"{party}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return TlsFiles(tmp_path / "ca.crt", d / f"{party}.crt", d / f"{party}.key")


def _connect_two(tls, timeout=3.0):
    names = ["alice", "bob"]
    ls = {n: socket.create_server(("127.0.0.1", 0)) for n in names}
    addrs = {n: ("127.0.0.1", s.getsockname()[1]) for n, s in ls.items()}
    out, errs = {}, {}

    def run(n):
        try:
            out[n] = connect_all(n, addrs, tls[n], listener=ls[n], connect_timeout=timeout, order=names)
        except Exception as e:  # noqa: BLE001
            errs[n] = e

    ts = [threading.Thread(target=run, args=(n,)) for n in names]
    [t.start() for t in ts]
    [t.join() for t in ts]
    for c in out.values():
        c.close()
    return errs


@pytest.mark.parametrize("when", ["expired", "not_yet_valid"])
@pytest.mark.parametrize("who", ["alice", "bob"])  # alice dials, bob accepts
def test_certificate_outside_its_validity_is_refused(tmp_path, when, who):
    certs = create_dev_pki(tmp_path, ["alice", "bob"])
    now = dt.datetime.now(dt.timezone.utc)
    window = (now - dt.timedelta(days=30), now - dt.timedelta(days=1)) if when == "expired" else (
        now + dt.timedelta(days=1), now + dt.timedelta(days=30))
    tls = {n: TlsFiles(certs[n].ca, certs[n].cert, certs[n].key) for n in certs}
    tls[who] = _cert_with_validity(tmp_path, who, *window)
    errs = _connect_two(tls)
    assert isinstance(errs.get("alice"), AuthenticationError), errs
    assert isinstance(errs.get("bob"), (AuthenticationError, PeerUnreachable)), errs
    if who == "bob":
        assert "bob" in str(errs["alice"]) and ("expired" in str(errs["alice"]) or "not yet valid" in str(errs["alice"]))
