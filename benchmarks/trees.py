"""What several benchmarks share: the machine as lscpu names it, and a snippet run in this tree or an
earlier commit's (a temporary git worktree), so before/after figures come from one run on one machine.

Imported by the scripts beside it (`python benchmarks/X.py` puts this folder on sys.path).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]

# The reference preset's second-domain step (replay on) on synthetic 28x28 domains, as `t` and `phase`;
# settings overrides as JSON in sys.argv[1]. Runs inside either tree: the config moved from
# trainer.py to config.py after 7b64fee, and a preset's dict-valued entries are variants.
PRESET_STEP = r"""
import json, sys, tempfile
from pathlib import Path
try:
    from lifelong_gen.config import resolve_run_config
    from lifelong_gen.train.trainer import Trainer
    from lifelong_gen.train.domains import load_domain
except ImportError:
    from lifelong_gen.trainer import Trainer, resolve_run_config
    from lifelong_gen.domains import load_domain
from lifelong_gen.config import PRESETS
settings = {k: v for k, v in PRESETS["mnist-fashion"].items() if not isinstance(v, dict)}
settings.update(domains=["synthetic:bars", "synthetic:rings"], **json.loads(sys.argv[1]))
run = resolve_run_config(settings)
data = [load_domain(s, 1, 28) for s in run.train.domains]
tmp = tempfile.TemporaryDirectory()
t = Trainer(run, Path(tmp.name), data=data, progress=False)
t.advance_domain(t.phases[0])
phase = t.phases[1]
"""


def run_snippet(tree: Path, code: str, overrides: dict, *args: str) -> dict:
    """Run PRESET_STEP + `code` in a fresh interpreter on `tree`'s package; the last line it prints, as JSON."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    r = subprocess.run([sys.executable, "-c", PRESET_STEP + code, json.dumps(overrides), *args],
                       capture_output=True, text=True, env=env, cwd=tree, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """A temporary checkout of `commit` beside this one, removed after."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "ref"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), commit], cwd=ROOT, check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


def cpu() -> dict:
    """The machine, as lscpu names it, and whether it has AVX-512 and bf16 instructions."""
    import torch

    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        text = ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")),
                 platform.processor())
    return {"model": model, "avx512f": "avx512f" in text, "avx512_bf16": "avx512_bf16" in text,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
