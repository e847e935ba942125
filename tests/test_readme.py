"""The README's quick start is what CI and users run: two commands, both real targets."""

import re
import subprocess

import pytest

from conftest import ROOT


def quick_start_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines() if line.strip()]


def test_quick_start_is_two_make_targets_and_ci_runs_the_test_one():
    commands = quick_start_commands()
    assert len(commands) == 2, commands
    makefile = (ROOT / "Makefile").read_text()
    for cmd in commands:
        target = cmd.split()[1]
        assert re.search(rf"^{target}:.*\bsetup\b", makefile, re.M), f"{target} must depend on setup"
    ci = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert commands[1] in ci, "CI must run the README's test command"


def test_make_targets_resolve():
    # `make -n` prints the recipes without running them: both targets exist and chain to setup.
    for cmd in quick_start_commands():
        r = subprocess.run(["make", "-n", *cmd.split()[1:]], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


@pytest.mark.slow
@pytest.mark.timeout(1500)  # the demo continues the embedded model: minutes, not the default 120 s
def test_demo_job_runs():
    # What `make demo` runs after setup, end to end on real data: the embedded model learns animal-mnist.
    import json

    makefile = (ROOT / "Makefile").read_text()
    assert "bash scripts/demo.sh" in makefile.split("demo:", 1)[1].split("\n\n", 1)[0]
    r = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr
    out = ROOT / r.stdout.strip().splitlines()[-1].split("outputs in ")[1].strip()
    for name in ["embedded-samples.png", "run/generator_ema.safetensors", "run/onnx/generator.onnx",
                 "run/metrics.json", "run/samples/domain-3.png", "samples.png", "dc-grid.png",
                 "run/figures/before_after.png", "run/figures/samples_domain-3.png"]:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    assert metrics["training"]["domains"] == ["mnist", "fashion-mnist", "animal-mnist"]
    assert len(metrics["interpretability"]["d_purity"]["per_d"]) == 30
    report = (out / "run" / "report.md").read_text()
    assert "## Continuation" in report and "FID before (parent)" in report


@pytest.mark.integration
def test_python_trainer_example_runs(tmp_path, capsys):
    # The training page's callback example, on two tiny synthetic domains instead of the full preset.
    readme = (ROOT / "docs" / "training.md").read_text()
    src = re.search(r"```python\n(from lifelong_gen\.config import resolve_run_config.*?)```", readme, re.S).group(1)
    assert '{"domains": "mnist,fashion-mnist"}, preset="mnist-fashion"' in src and '"runs/mf"' in src
    src = src.replace('{"domains": "mnist,fashion-mnist"}, preset="mnist-fashion"',
                      '{"domains": "synthetic:bars,synthetic:rings", "steps_per_domain": 500, "g_width": 8, '
                      '"d_width": 8, "fc_width": 32, "z_dim": 8, "batch_size": 8, "n_critic": 1, "download": False}')
    exec(compile(src.replace('"runs/mf"', repr(str(tmp_path / "mf"))), "docs/training.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in printed] == [["synthetic:bars", "500"], ["synthetic:rings", "500"]]
    assert (tmp_path / "mf" / "generator_ema.safetensors").is_file()
