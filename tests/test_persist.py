"""Persisted model parts (runtime/persist.py) and the SecureEstimator base (ml/base.py)."""

from __future__ import annotations

import json

import pytest

from jointml.core.errors import ModelError, ParameterError, PersistError
from jointml.ml.base import SecureEstimator, check_is_fitted, clone
from jointml.runtime import PartyFailed, simulate
from jointml.runtime.persist import ModelPart, load_part, read_manifest, read_part, save_part

PARTIES = ["bank", "partner", "dealer"]


def _part(party: str, model_id: str = "m1", public: dict | None = None) -> ModelPart:
    return ModelPart(kind="Toy", party=party, model_id=model_id, params={"a": 1}, public=public or {"w": 3},
                     state={"mine": party})


def test_save_read_roundtrip_and_manifest(tmp_path):
    path = save_part(tmp_path, _part("bank"))
    assert path.name == "Toy.bank.json"
    assert read_part(tmp_path, "bank").state == {"mine": "bank"}
    m = read_manifest(tmp_path, "bank")
    assert m["kind"] == "Toy" and m["model_id"] == "m1" and len(m["sha256"]) == 64
    assert not list(tmp_path.glob("*.tmp"))


def test_manifest_picks_the_current_model_not_a_stale_one(tmp_path):
    save_part(tmp_path, _part("bank"))
    stale = ModelPart(kind="Other", party="bank", model_id="m2")
    save_part(tmp_path, stale)
    assert read_part(tmp_path, "bank").kind == "Other"  # the manifest names the newest


def test_tampered_part_is_refused(tmp_path):
    path = save_part(tmp_path, _part("bank"))
    doc = json.loads(path.read_text())
    doc["state"]["mine"] = "evil"
    path.write_text(json.dumps(doc))
    with pytest.raises(PersistError, match="does not match its manifest"):
        read_part(tmp_path, "bank")


def test_wrong_version_and_wrong_party(tmp_path):
    path = save_part(tmp_path, _part("bank"))
    doc = json.loads(path.read_text())
    doc["version"] = 99
    (tmp_path / "Toy.partner.json").write_text(json.dumps(doc))
    with pytest.raises(PersistError, match="version 99"):
        read_part(tmp_path, "partner", "Toy")


def _load_everywhere(directory, parties=None):
    def prog(ctx):
        part = load_part(ctx, directory, "Toy", parties=parties)
        return None if part is None else part.state["mine"]

    return simulate(prog, PARTIES, mode="thread")


def test_collective_load_agrees(tmp_path):
    for p in PARTIES:
        save_part(tmp_path, _part(p))
    assert _load_everywhere(tmp_path) == {p: p for p in PARTIES}


def test_missing_part_fails_alike_naming_the_party(tmp_path):
    save_part(tmp_path, _part("bank"))
    save_part(tmp_path, _part("dealer"))
    with pytest.raises(PartyFailed, match=r"party 'partner': model part not found"):
        _load_everywhere(tmp_path)


def test_parts_of_different_models_are_refused(tmp_path):
    save_part(tmp_path, _part("bank"))
    save_part(tmp_path, _part("partner", model_id="other"))
    save_part(tmp_path, _part("dealer"))
    with pytest.raises(PartyFailed, match=r"do not belong together: party 'partner' differs .*model_id"):
        _load_everywhere(tmp_path)


class Toy(SecureEstimator):
    def __init__(self, device, *, epochs: int = 3, rate: float = 0.5):
        self.device = device
        self.epochs = epochs
        self.rate = rate

    def fit(self):
        self._validate_params()
        self.model_id_ = "toy"
        self.w_ = [1.0, 2.0]
        return self

    def _validate_params(self):
        if self.epochs < 1:
            raise ParameterError("must be >= 1", field="epochs")

    def _part_public(self):
        return {"width": 2}

    def _part_state(self):
        return {"w": self.w_}

    def _restore(self, part):
        self.w_ = part.state["w"]


def test_estimator_contract_and_persistence(tmp_path):
    def prog(ctx):
        m = Toy(ctx, epochs=5)
        assert m.get_params() == {"epochs": 5, "rate": 0.5}
        assert clone(m).get_params() == m.get_params()
        with pytest.raises(ModelError, match="not fitted"):
            check_is_fitted(m)
        m.fit().save(tmp_path)
        back = Toy.load(ctx, tmp_path)
        return back.get_params(), back.w_

    out = simulate(prog, PARTIES, mode="thread")
    assert out["partner"] == ({"epochs": 5, "rate": 0.5}, [1.0, 2.0])


def test_estimator_rejects_unknown_params_and_validates_in_fit():
    m = Toy(None, epochs=0)  # stored unchanged, no validation in __init__
    assert m.epochs == 0
    with pytest.raises(ParameterError, match="field 'epochs'"):
        m.fit()
    with pytest.raises(ParameterError, match="no parameter 'lr'"):
        m.set_params(lr=1)


def test_part_of_another_model_in_place_is_named_by_the_agreement(tmp_path):
    """A part copied over from another model (its manifest left stale) is a part of another
    model, not a damaged one: the cross-party check names the differing model id."""
    for p in PARTIES:
        save_part(tmp_path, _part(p))
    other = tmp_path / "other"
    save_part(other, _part("partner", model_id="m2"))
    (other / "Toy.partner.json").replace(tmp_path / "Toy.partner.json")
    with pytest.raises(PartyFailed, match=r"do not belong together: party 'partner' differs .*model_id"):
        _load_everywhere(tmp_path)
