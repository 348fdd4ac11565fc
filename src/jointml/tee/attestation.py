"""Measurements, quotes, verification policy and the verifier.

*Measurement*: SHA-256 over everything that decides what an enclave runs: every
source file of the ``jointml`` package in the import closure of the enclave runtime and
its registered program (:func:`import_closure`: every ``import`` statement, also inside
functions, followed through the package, with every parent package's ``__init__``),
the interpreter (implementation and version), the name and version of every
third-party distribution that closure imports (numpy, cryptography, ...), and the
canonical JSON configuration. Anyone holding the same jointml release and environment
can recompute it with :func:`measure` and put it on an allow-list (reproducible-build
model). The enclave boots isolated (``python -I -S``: no user site, no PYTHONPATH, no
``sitecustomize``, no ``.pth`` files) with its paths given explicitly, and refuses to
boot if a ``jointml`` module it loaded is not in the measured closure
(:func:`check_loaded`). Third-party libraries are measured by version, not by content
(simulation; a hardware build would measure the whole enclave image).

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

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import secrets
import sys
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


#: The directory of the jointml package whose files are measured (the enclave runs this copy).
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "jointml"


def _source_of(module: str, root: Path) -> Path | None:
    """The source file of a jointml module under `root` (a package's ``__init__.py``)."""
    parts = module.split(".")[1:]
    base = root.joinpath(*parts)
    for f in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if f is not None and f.is_file():
            return f
    return None


@functools.lru_cache(maxsize=4096)
def _imports_of(path: str, mtime_ns: int, size: int, module: str, is_package: bool) -> tuple[tuple[str, ...], ...]:
    """Every module name an import statement of `path` names (cached per file version):
    for ``from X import Y`` both ``X`` and ``X.Y`` (``Y`` may be a submodule)."""
    tree = ast.parse(Path(path).read_bytes(), filename=path)
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, ...]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((a.name,) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((base, *(f"{base}.{a.name}" for a in node.names if a.name != "*")))
    return tuple(found)


def import_closure(roots: Iterable[str], root: Path = PACKAGE_ROOT) -> tuple[dict[str, Path], set[str]]:
    """Follow every import of the `roots` modules through the jointml package.

    Returns ``({module: source file}, {top-level names of third-party imports})``. Every
    parent package of a module is in the closure (importing ``a.b`` runs ``a/__init__``);
    imports inside functions count too, so code loaded later is measured as well.

    >>> files, deps = import_closure(["jointml.tee._boot"])
    >>> {"jointml", "jointml.tee", "jointml.core.prg", "jointml.tee.enclave"} <= set(files)
    True
    >>> {"numpy", "cryptography"} <= deps
    True
    """
    files: dict[str, Path] = {}
    deps: set[str] = set()
    todo = list(roots)
    while todo:
        mod = todo.pop()
        if mod in files:
            continue
        top = mod.split(".")[0]
        if top != PACKAGE:
            if top and top not in sys.stdlib_module_names and top != "__future__":
                deps.add(top)
            continue
        src = _source_of(mod, root)
        if src is None:
            continue  # `from pkg import name` where name is not a module
        files[mod] = src
        parts = mod.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        st = src.stat()
        for names in _imports_of(str(src), st.st_mtime_ns, st.st_size, mod, src.name == "__init__.py"):
            todo.extend(n for n in names if n)
    return files, deps


def program_files(program: str, root: Path = PACKAGE_ROOT) -> list[tuple[str, str]]:
    """(module name, file path) of every source file measured for `program`: the import
    closure of the runtime and the program, and every module the program lists.

    >>> mods = [m for m, _ in program_files("jointml.apps.tee_train")]
    >>> "jointml.tee.enclave" in mods and "jointml" in mods
    True
    """
    files, _ = _closure(program, root)
    return sorted((m, str(p)) for m, p in files.items())


def _closure(program: str, root: Path) -> tuple[dict[str, Path], set[str]]:
    if program not in PROGRAMS:
        raise AttestationError(f"unknown enclave program {program!r}; registered: {sorted(PROGRAMS)}")
    listed = sorted(set(RUNTIME_MODULES) | set(PROGRAMS[program]))
    roots = set(listed)
    for m in listed:  # a listed package stands for all of its modules
        base = root.joinpath(*m.split(".")[1:])
        if (base / "__init__.py").is_file():
            roots.update(".".join((m, *f.relative_to(base).with_suffix("").parts)).removesuffix(".__init__")
                         for f in sorted(base.rglob("*.py")))
    return import_closure(sorted(roots), root)


@functools.lru_cache(maxsize=64)
def _dist_version(top: str) -> str:
    """``distribution==version`` of the distribution that provides top-level module `top`."""
    dists = sorted(set(importlib.metadata.packages_distributions().get(top, [])))
    if not dists:
        return "not installed" if importlib.util.find_spec(top) is None else "unversioned"
    return ",".join(f"{d}=={importlib.metadata.version(d)}" for d in dists)


def environment(deps: Iterable[str]) -> dict[str, Any]:
    """The interpreter and the versions of the third-party modules `deps`: measured.

    >>> env = environment(["numpy"])
    >>> env["python"].startswith(sys.implementation.name), env["deps"]["numpy"].startswith("numpy==")
    (True, True)
    """
    v = sys.version_info
    return {"python": f"{sys.implementation.name}-{v.major}.{v.minor}.{v.micro}-{v.releaselevel}{v.serial}",
            "deps": {d: _dist_version(d) for d in sorted(deps)}}


def dependency_paths(program: str) -> list[str]:
    """The ``sys.path`` entries that hold the third-party modules `program` imports: what an
    isolated enclave interpreter (``-I -S``) is given, next to the jointml source. For an
    unknown program, those of the enclave runtime (which refuses the program at boot)."""
    if program in PROGRAMS:
        _, deps = _closure(program, PACKAGE_ROOT)
    else:
        _, deps = import_closure(RUNTIME_MODULES)
    paths: list[str] = []
    stdlib = {str(Path(p).resolve()) for p in sys.path if "site-packages" not in p and "dist-packages" not in p}
    for d in sorted(deps):
        spec = importlib.util.find_spec(d)
        if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
            continue
        entry = Path(spec.origin).resolve().parent
        if spec.submodule_search_locations:
            entry = entry.parent
        if str(entry) not in stdlib and str(entry) not in paths:
            paths.append(str(entry))
    return paths


def check_loaded(program: str, modules: Iterable[str]) -> None:
    """Inside the enclave, after boot: every jointml module loaded must have been measured.

    >>> check_loaded("jointml.apps.tee_train", ["jointml", "numpy"])
    >>> check_loaded("jointml.apps.tee_train", ["jointml.dashboard.app"])
    Traceback (most recent call last):
    ...
    jointml.tee.platform.AttestationError: enclave loaded modules outside its measurement: ['jointml.dashboard.app']
    """
    measured, _ = _closure(program, PACKAGE_ROOT)
    extra = sorted(m for m in modules if (m == PACKAGE or m.startswith(PACKAGE + ".")) and m not in measured)
    if extra:
        raise AttestationError(f"enclave loaded modules outside its measurement: {extra}")


def measure(program: str, config: Mapping[str, Any], *, root: Path = PACKAGE_ROOT) -> str:
    """The measurement (hex SHA-256) of `program` running with `config`: its import
    closure's sources, the interpreter and dependency versions, and the configuration.

    >>> a = measure("jointml.apps.tee_train", {"parties": {}})
    >>> a == measure("jointml.apps.tee_train", {"parties": {}}) != measure("jointml.apps.tee_train", {})
    True
    """
    files, deps = _closure(program, root)
    h = hashlib.sha256(b"jointml-tee-measurement-v2\0")
    h.update(program.encode() + b"\0")
    for mod, path in sorted(files.items()):
        h.update(mod.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    h.update(b"environment\0" + canonical_json(environment(deps)))
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
