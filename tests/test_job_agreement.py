"""Issue 11 item 5: the parties agree on the job before any data moves.

Each organisation runs its own copy of the pipeline; a copy that differs (epochs, frac bits,
a step) used to compute garbage or fail deep inside with "protocol out of sync". Now every
party refuses at start, with the same `ConfigError` naming the first differing field, and
nothing but the agreement message has been sent.
"""

import shutil

import pytest

import jointml.psi
from jointml.core.errors import ConfigError
from jointml.demo.credit_demo import make_demo_files
from jointml.jobs import PipelineSpec, predict_job, run_pipeline, simulate_pipeline
from jointml.jobs import runner as runner_mod
from jointml.jobs.spec import device_params, first_difference
from jointml.runtime import PartyFailed, simulate

PARTIES = ["bank", "partner", "dealer"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_demo_files(tmp_path_factory.mktemp("agree") / "data")


def _raw(files, epochs=3, mpc_extra=None, steps=None):
    mpc = {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer", **(mpc_extra or {})}
    return {"parties": PARTIES, "mpc": mpc, "inputs": {"bank": str(files["bank"]), "partner": str(files["partner"])},
            "steps": steps or [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3}},
                               {"woe_binning": {"label": "creditability", "pos_label": "bad", "key_bits": 512}},
                               {"ss_lr.train": {"epochs": epochs}}, {"predict": {}}, {"evaluate": {}}]}


@pytest.fixture
def no_data_touched(monkeypatch):
    """Record every input read and PSI run (neither may happen when the parties disagree)."""
    calls = []

    def spy_read(path, party):
        calls.append(("read", party))
        raise AssertionError("an input was read")

    def spy_psi(*a, **k):
        calls.append(("psi",))
        raise AssertionError("PSI ran")

    monkeypatch.setattr(runner_mod, "read_input", spy_read)
    monkeypatch.setattr(jointml.psi, "psi_frame", spy_psi)
    return calls


def _run_each(specs):
    """Run the pipeline with each party's own spec; each returns its error text and traffic."""

    def prog(ctx):
        try:
            run_pipeline(ctx, specs[ctx.me])
        except ConfigError as e:
            return str(e), e.field, ctx.stats()
        return None

    return simulate(prog, PARTIES, mode="thread")


def test_epochs_mismatch_is_refused_at_every_party_before_any_data(files, no_data_touched):
    a = PipelineSpec.from_dict(_raw(files, epochs=3))
    b = PipelineSpec.from_dict(_raw(files, epochs=4))
    out = _run_each({"bank": a, "partner": b, "dealer": a})
    for p in PARTIES:
        assert out[p] is not None, p
        msg, fld, stats = out[p]
        assert fld == "steps[3].ss_lr.train.epochs" and "steps[3].ss_lr.train.epochs" in msg and "'partner'" in msg
        assert stats["msgs_sent"] == len(PARTIES) - 1  # the agreement only: one announcement to each peer
        assert stats["msgs_recv"] == len(PARTIES) - 1
    assert no_data_touched == []


def test_frac_bits_mismatch_fails_the_simulated_job_at_every_party(files, no_data_touched):
    spec = PipelineSpec.from_dict(_raw(files))
    other = PipelineSpec.from_dict(_raw(files, mpc_extra={"frac_bits": 16}))
    with pytest.raises(PartyFailed) as info:
        simulate_pipeline(spec, mode="thread", verbose=False, party_specs={"dealer": other})
    e = info.value
    failures = {e.party: (e.error_type, e.message), **{p: (t, m) for p, (t, m, _) in e.others.items()}}
    assert set(failures) == set(PARTIES)
    for typ, msg in failures.values():
        assert typ == "ConfigError" and "mpc.frac_bits" in msg and "'dealer'" in msg
    assert no_data_touched == []


def test_identical_jobs_run_and_share_one_fingerprint(files, tmp_path):
    # the partner keeps its file elsewhere and writes the defaults out: the same job
    moved = tmp_path / "partner-copy.csv"
    shutil.copy(files["partner"], moved)
    steps = [{"psi": {"key": "id"}}, {"split": {"test_fraction": 0.5}}]
    spec = PipelineSpec.from_dict(_raw(files, steps=steps))
    raw = _raw(files, steps=[{"psi": {"key": "id"}}, {"split": {"test_fraction": 0.5, "seed": 1}}])
    raw["inputs"]["partner"] = str(moved)
    res = simulate_pipeline(spec, mode="thread", verbose=False, party_specs={"partner": PipelineSpec.from_dict(raw)})
    assert res["bank"]["train_rows"] == res["partner"]["train_rows"] > 0
    assert len({res[p]["job_fingerprint"] for p in PARTIES}) == 1
    assert res["bank"]["job_fingerprint"] == spec.fingerprint()


def test_fingerprint_names_steps_and_fields(files):
    base = PipelineSpec.from_dict(_raw(files))
    fewer = PipelineSpec.from_dict({**_raw(files), "steps": _raw(files)["steps"][:4]})
    other_model = PipelineSpec.from_dict({**_raw(files), "steps": _raw(files)["steps"][:3] + [{"ss_glm.train": {}}]})
    assert first_difference(base.fields_fingerprint(), fewer.fields_fingerprint()) == "steps[4]"
    assert first_difference(base.fields_fingerprint(), other_model.fields_fingerprint()) == "steps[3]"
    named = PipelineSpec.from_dict({**_raw(files), "name": "another name", "output": "/somewhere/else"})
    with_out = PipelineSpec.from_dict({**_raw(files), "output": "/out"})
    assert first_difference(with_out.fields_fingerprint(), named.fields_fingerprint()) is None
    assert first_difference(base.fields_fingerprint(), with_out.fields_fingerprint()) == "output"
    # an mpc section with defaults left out is the same device
    implicit = PipelineSpec.from_dict({**_raw(files), "mpc": {"dealer": "dealer"}})
    assert implicit.fingerprint() == base.fingerprint()
    assert device_params({"dealer": "dealer"}, PARTIES)["parties"] == ["bank", "partner"]


def test_predict_parties_agree_on_parameters(files, tmp_path, no_data_touched):
    inputs = {"bank": str(files["bank"]), "partner": str(files["partner"])}

    def prog(ctx):
        to = "partner" if ctx.me == "partner" else "bank"  # the partner asks for the scores itself
        try:
            predict_job(ctx, str(tmp_path), inputs, to)
        except ConfigError as e:
            return e.field, ctx.stats()["msgs_sent"]
        return None

    out = simulate(prog, PARTIES, mode="thread")
    assert all(out[p] == ("to", len(PARTIES) - 1) for p in PARTIES), out
    assert no_data_touched == []


def test_malformed_announcement_is_a_protocol_error():
    from jointml.core.errors import ProtocolError

    with pytest.raises(ProtocolError, match="malformed"):
        runner_mod._announced_fields("bank", {"fields": [["a", 1]]})


# -- issue 11 item 13 (jobs part): the dealer receives only what it needs ---------------------
def test_predict_leaves_the_dealer_out_of_the_woe_layout_of_a_tree_model(files, tmp_path, monkeypatch):
    """A SecureBoost model on WOE features: the dealer holds no part of it, so it gets no bin
    counts (before, it received them all and then failed on its missing WOE part)."""
    import jointml.runtime.collectives as coll

    steps = [{"psi": {"key": "id", "sort_by": "bank"}}, {"split": {"test_fraction": 0.3}},
             {"woe_binning": {"label": "creditability", "pos_label": "bad", "key_bits": 512, "woe_to_owner": True}},
             {"secureboost.train": {"n_estimators": 1, "max_depth": 2, "key_bits": 512, "features": "woe"}}]
    simulate_pipeline(PipelineSpec.from_dict({**_raw(files, steps=steps), "output": str(tmp_path)}), mode="thread",
                      verbose=False)
    seen: dict = {}
    real = coll.all_gather

    def spy(ctx, parties=None, **kw):
        got = real(ctx, parties, **kw)
        if kw.get("name") == "woe-layout":
            seen[ctx.me] = {p: (r.meta if r is not None else None) for p, r in got.items()}
        return got

    monkeypatch.setattr(coll, "all_gather", spy)
    inputs = {"bank": str(files["bank"]), "partner": str(files["partner"])}
    got = simulate(predict_job, PARTIES, mode="thread", args=(str(tmp_path / "model"), inputs, "bank"))
    assert len(got["bank"]["scores"]) == got["bank"]["rows"] > 0 and "scores" not in got["dealer"]
    assert all(v is None for v in seen["dealer"].values())  # no bin count reached the dealer
    assert seen["bank"]["partner"]["n_bins"]  # the model's parties still get the layout
