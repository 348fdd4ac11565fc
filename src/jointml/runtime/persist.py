"""Persisted model parts: one format for every model, written by each party for itself.

A jointml model trained by several parties is saved as one *part per party*: the
party's share of secret parameters, its own plaintext tables (thresholds, bins), and
the public description every party agrees on. A part alone reveals nothing another
party did not already see during training; the parts together make the model.

Files in a model directory (each party writes only its own):

    <kind>.<party>.json        the part (format, version, kind, model id, party, params, public, state)
    manifest.<party>.json      which part is current for this party, with its SHA-256

Writes are atomic (temporary file, then rename), so a crash never leaves a part that
looks complete. Loading is a collective: every party reads its part, checks it, and
announces its verdict and its *public* summary; a missing, damaged or mismatched part
at any party raises the same error, naming that party, at every party (DESIGN rule 6).

Security: a part is JSON (never unpickled); `public` is what every party saw in
training (announced again at load, so it must hold nothing private); `state` stays on
the party's disk.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> part = ModelPart(kind="Demo", party="bank", model_id="m1", params={"epochs": 3},
...                  public={"features": 4}, state={"w_share": [1, 2]})
>>> path = save_part(d, part)
>>> read_part(d, "bank").state
{'w_share': [1, 2]}
>>> read_manifest(d, "bank")["kind"]
'Demo'
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..core.errors import JointMLError, PersistError
from .collectives import all_gather

if TYPE_CHECKING:  # pragma: no cover
    from .context import PartyContext

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelPart", "atomic_write", "read_party_json", "new_model_id", "part_path",
           "save_part", "read_part",
           "read_manifest", "load_part"]

FORMAT = "jointml.model-part"
FORMAT_VERSION = 1


@dataclass
class ModelPart:
    """One party's part of a model.

    `kind`: the estimator's registered name (its class name); `params`: its
    hyperparameters; `public`: what all parties share and must agree on at load (layout,
    protocol, parties, feature widths...); `state`: this party's own content.
    """

    kind: str
    party: str
    model_id: str
    params: dict[str, Any] = field(default_factory=dict)
    public: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    version: int = FORMAT_VERSION
    created: float = field(default_factory=time.time)
    jointml_version: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ModelPart:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PersistError("not a jointml model part")
        if doc.get("version") != FORMAT_VERSION:
            raise PersistError(f"model part format version {doc.get('version')} is not supported "
                               f"(this jointml reads version {FORMAT_VERSION})")
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        missing = [k for k in ("kind", "party", "model_id") if k not in known]
        if missing:
            raise PersistError(f"model part lacks {missing}")
        return cls(**known)


def new_model_id() -> str:
    """A fresh random model id (public: every party of the training learns it).

    >>> len(new_model_id())
    16
    """
    return secrets.token_hex(8)


def part_path(directory: str | Path, kind: str, party: str) -> Path:
    """Where `party` keeps its part of a `kind` model in `directory`.

    >>> part_path("out", "SSLogisticRegression", "bank").name
    'SSLogisticRegression.bank.json'
    """
    return Path(directory) / f"{kind}.{party}.json"


def atomic_write(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file and a rename: a crash never leaves a
    half-written file that looks complete. Used for every file a party persists.

    >>> import tempfile, pathlib
    >>> p = atomic_write(pathlib.Path(tempfile.mkdtemp()) / "x.json", "{}")
    >>> p.read_text()
    '{}'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def read_party_json(path: str | Path, party: str, check: Callable[[dict[str, Any]], bool], what: str
                    ) -> dict[str, Any] | None:
    """A JSON object that `party` saved at `path`, or None when there is none.

    Raises `PersistError` naming the party when it cannot be read or `check(doc)` is false
    (`what` completes "... is not ...").

    >>> read_party_json("/nonexistent/x.json", "bank", lambda d: True, "a manifest") is None
    True
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PersistError(f"cannot read {path}: {e}", party=party) from None
    if not isinstance(doc, dict) or not check(doc):
        raise PersistError(f"{path} is not {what}", party=party)
    return doc


def save_part(directory: str | Path, part: ModelPart) -> Path:
    """Write `part` and make it this party's current model in `directory` (atomic).

    Returns the part's path. The manifest (`manifest.<party>.json`) names the part, its
    kind, model id and SHA-256, so a stale part of another model left in the folder is
    never mistaken for the current one.
    """
    from .. import __version__

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    part.jointml_version = part.jointml_version or __version__
    text = part.to_json()
    path = part_path(d, part.kind, part.party)
    atomic_write(path, text)
    manifest = {"format": FORMAT + "-manifest", "version": FORMAT_VERSION, "party": part.party,
                "kind": part.kind, "model_id": part.model_id, "file": path.name,
                "sha256": hashlib.sha256(text.encode()).hexdigest(), "created": part.created}
    atomic_write(d / f"manifest.{part.party}.json", json.dumps(manifest))
    return path


def read_manifest(directory: str | Path, party: str) -> dict[str, Any] | None:
    """This party's manifest in `directory`, or None when it has none."""
    return read_party_json(Path(directory) / f"manifest.{party}.json", party, lambda d: d.get("party") == party,
                           "a model manifest of this party")


def read_part(directory: str | Path, party: str, kind: str | None = None) -> ModelPart:
    """Read `party`'s part in `directory` (of `kind`, or the manifest's current one).

    Raises `PersistError` naming the party when it is missing, damaged, of another kind
    or of another party.
    """
    manifest = read_manifest(directory, party)
    if kind is None:
        if manifest is None:
            raise PersistError(f"model part not found: no manifest.{party}.json in {directory}", party=party)
        kind = str(manifest["kind"])
    path = part_path(directory, kind, party)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PersistError(f"model part not found: {path}", party=party) from None
    except OSError as e:
        raise PersistError(f"cannot read model part {path}: {e}", party=party) from None
    try:
        part = ModelPart.from_json(text)
    except (ValueError, TypeError) as e:
        raise PersistError(f"{path} is damaged: {e}", party=party) from None
    # The manifest vouches for the part of its own model: that part changed after it was
    # saved is refused here. A part of another model put in its place (another model id)
    # is left to the cross-party check of `load_part`, which names the mismatch.
    if (manifest is not None and manifest.get("kind") == kind and manifest.get("model_id") == part.model_id
            and manifest.get("sha256") != hashlib.sha256(text.encode()).hexdigest()):
        raise PersistError(f"{path} does not match its manifest (changed or damaged after it was saved)", party=party)
    if part.kind != kind:
        raise PersistError(f"{path} is not a {kind} part (it holds {part.kind})", party=party)
    if part.party != party:
        raise PersistError(f"{path} is the part of party '{part.party}'", party=party)
    return part


def load_part(
    ctx: PartyContext,
    directory: str | Path,
    kind: str | None = None,
    *,
    check: Callable[[ModelPart], str | None] | None = None,
    parties: list[str] | None = None,
    error: type[JointMLError] = PersistError,
) -> ModelPart | None:
    """Collective load: every party of `parties` (default: all) reads and checks its part.

    `check(part)` returns a problem message or None (e.g. the part was trained with
    another protocol than the device runs). Every party announces its verdict and the
    part's public summary (kind, model id, params, public); any problem, or a summary
    differing between parties, raises `error` at every party of `parties` alike. Parties
    outside `parties` exchange nothing and return None (they need not call it).
    """
    group = list(ctx.parties) if parties is None else list(parties)
    part, problem = None, None
    if ctx.me in group:
        try:
            part = read_part(directory, ctx.me, kind)
            problem = check(part) if check is not None else None
        except PersistError as e:
            problem = str(e)
        except (KeyError, TypeError, ValueError) as e:
            # the class only: the parser's text may quote the part's content
            problem = f"party '{ctx.me}': model part in {directory} is damaged ({type(e).__name__})"
    summary = None if part is None or problem else _summary(part)
    if ctx.me not in group:
        return None
    got = all_gather(ctx, group, meta={"problem": problem, "summary": summary}, to=group, name="model-load")
    for p, r in got.items():
        if r.meta.get("problem"):
            raise error(str(r.meta["problem"]), party=p)
    ref_party = group[0]
    ref = got[ref_party].meta["summary"]
    for p, r in got.items():
        other = r.meta["summary"]
        if other != ref:
            diff = sorted(k for k in set(ref) | set(other) if ref.get(k) != other.get(k))
            raise error(f"model parts in {directory} do not belong together: party '{p}' differs from "
                        f"'{ref_party}' in {diff} (parts of different models or trainings)")
    return part


def _summary(part: ModelPart) -> dict[str, Any]:
    return {"kind": part.kind, "model_id": part.model_id, "params": part.params, "public": part.public}
