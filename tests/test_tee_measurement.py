"""Issue 11 item 7: the enclave measurement covers all the code the enclave runs.

It hashes the whole jointml import closure of the enclave runtime and its program
(including modules the old hand-written list missed: ``jointml/__init__.py``,
``core/prg.py``, ``tee/enclave.py``, ``tee/__init__.py``), the interpreter and the
dependency versions; the enclave boots isolated, so PYTHONPATH / sitecustomize cannot
inject code next to the measured files.
"""

import shutil
import sys
from pathlib import Path

import pytest

from jointml.tee import attestation
from jointml.tee.attestation import AttestationError, check_loaded, measure, program_files
from jointml.tee.enclave import Enclave

PROGRAMS = ["jointml.apps.tee_train", "jointml.apps.tecc"]
MISSED_BEFORE = ["jointml", "jointml.core.prg", "jointml.tee", "jointml.tee.enclave"]


@pytest.mark.parametrize("program", PROGRAMS)
def test_closure_holds_modules_the_old_list_missed(program):
    mods = {m for m, _ in program_files(program)}
    assert set(MISSED_BEFORE) <= mods
    # every module the enclave process has loaded is measured: here, what the host loaded
    # of the runtime and the program
    import jointml.tee._boot  # noqa: F401

    loaded = [m for m in sys.modules if m.startswith("jointml.tee.") and m != "jointml.tee.tecc"]
    check_loaded(program, loaded + ["jointml.core.prg"])


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("pkg") / "jointml"
    shutil.copytree(Path(attestation.__file__).resolve().parents[1], root,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize("module", ["__init__.py", "core/prg.py", "tee/enclave.py", "tee/__init__.py"])
def test_changing_a_loaded_module_changes_the_measurement(package_copy, module):
    cfg = {"parties": {}}
    base = measure("jointml.apps.tee_train", cfg, root=package_copy)
    assert base == measure("jointml.apps.tee_train", cfg)  # same files, same measurement
    f = package_copy / module
    original = f.read_bytes()
    try:
        f.write_bytes(original + b"\n# injected\n")
        assert measure("jointml.apps.tee_train", cfg, root=package_copy) != base
    finally:
        f.write_bytes(original)


def test_dependency_and_interpreter_versions_are_measured(monkeypatch):
    cfg = {"parties": {}}
    base = measure("jointml.apps.tee_train", cfg)
    env = attestation.environment(["numpy", "cryptography"])
    assert env["deps"]["numpy"].startswith("numpy==") and env["deps"]["cryptography"].startswith("cryptography==")
    monkeypatch.setattr(attestation, "_dist_version", lambda top: "numpy==0.0.1-evil" if top == "numpy" else "x")
    assert measure("jointml.apps.tee_train", cfg) != base


def test_unmeasured_module_refused():
    with pytest.raises(AttestationError, match="outside its measurement"):
        check_loaded("jointml.apps.tee_train", ["jointml.dashboard.app"])


def test_enclave_boots_isolated_from_pythonpath_and_sitecustomize(tmp_path, monkeypatch):
    inject = tmp_path / "inject"
    inject.mkdir()
    marker = tmp_path / "ran"
    (inject / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('injected')\n")
    (inject / "usercustomize.py").write_text(f"open({str(marker)!r}, 'w').write('injected')\n")
    monkeypatch.setenv("PYTHONPATH", str(inject))
    monkeypatch.setenv("PYTHONSTARTUP", str(inject / "sitecustomize.py"))
    cfg = {"parties": {}}
    with Enclave("jointml.apps.tee_train", cfg, platform_dir=str(tmp_path / "plat")) as enc:
        assert enc.heartbeat()["alive"]
        assert enc.measurement == measure("jointml.apps.tee_train", cfg)
    assert not marker.exists(), "code outside the measurement ran inside the enclave"
