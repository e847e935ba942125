"""Bundle and training-state I/O: safetensors + JSON, atomic writes, resume.

A *bundle* is a directory with `config.json` and one safetensors file per network:
`generator.safetensors`, `generator_ema.safetensors`, `encoder.safetensors`,
`critic.safetensors` (the diffusers layout: no pickles, no code). A *run directory*
is a bundle plus `metrics.jsonl`, sample grids, per-domain snapshots and
`checkpoints/`, which holds the full training state for resume:

    checkpoints/step-00000500/{state.json, optimizers.safetensors, networks.safetensors}
    checkpoints/latest         one line naming the newest complete checkpoint

A checkpoint directory is written under a temporary name and renamed into place,
then `latest` is replaced atomically, so `kill -9` at any moment leaves either the
previous or the new checkpoint complete, never a mix.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from lifelong_gen.atomic import atomic_write_bytes, atomic_write_json  # noqa: F401  (re-exported)
from lifelong_gen.config import CONFIG_NAME, NETWORK_FILES, RunConfig, read_run_config
from lifelong_gen.errors import LgenError



# ---------------------------------------------------------------- atomic primitives


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        # clone: state_dict tensors may share storage (S on the critic's trunk).
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make shared bundles unreadable to others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- bundles


def write_config(bundle: Path, run: RunConfig) -> None:
    atomic_write_bytes(Path(bundle) / CONFIG_NAME, run.to_json().encode())


def save_bundle(bundle: Path, run: RunConfig, networks: dict[str, torch.nn.Module]) -> None:
    """Write config.json and one safetensors file per network given (keys of NETWORK_FILES)."""
    bundle = Path(bundle)
    write_config(bundle, run)
    for key, module in networks.items():
        atomic_save_tensors(bundle / NETWORK_FILES[key], module.state_dict(),
                            metadata={"format": "pt", "network": key})


def load_state_strict(module: torch.nn.Module, path: Path) -> None:
    """Load a safetensors file into a module; every key must match in name and shape."""
    if not Path(path).is_file():
        raise LgenError(f"bundle is missing {Path(path).name} ({path})")
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types on corrupt files
        raise LgenError(f"cannot read {path}: {e}") from None
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    bad_shape = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or bad_shape:
        raise LgenError(
            f"{Path(path).name} does not match the config: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"wrong shape {bad_shape[:3]}"
        )
    module.load_state_dict(tensors, strict=True)


def load_bundle(bundle: Path, which: tuple[str, ...] = ("G", "G_ema", "S", "D")):
    """Rebuild networks from a bundle alone. Returns (RunConfig, {key: module in eval mode})."""
    from lifelong_gen.networks import build_networks

    bundle = Path(bundle)
    run = read_run_config(bundle)
    G, D, S = build_networks(run.model)
    G_ema, _, _ = build_networks(run.model)
    modules = {"G": G, "G_ema": G_ema, "S": S, "D": D}
    out = {}
    for key in which:
        load_state_strict(modules[key], bundle / NETWORK_FILES[key])
        out[key] = modules[key].eval()
    return run, out


# ---------------------------------------------------------------- training state


def optimizer_to_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON (hyper-parameters)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith(prefix + "."):
            continue
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = meta["param_groups"]
    for g in groups:  # JSON turns tuples into lists
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(run_dir: Path, step: int, state: dict, tensors: dict[str, torch.Tensor], keep: int = 2) -> Path:
    """Write a complete checkpoint atomically, point `latest` at it, prune older ones."""
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=f".{name}."))
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    final = ckpt_root / name
    if final.exists():  # re-written after a resume from an older checkpoint
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_bytes(ckpt_root / "latest", (name + "\n").encode())
    existing = sorted(p for p in ckpt_root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for old in existing[:-keep]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in ckpt_root.glob(".step-*"):  # temp dirs left by a kill mid-write
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(run_dir: Path) -> tuple[dict, dict[str, torch.Tensor]] | None:
    """The newest complete checkpoint's (state, tensors), or None when there is none."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    ckpt = pointer.parent / pointer.read_text().strip()
    try:
        state = json.loads((ckpt / "state.json").read_text())
        tensors = load_file(str(ckpt / "state.safetensors"))
    except (OSError, json.JSONDecodeError) as e:
        raise LgenError(f"checkpoint {ckpt} is unreadable: {e}") from None
    return state, tensors
