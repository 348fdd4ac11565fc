"""Enclave-side runtime: the entry point of every enclave process (``python -m jointml.tee._boot``).

SIMULATION: this is an ordinary OS process. It measures the registered program it
is told to run (source files + configuration), generates fresh X25519/Ed25519 keys,
and then serves requests from its host over stdin/stdout. The host only relays
frames; everything that carries data is encrypted to keys that never leave this
process. Frames are ``uint64 length | jointml wire body`` (JSON header + raw arrays).

Requests (kind -> meaning):

* ``attest`` {nonce}: a quote binding measurement + keys to the nonce
* ``challenge``: a nonce from this enclave's own verifier (to attest a peer enclave)
* ``session`` {party, client_pub, signature}: open a channel to a party whose identity
  key is listed in the (measured) configuration
* ``call`` {session} [record]: an encrypted request from a party -> encrypted reply
* ``task`` {...} [blobs]: cluster work on data-key ciphertexts -> data-key ciphertexts
* ``key_generate`` / ``key_unseal`` / ``key_export`` / ``key_import``: the cluster data key
* ``heartbeat``, ``shutdown``
* ``deliver`` {from} [record]: an encrypted record from a peer enclave, relayed by the
  host (no reply; handled at once, also while a task runs). The enclave sends records
  to peers as unsolicited ``relay`` frames (seq 0) that the host routes.

Errors leaving the enclave (replies to the host, encrypted replies to a party, the
enclave's stderr, which the host reads) carry only :func:`error_meta`: the error class
and a text safe to disclose (protocol refusals, or messages marked ``public``), never an
exception's full text, which may quote the data the enclave holds. A debug enclave
(never trusted with real data) also logs the full traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import secrets
import struct
import sys
import threading
import traceback
from typing import Any, Callable

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..core import wire
from ..core.errors import AccessDenied, ProtocolError, ResourceError, WireFormatError, public_summary
from . import channel as ch
from . import sealing
from .attestation import PROGRAMS, Policy, Quote, Verifier, check_loaded, make_quote, measure, program_module
from .platform import SIMULATION_LABEL, AttestationError, load_platform
from .sealing import SealingError

_LEN = struct.Struct("<Q")
MAX_FRAME = 1 << 34
MAX_SESSIONS = 10_000
log = logging.getLogger("jointml.tee.enclave")


def _read_exact(f, n: int) -> bytes | None:
    """Read exactly n bytes (raw pipes return short reads); None at end of stream."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            return None
        got += k
    return bytes(buf)


def write_all(f, data: bytes) -> None:
    view = memoryview(data)
    while view.nbytes:
        k = f.write(view)
        if k is None:
            raise BlockingIOError("pipe is non-blocking")
        view = view[k:]


def read_frame(f) -> bytes | None:
    head = _read_exact(f, _LEN.size)
    if head is None:
        return None
    (n,) = _LEN.unpack(head)
    if n > MAX_FRAME:
        raise WireFormatError(f"frame of {n} bytes is too large")
    return _read_exact(f, n)


#: errors whose messages are built from protocol facts (which check refused, which party,
#: which role): their text may leave the enclave
SAFE_ERRORS: tuple[type, ...] = (AttestationError, ch.ChannelError, SealingError)


def error_meta(e: BaseException, debug: bool = False) -> dict[str, str]:
    """The error as it may leave the enclave: class and safe text only.

    >>> from jointml.core.errors import DataError
    >>> error_meta(DataError("cell 'ACCT-4711 John Q. Customer' is not a number", field="id"))
    {'error': 'DataError', 'message': "DataError (field 'id')"}
    >>> error_meta(AttestationError("quote refused: stale nonce"))["message"]
    'AttestationError: quote refused: stale nonce'
    """
    if debug:  # a debug enclave is never trusted with real data; its host may see everything
        log.warning("enclave error: %s: %s", type(e).__name__, e)
    return {"error": type(e).__name__, "message": public_summary(e, None, SAFE_ERRORS)}


def frame(kind: str, seq: int, meta: dict | None = None, arrays=()) -> bytes:
    body = b"".join(bytes(b) for b in wire.encode(kind, "tee", seq, arrays, meta or {}))
    return _LEN.pack(len(body)) + body


class EnclaveRuntime:
    """State of one enclave: its keys, sessions, data key, and the loaded program.

    Normally built by :func:`main` inside the enclave process; in-process here (SIMULATION):

    >>> import tempfile
    >>> rt = EnclaveRuntime("jointml.apps.tee_train", {"parties": {}}, False, tempfile.mkdtemp())
    >>> len(rt.measurement), rt.program_name
    (64, 'jointml.apps.tee_train')
    >>> rt.handle(wire.Message("format_disk", "host", 1, [], {}))
    Traceback (most recent call last):
    ...
    jointml.core.errors.ProtocolError: unknown enclave request 'format_disk'
    """

    def __init__(self, program: str, config: dict, debug: bool, platform_dir: str | None):
        if program not in PROGRAMS:
            raise AttestationError(f"unknown enclave program {program!r}")
        self.program_name = program
        self.config = config
        self.debug = debug
        self.platform = load_platform(platform_dir)
        self.measurement = measure(program, config)
        self._x = X25519PrivateKey.generate()
        self._sig = Ed25519PrivateKey.generate()
        self.x25519 = ch.x25519_public(self._x)
        self.ed25519 = ch.ed25519_public(self._sig)
        self.sessions: dict[int, tuple[str, ch.SecureChannel]] = {}
        self._next_session = 1
        self.data_key: bytes | None = None
        # Peer enclaves (for data-key provisioning) must run exactly this measurement
        # (or one listed in the measured config) on a platform the config trusts.
        self.peer_verifier = Verifier(Policy.from_config(config.get("peer_policy", {}), [self.measurement]))
        self.emit: Callable[..., None] | None = None  # set by main(): send an unsolicited frame to the host (seq 0)
        self.program = importlib.import_module(program_module(program)).EnclaveProgram(self)
        log.warning("%s: enclave pid %d runs program %s, measurement %s", SIMULATION_LABEL, os.getpid(), program,
                    self.measurement[:16])

    # -- helpers for programs -------------------------------------------------
    def x25519_exchange(self, peer_public: bytes) -> bytes:
        """ECDH with this enclave's attested X25519 key (the private key never leaves)."""
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

        return self._x.exchange(X25519PublicKey.from_public_bytes(peer_public))

    def sign(self, data: bytes) -> bytes:
        """Sign `data` with this enclave's attested Ed25519 key (the quote's ``ed25519``);
        callers put a domain label first (e.g. :func:`jointml.tee.channel.link_offer`)."""
        return self._sig.sign(data)

    def require_data_key(self) -> bytes:
        if self.data_key is None:
            raise ResourceError("this enclave holds no cluster data key yet", public=True)
        return self.data_key

    def encrypt_data(self, plaintext: bytes, context: str) -> bytes:
        return sealing.encrypt_blob(self.require_data_key(), plaintext, context)

    def decrypt_data(self, blob: bytes, context: str) -> bytes:
        return sealing.decrypt_blob(self.require_data_key(), blob, context)

    def seal(self, purpose: str, data: bytes) -> bytes:
        return sealing.seal(self.platform, self.measurement, purpose, data)

    def unseal(self, purpose: str, blob: bytes) -> bytes:
        return sealing.unseal(self.platform, self.measurement, purpose, blob)

    # -- request handling -----------------------------------------------------
    def quote(self, nonce: str) -> Quote:
        return make_quote(self.platform, program=self.program_name, measurement=self.measurement, x25519=self.x25519,
                          ed25519=self.ed25519, nonce=nonce, debug=self.debug)

    def handle(self, m: wire.Message) -> tuple[dict, list]:
        """Answer one request from the host: `(meta, arrays)` of the reply."""
        name = _HANDLERS.get(m.kind)
        if name is None:
            raise ProtocolError(f"unknown enclave request {m.kind!r}", public=True)
        reply: tuple[dict, list] = getattr(self, name)(m)
        return reply

    def _on_attest(self, m: wire.Message) -> tuple[dict, list]:
        nonce = m.meta.get("nonce")
        if not isinstance(nonce, str) or len(nonce) < 32:
            raise ProtocolError("attest needs a hex nonce of at least 16 bytes", public=True)
        return {"quote": self.quote(nonce).to_dict()}, []

    def _on_challenge(self, m: wire.Message) -> tuple[dict, list]:
        return {"nonce": self.peer_verifier.challenge()}, []

    def _on_session(self, m: wire.Message) -> tuple[dict, list]:
        meta = m.meta
        party = meta.get("party")
        keys = self.config.get("parties", {})
        if not isinstance(party, str) or party not in keys:
            raise AccessDenied(f"party {party!r} is not a party of this enclave's configuration")
        if len(self.sessions) >= MAX_SESSIONS:
            raise ResourceError(f"too many open sessions ({MAX_SESSIONS})", public=True)
        client_pub = bytes.fromhex(meta["client_pub"])
        t = ch.session_transcript(party, client_pub, self.x25519, self.measurement)
        ch.verify_ed25519(bytes.fromhex(keys[party]), bytes.fromhex(meta["signature"]), t,
                          f"session request of party {party!r}")
        # the enclave's fresh contribution: a replayed session request yields other keys,
        # so records recorded from an earlier session cannot be replayed into a new one
        server_nonce = secrets.token_bytes(32)
        sid = self._next_session
        self._next_session += 1
        self.sessions[sid] = (party, ch.enclave_channel(self._x, client_pub, t + server_nonce))
        return {"session": sid, "server_nonce": server_nonce.hex()}, []

    def _on_close_session(self, m: wire.Message) -> tuple[dict, list]:
        sid = m.meta.get("session")
        if isinstance(sid, int):
            self.sessions.pop(sid, None)
        return {}, []

    def _on_call(self, m: wire.Message) -> tuple[dict, list]:
        sid = m.meta.get("session")
        if not isinstance(sid, int) or sid not in self.sessions:
            raise AccessDenied(f"unknown session {sid!r}", public=True)
        party, chan = self.sessions[sid]
        (rec,) = m.expect([np.uint8])
        req = ch.unpack(chan.decrypt(rec.tobytes()))
        try:
            rmeta, rarrays = self.program.on_call(party, req.kind, req.meta, req.arrays)
            payload = ch.pack("ok", rmeta, rarrays)
        except Exception as e:  # encrypted to the party, yet it may hold others' data: safe text only
            payload = ch.pack("error", error_meta(e, self.debug))
        return {}, [ch.as_bytes_array(chan.encrypt(payload))]

    def _on_task(self, m: wire.Message) -> tuple[dict, list]:
        reply: tuple[dict, list] = self.program.on_task(m.meta.get("op"), m.meta, m.arrays)
        return reply

    def _on_key_generate(self, m: wire.Message) -> tuple[dict, list]:
        if self.data_key is not None:
            raise ProtocolError("data key already present", public=True)
        self.data_key = sealing.new_data_key()
        return {}, [ch.as_bytes_array(self.seal("cluster-data-key", self.data_key))]

    def _on_key_unseal(self, m: wire.Message) -> tuple[dict, list]:
        (blob,) = m.expect([np.uint8])
        self.data_key = self.unseal("cluster-data-key", blob.tobytes())
        return {}, []

    def _on_key_export(self, m: wire.Message) -> tuple[dict, list]:
        peer = self.peer_verifier.verify(m.meta["quote"])  # raises AttestationError
        key = self.require_data_key()
        aad = b"jointml-data-key|" + peer.x25519 + self.measurement.encode()
        eph, ct = ch.seal_to(peer.x25519, key, aad)
        sig = self._sig.sign(b"jointml-key-export|" + peer.x25519 + eph + ct)
        return {"eph": eph.hex(), "signature": sig.hex()}, [ch.as_bytes_array(ct)]

    def _on_key_import(self, m: wire.Message) -> tuple[dict, list]:
        meta = m.meta
        holder = self.peer_verifier.verify(meta["quote"])  # the key must come from an attested peer
        (ct_array,) = m.expect([np.uint8])
        eph, ct = bytes.fromhex(meta["eph"]), ct_array.tobytes()
        ch.verify_ed25519(holder.ed25519, bytes.fromhex(meta["signature"]),
                          b"jointml-key-export|" + self.x25519 + eph + ct, "data key export")
        aad = b"jointml-data-key|" + self.x25519 + holder.measurement.encode()
        self.data_key = ch.open_sealed(self._x, eph, ct, aad)
        return {}, []


#: request kind -> the EnclaveRuntime method that answers it
_HANDLERS = {
    kind: f"_on_{kind}"
    for kind in ("attest", "challenge", "session", "close_session", "call", "task",
                 "key_generate", "key_unseal", "key_export", "key_import")
}


Send = Callable[..., None]


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="[enclave %(process)d] %(message)s")
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # stray prints go to stderr, never into the frame stream
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def send(kind: str, seq: int, meta: dict | None = None, arrays: Any = ()) -> None:
        data = frame(kind, seq, meta, arrays)
        with lock:
            write_all(out, data)

    rt = _boot(inp, send)
    if rt is None:
        return 1
    rt.emit = lambda kind, meta=None, arrays=(): send(kind, 0, meta, arrays)
    work: queue.Queue = queue.Queue()
    t = threading.Thread(target=_work, args=(rt, work, send), daemon=True)
    t.start()
    _serve(rt, inp, work, send)
    work.put(None)
    return 0


def _boot(inp: Any, send: Send) -> EnclaveRuntime | None:
    """Read the boot frame and build the runtime; None (the host told why) if that failed."""
    body = read_frame(inp)
    if body is None:
        return None
    boot = wire.decode(body)
    try:
        rt = EnclaveRuntime(boot.meta["program"], boot.meta["config"], bool(boot.meta.get("debug", False)),
                            boot.meta.get("platform_dir"))
    except Exception as e:
        err = error_meta(e, bool(boot.meta.get("debug", False)))
        send("error", boot.seq, {**err, "message": f"enclave boot failed: {err['message']}"})
        return None
    try:
        # the measurement must cover every jointml module this process runs
        check_loaded(rt.program_name, list(sys.modules))
    except AttestationError as e:
        send("error", boot.seq, {**error_meta(e), "message": f"enclave boot failed: {e}"})
        return None
    send("ok", boot.seq, {"measurement": rt.measurement, "pid": os.getpid(), "label": SIMULATION_LABEL})
    return rt


def _work(rt: EnclaveRuntime, work: queue.Queue, send: Send) -> None:
    """The worker thread: answer queued requests one at a time until None arrives."""
    while True:
        m = work.get()
        if m is None:
            return
        try:
            meta, arrays = rt.handle(m)
            send("ok", m.seq, meta, arrays)
        except Exception as e:
            if rt.debug and not isinstance(e, (AttestationError, PermissionError, ValueError, RuntimeError)):
                traceback.print_exc()  # the traceback quotes the message: debug enclaves only
            send("error", m.seq, error_meta(e, rt.debug))


def _serve(rt: EnclaveRuntime, inp: Any, work: queue.Queue, send: Send) -> None:
    """Read frames until shutdown or end of stream; heartbeats and deliveries are answered
    here at once (even while a long task runs), everything else is queued for the worker."""
    while True:
        body = read_frame(inp)
        if body is None:
            break
        try:
            m = wire.decode(body)
        except WireFormatError as e:
            send("error", 0, error_meta(e, rt.debug))
            continue
        if m.kind == "heartbeat":  # answered even while a long task runs
            send("ok", m.seq, {"alive": True, "measurement": rt.measurement, "busy": work.qsize()})
        elif m.kind == "deliver":  # a relayed peer record (no reply); handled while a task runs
            try:
                rt.program.on_deliver(m.meta, m.arrays)
            except Exception as e:
                log.error("dropped a delivered record: %s", error_meta(e, rt.debug)["message"])
        elif m.kind == "shutdown":
            send("ok", m.seq, {})
            break
        else:
            work.put(m)


if __name__ == "__main__":
    sys.exit(main())
