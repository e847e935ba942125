"""The package as users install it (issue 12): sdist and wheel built, checked, and the wheel
installed with `[cpu]` into a fresh virtual environment without torch.

The editable install of the other tests once hid a wheel whose first command failed (the
embedded model's safetensors were left out of the package data while its integrity file listed
them). Here every command runs from that fresh environment, from a directory outside the
repository, offline (HF_HUB_OFFLINE=1), so only what the wheel ships can be used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT
from lifelong_gen import __version__

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]  # builds and installs into fresh venvs


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """`python -m build` (sdist, then the wheel built from the unpacked sdist) into a temp dir."""
    out = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # a user's usual setting
    r = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    files = {p.suffix: p for p in out.iterdir()}
    return {"sdist": files[".gz"], "wheel": files[".whl"], "log": r.stdout + r.stderr}


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> dict:
    """A fresh venv with `lifelong-gen[cpu]` from the built wheel, and no torch."""
    home = tmp_path_factory.mktemp("userhome")
    env_dir = home / "venv"
    r = _run([sys.executable, "-m", "venv", env_dir], timeout=300)
    assert r.returncode == 0, r.stderr
    python = env_dir / "bin" / "python"
    r = _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{dist['wheel']}[cpu]"],
             timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(home / "hf"), LGEN_DATA_HOME=str(home / "data"),
               PATH=f"{env_dir / 'bin'}:{env['PATH']}")
    return {"python": python, "lgen": env_dir / "bin" / "lgen", "env": env, "cwd": home}


def lgen(venv, *args) -> subprocess.CompletedProcess:
    return _run([venv["lgen"], *args], env=venv["env"], cwd=venv["cwd"], timeout=120)


def test_build_is_warning_free_and_twine_accepts_both_files(dist):
    warnings = [line for line in dist["log"].splitlines() if "warning" in line.lower()]
    assert not warnings, "\n".join(warnings)
    r = _run([sys.executable, "-m", "twine", "check", "--strict", dist["sdist"], dist["wheel"]], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_wheel_ships_every_file_the_embedded_manifest_lists(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        prefix = "lifelong_gen/pretrained/mnist-fashion/"
        listed = json.loads(wheel.read(prefix + "manifest.json"))["files"]
    missing = [rel for rel in listed if prefix + rel not in names]
    assert not missing, missing
    # cli/, export/ and model_cards/ install inside the lifelong_gen namespace only.
    assert not {n.split("/")[0] for n in names} - {"lifelong_gen", f"lifelong_gen-{__version__}.dist-info"}
    assert "lifelong_gen/model_cards/bundle_card.md.j2" in names


def test_sdist_holds_what_rebuilding_and_testing_need(dist):
    with tarfile.open(dist["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "Makefile", "scripts/setup.sh", "tests/conftest.py",
                   "tests/test_wheel.py", "lifelong_gen/pretrained/mnist-fashion/encoder.safetensors",
                   "cli/app.py", "export/onnx_export.py", "lifelong_gen/runtime/__init__.py",
                   "model_cards/bundle_card.md.j2", "benchmarks/sampling.py"):
        assert needed in names, needed


def test_installed_wheel_has_no_torch_and_prints_its_version(venv):
    r = _run([venv["python"], "-c", "import torch"], env=venv["env"], timeout=60)
    assert r.returncode != 0  # the [cpu] install really is torch-free
    r = lgen(venv, "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"lgen (lifelong-gen) {__version__}", r.stdout + r.stderr


def test_installed_wheel_samples_encodes_and_interpolates_the_embedded_model_offline(venv):
    cwd = venv["cwd"]
    r = lgen(venv, "sample", "--n", "4", "--d", "3", "--c1", "0.5", "--out", "grid.png", "--out-dir", "singles")
    assert r.returncode == 0, r.stderr
    assert (cwd / "grid.png").is_file() and len(list((cwd / "singles").glob("*.png"))) == 4
    assert "Traceback" not in r.stderr and "warning" not in r.stderr.lower(), r.stderr
    r = lgen(venv, "encode", "singles/sample-0000.png", "--json")
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)["images"]
    assert 0 <= row["d"] < 20 and len(row["c"]) == 2, row
    r = lgen(venv, "interpolate", "--vary", "c1", "--steps", "3", "--out", "trav.png")
    assert r.returncode == 0 and (cwd / "trav.png").is_file(), r.stderr
    r = lgen(venv, "interpolate", "--from-image", "singles/sample-0000.png", "--to-image", "singles/sample-0001.png",
             "--steps", "4", "--out", "strip.png")
    assert r.returncode == 0 and (cwd / "strip.png").is_file(), r.stderr


# evaluate names the embedded model: a directory that is no bundle would stop it first, in its own one line.
@pytest.mark.parametrize("argv", [["train", "--preset", "mnist-fashion", "--out", "run"], ["evaluate", "mnist-fashion"],
                                  ["export", "."]])
def test_installed_wheel_torch_side_commands_name_the_extra(venv, argv):
    r = lgen(venv, *argv)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'lifelong-gen[train" in lines[0], r.stderr
    assert not (venv["cwd"] / "run").exists()
