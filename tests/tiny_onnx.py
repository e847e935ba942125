"""A tiny trained and exported model shared by test_export.py and test_runtime_cli.py.

Trained once per pytest process (about 10 s on 2 cores): 300 generator steps of the
real trainer on `synthetic:bars` at the TINY size, long enough that S recovers d
from G(z, c, d) for nearly every sample; then exported with `lgen export` (a fresh
interpreter, so the CLI command is exercised too). Also: a torch-free environment
for subprocesses, in which importing torch (or onnx, safetensors, ...) fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import TINY, lgen

_CACHE: dict[str, Path] = {}

STEPS = 300
# Modules `lgen sample | encode | interpolate` must never need: blocked in the torch-free env.
TRAINING_MODULES = ("torch", "torchvision", "onnx", "onnxscript", "safetensors", "lifelong_gen.train.networks",
                    "lifelong_gen.train.checkpoint", "lifelong_gen.train.trainer", "lifelong_gen.export.onnx_export")

SITECUSTOMIZE = '''\
# Written by tests/tiny_onnx.py: make the listed modules unimportable in this interpreter.
import os, sys
for _name in os.environ.get("LGEN_TEST_BLOCK", "").split(","):
    if _name:
        sys.modules[_name] = None  # `import NAME` now raises ImportError
'''


def exported_bundle(tmp_path_factory) -> Path:
    """Run directory of a tiny model trained on synthetic bars and exported to onnx/."""
    if "bundle" in _CACHE:
        return _CACHE["bundle"]
    from lifelong_gen.config import resolve_run_config
    from lifelong_gen.train.domains import load_domain
    from lifelong_gen.train.trainer import Trainer

    run_dir = tmp_path_factory.mktemp("tiny_onnx") / "run"
    settings = {**TINY, "domains": ["synthetic:bars"], "steps_per_domain": STEPS, "lr_g": 2e-3, "batch_size": 32,
                "n_critic": 1, "log_every": 50, "checkpoint_every": 1000}
    Trainer(resolve_run_config(settings), run_dir, data=[load_domain("synthetic:bars", 1, 28)], progress=False).train()
    result = lgen("export", str(run_dir))
    assert result.returncode == 0, result.stderr
    _CACHE["bundle"] = run_dir
    return run_dir


def copy_bundle(src: Path, dst: Path, with_onnx: bool = True) -> Path:
    """Copy the bundle files (config, safetensors, optionally onnx/) of a run directory."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and (f.name == "config.json" or f.suffix == ".safetensors"):
            shutil.copy2(f, dst / f.name)
    if with_onnx:
        shutil.copytree(src / "onnx", dst / "onnx")
    return dst


def torch_free_env(tmp_path_factory, block: tuple[str, ...] = TRAINING_MODULES) -> dict[str, str]:
    """Environment for `lgen(...)` in which importing any of `block` raises ImportError."""
    site = tmp_path_factory.mktemp("torch_free_site")
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "LGEN_TEST_BLOCK": ",".join(block)}


def export_against_torch(tmp_path: Path, cfg, G, S, n: int):
    """Save G (as G and G_ema) and S as a bundle in tmp_path, export it (parity checked), and sample n
    random codes both ways: (onnxruntime's images, G's eval-mode images as a torch tensor)."""
    import numpy as np
    import torch

    from lifelong_gen import runtime
    from lifelong_gen.config import RunConfig, TrainConfig
    from lifelong_gen.export import onnx_export, spec
    from lifelong_gen.runtime.codes import random_codes
    from lifelong_gen.train import checkpoint as ckpt

    run = RunConfig(model=cfg, train=TrainConfig(domains=["synthetic:bars"]))
    ckpt.save_bundle(tmp_path, run, {"G": G, "G_ema": G, "S": S})
    result = onnx_export.export_bundle(tmp_path)
    assert max(result.max_abs_diff.values()) <= spec.PARITY_ATOL
    model = runtime.OnnxModel(tmp_path, provider="cpu")
    codes = random_codes(model, n, np.random.default_rng(0))
    with torch.no_grad():
        expected = G.eval()(*(torch.from_numpy(a) for a in (codes.z, codes.c, codes.d)))
    return model.sample(codes.z, codes.c, codes.d), expected
