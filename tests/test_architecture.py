"""The architecture of DESIGN.md, checked on the source (AST only: nothing is imported).

(a) imports go downward only, in the layer order of DESIGN.md section 3;
(b) no private (`_name`) module, function or class is imported across top-level packages
    (make it public in the lower package instead);
(c) nothing above `mpc/` touches the raw links (`ctx.comm`, `self.ctx.comm`,
    `x.device.ctx.comm`, ...): it uses `jointml.runtime.collectives`;
(d) every module has a docstring (the adversary model and what each party learns).

Each test lists every violation with its file and line, so a failure reads as a to-do list.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "jointml"

# DESIGN.md section 3, bottom to top. Packages on one row may not import each other.
LAYERS: list[set[str]] = [
    {"core"},
    {"net"},
    {"runtime"},
    {"mpc"},
    {"psi", "he", "tee", "dp"},
    {"dsl"},
    {"data", "datasets"},  # datasets: the bundled example data, read by data-level code
    {"ml"},
    {"apps"},
    {"jobs"},
    {"orchestration", "serving"},
    {"cli", "dashboard", "demo", "bench"},
]
RANK = {pkg: i for i, row in enumerate(LAYERS) for pkg in row}
# Same-row imports that the design allows, with the reason.
SAME_ROW_ALLOWED: set[tuple[str, str]] = {
    ("cli", "demo"),  # `jointml demo` runs the demo programs
    ("cli", "bench"),  # `jointml bench` runs the benchmark scripts
}
# Packages above mpc/: they move data between parties only through runtime.collectives.
ABOVE_MPC = {pkg for pkg, r in RANK.items() if r > RANK["mpc"]}


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(path: Path, root: Path) -> str | None:
    rel = path.relative_to(root).parts
    return rel[0] if len(rel) > 1 else None  # jointml/__init__.py belongs to no layer


def _module_name(path: Path, root: Path) -> list[str]:
    rel = list(path.relative_to(root).with_suffix("").parts)
    if rel[-1] == "__init__":
        rel = rel[:-1]
    return ["jointml", *rel]


@lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(path: Path, root: Path) -> list[tuple[int, list[str], list[str]]]:
    """(line, absolute module path, imported names) for every import of the module, including
    imports inside functions (a lazy import is still a dependency)."""
    here = _module_name(path, root)
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((node.lineno, alias.name.split("."), []))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_pkg else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = base + (node.module.split(".") if node.module else [])
            else:
                mod = (node.module or "").split(".")
            out.append((node.lineno, mod, [a.name for a in node.names]))
    return sorted(out, key=lambda t: t[0])


def _where(path: Path, line: int, root: Path) -> str:
    return f"{path.relative_to(root.parent)}:{line}"


def _layer_violations(root: Path = SRC) -> list[str]:
    bad = []
    for path in _modules(root):
        src = _package_of(path, root)
        if src is None:
            continue
        for line, mod, names in _imports(path, root):
            if mod[:1] != ["jointml"]:
                continue
            # `from jointml import x` / `from .. import x`: the target is the imported name
            targets = [mod[1]] if len(mod) > 1 else [n for n in names if n in RANK]
            for dst in targets:
                if dst == src or dst not in RANK or src not in RANK:
                    continue
                if RANK[dst] > RANK[src]:
                    bad.append(f"{_where(path, line, root)}: {src} imports {'.'.join(mod)} (a higher layer: {dst})")
                elif RANK[dst] == RANK[src] and (src, dst) not in SAME_ROW_ALLOWED:
                    bad.append(f"{_where(path, line, root)}: {src} imports {'.'.join(mod)} (same layer: {dst})")
    return bad


def _private_violations(root: Path = SRC) -> list[str]:
    bad = []
    for path in _modules(root):
        src = _package_of(path, root)
        for line, mod, names in _imports(path, root):
            if mod[:1] != ["jointml"] or len(mod) < 2 or mod[1] == src:
                continue
            private_parts = [p for p in mod[2:] if p.startswith("_") and not p.startswith("__")]
            private_names = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private_parts or private_names:
                what = ", ".join(private_parts + private_names)
                bad.append(f"{_where(path, line, root)}: {src or 'jointml'} imports private {what} from {'.'.join(mod)}")
    return bad


def _comm_violations(root: Path = SRC) -> list[str]:
    bad = []
    for path in _modules(root):
        if _package_of(path, root) not in ABOVE_MPC:
            continue
        nodes = [n for n in ast.walk(_tree(path)) if isinstance(n, ast.Attribute) and n.attr == "comm"]
        for node in sorted(nodes, key=lambda n: n.lineno):
            bad.append(f"{_where(path, node.lineno, root)}: uses .comm ({ast.unparse(node)})")
    return bad


def _docstring_violations(root: Path = SRC) -> list[str]:
    return [f"{_where(p, 1, root)}: no module docstring" for p in _modules(root) if not ast.get_docstring(_tree(p))]


def _report(bad: list[str]) -> str:
    return f"{len(bad)} violation(s):\n" + "\n".join(bad)


def test_every_top_level_package_has_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(RANK), f"place {sorted(packages - set(RANK))} in LAYERS (DESIGN.md section 3)"


def test_imports_go_downward_only():
    bad = _layer_violations()
    assert not bad, _report(bad)


def test_no_private_imports_across_packages():
    bad = _private_violations()
    assert not bad, _report(bad)


def test_nothing_above_mpc_uses_the_raw_links():
    bad = _comm_violations()
    assert not bad, _report(bad)


def test_every_module_has_a_docstring():
    bad = _docstring_violations()
    assert not bad, _report(bad)


@pytest.mark.parametrize(
    "code, rule",
    [
        ("from ..ml.linear import SSLogisticRegression\n", _layer_violations),
        ("from ..he.paillier import _secret\n", _private_violations),
        ("def f(ctx):\n    return ctx.comm.send\n", _comm_violations),
    ],
)
def test_the_checks_catch_what_they_should(code, rule, tmp_path):
    # a fake `data` package with one violating module: each rule must report it
    pkg = tmp_path / "jointml" / "data"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""fake."""\n')
    (pkg / "bad.py").write_text('"""fake."""\n' + code)
    assert any("bad.py" in v for v in rule(tmp_path / "jointml"))
    assert not _docstring_violations(tmp_path / "jointml")
