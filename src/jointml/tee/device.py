"""The TEE device: an attested enclave as a device of an SPMD program (SIMULATION).

It fits the transfer table of the other devices (DESIGN section 2):

| transfer | what happens |
| --- | --- |
| ``x.to(tee, op=...)`` | the owner of PartyObject ``x`` sends it encrypted over its own attested session |
| ``tee.run(op, by=party)`` | the enclave runs one named operation of its registered program (no code is sent) |
| ``sealed.reveal(to=party, op=...)`` | the enclave sends a result to that one party, encrypted to its session |

Sessions are keyed by the enclave's *attested* X25519 key (AES-GCM records with
sequence numbers); the program refuses parties its measured configuration does not
name (e.g. a reveal to a party that is not a result party).

A party sends nothing before the enclave's quote verified against *its own*
:class:`~jointml.tee.attestation.Verifier` (allow-listed measurement, trusted
platform, fresh nonce; a simulation quote only under ``allow_simulation=True``):
attestation happens when the device is built, at every member, and a failure at one
member is raised at every party of the program (nobody is left waiting).

Security model: the enclave's (see :mod:`jointml.tee`): trusted if its measurement is
allow-listed; the host relays ciphertext only. **SIMULATION**: the software platform
gives no hardware protection; the enclave's host can read everything inside.
What each party learns: the owner of an input learns the enclave's public summary of
it (rows, columns), and so does every party of the program (it is announced, as shapes
are for MPC inputs); a revealed result goes to the named party only; the others learn
that the reveal succeeded.

>>> from jointml.tee import Enclave, PartyIdentity, Policy, TrustedPlatform, Verifier, load_platform
>>> from jointml.apps.tee_train import PROGRAM, training_config
>>> import tempfile
>>> from jointml.core.prg import public_rng
>>> plat_dir = tempfile.mkdtemp()
>>> ids = {p: PartyIdentity(p) for p in ("alice", "bob")}
>>> cfg = training_config({p: i.public_key for p, i in ids.items()}, feature_parties=["alice", "bob"],
...                       label_party="alice", result_parties=["alice"])
>>> enclave = Enclave(PROGRAM, cfg, platform_dir=plat_dir)
>>> trusted = (TrustedPlatform.of(load_platform(plat_dir)),)
>>> def prog(ctx):
...     policy = Policy({enclave.measurement}, trusted, allow_simulation=True)  # allow-list + simulation
...     tee = TeeDevice(ctx, enclave, ["alice", "bob"], identity=ids[ctx.me], verifier=Verifier(policy))
...     g = public_rng(0)  # public example data: numpy's generator through the one sanctioned door
...     X = g.normal(size=(40, 2))
...     y = (X[:, 0] > 0).astype(float)
...     a = ctx.party("alice").run(lambda: (X[:, :1], y))
...     b = ctx.party("bob").run(lambda: X[:, 1:])
...     a.to(tee, meta={"columns": ["a0"], "row_ids_sha256": "r"})
...     up = b.to(tee, meta={"columns": ["b0"], "row_ids_sha256": "r"})
...     model = tee.run("train", by="bob")
...     got = model.reveal(to="alice", op="get_model")
...     return up.meta["rows"], model.meta["type"], got.value.meta["type"] if ctx.me == "alice" else None
>>> out = simulate(prog, ["alice", "bob"], mode="thread")
>>> out["alice"], out["bob"]
((40, 'logistic_regression', 'logistic_regression'), (40, 'logistic_regression', None))
>>> enclave.close()
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.errors import JointMLError, ParameterError
from ..runtime.collectives import agree
from ..runtime.device import PartyObject
from .channel import PartyIdentity
from .enclave import Enclave, EnclaveError, EnclaveSession
from .platform import SIMULATION_LABEL, AttestationError

__all__ = ["TeeDevice", "Sealed", "TeeDeviceError"]


class TeeDeviceError(JointMLError, RuntimeError):
    """The enclave refused or failed a device operation; `party` names the party whose request it was."""


class Sealed:
    """A value inside an attested enclave: nobody outside holds it.

    `name` is the operation that produced it; `meta` the public summary the enclave
    returned (every party of the program holds the same one)."""

    __slots__ = ("device", "name", "meta")

    def __init__(self, device: "TeeDevice", name: str, meta: dict[str, Any]):
        self.device = device
        self.name = name
        self.meta = dict(meta)

    def reveal(self, to: str, *, op: str, meta: dict | None = None) -> PartyObject:
        """Have the enclave send this value (operation `op` of its program) to party `to` only."""
        return self.device.reveal(self, to, op=op, meta=meta)

    def __repr__(self) -> str:
        return f"Sealed({self.name!r} in {self.device.name}) [{SIMULATION_LABEL}]"


class TeeDevice:
    """An attested enclave seen from an SPMD program; every party builds it at the same point.

    `members`: the parties that talk to the enclave (open an attested session); each passes
    its own `identity` (listed in the enclave's measured configuration) and `verifier`
    (whose policy allow-lists the measurement). Other parties pass neither and hold handles.
    `enclave` is the host handle of the running enclave (in this simulation every party's
    host reaches the same local process)."""

    def __init__(self, ctx, enclave: Enclave, members: Sequence[str], *, identity: PartyIdentity | None = None,
                 verifier=None):
        self.ctx = ctx
        self.enclave = enclave
        self.members = list(members)
        self.name = f"tee:{enclave.program}"
        self.session: EnclaveSession | None = None
        for p in self.members:
            if p not in ctx.parties:
                raise ParameterError(f"TEE member '{p}' is not a party of this program {ctx.parties}", field="members")
        problem = None
        if ctx.me in self.members:
            problem = self._open(identity, verifier)
        # every party raises the first member's failure: nobody waits for a member that gave up
        agree(ctx, self.members, problem, error=AttestationError, name="tee-attest")

    def _open(self, identity, verifier) -> str | None:
        if identity is None or verifier is None:
            return "a TEE member needs its identity key and its own verifier"
        try:
            self.session = EnclaveSession(self.enclave, identity, verifier)  # verifies the quote first
        except (AttestationError, EnclaveError) as e:
            return f"{type(e).__name__}: {e}"
        return None

    @property
    def measurement(self) -> str:
        """The enclave's measurement, as this party verified it (members) or as the host reports it."""
        return self.session.attested.measurement if self.session else self.enclave.measurement

    # -- transfers --------------------------------------------------------------------
    def _call(self, party: str, op: Any, meta: dict | None, arrays: Sequence[np.ndarray], what: str):
        """`party` sends one request over its session; every party learns the verdict and the public reply meta."""
        if not isinstance(op, str):
            raise ParameterError("a TEE runs only the operations of its registered program: pass an operation name, "
                                 f"not {type(op).__name__} (code is never sent to an enclave)", field="op")
        if party not in self.members:
            raise ParameterError(f"party '{party}' has no session with the enclave (members {self.members})", field=what)
        reply, problem, public = None, None, {}
        if self.ctx.me == party:
            assert self.session is not None
            try:
                reply = self.session.call(op, meta or {}, list(arrays))
                public = dict(reply.meta)
            except EnclaveError as e:
                problem = f"{what} {op!r} refused by the enclave: {e}"
        got = agree(self.ctx, party, problem, details={"reply": public} if what != "reveal" else {},
                    error=TeeDeviceError, name=f"tee-{what}")
        return reply, got[party].get("reply", {})

    def transfer_in(self, obj: PartyObject, *, op: str = "upload", meta: dict | None = None) -> Sealed:
        """``obj.to(tee, op=..., meta=...)``: the owner sends its array (or tuple of arrays) encrypted to the enclave."""
        if not isinstance(obj, PartyObject):
            raise ParameterError(f"only a party's plaintext object moves into a TEE, got {type(obj).__name__}",
                                 field="obj")
        arrays: list[np.ndarray] = []
        if self.ctx.me == obj.owner:
            v = obj.value
            arrays = [np.asarray(a) for a in v] if isinstance(v, (tuple, list)) else [np.asarray(v)]
        _, public = self._call(obj.owner, op, meta, arrays, "input")
        return Sealed(self, op, public)

    def run(self, op: str, *, by: str, meta: dict | None = None) -> Sealed:
        """Run operation `op` of the enclave's registered program, started by party `by`."""
        _, public = self._call(by, op, meta, (), "run")
        return Sealed(self, op, public)

    def reveal(self, sealed: Sealed, to: str, *, op: str, meta: dict | None = None) -> PartyObject:
        """The enclave's reply to `op` for party `to` (a ``wire.Message``: meta and arrays), at `to` only."""
        reply, _ = self._call(to, op, meta, (), "reveal")
        return self.ctx.party(to).put(reply)

    def close(self) -> None:
        """Close this party's session (the enclave forgets its keys)."""
        if self.session is not None:
            self.session.close()
            self.session = None

    def __repr__(self) -> str:
        return f"TeeDevice({self.enclave.name}, members={self.members}) [{SIMULATION_LABEL}]"
