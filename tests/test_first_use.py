"""What a new user meets first (issue 12): version, help, torch-side commands without torch,
the embedded model's note, traversal rows, and progress lines when stderr is a log file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import TINY_FLAGS, lgen
from lifelong_gen import __version__


def test_version_prints_the_package_version():
    r = lgen("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"lgen (lifelong-gen) {__version__}"


def test_root_help_lists_every_command_with_its_whole_short_help():
    from lifelong_gen.cli import app

    r = lgen("--help")
    assert r.returncode == 0, r.stderr
    listing = " ".join(r.stdout.split("Commands:")[1].split())  # undo click's line wrapping
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        assert command.short_help, f"{name} has no explicit short help: click would cut its docstring"
        assert f"{name} {command.short_help}" in listing, f"{name}: {listing}"
    assert "..." not in listing


@pytest.mark.parametrize("argv, missing", [
    (["train", "--domains", "synthetic:bars", "--out", "{tmp}/run"], "torch"),
    (["evaluate", "mnist-fashion"], "torch"),  # a model that resolves: the missing torch is what stops it
    (["export", "{tmp}"], "torch"),
])
def test_torch_side_commands_without_torch_end_in_one_line_naming_the_extra(no_torch, tmp_path, argv, missing):
    r = lgen(*[a.format(tmp=tmp_path) for a in argv], env=no_torch, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"needs {missing}" in lines[0] and "pip install 'lifelong-gen[train" in lines[0]
    assert not (tmp_path / "run").exists()


def test_dry_run_resolves_the_config_without_torch(no_torch, tmp_path):
    # Config resolution is torch-free (lifelong_gen.config): an inference install can still
    # see what `lgen train --preset ...` would run, and a --resume run's stored config.
    r = lgen("train", "--preset", "mnist-fashion", "--lr-g", "2e-4", "--dry-run", env=no_torch, timeout=60)
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["train"]["steps_per_domain"] == 8000 and cfg["train"]["lr_g"] == 2e-4
    assert cfg["model"]["d_dim"] == 20 and cfg["model"]["g_conditioning"] == "cbn"
    (tmp_path / "config.json").write_text(r.stdout)
    again = lgen("train", "--resume", str(tmp_path), "--dry-run", env=no_torch, timeout=60)
    assert again.returncode == 0 and json.loads(again.stdout) == cfg, again.stderr


def test_embedded_default_note_says_what_the_model_is(no_torch, tmp_path):
    r = lgen("sample", "--n", "2", "--out", str(tmp_path / "s.png"), env=no_torch, timeout=60)
    assert r.returncode == 0, r.stderr
    note = [line for line in r.stderr.splitlines() if "embedded default" in line]
    assert len(note) == 1 and "reference model" in note[0] and "quick" not in note[0], r.stderr
    # And that is true: the embedded model was trained with the full preset, not --quick.
    from lifelong_gen.bundle import embedded
    from lifelong_gen.config import PRESETS, read_run_config

    cfg = read_run_config(embedded.pretrained_path())
    assert cfg.train.steps_per_domain == PRESETS["mnist-fashion"]["steps_per_domain"]


def test_c_traversal_shows_every_active_category_by_default(no_torch, tmp_path):
    r = lgen("interpolate", "--vary", "c1", "--steps", "3", "--json", "--out", str(tmp_path / "t.png"),
             env=no_torch, timeout=60)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    from lifelong_gen.bundle import embedded
    from lifelong_gen.config import read_run_config

    cfg = read_run_config(embedded.pretrained_path())
    assert data["rows"] == cfg.model.d_dim == 20  # both domains' 10 categories, not the first 10
    assert sorted({cell["d"] for cell in data["cells"]}) == list(range(20))


def test_training_writes_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    # Not --no-progress: the default, with stderr a pipe (as under nohup or a batch scheduler).
    flags = [f for f in TINY_FLAGS if f != "--no-progress"]
    r = subprocess.run([sys.executable, "-m", "lifelong_gen.cli", "train", "--domains", "synthetic:bars",
                        "--steps-per-domain", "12", *flags, "--out", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if re.search(r"step \d+/12", line)]
    assert lines, r.stderr
    last = lines[-1]
    assert "step 12/12 (100%)" in last and "s/step" in last and "ETA 0:00:00" in last and "MI " in last, last
    assert "\x1b[" not in r.stderr  # no terminal escape codes in a log file
