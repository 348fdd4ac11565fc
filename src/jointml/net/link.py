"""Links between parties: ordered, tagged, counted messages with timeouts.

A `Link` is one party's end of the connection to one peer. Messages carry a tag
and a per-link sequence number; the receiver names the tag it expects next, and a
different tag or sequence number raises `ProtocolOutOfSync` at once (SPMD programs
that diverge fail fast instead of hanging or computing garbage).

Transports only move frame bodies: `InProcessLink` through queues (tests, thread
simulation), `TcpLink` over TLS sockets (`jointml.net.tcp`). Both encode and decode
the same wire format, so tests exercise what crosses a real link.

Latency injection (WAN measurement on one machine): a link built with `delay_ms`
(default: the `JOINTML_NET_DELAY_MS` environment variable) delivers each message that
many milliseconds after it arrived, and with `bandwidth_mbps` (`JOINTML_NET_BANDWIDTH_MBPS`)
it also serialises the messages at that rate, one after the other, before the delay:
message i is delivered at max(arrival_i, end_{i-1}) + size_i / bandwidth + delay. The
receiving end applies it, so a ping-pong costs 2 x delay and a simultaneous exchange
(both parties send, then both receive) 1 x delay, as on a real network.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence, Union

import numpy as np
import numpy.typing as npt

from ..core import wire
from ..core.errors import ConfigError, LinkTimeout, PeerAborted, PeerClosed, ProtocolOutOfSync, UnknownParty, WireFormatError

DEFAULT_RECV_TIMEOUT = float(os.environ.get("JOINTML_RECV_TIMEOUT", "300"))


@dataclass
class LinkStats:
    """Counters of one link (bytes include the 8-byte length prefix of each frame).

    >>> LinkStats(bytes_sent=16, msgs_sent=1).as_dict()["bytes_sent"]
    16
    """

    bytes_sent: int = 0
    bytes_recv: int = 0
    #: the array bytes of the messages sent, without framing (what `Protocol.cost` predicts)
    payload_sent: int = 0
    msgs_sent: int = 0
    msgs_recv: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return dict(self.__dict__)


class _Closed:
    """Inbox sentinel: the transport ended (with an optional exception to raise)."""

    def __init__(self, exc: Exception):
        self.exc = exc


class _Timed:
    """A received frame body that may be used only from `due` on (`time.monotonic()`)."""

    __slots__ = ("due", "body")

    def __init__(self, due: float, body: bytes | bytearray):
        self.due = due
        self.body = body


#: What a link's inbox holds: a received frame body (possibly held until a due time), or the end of the transport.
_InboxItem = Union[bytes, bytearray, "_Closed", "_Timed"]


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}", field=name) from None
    if v < 0:
        raise ConfigError(f"{name} must be >= 0, got {raw!r}", field=name)
    return v


@contextlib.contextmanager
def injected_latency(delay_ms: float | None = None, bandwidth_mbps: float | None = None) -> Iterator[None]:
    """Within the block, links built without explicit shaping (including those of parties started
    as processes, which inherit the environment) get this one-way delay and bandwidth cap.

    >>> with injected_latency(5):
    ...     a, b = InProcessLink.pair("alice", "bob")
    >>> a.shaper.delay, InProcessLink.pair("alice", "bob")[0].shaper is None
    (0.005, True)
    """
    names = {"JOINTML_NET_DELAY_MS": delay_ms, "JOINTML_NET_BANDWIDTH_MBPS": bandwidth_mbps}
    saved = {k: os.environ.get(k) for k in names}
    try:
        for k, v in names.items():
            if v is not None:
                os.environ[k] = repr(float(v))
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


class Shaper:
    """When each message arriving on a link may be delivered: a one-way delay and a bandwidth cap.

    Messages are serialised at `bandwidth_mbps` (megabits per second; None: unlimited) one
    after the other from their arrival, then delivered `delay_ms` later.

    >>> s = Shaper(delay_ms=10, bandwidth_mbps=8)   # 8 Mbit/s = 1 byte per microsecond
    >>> round(s.due(0.0, 1000) * 1e3, 3), round(s.due(0.0, 1000) * 1e3, 3)
    (11.0, 12.0)
    """

    def __init__(self, delay_ms: float = 0.0, bandwidth_mbps: float | None = None):
        if delay_ms < 0 or (bandwidth_mbps is not None and bandwidth_mbps <= 0):
            raise ConfigError(f"link shaping needs delay_ms >= 0 and bandwidth_mbps > 0, got {delay_ms}, {bandwidth_mbps}",
                              field="delay_ms")
        self.delay = float(delay_ms) / 1e3
        self.bytes_per_s = None if bandwidth_mbps is None else float(bandwidth_mbps) * 1e6 / 8
        self._free = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def from_env(delay_ms: float | None, bandwidth_mbps: float | None) -> "Shaper | None":
        """A shaper from the arguments, or else from JOINTML_NET_DELAY_MS / JOINTML_NET_BANDWIDTH_MBPS; None if neither."""
        d = _env_float("JOINTML_NET_DELAY_MS") if delay_ms is None else delay_ms
        bw = _env_float("JOINTML_NET_BANDWIDTH_MBPS") if bandwidth_mbps is None else bandwidth_mbps
        if not d and not bw:
            return None
        return Shaper(d or 0.0, bw or None)

    def due(self, arrival: float, nbytes: int) -> float:
        """The delivery time of a message of `nbytes` (framing included) that arrived at `arrival`."""
        with self._lock:
            start = max(arrival, self._free)
            end = start + (nbytes / self.bytes_per_s if self.bytes_per_s else 0.0)
            self._free = end
        return end + self.delay


class Link:
    """One end of a party-to-party link. Subclasses implement `_write` and feed `_inbox`.

    >>> a, b = InProcessLink.pair("alice", "bob")
    >>> _ = a.send("hello", [np.arange(2)])
    >>> b.recv("hello").arrays[0].tolist()
    [0, 1]
    >>> b.recv("other", timeout=0.01)
    Traceback (most recent call last):
    ...
    jointml.core.errors.LinkTimeout: bob: no message 'other' from alice within 0.01 s
    """

    def __init__(self, me: str, peer: str, recv_timeout: float | None = None, *,
                 delay_ms: float | None = None, bandwidth_mbps: float | None = None):
        self.me = me
        self.peer = peer
        self.stats = LinkStats()
        self.recv_timeout = DEFAULT_RECV_TIMEOUT if recv_timeout is None else recv_timeout
        self._send_seq = 0
        self._recv_seq = 0
        self._inbox: queue.Queue[_InboxItem] = queue.Queue()
        self._dead: Exception | None = None
        self._send_lock = threading.Lock()
        #: injected latency / bandwidth cap on the messages this end receives (None: none)
        self.shaper = Shaper.from_env(delay_ms, bandwidth_mbps)

    # -- transport hooks -------------------------------------------------
    def _write(self, bufs: wire.Buffers, nbytes: int) -> None:
        raise NotImplementedError

    def _deliver(self, body: bytes | bytearray) -> None:
        """Put a received frame body in the inbox (stamped with its due time when shaped)."""
        if self.shaper is None:
            self._inbox.put(body)
        else:
            self._inbox.put(_Timed(self.shaper.due(time.monotonic(), len(body) + 8), body))

    def _next(self, timeout: float) -> _InboxItem:
        """The next inbox item; `queue.Empty` when none arrives within `timeout` seconds."""
        return self._inbox.get(timeout=timeout)

    def close(self) -> None:
        raise NotImplementedError

    # -- public API ----------------------------------------------------------
    def send(
        self,
        tag: str,
        arrays: Sequence[npt.ArrayLike] | npt.NDArray[Any] = (),
        meta: dict[str, Any] | None = None,
        kind: str = "data",
    ) -> int:
        """Send a message; returns its size in bytes."""
        if isinstance(arrays, np.ndarray):
            arrays = (arrays,)
        bufs = wire.encode(kind, tag, self._send_seq, arrays, meta)
        n = wire.body_size(bufs)
        with self._send_lock:
            self._write(bufs, n)
            self._send_seq += 1
            st = self.stats
            st.bytes_sent += n + 8
            st.msgs_sent += 1
            st.payload_sent += n - len(bufs[0])  # the array buffers: all but the header
        return n

    def recv(self, tag: str, timeout: float | None = None) -> wire.Message:
        """Receive the next message, which must carry `tag`."""
        if self._dead is not None:
            raise self._dead
        t = self.recv_timeout if timeout is None else timeout
        try:
            item = self._next(t)
        except queue.Empty:
            raise LinkTimeout(
                f"{self.me}: no message '{tag}' from {self.peer} within {t:g} s", party=self.peer
            ) from None
        if isinstance(item, _Closed):
            self._dead = item.exc
            raise item.exc
        if isinstance(item, _Timed):
            wait = item.due - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # injected latency: the message is "still on the wire"
            item = item.body
        body = item
        try:
            msg = wire.decode(body)
        except WireFormatError as e:
            self._dead = WireFormatError(f"{self.me}: malformed frame from {self.peer}: {e}")
            raise self._dead from None
        self.stats.bytes_recv += len(body) + 8
        self.stats.msgs_recv += 1
        if msg.kind == "abort":
            err = str(msg.meta.get("error", "unknown error"))
            self._dead = PeerAborted(f"party {self.peer} failed: {err}", party=self.peer)
            raise self._dead
        if msg.tag != tag or msg.seq != self._recv_seq:
            self._dead = ProtocolOutOfSync(
                f"protocol out of sync: {self.me} expected message '{tag}' #{self._recv_seq} from {self.peer}, "
                f"got '{msg.tag}' #{msg.seq}",
                party=self.peer,
            )
            raise self._dead
        self._recv_seq += 1
        return msg

    def abort(self, error: str) -> None:
        """Tell the peer this party failed (best effort), so it fails fast with the cause.

        `error` goes to the peer as is: pass a text safe to disclose
        (`jointml.core.errors.public_summary`), never an exception's full message.
        """
        try:
            self.send("__abort__", meta={"error": error[:2000]}, kind="abort")
        except Exception:  # noqa: BLE001 - the peer may be gone already; the abort is a courtesy
            pass


class InProcessLink(Link):
    """A link whose peer end lives in the same process (threads).

    >>> a, b = InProcessLink.pair("alice", "bob")
    >>> a.close()
    >>> b.recv("x")
    Traceback (most recent call last):
    ...
    jointml.core.errors.PeerClosed: bob: alice closed the link
    """

    def __init__(self, me: str, peer: str, recv_timeout: float | None = None, *,
                 delay_ms: float | None = None, bandwidth_mbps: float | None = None):
        super().__init__(me, peer, recv_timeout, delay_ms=delay_ms, bandwidth_mbps=bandwidth_mbps)
        self.other: InProcessLink | None = None
        self._closed = False

    @staticmethod
    def pair(a: str, b: str, recv_timeout: float | None = None, *, delay_ms: float | None = None,
             bandwidth_mbps: float | None = None) -> tuple["InProcessLink", "InProcessLink"]:
        """Both ends of a link between `a` and `b` (each end delays what it receives by `delay_ms`)."""
        kw = {"delay_ms": delay_ms, "bandwidth_mbps": bandwidth_mbps}
        la, lb = InProcessLink(a, b, recv_timeout, **kw), InProcessLink(b, a, recv_timeout, **kw)
        la.other, lb.other = lb, la
        return la, lb

    def _write(self, bufs: wire.Buffers, nbytes: int) -> None:
        if self._closed:
            raise PeerClosed(f"{self.me}: link to {self.peer} is closed", party=self.peer)
        if self.other is None or self.other._closed:
            raise PeerClosed(f"{self.me}: {self.peer} closed the link", party=self.peer)
        # Copy into one immutable body: the sender may reuse its arrays right away.
        self.other._deliver(b"".join(bytes(b) if isinstance(b, memoryview) else b for b in bufs))

    def inject(self, body: bytes) -> None:
        """Deliver a raw frame body as if the peer had sent it (tests of malformed input)."""
        self._deliver(body)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.other is not None and not self.other._closed:
            self.other._inbox.put(_Closed(PeerClosed(f"{self.other.me}: {self.me} closed the link", party=self.me)))


class Communicator:
    """All links of one party, with party-level round counting.

    A round is counted each time this party starts sending after having received
    (or at its first send): the number of sequential message exchanges a protocol needs.

    >>> la, lb = InProcessLink.pair("alice", "bob")
    >>> alice, bob = Communicator("alice", {"bob": la}), Communicator("bob", {"alice": lb})
    >>> alice.send("bob", "x", np.zeros(4))
    >>> bob.recv_array("alice", "x", np.float64, (4,)).shape
    (4,)
    >>> alice.stats()["rounds"], alice.stats()["msgs_sent"]
    (1, 1)
    >>> alice.link("carol")
    Traceback (most recent call last):
    ...
    jointml.core.errors.UnknownParty: "alice has no link to party 'carol' (known: ['bob'])"
    """

    def __init__(self, me: str, links: Mapping[str, Link]):
        self.me = me
        self.links: dict[str, Link] = dict(links)
        self.rounds = 0
        self._last_was_send = False

    @property
    def peers(self) -> list[str]:
        """The parties this party has a link to."""
        return list(self.links)

    def link(self, peer: str) -> Link:
        """The link to `peer`; `UnknownParty` (a `KeyError`) if there is none."""
        try:
            return self.links[peer]
        except KeyError:
            raise UnknownParty(f"{self.me} has no link to party '{peer}' (known: {sorted(self.links)})", party=peer) from None

    def send(
        self, peer: str, tag: str, arrays: Sequence[npt.ArrayLike] | npt.NDArray[Any] = (), meta: dict[str, Any] | None = None
    ) -> None:
        """Send one tagged message to `peer` (counts a round when this party starts sending)."""
        if not self._last_was_send:
            self.rounds += 1
            self._last_was_send = True
        self.link(peer).send(tag, arrays, meta)

    def recv(
        self,
        peer: str,
        tag: str,
        dtypes: Sequence[npt.DTypeLike] | None = None,
        shapes: Sequence[Sequence[int] | None] | None = None,
        timeout: float | None = None,
    ) -> wire.Message:
        """Receive the next message from `peer`, which must carry `tag` (and the given dtypes/shapes)."""
        self._last_was_send = False
        msg = self.link(peer).recv(tag, timeout)
        if dtypes is not None or shapes is not None:
            msg.expect(dtypes, shapes, party=peer)
        return msg

    def recv_array(self, peer: str, tag: str, dtype: npt.DTypeLike, shape: Sequence[int]) -> npt.NDArray[Any]:
        """Receive one array of the given dtype and shape."""
        return self.recv(peer, tag, dtypes=[dtype], shapes=[shape]).arrays[0]

    def stats(self) -> dict[str, int]:
        """Bytes and messages over all links, and this party's rounds."""
        total = LinkStats()
        for l in self.links.values():
            for k, v in l.stats.__dict__.items():
                setattr(total, k, getattr(total, k) + v)
        d = total.as_dict()
        d["rounds"] = self.rounds
        return d

    def reset_stats(self) -> None:
        """Zero every counter (benchmarks measure one phase)."""
        self.rounds = 0
        self._last_was_send = False
        for l in self.links.values():
            l.stats = LinkStats()

    def abort(self, error: str) -> None:
        """Tell every peer that this party failed, with `error`: a text safe to disclose."""
        for l in self.links.values():
            l.abort(error)

    def close(self) -> None:
        """Close every link."""
        for l in self.links.values():
            l.close()
