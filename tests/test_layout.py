"""The architecture's import contract (pyproject.toml [tool.importlinter]) holds.

import-linter reads a package from its directory; in this repository cli/ and export/
only become lifelong_gen.cli / lifelong_gen.export through setuptools' package-dir, so
the test copies the Python files into the installed layout (what a wheel holds) and
lints that: the torch line, the ground floor below lifelong_gen/bundle/, and no import
circle among siblings (import-linter's acyclic_siblings). Also: every module of the package
sits under some contract, so a new torch-free module cannot slip past the boundary by not
being listed; and no circle of imports that run (grimp, import-linter's graph) exists
anywhere in the package, train/ and eval/ included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# import-linter's command, run by the interpreter of this test (its console script may sit in another
# venv when this one reaches import-linter through a .pth file).
LINT_IMPORTS = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                "sys.exit(lint_imports_command())"]


def installed_layout(dest: Path, repo: Path = REPO) -> Path:
    """Copy every package's .py files to `dest` as site-packages would hold them."""
    for package, folder in PYPROJECT["tool"]["setuptools"]["package-dir"].items():
        src = repo / folder
        target = dest.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for f in src.glob("*.py"):
            shutil.copy2(f, target / f.name)
    for package in PYPROJECT["tool"]["setuptools"]["packages"]:  # sub-packages of mapped ones (train/, eval/)
        rel = Path(*package.split("."))
        if not (dest / rel).exists():
            parent = next(p for p in sorted(PYPROJECT["tool"]["setuptools"]["package-dir"], key=len, reverse=True)
                          if package.startswith(p + "."))
            src = repo / PYPROJECT["tool"]["setuptools"]["package-dir"][parent] / Path(*package[len(parent) + 1:].split("."))
            (dest / rel).mkdir(parents=True)
            for f in src.glob("*.py"):
                shutil.copy2(f, dest / rel / f.name)
    return dest


def lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([*LINT_IMPORTS, str(REPO / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, env=env, cwd=tree, timeout=120)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return installed_layout(tmp_path_factory.mktemp("layout"))


def test_import_contracts_hold(tree):
    r = lint(tree)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 6 kept, 0 broken." in r.stdout, r.stdout


def test_a_torch_side_import_in_the_core_breaks_the_contract(tree, tmp_path):
    # The contract can fail: a lazy import of torch-side code inside a torch-free function.
    broken = installed_layout(tmp_path / "broken")
    with open(broken / "lifelong_gen" / "bundle" / "__init__.py", "a") as f:
        f.write("\n\ndef _sneaky():\n    from lifelong_gen.train import networks  # noqa: F401\n")
    r = lint(broken)
    assert r.returncode == 1, r.stdout
    assert "lifelong_gen.bundle -> lifelong_gen.train.networks" in r.stdout, r.stdout


@pytest.mark.parametrize("module, line, broken", [
    # The bundle package's old circle, back: a manifest that resolves models.
    ("bundle/manifest.py", "from lifelong_gen.bundle import resolve", "No cycles are allowed in lifelong_gen.bundle"),
    # The ground floor reaching up into the package above it.
    ("config.py", "from lifelong_gen.bundle import manifest", "lifelong_gen.config -> lifelong_gen.bundle.manifest"),
])
def test_a_circle_or_a_floor_import_breaks_the_contract(tmp_path, module, line, broken):
    tree = installed_layout(tmp_path / "broken")
    with open(tree / "lifelong_gen" / module, "a") as f:
        f.write(f"\n\ndef _sneaky():\n    {line}  # noqa: F401\n")
    r = lint(tree)
    assert r.returncode == 1, r.stdout
    assert broken in r.stdout, r.stdout


# Run in a fresh interpreter on the tree's PYTHONPATH: in this process `lifelong_gen` is already
# imported from the repository, and grimp would find that one instead of the tree's.
_CIRCLES = """
import json, grimp
graph = grimp.build_graph("lifelong_gen", cache_dir=None, exclude_type_checking_imports=True)
circles = []
for importer in sorted(graph.modules):
    for imported in sorted(graph.find_modules_directly_imported_by(importer)):
        back = graph.find_shortest_chain(importer=imported, imported=importer)
        if back and not any(set(back) == set(c) for c in circles):
            circles.append([importer, *back])  # importer -> imported -> ... -> importer
print(json.dumps(circles))
"""


def running_circles(tree: Path) -> list[list[str]]:
    """Each circle of imports that run (imports under TYPE_CHECKING never do), as the modules around it."""
    r = subprocess.run([sys.executable, "-c", _CIRCLES], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_no_circle_of_running_imports_in_the_package(tree, tmp_path):
    assert running_circles(tree) == []
    # The check can fail: a function-level import that closes a circle.
    broken = installed_layout(tmp_path / "broken")
    with open(broken / "lifelong_gen" / "bundle" / "embedded.py", "a") as f:
        f.write("\n\ndef _sneaky():\n    from lifelong_gen.bundle import resolve  # noqa: F401\n")
    assert running_circles(broken) == [["lifelong_gen.bundle.embedded", "lifelong_gen.bundle.resolve",
                                        "lifelong_gen.bundle.embedded"]]


def test_every_module_is_under_a_contract(tree):
    import grimp

    sys.path.insert(0, str(tree))
    try:
        graph = grimp.build_graph("lifelong_gen", cache_dir=None)
    finally:
        sys.path.remove(str(tree))
    contracts = PYPROJECT["tool"]["importlinter"]["contracts"]
    torch_free = next(c for c in contracts if c["id"] == "torch-free")["source_modules"]
    # Torch-side and top-level packages, and the package roots (docstrings, version only).
    covered = [*torch_free, "lifelong_gen.train", "lifelong_gen.eval", "lifelong_gen.cli",
               "lifelong_gen.export.onnx_export"]
    roots = {"lifelong_gen", "lifelong_gen.export", "lifelong_gen.model_cards"}
    loose = sorted(m for m in graph.modules
                   if m not in roots and not any(m == c or m.startswith(c + ".") for c in covered))
    assert not loose, f"modules under no contract (add them to [tool.importlinter]): {loose}"


def test_architecture_layout_lists_every_module():
    import re

    readme = (REPO / "docs" / "architecture.md").read_text()
    block = re.search(r"## Layout\n\n```\n(.*?)```", readme, re.S).group(1)
    listed = set(re.findall(r"\b([a-z_]+\.py)\b", block))
    files = subprocess.run(["git", "ls-files", "lifelong_gen", "cli", "export"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    modules = {Path(f).name for f in files if f.endswith(".py") and Path(f).name not in ("__init__.py", "__main__.py")}
    assert modules - listed == set(), f"modules missing from the layout in docs/architecture.md: {sorted(modules - listed)}"
    assert listed - modules == set(), f"docs/architecture.md lists files that do not exist: {sorted(listed - modules)}"
