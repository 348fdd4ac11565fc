"""Host side of an enclave: start the enclave process, relay frames, and the party client.

:class:`Enclave` starts ``python -m jointml.tee._boot`` as a separate OS process running
a registered program (see :data:`jointml.tee.attestation.PROGRAMS`) with a JSON
configuration, and relays frames to it over pipes. The host is *untrusted*: it sees
only what it relays, recorded in :attr:`Enclave.relay_log` so tests can check that no
plaintext data or key ever passes through it.

:class:`EnclaveSession` is what a data owner runs: challenge -> quote -> verify against
its own :class:`~jointml.tee.attestation.Verifier` -> authenticated X25519 session ->
encrypted calls. A party sends nothing to an enclave before its quote verified.

SIMULATION: the "enclave" is an ordinary process of the same user; the OS, not
hardware, isolates its memory.
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..core import wire
from ..core.errors import JointMLError
from . import channel as ch
from ._boot import frame, read_frame, write_all
from .attestation import AttestedEnclave, Quote, Verifier, dependency_paths, measure
from .platform import SIMULATION_LABEL, default_state_dir

log = logging.getLogger("jointml.tee")


class EnclaveError(JointMLError, RuntimeError):
    """An enclave refused or failed a request; carries the enclave's error type.

    Its text is the enclave's public error summary (the enclave never sends more) or a
    host fact (timeout, exit code), so it may be passed on to peers.

    >>> e = EnclaveError("DataError (field 'X')", "DataError", "enclave-1")
    >>> e.public_message("bank")
    "EnclaveError at party 'bank': enclave enclave-1: DataError: DataError (field 'X')"
    """

    safe_text = True

    def __init__(self, message: str, error_type: str = "", enclave: str = ""):
        super().__init__(f"enclave {enclave}: {error_type}: {message}" if enclave else message)
        self.error_type = error_type
        self.enclave = enclave


class EnclaveDied(EnclaveError):
    """The enclave process exited (or was killed) before answering."""


class Enclave:
    """A running enclave process (host handle). Thread-safe: requests may be concurrent."""

    _ids = itertools.count(1)

    def __init__(self, program: str, config: dict, *, platform_dir: str | os.PathLike | None = None,
                 debug: bool = False, name: str | None = None, timeout: float = 60.0):
        self.name = name or f"enclave-{next(self._ids)}"
        self.program = program
        self.config = config
        self.timeout = timeout
        self.relay_log: list[tuple[str, bytes]] = []  # (direction, frame) everything the host relayed
        self._pending: dict[int, Future] = {}
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._wlock = threading.Lock()
        self._dead: str | None = None
        # callback(enclave, message) for records the enclave sends to peers
        self.on_relay: Callable[[Enclave, wire.Message], None] | None = None
        self.platform_dir = str(platform_dir or default_state_dir())
        self.proc = subprocess.Popen(boot_command(program), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     bufsize=0, cwd=str(Path(__file__).resolve().parents[2]))
        self._reader = threading.Thread(target=self._read_loop, name=f"{self.name}-reader", daemon=True)
        self._reader.start()
        booted = self._request("boot", {"program": program, "config": config, "debug": debug,
                                      "platform_dir": self.platform_dir})
        self.measurement: str = booted.meta["measurement"]
        self.pid: int = self.proc.pid
        log.warning("%s: started %s (pid %d) program %s measurement %s", SIMULATION_LABEL, self.name, self.pid,
                    program, self.measurement[:16])

    # -- transport --------------------------------------------------------------
    def _read_loop(self):
        out = self.proc.stdout
        try:
            while True:
                body = read_frame(out)
                if body is None:
                    break
                self.relay_log.append(("from_enclave", body))
                m = wire.decode(body)
                if m.seq == 0 and m.kind == "relay":  # unsolicited: a record for a peer enclave
                    if self.on_relay is not None:
                        self.on_relay(self, m)
                    continue
                with self._lock:
                    fut = self._pending.pop(m.seq, None)
                if fut is not None:
                    fut.set_result(m)
        except Exception as e:  # malformed output: treat the enclave as dead
            log.error("%s: bad frame from enclave: %s", self.name, e)
        rc = self.proc.wait()
        with self._lock:
            self._dead = f"enclave {self.name} (pid {self.proc.pid}) exited with code {rc}"
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            fut.set_exception(EnclaveDied(self._dead, "EnclaveDied", self.name))

    def _request(self, kind: str, meta: dict | None = None, arrays: Sequence[np.ndarray] = (),
                 timeout: float | None = None) -> wire.Message:
        seq = next(self._seq)
        fut: Future = Future()
        data = frame(kind, seq, meta, arrays)
        with self._lock:
            if self._dead:
                raise EnclaveDied(self._dead, "EnclaveDied", self.name)
            self._pending[seq] = fut
        # write outside self._lock: the reader thread must keep draining the enclave's output
        with self._wlock:
            self.relay_log.append(("to_enclave", data[8:]))
            try:
                write_all(self.proc.stdin, data)
            except (BrokenPipeError, OSError, ValueError):
                with self._lock:
                    self._pending.pop(seq, None)
                raise EnclaveDied(f"enclave {self.name} (pid {self.proc.pid}) is gone", "EnclaveDied", self.name) from None
        try:
            m = fut.result(timeout=self.timeout if timeout is None else timeout)
        except TimeoutError:
            with self._lock:
                self._pending.pop(seq, None)
            raise EnclaveError(f"no answer to {kind!r} within {timeout or self.timeout}s", "Timeout", self.name) from None
        if m.kind == "error":
            raise EnclaveError(m.meta.get("message", "?"), m.meta.get("error", "?"), self.name)
        return m

    def request(self, kind: str, meta: dict | None = None, arrays: Sequence[np.ndarray] = (),
                timeout: float | None = None) -> wire.Message:
        return self._request(kind, meta, arrays, timeout)

    def post(self, kind: str, meta: dict | None = None, arrays: Sequence[np.ndarray] = ()) -> None:
        """Send a frame that gets no reply (seq 0), e.g. a relayed peer record."""
        data = frame(kind, 0, meta, arrays)
        with self._wlock:
            self.relay_log.append(("to_enclave", data[8:]))
            try:
                write_all(self.proc.stdin, data)
            except (BrokenPipeError, OSError, ValueError):
                raise EnclaveDied(f"enclave {self.name} (pid {self.proc.pid}) is gone", "EnclaveDied", self.name) from None

    # -- convenience ------------------------------------------------------------
    def attest(self, nonce: str) -> Quote:
        return Quote.from_dict(self.request("attest", {"nonce": nonce}).meta["quote"])

    def heartbeat(self, timeout: float = 2.0) -> dict:
        return self.request("heartbeat", timeout=timeout).meta

    @property
    def alive(self) -> bool:
        return self._dead is None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the enclave process (tests use it to simulate a crash)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(5)

    def close(self) -> None:
        if self.alive:
            try:
                self.request("shutdown", timeout=5)
            except EnclaveError:
                pass
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Enclave({self.name}, pid={self.proc.pid}, program={self.program}) [{SIMULATION_LABEL}]"


class EnclaveSession:
    """A data owner's attested, authenticated, encrypted session with an enclave.

    The party challenges the enclave with a nonce from its *own* verifier and sends
    nothing until the quote verified; the channel is keyed by the attested X25519 key.
    """

    def __init__(self, enclave: Enclave, identity: ch.PartyIdentity, verifier: Verifier):
        self.enclave = enclave
        self.identity = identity
        nonce = verifier.challenge()
        self.attested: AttestedEnclave = verifier.verify(enclave.attest(nonce))  # raises AttestationError
        priv = X25519PrivateKey.generate()
        pub = ch.x25519_public(priv)
        t = ch.session_transcript(identity.name, pub, self.attested.x25519, self.attested.measurement)
        r = enclave.request("session", {"party": identity.name, "client_pub": pub.hex(),
                                        "signature": identity.sign(t).hex()})
        self.session = r.meta["session"]
        try:
            server_nonce = bytes.fromhex(r.meta["server_nonce"])
        except (KeyError, TypeError, ValueError):
            raise ch.ChannelError(f"enclave {enclave.name}: malformed session reply") from None
        # a tampered server nonce only makes the first record fail authentication (denial of service)
        self._chan = ch.client_channel(priv, self.attested.x25519, t + server_nonce)
        self._lock = threading.Lock()

    def call(self, op: str, meta: dict | None = None, arrays: Sequence[np.ndarray] = (),
             timeout: float | None = None) -> wire.Message:
        """Send an encrypted request; returns the decrypted reply (raises EnclaveError on refusal)."""
        with self._lock:
            rec = self._chan.encrypt(ch.pack(op, meta, arrays))
            r = self.enclave.request("call", {"session": self.session}, [ch.as_bytes_array(rec)], timeout=timeout)
            (out,) = r.expect([np.uint8], party=self.enclave.name)
            reply = ch.unpack(self._chan.decrypt(out.tobytes()))
        if reply.kind == "error":
            raise EnclaveError(reply.meta.get("message", "?"), reply.meta.get("error", "?"), self.enclave.name)
        return reply

    def close(self) -> None:
        try:
            self.enclave.request("close_session", {"session": self.session}, timeout=5)
        except EnclaveError:
            pass


def boot_command(program: str) -> list[str]:
    """The command line of an enclave process running `program`: an isolated interpreter.

    ``-I -S``: no PYTHONPATH or other PYTHON* variables, no user site, no ``site`` (so no
    ``sitecustomize``/``usercustomize`` and no ``.pth`` files) -- nothing outside the
    measurement can inject code. Its paths are given explicitly: the directory holding
    this jointml (the enclave imports and measures the same files as the host) first,
    then the directories of the third-party modules the program imports, whose versions
    are measured.

    >>> cmd = boot_command("jointml.apps.tee_train")
    >>> cmd[1:4], "jointml.tee._boot" in cmd[-1]
    (['-I', '-S', '-u'], True)
    """
    src = str(Path(__file__).resolve().parents[2])
    boot = (f"import sys; sys.path[:0] = {[src]!r}; sys.path.extend({dependency_paths(program)!r}); "
            "from jointml.tee._boot import main; sys.exit(main())")
    return [sys.executable, "-I", "-S", "-u", "-c", boot]


def expected_measurement(program: str, config: dict) -> str:
    """What a verifier allow-lists: recomputed from the program's source and the config."""
    return measure(program, config)


def wait_until(pred, timeout: float, interval: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return pred()
