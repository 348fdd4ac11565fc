"""Issue 11 item 10: Paillier keys below 2048 bits are refused by jobs (HeDevice, SecureBoost,
vertical WOE, pipeline YAML) unless the explicit test switch JOINTML_INSECURE_TEST_KEYS=1 is set
(the root conftest.py sets it for the test session); the key size is in the job summary."""

import pytest
import yaml

from jointml.core.errors import ConfigError, ParameterError
from jointml.demo.credit_demo import make_demo_files
from jointml.he import HeDevice
from jointml.he.paillier import INSECURE_KEYS_ENV, check_key_bits
from jointml.jobs import PipelineSpec, simulate_pipeline
from jointml.ml.tree.secureboost import SecureBoostClassifier
from jointml.runtime import PartyFailed, simulate


@pytest.fixture
def no_test_keys(monkeypatch):
    monkeypatch.delenv(INSECURE_KEYS_ENV, raising=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_demo_files(tmp_path_factory.mktemp("keys") / "data")


def _pipeline(files, tmp_path, key_bits):
    raw = {"parties": ["bank", "partner", "dealer"],
           "mpc": {"protocol": "semi2k", "parties": ["bank", "partner"], "dealer": "dealer"},
           "inputs": {"bank": str(files["bank"]), "partner": str(files["partner"])},
           "steps": [{"psi": {"key": "id"}}, {"split": {"test_fraction": 0.5}},
                     {"woe_binning": {"label": "creditability", "pos_label": "bad", "key_bits": key_bits}}]}
    p = tmp_path / "pipeline.yaml"
    p.write_text(yaml.safe_dump(raw))
    return PipelineSpec.load(p)


def test_the_test_session_opts_in_explicitly():
    import os

    assert os.environ.get(INSECURE_KEYS_ENV) == "1" and check_key_bits(512) == 512


@pytest.mark.parametrize("bits", [1024, 512, 256])
def test_small_keys_refused_without_the_flag(no_test_keys, bits):
    with pytest.raises(ParameterError, match="key_bits.*2048") as e:
        check_key_bits(bits)
    assert e.value.field == "key_bits" and INSECURE_KEYS_ENV in str(e.value)
    assert check_key_bits(2048) == 2048 and check_key_bits(3072) == 3072
    with pytest.raises(ParameterError):
        check_key_bits(2049)


def test_hedevice_refuses_1024_bits(no_test_keys):
    def prog(ctx):
        HeDevice(ctx, "bank", key_bits=1024)

    with pytest.raises(PartyFailed, match="key_bits"):
        simulate(prog, ["bank", "shop"], mode="thread")


def test_secureboost_refuses_1024_bits(no_test_keys):
    with pytest.raises(ParameterError, match="key_bits") as e:
        SecureBoostClassifier(None, key_bits=1024)
    assert e.value.field == "key_bits"


def test_pipeline_yaml_refuses_1024_bits(no_test_keys, files, tmp_path):
    # refused when the pipeline is read, before any party starts
    with pytest.raises(ConfigError, match="key_bits.*2048") as e:
        _pipeline(files, tmp_path, 1024)
    assert e.value.field == "key_bits"


def test_key_size_in_the_job_summary(files, tmp_path):
    res = simulate_pipeline(_pipeline(files, tmp_path, 512), mode="thread", verbose=False)
    assert all(res[p]["paillier_key_bits"] == {"woe_binning": 512} for p in ("bank", "partner", "dealer"))
