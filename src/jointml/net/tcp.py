"""TCP links with mutual TLS (stdlib `ssl`), one connection per pair of parties.

The party that comes first in the cluster's order connects; the other accepts.
Both present certificates from the cluster CA. The connecting side checks that the
server's certificate names the peer it dialled (TLS hostname check against the
party name); the accepting side checks that the client's certificate names the party
announced in the first frame. A certificate's party names are its DNS
subject-alternative names; its common name counts only when it has no SAN. When the
cluster pins a peer's certificate fingerprint (`TlsFiles.pins`, SHA-256 of the DER
certificate), a peer presenting any other certificate is refused, even one signed by
the cluster CA. Anything else is refused with `AuthenticationError`; TLS itself
refuses expired or not-yet-valid certificates.

A reader thread per connection drains the socket into the link's inbox, so two
parties sending large messages to each other at once never deadlock.

Adversary model: anyone can open a TCP connection to a listening party; only holders
of a cluster certificate get a link. An unauthenticated connection cannot stall link
setup (each TLS handshake runs in its own thread with a short timeout, and at most
`MAX_PENDING` run at once), and an authenticated peer cannot make a party allocate
more than it actually sends: a frame's length prefix is checked against the link's
`max_frame` before reading, and the body buffer grows with the bytes that arrive.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import wire
from ..core.errors import AuthenticationError, ConfigError, PeerClosed, PeerUnreachable, WireFormatError
from .certs import fingerprint_der, normalize_fingerprint
from .link import Communicator, Link, _Closed

_LEN = struct.Struct("<Q")
#: Default largest frame body a link accepts (1 GiB; `JOINTML_MAX_FRAME` or `max_frame=` change it).
MAX_FRAME = int(os.environ.get("JOINTML_MAX_FRAME", str(1 << 30)))
#: How long one incoming connection may take to finish its TLS handshake and hello.
HANDSHAKE_TIMEOUT = 10.0
#: Most incoming connections handshaking at once; more are closed at once.
MAX_PENDING = 16
_CHUNK = 16 << 20  # what a frame body must deliver before the receiver allocates its declared size
_SOCK_BUF = 4 << 20
_COALESCE = 1 << 20


@dataclass
class TlsFiles:
    """Where one party's TLS material is: the cluster CA, its certificate and its key.

    `pins` maps a peer's party name to the fingerprint (`sha256:...`) its certificate
    must have; peers without a pin are authenticated by the CA alone.
    """

    ca: Path
    cert: Path
    key: Path
    pins: dict[str, str] = field(default_factory=dict)


def check_pin(me: str, peer: str, sock: ssl.SSLSocket, pins: dict[str, str]) -> None:
    """Refuse (`AuthenticationError`) `peer` if its certificate differs from the one pinned for it.

    >>> check_pin("alice", "bob", None, {})  # no pin for bob: the CA alone vouches for it
    """
    want = pins.get(peer)
    if want is None:
        return
    der = sock.getpeercert(binary_form=True) or b""
    got = fingerprint_der(der)
    if got != normalize_fingerprint(want):
        raise AuthenticationError(
            f"{me}: party '{peer}' presented a certificate with fingerprint {got}, not the one pinned for it "
            "in the cluster config", party=peer)


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    """TLS 1.3 server side that requires a client certificate from the cluster CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(tls.cert), str(tls.key))
    ctx.load_verify_locations(str(tls.ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(tls: TlsFiles) -> ssl.SSLContext:
    """TLS 1.3 client side that checks the server's certificate names the party dialled."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(tls.cert), str(tls.key))
    ctx.load_verify_locations(str(tls.ca))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def cert_party_names(peercert: dict[str, Any]) -> set[str]:
    """The party names a peer certificate carries: its DNS subject-alternative names, else its common name.

    The common name is ignored when the certificate has a SAN (as TLS hostname checks do).

    >>> sorted(cert_party_names({"subjectAltName": (("DNS", "bank"),), "subject": ((("commonName", "partner"),),)}))
    ['bank']
    >>> sorted(cert_party_names({"subject": ((("commonName", "bank"),),)}))
    ['bank']
    """
    if peercert.get("subjectAltName"):
        return {v for k, v in peercert["subjectAltName"] if k == "DNS"}
    names: set[str] = set()
    for rdn in peercert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                names.add(v)
    return names


def _recv_exact(sock: socket.socket, n: int) -> bytearray | None:
    """Read exactly `n` bytes (None if the peer closes first).

    A length prefix that lies costs the liar its own bytes: the receiver first reads at
    most `_CHUNK` bytes into a buffer of that size, and commits to the declared size
    (already capped by the link's `max_frame`) only once those bytes have arrived. One
    copy of the first chunk then, instead of growing the buffer step by step (each step a
    copy into fresh pages: it cost SS-LR's 40 MB setup frames ~50-90 ms).
    """
    buf = bytearray(min(n, _CHUNK))
    if not _fill(sock, buf, 0):
        return None
    if n > len(buf):
        first = len(buf)
        big = bytearray(n)
        big[:first] = buf
        buf = big
        if not _fill(sock, buf, first):
            return None
    return buf


def _fill(sock: socket.socket, buf: bytearray, got: int) -> bool:
    """Fill `buf` from byte `got` on; False if the peer closes first."""
    n = len(buf)
    with memoryview(buf) as mv:
        while got < n:
            k = sock.recv_into(mv[got:], min(n - got, 1 << 20))
            if k == 0:
                return False
            got += k
    return True


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, _SOCK_BUF)
        except OSError:
            pass


class TcpLink(Link):
    """A link over one TLS socket; a reader thread drains the socket into the inbox."""

    def __init__(self, me: str, peer: str, sock: ssl.SSLSocket, recv_timeout: float | None = None,
                 max_frame: int = MAX_FRAME):
        super().__init__(me, peer, recv_timeout)
        self.sock = sock
        self.max_frame = max_frame
        self._closing = False
        self._reader = threading.Thread(target=self._read_loop, name=f"jointml-link-{me}-{peer}", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        try:
            while True:
                head = _recv_exact(self.sock, _LEN.size)
                if head is None:
                    raise PeerClosed(f"{self.me}: {self.peer} closed the connection", party=self.peer)
                (n,) = _LEN.unpack(head)
                if n > self.max_frame:
                    raise WireFormatError(
                        f"{self.me}: frame from {self.peer} of {n} bytes exceeds this link's maximum of {self.max_frame}",
                        party=self.peer,
                    )
                body = _recv_exact(self.sock, n)
                if body is None:
                    raise PeerClosed(
                        f"{self.me}: {self.peer} closed the connection mid-frame (truncated message)", party=self.peer
                    )
                self._inbox.put(body)
        except (PeerClosed, WireFormatError) as e:
            self._inbox.put(_Closed(e))
        except (OSError, ssl.SSLError) as e:
            if self._closing:
                self._inbox.put(_Closed(PeerClosed(f"{self.me}: link to {self.peer} closed", party=self.peer)))
            else:
                self._inbox.put(_Closed(PeerClosed(f"{self.me}: connection to {self.peer} failed: {e}", party=self.peer)))

    def _write(self, bufs: wire.Buffers, nbytes: int) -> None:
        try:
            if nbytes <= _COALESCE:
                # One TLS record write per small frame: each write is a syscall and a record.
                self.sock.sendall(b"".join([_LEN.pack(nbytes), *bufs]))
                return
            self.sock.sendall(_LEN.pack(nbytes) + bytes(bufs[0]))
            for b in bufs[1:]:
                self.sock.sendall(b)
        except (OSError, ssl.SSLError) as e:
            raise PeerClosed(f"{self.me}: cannot send to {self.peer}: {e}", party=self.peer) from None

    def close(self) -> None:
        self._closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def _hello(sock: ssl.SSLSocket, me: str) -> None:
    bufs = wire.encode("hello", "__hello__", 0, (), {"party": me})
    body = b"".join(bytes(b) for b in bufs)
    sock.sendall(_LEN.pack(len(body)) + body)


def _read_hello(sock: ssl.SSLSocket) -> str:
    head = _recv_exact(sock, _LEN.size)
    if head is None:
        raise PeerClosed("peer closed during handshake")
    (n,) = _LEN.unpack(head)
    if n > 1 << 16:
        raise WireFormatError("malformed hello frame")
    body = _recv_exact(sock, n)
    if body is None:
        raise PeerClosed("peer closed during handshake")
    msg = wire.decode(body)
    party = msg.meta.get("party")
    if msg.kind != "hello" or not isinstance(party, str):
        raise WireFormatError("malformed hello frame")
    return party


def connect_all(
    me: str,
    addresses: dict[str, tuple[str, int]],
    tls: TlsFiles,
    listener: socket.socket | None = None,
    connect_timeout: float = 30.0,
    recv_timeout: float | None = None,
    order: list[str] | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    max_frame: int = MAX_FRAME,
    max_pending: int = MAX_PENDING,
) -> Communicator:
    """Establish authenticated TLS links from `me` to every other party in `addresses`.

    `listener` is an already-bound listening socket for `me` (the launcher binds them
    before starting parties so ports never race); if None, one is bound at `me`'s address.
    Parties earlier in `order` dial later ones. Each incoming connection gets its own
    thread and `handshake_timeout` seconds to authenticate (at most `max_pending` at
    once; more wait in the listen queue), so an idle or hostile connection never holds
    up a legitimate peer. Links refuse frames larger than `max_frame` bytes. Raises
    `PeerUnreachable` when a peer cannot be reached within `connect_timeout`,
    `AuthenticationError` on a certificate that does not match the claimed party.

    >>> connect_all("mallory", {"alice": ("127.0.0.1", 1)}, TlsFiles(Path("ca"), Path("c"), Path("k")))
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: party 'mallory' is not in the cluster ['alice']
    """
    order = order or list(addresses)
    if me not in order:
        raise ConfigError(f"party '{me}' is not in the cluster {order}")
    idx = order.index(me)
    deadline = time.monotonic() + connect_timeout
    links: dict[str, Link] = {}
    to_accept = set(order[:idx])
    if listener is None and to_accept:
        listener = socket.create_server(addresses[me], reuse_port=False)
    sctx, cctx = server_context(tls), client_context(tls)
    acceptor = None
    if to_accept:
        assert listener is not None
        acceptor = _Acceptor(me, listener, sctx, to_accept, deadline, connect_timeout,
                             _LinkOptions(recv_timeout, max_frame, handshake_timeout, max_pending, tls.pins))
        acceptor.start()
    for peer in order[idx + 1 :]:
        try:
            links[peer] = _dial(me, peer, addresses[peer], cctx, deadline, connect_timeout, recv_timeout, max_frame,
                                tls.pins)
        except Exception:
            for link in links.values():
                link.close()
            if acceptor is not None:
                acceptor.abandon()
            raise
    if acceptor is not None:
        try:
            links.update(acceptor.finish())
        except Exception:
            for link in links.values():
                link.close()
            raise
    if listener is not None:
        listener.close()
    return Communicator(me, {p: links[p] for p in order if p in links})


@dataclass
class _LinkOptions:
    recv_timeout: float | None
    max_frame: int
    handshake_timeout: float
    max_pending: int
    pins: dict[str, str] = field(default_factory=dict)


class _Acceptor:
    """Accepts the parties that dial `me` (those before it in the cluster order).

    One thread accepts; each accepted connection handshakes in a thread of its own
    (at most `max_pending` at a time), so a connection that never speaks only costs
    its own slot for `handshake_timeout` seconds.
    """

    def __init__(self, me: str, listener: socket.socket, sctx: ssl.SSLContext, to_accept: set[str],
                 deadline: float, connect_timeout: float, opts: _LinkOptions):
        self.me, self.listener, self.sctx, self.to_accept = me, listener, sctx, set(to_accept)
        self.deadline, self.connect_timeout, self.opts = deadline, connect_timeout, opts
        self.links: dict[str, Link] = {}
        self.errors: list[Exception] = []
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # parties whose handshake is being completed
        self._closed = False
        self._done = threading.Event()
        self._slots = threading.BoundedSemaphore(max(1, opts.max_pending))
        self.thread = threading.Thread(target=self._loop, name=f"jointml-accept-{me}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def abandon(self) -> None:
        """Stop accepting and close whatever was accepted (this party failed elsewhere)."""
        self._done.set()
        self.thread.join()
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            self._closed = True
            links, self.links = self.links, {}
        for link in links.values():
            link.close()

    def finish(self) -> dict[str, Link]:
        """Wait for the accepting thread; the accepted links, or its failure if a party never connected."""
        self.thread.join()
        with self._lock:
            self._closed = True
            missing = set(self.to_accept)
        if not missing:
            return self.links
        self._close_all()
        errors = list(self.errors)
        raise next((e for e in errors if not isinstance(e, AuthenticationError)), None) or (
            errors[-1] if errors else PeerUnreachable(f"{self.me}: parties {sorted(missing)} never connected")
        )

    def _loop(self) -> None:
        try:
            self.listener.settimeout(0.05)
            while not self._done.is_set():
                if time.monotonic() > self.deadline:
                    with self._lock:
                        missing = sorted(self.to_accept)
                    raise PeerUnreachable(
                        f"{self.me}: parties {missing} did not connect within {self.connect_timeout:g} s",
                        party=missing[0] if missing else None,
                    )
                if not self._slots.acquire(timeout=0.05):
                    continue  # all slots handshaking: later connections wait in the listen queue
                try:
                    raw, _ = self.listener.accept()
                except socket.timeout:
                    self._slots.release()
                    continue
                threading.Thread(target=self._admit, args=(raw,), name=f"jointml-handshake-{self.me}", daemon=True).start()
        except Exception as e:  # noqa: BLE001 - surfaced by finish()
            self.errors.append(e)

    def _admit(self, raw: socket.socket) -> None:
        try:
            self._handshake(raw)
        except Exception as e:  # noqa: BLE001 - one bad connection must not end the others
            self.errors.append(AuthenticationError(f"{self.me}: refused a connection: {e}"))
            raw.close()
        finally:
            self._slots.release()

    def _handshake(self, raw: socket.socket) -> None:
        me = self.me
        raw.settimeout(max(0.5, min(self.opts.handshake_timeout, self.deadline - time.monotonic())))
        _tune(raw)
        try:
            s = self.sctx.wrap_socket(raw, server_side=True)
            claimed = _read_hello(s)
        except (ssl.SSLError, OSError, WireFormatError, PeerClosed) as e:
            # A failed or idle handshake (e.g. a certificate from another CA) is refused;
            # keep waiting for the legitimate peer until the deadline.
            self.errors.append(AuthenticationError(f"{me}: refused a connection: {e}"))
            raw.close()
            return
        names = cert_party_names(s.getpeercert() or {})
        with self._lock:
            ok = not self._closed and claimed in self.to_accept and claimed not in self._busy and claimed in names
            if ok:
                self._busy.add(claimed)
        if not ok:
            self.errors.append(AuthenticationError(
                f"{me}: refused a peer claiming to be '{claimed}' with a certificate for {sorted(names)}", party=claimed))
            s.close()
            return
        try:
            check_pin(me, claimed, s, self.opts.pins)
            _hello(s, me)
            s.settimeout(None)
        except (OSError, ssl.SSLError, AuthenticationError) as e:
            with self._lock:
                self._busy.discard(claimed)
            self.errors.append(e if isinstance(e, AuthenticationError) else
                               AuthenticationError(f"{me}: handshake with '{claimed}' failed: {e}", party=claimed))
            s.close()
            return
        self._register(claimed, TcpLink(me, claimed, s, self.opts.recv_timeout, self.opts.max_frame))

    def _register(self, claimed: str, link: TcpLink) -> None:
        with self._lock:
            self._busy.discard(claimed)
            late = self._closed
            if not late:
                self.links[claimed] = link
                self.to_accept.discard(claimed)
                if not self.to_accept:
                    self._done.set()
        if late:
            link.close()


def _dial(me: str, peer: str, address: tuple[str, int], cctx: ssl.SSLContext, deadline: float,
          connect_timeout: float, recv_timeout: float | None, max_frame: int = MAX_FRAME,
          pins: dict[str, str] | None = None) -> TcpLink:
    """Connect to `peer` (retrying until the deadline), check its certificate and its hello."""
    host, port = address
    last: Exception | None = None
    while True:
        if time.monotonic() > deadline:
            raise PeerUnreachable(
                f"{me}: cannot reach party '{peer}' at {host}:{port} within {connect_timeout:g} s: {last}", party=peer
            )
        try:
            raw = socket.create_connection((host, port), timeout=max(0.5, deadline - time.monotonic()))
        except OSError as e:
            last = e
            time.sleep(0.05)
            continue
        break
    _tune(raw)
    try:
        s = cctx.wrap_socket(raw, server_hostname=peer)
    except ssl.SSLCertVerificationError as e:
        raw.close()
        raise AuthenticationError(
            f"{me}: party '{peer}' at {host}:{port} presented an invalid certificate: {e.verify_message}", party=peer
        ) from None
    except (ssl.SSLError, OSError) as e:
        raw.close()
        raise AuthenticationError(f"{me}: TLS handshake with '{peer}' failed: {e}", party=peer) from None
    try:
        check_pin(me, peer, s, pins or {})
    except AuthenticationError:
        s.close()
        raise
    try:
        _hello(s, me)
        answer = _read_hello(s)
    except (OSError, ssl.SSLError, PeerClosed) as e:
        s.close()
        raise AuthenticationError(f"{me}: party '{peer}' refused this party's certificate: {e}", party=peer) from None
    if answer != peer:
        s.close()
        raise AuthenticationError(f"{me}: dialled '{peer}' but it answered as '{answer}'", party=peer)
    s.settimeout(None)
    return TcpLink(me, peer, s, recv_timeout, max_frame)
