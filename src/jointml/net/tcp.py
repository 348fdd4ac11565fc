"""TCP links with mutual TLS (stdlib `ssl`), one connection per pair of parties.

The party that comes first in the cluster's order connects; the other accepts.
Both present certificates from the cluster CA. The connecting side checks that the
server's certificate names the peer it dialled (TLS hostname check against the
party name); the accepting side checks that the client's certificate names the party
announced in the first frame. Anything else is refused with `AuthenticationError`.

A reader thread per connection drains the socket into the link's inbox, so two
parties sending large messages to each other at once never deadlock.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import wire
from ..core.errors import AuthenticationError, ConfigError, PeerClosed, PeerUnreachable, WireFormatError
from .link import Communicator, Link, _Closed

_LEN = struct.Struct("<Q")
MAX_FRAME = 1 << 34  # 16 GiB: a guard against garbage lengths, not a protocol limit
_SOCK_BUF = 4 << 20
_COALESCE = 1 << 20


@dataclass
class TlsFiles:
    """Where one party's TLS material is: the cluster CA, its certificate and its key."""

    ca: Path
    cert: Path
    key: Path


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
    """The party names a peer certificate carries (DNS subject-alternative names and common name).

    >>> sorted(cert_party_names({"subjectAltName": (("DNS", "bank"),), "subject": ((("commonName", "bank"),),)}))
    ['bank']
    """
    names = {v for k, v in peercert.get("subjectAltName", ()) if k == "DNS"}
    for rdn in peercert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                names.add(v)
    return names


def _recv_exact(sock: socket.socket, n: int) -> bytearray | None:
    buf = bytearray(n)
    mv = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(mv[got:], min(n - got, 1 << 20))
        if k == 0:
            return None
        got += k
    return buf


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, _SOCK_BUF)
        except OSError:
            pass


class TcpLink(Link):
    """A link over one TLS socket; a reader thread drains the socket into the inbox."""

    def __init__(self, me: str, peer: str, sock: ssl.SSLSocket, recv_timeout: float | None = None):
        super().__init__(me, peer, recv_timeout)
        self.sock = sock
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
                if n > MAX_FRAME:
                    raise WireFormatError(f"{self.me}: malformed frame from {self.peer}: length {n}")
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
) -> Communicator:
    """Establish authenticated TLS links from `me` to every other party in `addresses`.

    `listener` is an already-bound listening socket for `me` (the launcher binds them
    before starting parties so ports never race); if None, one is bound at `me`'s address.
    Parties earlier in `order` dial later ones. Raises `PeerUnreachable` when a peer
    cannot be reached within `connect_timeout`, `AuthenticationError` on a certificate
    that does not match the claimed party.

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
    acceptor = _Acceptor(me, listener, sctx, to_accept, links, deadline, connect_timeout, recv_timeout) if to_accept else None
    if acceptor is not None:
        acceptor.start()
    for peer in order[idx + 1 :]:
        try:
            links[peer] = _dial(me, peer, addresses[peer], cctx, deadline, connect_timeout, recv_timeout)
        except PeerUnreachable:
            for link in links.values():
                link.close()
            raise
    if acceptor is not None:
        acceptor.finish()
    if listener is not None:
        listener.close()
    return Communicator(me, {p: links[p] for p in order if p in links})


class _Acceptor:
    """Accepts the parties that dial `me` (those before it in the cluster order), in a thread."""

    def __init__(self, me: str, listener: socket.socket | None, sctx: ssl.SSLContext, to_accept: set[str],
                 links: dict[str, Link], deadline: float, connect_timeout: float, recv_timeout: float | None):
        assert listener is not None
        self.me, self.listener, self.sctx, self.to_accept = me, listener, sctx, to_accept
        self.links, self.deadline, self.connect_timeout, self.recv_timeout = links, deadline, connect_timeout, recv_timeout
        self.errors: list[Exception] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> None:
        """Wait for the accepting thread; raise its failure if a party never connected."""
        self.thread.join()
        if self.to_accept:
            for link in self.links.values():
                link.close()
            errors = self.errors
            raise next((e for e in errors if not isinstance(e, AuthenticationError)), None) or (
                errors[-1] if errors else PeerUnreachable(f"{self.me}: parties {sorted(self.to_accept)} never connected")
            )

    def _loop(self) -> None:
        try:
            self.listener.settimeout(0.2)
            while self.to_accept:
                if time.monotonic() > self.deadline:
                    raise PeerUnreachable(
                        f"{self.me}: parties {sorted(self.to_accept)} did not connect within {self.connect_timeout:g} s",
                        party=sorted(self.to_accept)[0],
                    )
                try:
                    raw, _ = self.listener.accept()
                except socket.timeout:
                    continue
                self._admit(raw)
        except Exception as e:  # noqa: BLE001 - surfaced by finish()
            self.errors.append(e)

    def _admit(self, raw: socket.socket) -> None:
        me = self.me
        raw.settimeout(max(1.0, self.deadline - time.monotonic()))
        _tune(raw)
        try:
            s = self.sctx.wrap_socket(raw, server_side=True)
            claimed = _read_hello(s)
        except (ssl.SSLError, OSError, WireFormatError, PeerClosed) as e:
            # A failed handshake (e.g. a certificate from another CA) is refused;
            # keep waiting for the legitimate peer until the deadline.
            self.errors.append(AuthenticationError(f"{me}: refused a connection: {e}"))
            raw.close()
            return
        names = cert_party_names(s.getpeercert() or {})
        if claimed not in self.to_accept or claimed not in names:
            self.errors.append(
                AuthenticationError(
                    f"{me}: refused a peer claiming to be '{claimed}' with a certificate for {sorted(names)}",
                    party=claimed,
                )
            )
            s.close()
            return
        _hello(s, me)
        s.settimeout(None)
        self.links[claimed] = TcpLink(me, claimed, s, self.recv_timeout)
        self.to_accept.discard(claimed)


def _dial(me: str, peer: str, address: tuple[str, int], cctx: ssl.SSLContext, deadline: float,
          connect_timeout: float, recv_timeout: float | None) -> TcpLink:
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
        _hello(s, me)
        answer = _read_hello(s)
    except (OSError, ssl.SSLError, PeerClosed) as e:
        s.close()
        raise AuthenticationError(f"{me}: party '{peer}' refused this party's certificate: {e}", party=peer) from None
    if answer != peer:
        s.close()
        raise AuthenticationError(f"{me}: dialled '{peer}' but it answered as '{answer}'", party=peer)
    s.settimeout(None)
    return TcpLink(me, peer, s, recv_timeout)
