"""Checks a CLI command makes before it starts work: the torch side installed, the output free.

Owns `require_torch_side` (a one-line error naming the missing module and the extra to install,
before a torch-side command starts) and `refuse_existing` (a new run never overwrites one).
Torch-free to import, as the whole CLI package must be (cli/app.py).
"""

from __future__ import annotations

from pathlib import Path

from lifelong_gen.bundle import CONFIG_NAME
from lifelong_gen.errors import LgenError

# What each torch-side command imports, and the extra that installs it. A `[cpu]` or `[gpu]`
# install has none of these: such a command then ends with one line naming the extra.
TORCH_SIDE = {
    "train": (("torch", "torchvision", "safetensors"), "train"),
    "export": (("torch", "onnx", "onnxscript", "safetensors"), "train"),
    "evaluate": (("torch", "torchvision", "safetensors", "torch_fidelity", "scipy", "sklearn", "matplotlib"), "train,eval"),
}


def require_torch_side(command: str) -> None:
    """One-line LgenError naming the missing module and the extra, before a torch-side command starts."""
    import importlib
    import importlib.util

    from lifelong_gen.cpu_sharing import choose_wait_policy

    choose_wait_policy()  # before the first import of torch below: libgomp reads it when it loads
    modules, extra = TORCH_SIDE[command]
    for name in modules:
        try:
            # Found, not imported: importing torchvision alone (its models, torch._dynamo) cost a
            # `lgen train` 1-2 s of startup. torch itself is imported, as every command needs it.
            if name == "torch":
                importlib.import_module(name)
            elif importlib.util.find_spec(name) is None:
                raise ImportError(name)
        except ImportError:
            raise LgenError(f"lgen {command} needs {name}, which is not installed (an inference-only install): "
                            f"pip install 'lifelong-gen[{extra}]'") from None


def refuse_existing(run_dir: Path) -> None:
    from lifelong_gen.seed_list import SEEDS_NAME

    if (run_dir / CONFIG_NAME).exists() or (run_dir / SEEDS_NAME).exists():
        raise LgenError(f"{run_dir} already holds a run: continue it with --resume {run_dir} or choose another --out")
