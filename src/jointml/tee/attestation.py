"""Measurements, quotes, verification policy and the verifier.

*Measurement*: SHA-256 over the source files an enclave runs (its registered program
module and the enclave runtime modules) and its canonical JSON configuration. Anyone
holding the same jointml release can recompute it with :func:`measure` and put it on
an allow-list (reproducible-build model). Third-party libraries the program imports
(numpy, scikit-learn) are not measured in the simulation; a hardware build would
measure the whole enclave image.

*Quote*: the enclave's measurement, its fresh X25519 (channel) and Ed25519 (signing)
public keys and the verifier's challenge nonce, signed by the platform attestation key
(see :mod:`jointml.tee.platform`). Simulation quotes say so in ``platform`` and
``simulation``.

*Verifier*: issues single-use nonces and checks, in order: the platform key is trusted,
the signature is valid, the simulation/debug flags are allowed by the policy, the nonce
is one it issued, unused and fresh, and the measurement is allow-listed. Every refusal
raises :class:`AttestationError` saying which check failed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .platform import SIMULATION_PLATFORM, AttestationError, Platform, platform_id

QUOTE_VERSION = 1

#: Modules that make up the enclave runtime: measured into every enclave.
RUNTIME_MODULES = (
    "jointml.tee._boot",
    "jointml.tee.platform",
    "jointml.tee.attestation",
    "jointml.tee.channel",
    "jointml.tee.sealing",
    "jointml.core.wire",
    "jointml.core.errors",
)

#: Registered enclave programs: name -> (program module, further measured modules or
#: packages). The program module defines ``EnclaveProgram``. Fixed in code: the host
#: chooses which registered program to start, and the measurement tells verifiers
#: which one (and which configuration) it is. The programs are applications
#: (:mod:`jointml.apps`); this table names them by module path only -- the TEE layer
#: never imports them, the enclave process loads the one it was booted with.
PROGRAMS: dict[str, tuple[str, ...]] = {
    # hybrid mode splits the model with jointml.mpc.sharing: importing it runs the MPC package (and the
    # runtime and links it imports), so all of it is measured
    "jointml.apps.tee_train": ("jointml.apps.tee_train", "jointml.mpc.sharing", "jointml.core", "jointml.mpc",
                               "jointml.runtime", "jointml.net"),
    # TECC runs the MPC engine and the estimators inside the enclave: all of it is measured
    "jointml.apps.tecc": ("jointml.apps.tecc", "jointml.mpc.sharing", "jointml.tee.tecc", "jointml.core",
                          "jointml.net", "jointml.runtime", "jointml.mpc", "jointml.ml"),
}


def program_module(program: str) -> str:
    if program not in PROGRAMS:
        raise AttestationError(f"unknown enclave program {program!r}; registered: {sorted(PROGRAMS)}")
    return PROGRAMS[program][0]


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _module_files(module: str) -> list[tuple[str, str]]:
    """(module name, path) of a module's source, or of every module of a package."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise AttestationError(f"enclave module {module!r} has no Python source file to measure")
    if not spec.submodule_search_locations:
        return [(module, spec.origin)]
    root = Path(spec.origin).parent
    return [(".".join((module, *f.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"), str(f))
            for f in sorted(root.rglob("*.py"))]


def program_files(program: str) -> list[tuple[str, str]]:
    """(module name, file path) of every source file measured for `program`."""
    if program not in PROGRAMS:
        raise AttestationError(f"unknown enclave program {program!r}; registered: {sorted(PROGRAMS)}")
    files = dict(f for m in sorted(set(RUNTIME_MODULES) | set(PROGRAMS[program])) for f in _module_files(m))
    return sorted(files.items())


def measure(program: str, config: Mapping[str, Any]) -> str:
    """The measurement (hex SHA-256) of `program` running with `config`."""
    h = hashlib.sha256(b"jointml-tee-measurement-v1\0")
    h.update(program.encode() + b"\0")
    for mod, path in program_files(program):
        with open(path, "rb") as f:
            h.update(mod.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    h.update(b"config\0" + canonical_json(dict(config)))
    return h.hexdigest()


@dataclass(frozen=True)
class Quote:
    """A signed statement by the platform: this measurement holds these keys, for this nonce."""

    platform: str
    platform_id: str
    simulation: bool
    debug: bool
    program: str
    measurement: str
    x25519: str  # hex, enclave channel key
    ed25519: str  # hex, enclave signing key
    nonce: str  # hex, verifier's challenge
    timestamp: float
    version: int = QUOTE_VERSION
    signature: str = ""

    def body(self) -> bytes:
        d = asdict(self)
        d.pop("signature")
        return b"jointml-tee-quote|" + canonical_json(d)

    def digest(self) -> bytes:
        return hashlib.sha256(self.body() + bytes.fromhex(self.signature)).digest()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> "Quote":
        types: dict[str, type | tuple[type, ...]] = {
            "platform": str, "platform_id": str, "simulation": bool, "debug": bool, "program": str,
            "measurement": str, "x25519": str, "ed25519": str, "nonce": str, "timestamp": (int, float),
            "version": int, "signature": str,
        }
        if not isinstance(d, dict) or set(d) != set(types):
            raise AttestationError(f"malformed quote: fields {sorted(d) if isinstance(d, dict) else type(d).__name__}")
        for k, t in types.items():
            if not isinstance(d[k], t) or (t is int and isinstance(d[k], bool)):
                raise AttestationError(f"malformed quote: field {k!r} has type {type(d[k]).__name__}")
        if d["version"] != QUOTE_VERSION:
            raise AttestationError(f"unsupported quote version {d['version']}")
        for k in ("x25519", "ed25519", "nonce", "signature", "measurement"):
            try:
                bytes.fromhex(d[k])
            except ValueError:
                raise AttestationError(f"malformed quote: field {k!r} is not hex") from None
        return cls(**{k: d[k] for k in types})


def make_quote(platform: Platform, *, program: str, measurement: str, x25519: bytes, ed25519: bytes,
               nonce: str, debug: bool) -> Quote:
    """Enclave side: have the platform sign a quote for this enclave's keys and the nonce."""
    q = Quote(platform=platform.name, platform_id=platform.platform_id, simulation=platform.simulation,
              debug=bool(debug), program=program, measurement=measurement, x25519=x25519.hex(),
              ed25519=ed25519.hex(), nonce=nonce, timestamp=time.time())
    return Quote(**{**asdict(q), "signature": platform.sign_quote(q.body()).hex()})


@dataclass(frozen=True)
class TrustedPlatform:
    """A platform attestation public key the verifier trusts, and whether it is a simulation key."""

    public_key: bytes
    simulation: bool = True
    name: str = SIMULATION_PLATFORM

    @property
    def platform_id(self) -> str:
        return platform_id(self.public_key)

    @classmethod
    def of(cls, platform: Platform) -> "TrustedPlatform":
        return cls(platform.public_key(), platform.simulation, platform.name)


@dataclass
class Policy:
    """What a verifier accepts. Defaults refuse simulation and debug enclaves."""

    allowed_measurements: frozenset[str] = frozenset()
    trusted_platforms: tuple[TrustedPlatform, ...] = ()
    allow_simulation: bool = False
    allow_debug: bool = False
    max_nonce_age: float = 60.0

    def __post_init__(self):
        self.allowed_measurements = frozenset(self.allowed_measurements)
        self.trusted_platforms = tuple(self.trusted_platforms)

    def to_config(self) -> dict:
        """JSON form, for an enclave's (measured) configuration."""
        return {"allowed_measurements": sorted(self.allowed_measurements),
                "trusted_platforms": [{"public_key": t.public_key.hex(), "simulation": t.simulation, "name": t.name}
                                      for t in self.trusted_platforms],
                "allow_simulation": self.allow_simulation, "allow_debug": self.allow_debug,
                "max_nonce_age": self.max_nonce_age}

    @classmethod
    def from_config(cls, d: Mapping[str, Any], extra_measurements: Iterable[str] = ()) -> "Policy":
        return cls(allowed_measurements=frozenset(d.get("allowed_measurements", ())) | frozenset(extra_measurements),
                   trusted_platforms=tuple(TrustedPlatform(bytes.fromhex(t["public_key"]), bool(t["simulation"]), t["name"])
                                           for t in d.get("trusted_platforms", ())),
                   allow_simulation=bool(d.get("allow_simulation", False)), allow_debug=bool(d.get("allow_debug", False)),
                   max_nonce_age=float(d.get("max_nonce_age", 60.0)))


@dataclass(frozen=True)
class AttestedEnclave:
    """The result of a successful verification: keys now bound to an allow-listed measurement."""

    quote: Quote
    x25519: bytes
    ed25519: bytes

    @property
    def measurement(self) -> str:
        return self.quote.measurement


class Verifier:
    """Issues challenge nonces and verifies quotes against a :class:`Policy`."""

    def __init__(self, policy: Policy, clock=time.monotonic):
        self.policy = policy
        self._clock = clock
        self._nonces: dict[str, float] = {}
        self._lock = threading.Lock()

    def challenge(self) -> str:
        nonce = secrets.token_hex(32)
        with self._lock:
            now = self._clock()
            # forget nonces long expired so the table stays small
            for n in [n for n, t in self._nonces.items() if now - t > 10 * self.policy.max_nonce_age]:
                del self._nonces[n]
            self._nonces[nonce] = now
        return nonce

    def verify(self, quote: Quote | Mapping) -> AttestedEnclave:
        q = quote if isinstance(quote, Quote) else Quote.from_dict(dict(quote))
        p = self.policy
        trusted = {t.platform_id: t for t in p.trusted_platforms}
        tp = trusted.get(q.platform_id)
        if tp is None:
            raise AttestationError(f"quote refused: platform {q.platform_id} ({q.platform}) is not a trusted platform "
                                   "attestation key for this verifier")
        Platform.verify_quote_signature(tp.public_key, q.body(), bytes.fromhex(q.signature))
        if tp.simulation and not q.simulation:
            raise AttestationError(f"quote refused: signed by simulation platform {q.platform_id} but claims to be hardware")
        if q.simulation or q.platform == SIMULATION_PLATFORM:
            if not p.allow_simulation:
                raise AttestationError(
                    f"quote refused: enclave runs on the software simulation platform ({q.platform}), which gives no "
                    "hardware protection, and the policy requires hardware (allow_simulation=False)")
        if q.debug and not p.allow_debug:
            raise AttestationError("quote refused: enclave runs in debug mode and the policy forbids debug enclaves "
                                   "(allow_debug=False)")
        with self._lock:
            issued = self._nonces.pop(q.nonce, None)
        if issued is None:
            raise AttestationError("quote refused: nonce was not issued by this verifier or was already used (replayed quote)")
        age = self._clock() - issued
        if age > p.max_nonce_age:
            raise AttestationError(f"quote refused: stale nonce ({age:.1f}s old, policy allows {p.max_nonce_age:.1f}s)")
        if q.measurement not in p.allowed_measurements:
            raise AttestationError(f"quote refused: measurement {q.measurement[:16]}... of program {q.program!r} is not on "
                                   "the allow-list (different code or configuration)")
        return AttestedEnclave(q, bytes.fromhex(q.x25519), bytes.fromhex(q.ed25519))
