"""Optional dependencies: a missing extra is named in one clear jointml error."""

from __future__ import annotations

import sys

import pytest

from jointml.core.errors import ConfigError, JointMLError, MissingDependency
from jointml.core.optional import available, require


def test_require_imports_present_module():
    assert require("json", "core").dumps([1]) == "[1]"


def test_missing_extra_names_the_install_command(monkeypatch):
    # None in sys.modules makes `import pyarrow` fail as if it were not installed
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingDependency) as err:
        require("pyarrow", "parquet", feature="reading Parquet files")
    assert "pip install 'jointml[parquet]'" in str(err.value)
    assert "reading Parquet files" in str(err.value)
    # one hierarchy, and still what callers catching the builtins expect
    assert isinstance(err.value, (JointMLError, ConfigError, ImportError, ValueError))
    assert not available("pyarrow")


def test_broken_dependency_of_present_package_is_not_hidden(tmp_path, monkeypatch):
    pkg = tmp_path / "halfpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import nosuchdep_of_halfpkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as err:
        require("halfpkg", "x")
    assert not isinstance(err.value, MissingDependency)
