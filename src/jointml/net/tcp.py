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

The party that waits for a message reads the sockets itself (no reader thread, no hand-off
per message): a waiting thread polls every link of its process at once and reads whatever
arrived on any of them, and so does a sender whose write would block, so parties sending
large messages to each other at once never deadlock, two of them or a ring of three or more.

Adversary model: anyone can open a TCP connection to a listening party; only holders
of a cluster certificate get a link. An unauthenticated connection cannot stall link
setup (each TLS handshake runs in its own thread with a short timeout, and at most
`MAX_PENDING` run at once), and an authenticated peer cannot make a party allocate
more than it actually sends: a frame's length prefix is checked against the link's
`max_frame` before reading, and the body buffer grows with the bytes that arrive.
"""

from __future__ import annotations

import os
import queue
import select
import socket
import ssl
import struct
import threading
import time
from collections import deque
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
_SCRATCH = 256 << 10  # one read of small frames (several TLS records' worth)
_DIRECT = 64 << 10  # a body with this much still to come is read straight into its buffer
_SEND_SLICE = 4 << 20  # bytes per non-blocking TLS write of a large frame


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
    delay_ms: float | None = None
    bandwidth_mbps: float | None = None


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


class _FrameReader:
    """Splits a connection's bytes into frame bodies (8-byte little-endian length, then the body).

    Small frames are parsed out of one scratch buffer (one TLS read may hold several);
    a large body is read straight into its own buffer, which grows with the bytes that
    arrive (never to a lying length prefix up front).

    >>> r = _FrameReader(1 << 20, lambda n: ValueError(n))
    >>> [bytes(b) for b in r.feed(memoryview(_LEN.pack(2) + b"hi" + _LEN.pack(3) + b"ab"))]
    [b'hi']
    >>> [bytes(b) for b in r.feed(memoryview(b"c"))]
    [b'abc']
    """

    def __init__(self, max_frame: int, too_big: Any):
        self.max_frame = max_frame
        self._too_big = too_big
        self._scratch = bytearray(_SCRATCH)
        self._head = bytearray()
        self._body: bytearray | None = None
        self._got = 0
        self._n = 0

    def read(self, sock: ssl.SSLSocket) -> tuple[int, list[bytearray | bytes]]:
        """One non-blocking read: (bytes read, completed frame bodies); 0 bytes: the peer closed."""
        body = self._body
        if body is not None and self._n - self._got >= _DIRECT:
            if self._got == len(body):
                body.extend(bytes(min(self._n, 2 * len(body)) - len(body)))
            with memoryview(body) as mv:
                k = sock.recv_into(mv[self._got :], len(body) - self._got)
            self._got += k
            if self._got < self._n:
                return k, []
            self._body = None
            return k, [body]
        with memoryview(self._scratch) as mv:
            k = sock.recv_into(mv)
            return k, (self.feed(mv[:k]) if k else [])

    def _start(self, n: int) -> None:
        if n > self.max_frame:
            raise self._too_big(n)
        self._n, self._got = n, 0
        self._body = bytearray(min(n, _CHUNK))

    def feed(self, data: memoryview) -> list[bytearray | bytes]:
        """The frames completed by `data` (the bytes that follow those fed before)."""
        out: list[bytearray | bytes] = []
        i, L = 0, len(data)
        while i < L:
            body = self._body
            if body is None:
                if not self._head and L - i >= 8:
                    (n,) = _LEN.unpack_from(data, i)
                    if n <= L - i - 8 and n <= self.max_frame:  # a whole small frame: one copy
                        out.append(bytes(data[i + 8 : i + 8 + n]))
                        i += 8 + n
                        continue
                    self._start(n)
                    i += 8
                    continue
                take = min(8 - len(self._head), L - i)
                self._head += data[i : i + take]
                i += take
                if len(self._head) == 8:
                    (n,) = _LEN.unpack(self._head)
                    self._head = bytearray()
                    self._start(n)
            else:
                take = min(self._n - self._got, L - i)
                if self._got + take > len(body):
                    body.extend(bytes(min(self._n, max(2 * len(body), self._got + take)) - len(body)))
                body[self._got : self._got + take] = data[i : i + take]
                self._got += take
                i += take
            if self._body is not None and self._got == self._n:
                out.append(self._body)
                self._body = None
        return out


_WOULD_BLOCK = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError)
_POLL_IN = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL
#: Longest single poll() of the leader (a bound, not a latency: every socket is in the poll set).
_LEADER_POLL = 1.0


class _Poller:
    """Waits on every inline link of this process at once (leader/follower).

    A thread that waits (for a frame on one link, or for room to write on one link) becomes
    the leader if no thread is: it polls ALL inline links' sockets and reads whatever
    arrived on any of them into that link's frame queue, then wakes the other waiting
    threads (followers), which look at their own queue. So a party blocked sending to one
    peer keeps reading every other peer: with three or more parties and messages larger
    than the socket buffers, a ring of blocked senders (A -> B -> C -> A) drains instead of
    deadlocking. With one thread per party (the common case) the leader is the only waiter
    and there is no hand-off at all.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._leader = False
        self._gen = 0  # poll rounds done: a follower writer retries after each
        self._waiting = 0  # followers waiting on the condition (none: no notify needed)
        self._links: dict[int, TcpLink] = {}  # id(link) -> link
        self._version = 0
        self._writers: set[TcpLink] = set()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._poll: Any = None
        self._fds: dict[int, TcpLink] = {}
        self._poll_key: tuple[int, frozenset[int]] | None = None
        self._pid = os.getpid()
        #: how long a waiting leader polls without sleeping first (seconds; JOINTML_NET_SPIN_US)
        self.spin = _spin_seconds()

    def register(self, link: "TcpLink") -> None:
        with self._cond:
            self._links[id(link)] = link
            self._version += 1
        self._wake()

    def unregister(self, link: "TcpLink") -> None:
        with self._cond:
            if self._links.pop(id(link), None) is not None:
                self._version += 1
            self._writers.discard(link)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"w")
        except OSError:  # full: the leader is awake already
            pass

    def wait_frame(self, link: "TcpLink", deadline: float) -> bool:
        """Until `link` has a frame queued (True) or the deadline passes (False), reading every link."""
        frames = link._frames
        while True:
            with self._cond:
                while self._leader:
                    if frames:
                        return True
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._follow(left)
                if frames:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._leader = True
            try:
                self._lead(min(left, _LEADER_POLL), None)
            finally:
                self._step_down()
            if frames:
                return True

    def _follow(self, timeout: float) -> None:
        """Wait (holding the condition's lock) for the leader to end a round."""
        self._waiting += 1
        try:
            self._cond.wait(timeout)
        finally:
            self._waiting -= 1

    def wait_writable(self, link: "TcpLink", timeout: float) -> None:
        """Until `link`'s socket may take more bytes, or one poll round passes, reading every link."""
        with self._cond:
            if self._leader:
                self._writers.add(link)
                gen = self._gen
                self._wake()  # the leader polls for this writer from its next round on
                end = time.monotonic() + timeout
                while self._gen == gen and self._leader:
                    left = end - time.monotonic()
                    if left <= 0:
                        return
                    self._follow(left)
                return
            self._leader = True
        try:
            self._lead(timeout, link)
        finally:
            self._step_down()

    def _step_down(self) -> None:
        with self._cond:
            self._leader = False
            self._gen += 1
            if self._waiting:
                self._cond.notify_all()

    def _poll_set(self, writer: "TcpLink | None") -> Any:
        """The poll object for every registered link (+ POLLOUT for the links waiting to write)."""
        with self._cond:
            writers = set(self._writers)
            self._writers.clear()
            links = list(self._links.values())
            version = self._version
        if writer is not None:
            writers.add(writer)
        key = (version, frozenset(id(w) for w in writers))
        if key != self._poll_key:  # (rebuilt when a link comes or goes, or a writer waits)
            poll, fds = select.poll(), {}
            poll.register(self._wake_r, select.POLLIN)
            for l in links:
                fd = l.sock.fileno()
                if fd >= 0:
                    fds[fd] = l
                    poll.register(fd, _POLL_IN | (select.POLLOUT if l in writers else 0))
            self._poll, self._fds, self._poll_key = poll, fds, key
        return self._poll

    def _spin(self, poll: Any) -> list[tuple[int, int]]:
        """Poll without sleeping for up to `spin` seconds: on a machine with an idle core this
        saves the wake-up of a sleeping thread when the answer comes back quickly."""
        end = time.perf_counter() + self.spin
        while True:
            events: list[tuple[int, int]] = poll.poll(0)
            if events or time.perf_counter() >= end:
                return events

    def _lead(self, timeout: float, writer: "TcpLink | None") -> None:
        """One leader round: poll every link, read what arrived on each."""
        if writer is None and not self._writers and self._poll_key == (self._version, _NO_WRITERS):
            poll = self._poll  # the common case: nothing changed since the last round
        else:
            poll = self._poll_set(writer)
        try:
            events = self._spin(poll) if self.spin and writer is None else []
            if not events:
                events = poll.poll(max(0.0, timeout) * 1000)
        except OSError:
            events = []
        fds = self._fds
        for fd, ev in events:
            link = fds.get(fd)
            if link is None:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except OSError:
                    pass
            elif ev & _POLL_IN:
                link._pump()


def _spin_seconds() -> float:
    """`JOINTML_NET_SPIN_US` in seconds (default 0: a waiting thread sleeps in poll at once).

    >>> _spin_seconds() >= 0
    True
    """
    raw = os.environ.get("JOINTML_NET_SPIN_US", "").strip()
    try:
        v = float(raw) if raw else 0.0
    except ValueError:
        raise ConfigError(f"JOINTML_NET_SPIN_US must be a number of microseconds, got {raw!r}",
                          field="JOINTML_NET_SPIN_US") from None
    if not 0 <= v <= 1e6:
        raise ConfigError(f"JOINTML_NET_SPIN_US must be between 0 and 1000000, got {raw!r}", field="JOINTML_NET_SPIN_US")
    return v / 1e6


_NO_WRITERS: frozenset[int] = frozenset()
_POLLER: _Poller | None = None
_POLLER_LOCK = threading.Lock()


def _poller() -> _Poller:
    """This process's poller (made on first use: after a fork, each party process has its own)."""
    global _POLLER
    with _POLLER_LOCK:
        if _POLLER is None or _POLLER._pid != os.getpid():
            _POLLER = _Poller()
        return _POLLER


def _forget_poller_after_fork() -> None:
    # a forked party starts with no links of its own, and the lock may have been held by a
    # thread of the parent that does not exist in the child
    global _POLLER, _POLLER_LOCK
    _POLLER, _POLLER_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_poller_after_fork)


def reader_mode() -> str:
    """How links read their sockets: "inline" (default) or "thread", from `JOINTML_NET_READER`.

    >>> reader_mode() in ("inline", "thread")
    True
    """
    raw = os.environ.get("JOINTML_NET_READER", "").strip().lower() or "inline"
    if raw not in ("inline", "thread"):
        raise ConfigError(f"JOINTML_NET_READER must be 'inline' or 'thread', got {raw!r}", field="JOINTML_NET_READER")
    return raw


class TcpLink(Link):
    """A link over one TLS socket, read by the thread that waits for a message.

    No reader thread and no hand-off per message (the default, "inline"): the socket is
    non-blocking, every TLS call runs under one lock (short: nothing in it waits), and a
    thread waiting for a message waits in the process's `_Poller`, which polls every inline
    link and reads what arrived on each into that link's queue. A sender whose write would
    block waits there too, so its peers (all of them, not only the one it writes to) can
    go on sending: no deadlock with large messages in any pattern. Frames of any tag are
    kept in arrival order; `Link.recv` checks tags and sequence numbers as before.

    `reader_thread=True` (or `JOINTML_NET_READER=thread` when `reader_thread` is None) keeps
    a reader thread per link that drains the socket as bytes arrive and hands frames over
    through a queue (~0.1 ms and two context switches more per message; on a machine with
    far more runnable processes than cores it measured faster in wall time, see
    docs/benchmarks.md). With injected latency (`delay_ms`, `bandwidth_mbps`; see
    `jointml.net.link`) the reader thread is always used, so each frame is stamped when it
    really arrived.
    """

    def __init__(self, me: str, peer: str, sock: ssl.SSLSocket, recv_timeout: float | None = None,
                 max_frame: int = MAX_FRAME, *, delay_ms: float | None = None, bandwidth_mbps: float | None = None,
                 reader_thread: bool | None = None):
        super().__init__(me, peer, recv_timeout, delay_ms=delay_ms, bandwidth_mbps=bandwidth_mbps)
        self.sock = sock
        self.max_frame = max_frame
        self._closing = False
        self._eof = False
        self._io = threading.Lock()  # one SSL object: one TLS call at a time (none of them blocks)
        self._frames: deque[Any] = deque()
        self._reader_state = _FrameReader(max_frame, self._too_big)
        sock.setblocking(False)
        self._reader: threading.Thread | None = None
        if reader_thread is None:
            reader_thread = reader_mode() == "thread"
        self._threaded = reader_thread or self.shaper is not None
        self._poller: _Poller | None = None
        if self._threaded:
            self._reader = threading.Thread(target=self._read_loop, name=f"jointml-link-{me}-{peer}", daemon=True)
            self._reader.start()
        else:
            self._poller = _poller()
            self._poller.register(self)

    def _too_big(self, n: int) -> WireFormatError:
        return WireFormatError(
            f"{self.me}: frame from {self.peer} of {n} bytes exceeds this link's maximum of {self.max_frame}",
            party=self.peer)

    def _emit(self, item: Any) -> None:
        if not self._threaded:
            self._frames.append(item)
        elif isinstance(item, _Closed):
            self._inbox.put(item)
        else:
            self._deliver(item)

    def _ended(self, e: Exception | None, mid_frame: bool = False) -> None:
        """The connection ended: queue the error a receiver will raise."""
        if self._eof:
            return
        self._eof = True
        if self._closing:
            err: Exception = PeerClosed(f"{self.me}: link to {self.peer} closed", party=self.peer)
        elif isinstance(e, WireFormatError):
            err = e
        elif e is not None:
            err = PeerClosed(f"{self.me}: connection to {self.peer} failed: {e}", party=self.peer)
        elif mid_frame:
            err = PeerClosed(f"{self.me}: {self.peer} closed the connection mid-frame (truncated message)",
                             party=self.peer)
        else:
            err = PeerClosed(f"{self.me}: {self.peer} closed the connection", party=self.peer)
        self._emit(_Closed(err))
        if self._poller is not None:
            self._poller.unregister(self)  # an ended socket polls readable for ever: out of the set

    def _pump(self) -> None:
        """Read whatever has arrived (without waiting) into the inbox."""
        with self._io:
            while not self._eof:
                r = self._reader_state
                try:
                    k, frames = r.read(self.sock)
                except _WOULD_BLOCK:
                    return
                except WireFormatError as e:
                    self._ended(e)
                    return
                except (OSError, ssl.SSLError, ValueError) as e:
                    self._ended(e)
                    return
                if k == 0:
                    self._ended(None, mid_frame=r._body is not None or bool(r._head))
                    return
                if frames:
                    for f in frames:
                        self._emit(f)
                    if not self.sock.pending():
                        # A frame came: leave the rest to the next poll (level-triggered) instead of
                        # a read that fails with an exception on every message.
                        return

    def _wait(self, timeout: float | None, write: bool = False) -> bool:
        """select() on the socket; True if it is readable (or in error: the next read reports it)."""
        try:
            if self.sock.pending():
                return True
            r, w, _ = select.select([self.sock], [self.sock] if write else [], [], timeout)
        except (OSError, ValueError):  # closed under us: the next read reports it
            return True
        return bool(r)

    def _next(self, timeout: float) -> Any:
        if self._poller is None:
            return super()._next(timeout)
        frames = self._frames
        if frames:
            return frames.popleft()
        if self.sock.pending():  # decrypted bytes the socket's poll cannot see
            self._pump()
        # no read first: poll() reports a socket with bytes waiting at once, and a read that
        # finds none costs a syscall and an exception
        if frames or self._poller.wait_frame(self, time.monotonic() + timeout):
            return frames.popleft()
        raise queue.Empty

    def _read_loop(self) -> None:
        """Threaded links only: drain the socket as bytes arrive (stamping each frame when shaped)."""
        while not self._eof:
            self._wait(None)
            self._pump()

    def _write(self, bufs: wire.Buffers, nbytes: int) -> None:
        try:
            if nbytes <= _COALESCE:
                # one TLS record (one syscall) per small frame: header and body together
                data = b"".join([_LEN.pack(nbytes), *bufs])
                if self._closing:
                    raise OSError("link closed")
                with self._io:
                    try:
                        k = self.sock.send(data)
                    except _WOULD_BLOCK:
                        k = 0  # (a retried TLS write repeats the same bytes: from 0)
                if k < len(data):
                    self._send_bytes(data, k)
                return
            self._send_bytes(_LEN.pack(nbytes) + bytes(bufs[0]))
            for b in bufs[1:]:
                self._send_bytes(b)
        except (OSError, ssl.SSLError, ValueError) as e:
            raise PeerClosed(f"{self.me}: cannot send to {self.peer}: {e}", party=self.peer) from None

    def _send_bytes(self, data: Any, off: int = 0) -> None:
        with memoryview(data) as whole:
            mv = whole if whole.format == "B" and whole.ndim == 1 else whole.cast("B")
            n = len(mv)
            while off < n:
                if self._closing:
                    raise OSError("link closed")
                # A retried TLS write must repeat the same bytes: the slice only moves on success.
                piece = mv[off : off + _SEND_SLICE]
                with self._io:
                    try:
                        k = self.sock.send(piece)
                    except _WOULD_BLOCK:
                        k = 0
                if k:
                    off += k
                elif self._poller is not None:
                    # the peers may be sending to us too: read every link meanwhile so they can go on
                    self._poller.wait_writable(self, 1.0)
                else:
                    self._wait(1.0, write=True)

    def close(self) -> None:
        self._closing = True
        if self._poller is not None:
            self._poller.unregister(self)
        got = self._io.acquire(timeout=1.0)
        try:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
        finally:
            if got:
                self._io.release()


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
    delay_ms: float | None = None,
    bandwidth_mbps: float | None = None,
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
    `delay_ms` / `bandwidth_mbps` inject latency and a bandwidth cap into every link
    (default: `JOINTML_NET_DELAY_MS` / `JOINTML_NET_BANDWIDTH_MBPS`; see `jointml.net.link`).

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
                             _LinkOptions(recv_timeout, max_frame, handshake_timeout, max_pending, tls.pins,
                                          delay_ms, bandwidth_mbps))
        acceptor.start()
    for peer in order[idx + 1 :]:
        try:
            links[peer] = _dial(me, peer, addresses[peer], cctx, deadline, connect_timeout, recv_timeout, max_frame,
                                tls.pins, shaping=(delay_ms, bandwidth_mbps))
        except Exception:
            for link in links.values():
                link.close()
            if acceptor is not None:
                acceptor.abandon()
            if listener is not None:  # free the port now: a caller that retries binds it again
                listener.close()
            raise
    if acceptor is not None:
        try:
            links.update(acceptor.finish())
        except Exception:
            for link in links.values():
                link.close()
            if listener is not None:  # free the port now (not at garbage collection): a retry binds it again
                listener.close()
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
    delay_ms: float | None = None
    bandwidth_mbps: float | None = None


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
        self._register(claimed, TcpLink(me, claimed, s, self.opts.recv_timeout, self.opts.max_frame,
                                               delay_ms=self.opts.delay_ms, bandwidth_mbps=self.opts.bandwidth_mbps))

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
          pins: dict[str, str] | None = None,
          shaping: tuple[float | None, float | None] = (None, None)) -> TcpLink:
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
    return TcpLink(me, peer, s, recv_timeout, max_frame, delay_ms=shaping[0], bandwidth_mbps=shaping[1])
