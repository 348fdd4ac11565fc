"""TEE-hosted models: an attested enclave scores each request (SIMULATED TEE, see `jointml.tee`).

A model trained inside an enclave of the registered program ``jointml.apps.tee_train``
(logistic regression or gradient-boosted trees, `jointml.apps.tee_train.train_in_tee`) is
exported for serving by `save_tee_model`: the result party (the *bank*) keeps the model
**sealed** by the enclave (AES-GCM under a key derived from the platform's sealing root and
the enclave's measurement: only an enclave of the same program and configuration on the same
platform can open it), and every party keeps its serving part ``tee.<party>.json`` (the
measured enclave configuration, the measurement it recomputed from it, the trusted platform
key, its own columns) and its identity key ``tee_identity.<party>.pem`` (the Ed25519 key the
configuration lists for it; mode 0600).

Serving (`jointml.serving.server`): the bank's serving process hosts the enclave
(`BankEnclave`: it starts the enclave process, attests it with its own verifier, opens its
session and has the enclave load the sealed model). Each partner attests the same enclave
*through the bank's link* (`RemoteEnclave`: the bank relays the quote and the session
handshake and nothing else; the partner's own verifier allow-lists only the measurement of
its saved configuration) and then, per request, sends the rows of the requested ids
encrypted on its own attested session (``predict_upload``). The bank uploads its own rows the
same way and asks the enclave for the scores (``predict``), which the program gives to the
configuration's result parties only.

What each side learns per request (semi-honest parties; the enclave trusted as attested):

- the bank (the result party): the score of each id and whether the partner holds the id
  (and has no missing value for it); never a partner feature value. As a result party of
  the program it may also ask the enclave for the model itself (``get_model``), as it could
  at training time: the model is not hidden from the result party;
- the partner: the ids asked for, and when; not the scores, not the bank's features;
- the enclave host (here the bank's machine): sizes, timing and ciphertexts only (every
  record is encrypted on a session keyed by the enclave's attested key). **In this software
  simulation the host can read the enclave's memory and the platform's sealing root: the
  simulation protects nothing against its host** (it shows the protocol, not hardware
  protection; quotes say ``"simulation": true`` and every log line says SIMULATED TEE).

Against a deviating bank: it can ask for any id (the partner logs the id hashes), and it
cannot make the partner upload to another enclave (the partner's verifier checks the quote's
signature, nonce and measurement) nor read or alter a partner's record on the way (AES-GCM
with sequence numbers). It chooses which partner session a relayed call names, so a swap
only makes the record fail authentication. Against a deviating partner: it can upload wrong
rows (it biases the scores of the ids it is asked for), as in the other model types. A
client whose identity key is not in the measured configuration gets no session.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, JointMLError, ModelError, ProtocolError

__all__ = ["TEE_MODELS", "save_tee_model", "load_tee_part", "BankEnclave", "RemoteEnclave", "open_partner_session",
           "RELAYED"]

log = logging.getLogger("jointml.serving")

#: the model name of a TEE-hosted model in serving
TEE_MODELS = ("tee",)
#: the enclave requests a bank relays for a partner (never boot, shutdown or a task)
RELAYED = ("attest", "session", "call")
PART = "tee.{party}.json"
SEALED = "tee_model.{party}.sealed"
IDENTITY = "tee_identity.{party}.pem"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def save_tee_model(ctx: Any, tee: Any, model: Any, directory: str | Path, *, label_party: str,
                   columns: list[str] | None, identity: Any, platform: Any) -> str:
    """Every party of the program (SPMD): export a model trained in `tee` for serving; its id.

    `model`: the `Sealed` handle `train_in_tee` returned; `columns`: this party's own column
    names in its upload order (None at a party without features); `identity`: this party's
    `PartyIdentity` (in the enclave's configuration); `platform`: the platform whose quotes
    the parties trust (in simulation, `jointml.tee.load_platform(dir)` of the enclave host).
    The label party gets the model sealed by the enclave (``seal_model``: result parties only).

    >>> save_tee_model.__module__  # run in an SPMD program with a TeeDevice (tests/test_serving_tee.py)
    'jointml.serving.tee_model'
    """
    from ..apps.tee_train import PROGRAM
    from ..runtime.collectives import broadcast
    from ..runtime.persist import new_model_id
    from ..tee import measure

    cfg = tee.enclave.config
    model_id = broadcast(ctx, label_party, meta={"id": new_model_id()} if ctx.me == label_party else None,
                         name="tee-model-id").meta["id"]
    sealed = model.reveal(to=label_party, op="seal_model")
    if ctx.me not in cfg["parties"]:
        return model_id
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    part: dict[str, Any] = {
        "format": "jointml-tee-serving-v1", "model": "tee", "kind": str(model.meta.get("type", "logistic_regression")),
        "model_id": model_id, "label_party": label_party, "parties": list(cfg["feature_parties"]),
        "columns": list(columns or []), "program": PROGRAM, "config": cfg,
        "measurement": measure(PROGRAM, cfg),  # recomputed here from the configuration, not taken from the host
        "platform": {"public_key": platform.public_key().hex(), "name": platform.name,
                     "simulation": bool(platform.simulation)},
        "rows": int(model.meta.get("rows", 0))}
    if ctx.me == label_party:
        blob = np.asarray(sealed.value.arrays[0], dtype=np.uint8).tobytes()
        (d / SEALED.format(party=ctx.me)).write_bytes(blob)
        part["sealed"] = {"file": SEALED.format(party=ctx.me), "sha256": hashlib.sha256(blob).hexdigest()}
    _write_private(d / IDENTITY.format(party=ctx.me), identity.private_pem())
    (d / PART.format(party=ctx.me)).write_text(json.dumps(part, indent=1, sort_keys=True))
    return model_id


def load_tee_part(directory: str | Path, party: str) -> dict[str, Any] | None:
    """`party`'s TEE serving part in `directory` (None when there is none), checked.

    The measurement is recomputed from the saved configuration: a part whose measurement
    does not match it (edited, or another release of jointml) is refused here.
    """
    from ..apps.tee_train import PROGRAM
    from ..tee import measure

    f = Path(directory) / PART.format(party=party)
    if not f.exists():
        return None
    try:
        part = json.loads(f.read_text())
        cfg = part["config"]
        ok = part.get("format") == "jointml-tee-serving-v1" and part["program"] == PROGRAM and party in cfg["parties"]
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ModelError(f"{f} is not a TEE serving part of party '{party}'", party=party, field="model")
    now = measure(PROGRAM, cfg)
    if now != part["measurement"]:
        raise ModelError(f"the TEE model in {directory} was exported for enclave measurement {part['measurement'][:16]}..., "
                         f"this jointml gives {now[:16]}... for the same configuration (another release or edited "
                         "code): re-train or re-seal the model with this release", party=party, field="measurement")
    return dict(part)


def _identity(directory: str | Path, party: str) -> Any:
    from ..tee import ChannelError, PartyIdentity

    f = Path(directory) / IDENTITY.format(party=party)
    try:
        return PartyIdentity.from_pem(party, f.read_bytes())
    except (OSError, ChannelError) as e:
        raise ModelError(f"party '{party}': no usable TEE identity key {f} ({e})", party=party,
                         field="identity") from None


def verifier_for(part: dict[str, Any]) -> Any:
    """This party's own verifier: only the measurement of its saved configuration, only the
    platform key it saved; a simulation platform only when the part says it was one."""
    from ..tee import Policy, TrustedPlatform, Verifier

    plat = part["platform"]
    trusted = TrustedPlatform(bytes.fromhex(plat["public_key"]), bool(plat["simulation"]), str(plat["name"]))
    return Verifier(Policy(frozenset({part["measurement"]}), (trusted,), allow_simulation=bool(plat["simulation"])))


class BankEnclave:
    """The label holder's enclave: started, attested (its own verifier), the sealed model loaded.

    `platform_dir`: the (simulated) platform's state directory of this host, the one the model
    was sealed on. `relay(partner, meta, arrays)` forwards a partner's attestation and session
    requests, and nothing else.
    """

    def __init__(self, pred: Any, platform_dir: str | None = None, timeout: float = 60.0):
        from ..apps.tee_train import PROGRAM
        from ..tee import Enclave, EnclaveSession

        part = pred.tee
        if "sealed" not in part:
            raise ModelError(f"party '{pred.party}' holds no sealed TEE model", party=pred.party, field="model")
        blob = (Path(pred.directory) / part["sealed"]["file"]).read_bytes()
        if hashlib.sha256(blob).hexdigest() != part["sealed"]["sha256"]:
            raise ModelError("the sealed TEE model does not match its digest in the part (replaced file?)",
                             party=pred.party, field="model")
        self.enclave = Enclave(PROGRAM, part["config"], platform_dir=platform_dir, timeout=timeout)
        # the host handle records every relayed frame (for tests of what a host sees): a server
        # runs for months, so keep only the last ones
        self.enclave.relay_log = collections.deque(maxlen=256)  # type: ignore[assignment]
        self.sessions: dict[str, set[str]] = {}
        try:
            self.session = EnclaveSession(self.enclave, _identity(pred.directory, pred.party), verifier_for(part))
            self.session.call("load_model", arrays=[np.frombuffer(blob, dtype=np.uint8).copy()])
        except JointMLError:
            self.enclave.close()
            raise

    def relay(self, partner: str, meta: dict[str, Any], arrays: list[np.ndarray]) -> tuple[dict[str, Any], list[Any]]:
        """One of a partner's enclave requests, forwarded; its reply (or the refusal) to send back."""
        from ..tee import EnclaveError

        kind, inner = meta.get("relay"), meta.get("meta")
        if kind not in RELAYED or not isinstance(inner, dict):
            return {"relay_error": f"the label holder relays only {RELAYED}, not {kind!r}"}, []
        if kind == "call" and str(inner.get("session")) not in self.sessions.get(partner, set()):
            return {"relay_error": "not a session this partner opened"}, []
        if kind == "call" and (len(arrays) != 1 or arrays[0].dtype != np.uint8):
            return {"relay_error": "a call carries one encrypted record"}, []
        try:
            got = self.enclave.request(kind, inner, arrays if kind == "call" else [])
        except EnclaveError as e:
            return {"relay_error": str(e), "error_type": e.error_type}, []
        if kind == "session":
            self.sessions.setdefault(partner, set()).add(str(got.meta.get("session")))
        return {"meta": dict(got.meta)}, list(got.arrays)

    def score(self, request: str, X: np.ndarray) -> np.ndarray:
        """Upload the bank's rows of `request` and get the scores (after every partner uploaded)."""
        self.session.call("predict_upload", {"request": request}, [np.ascontiguousarray(X, dtype=np.float64)])
        got = self.session.call("predict", {"request": request})
        return np.asarray(got.arrays[0], dtype=np.float64)

    @property
    def alive(self) -> bool:
        return bool(self.enclave.alive)

    def close(self) -> None:
        self.enclave.close()


class RemoteEnclave:
    """A partner's view of the bank's enclave: the host handle `EnclaveSession` needs, whose
    requests travel as answers on the serving channel and whose replies come back relayed.

    The bank relays bytes it cannot read or alter undetected: the quote is signed by the
    platform, the records are AES-GCM on the partner's own session."""

    def __init__(self, ch: Any, name: str = "bank-hosted enclave"):
        self.ch, self.name = ch, name

    def request(self, kind: str, meta: dict | None = None, arrays: Any = (), timeout: float | None = None) -> Any:
        from ..core import wire
        from ..tee import EnclaveError

        self.ch.send("ans", meta={"relay": kind, "meta": dict(meta or {})}, arrays=list(arrays))
        got = self.ch.recv("req", timeout=timeout)
        if got.meta.get("op") != "relay_reply":
            raise ProtocolError(f"expected the relayed enclave reply, got {got.meta.get('op')!r}")
        if got.meta.get("relay_error"):
            raise EnclaveError(str(got.meta["relay_error"]), str(got.meta.get("error_type", "Relay")), self.name)
        inner = got.meta.get("meta")
        if not isinstance(inner, dict):
            raise ProtocolError("malformed relayed enclave reply")
        return wire.Message("relay", "relay", 0, list(got.arrays), inner)

    def attest(self, nonce: str) -> Any:
        from ..tee import Quote

        return Quote.from_dict(self.request("attest", {"nonce": nonce}).meta.get("quote"))


def open_partner_session(pred: Any, ch: Any) -> Any:
    """A partner's attested session with the bank's enclave (verified by its own verifier)."""
    from ..tee import EnclaveSession

    return EnclaveSession(RemoteEnclave(ch), _identity(pred.directory, pred.party), verifier_for(pred.tee))  # type: ignore[arg-type]


def new_request_id() -> str:
    """A fresh id under which every party uploads a request's rows.

    >>> len(new_request_id())
    32
    """
    return secrets.token_hex(16)


def check_unknown_policy(unknown: str, party: str) -> None:
    """A TEE model has no missing-value handling: an unknown id is reported, never scored."""
    if unknown != "error":
        raise ConfigError("a TEE-hosted model scores complete rows only: an unknown id is reported unknown "
                          "(--unknown error)", party=party, field="unknown")
