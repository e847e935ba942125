"""Bundle and training-state I/O: safetensors + JSON, atomic writes, resume, load_networks.

A *bundle* is a directory with `config.json` and one safetensors file per network:
`generator.safetensors`, `generator_ema.safetensors`, `encoder.safetensors`,
`critic.safetensors` (the diffusers layout: no pickles, no code). A *run directory*
is a bundle plus `metrics.jsonl`, sample grids, per-domain snapshots and
`checkpoints/`, which holds the full training state for resume. A bundle's own
`manifest.json` (size and sha256 of config.json, the safetensors and onnx/*.onnx,
lifelong_gen/bundle/manifest.py) is renamed into place after the files `save_bundle` writes, and
`load_bundle` checks what it loads against it:

    checkpoints/step-00000500/{state.json, state.safetensors, manifest.json}
    checkpoints/latest         one line naming the newest complete checkpoint

A checkpoint directory is written under a temporary name and renamed into place,
then `latest` is replaced atomically, so `kill -9` at any moment leaves either the
previous or the new checkpoint complete, never a mix. `manifest.json` (size and
sha256 of every other file) is written last, before the rename: `--resume` verifies
it, and when the newest checkpoint is damaged (a truncated copy, a flipped byte, a
missing file, a broken `latest`) falls back to the newest intact one and says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from safetensors.torch import load_file, save

from lifelong_gen.atomic import atomic_directory, atomic_write_bytes, sha256_file, write_synced
from lifelong_gen.bundle import CHECKPOINTS_DIR, CONFIG_NAME, NETWORK_FILES, SNAPSHOTS_DIR, manifest
from lifelong_gen.bundle.resolve import fetch_bundle
from lifelong_gen.config import RunConfig, read_run_config
from lifelong_gen.errors import LgenError, one_line
from lifelong_gen.train import legacy

log = logging.getLogger("lifelong_gen")
MANIFEST_NAME = "manifest.json"  # a checkpoint's (its own format: "step" and its two files)


# ---------------------------------------------------------------- atomic primitives


def tensor_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """Tensors in safetensors' format, in memory (copied to the CPU first); equal inputs, equal bytes."""
    # clone: state_dict tensors may share storage (S on the critic's trunk).
    data = save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, metadata=metadata)
    return sorted_metadata(data)


def sorted_metadata(data: bytes) -> bytes:
    """safetensors bytes with the header's __metadata__ keys in sorted order.

    safetensors writes them in a random order from one save to the next (a Rust HashMap:
    safetensors#584, fix proposed in #790; measured with 0.8.0: two orders in 50 saves), so
    two identical trainings wrote files with different sha256 in their manifests. The same
    pairs sorted take the same bytes, so the header keeps its length and every tensor offset;
    anything unexpected returns `data` as it was.
    """
    n = int.from_bytes(data[:8], "little")
    try:
        header = data[8:8 + n].decode()
        key = '"__metadata__":'
        start = header.index(key) + len(key)
        meta, end = json.JSONDecoder().raw_decode(header, start)
    except (UnicodeDecodeError, ValueError):
        return data
    if not isinstance(meta, dict) or len(meta) < 2:
        return data
    text = json.dumps(dict(sorted(meta.items())), separators=(",", ":"), ensure_ascii=False)
    new = (header[:start] + text + header[end:]).encode()
    if len(new) != n or json.loads(new) != json.loads(data[8:8 + n]):
        return data
    return data[:8] + new + data[8 + n:]


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """One safetensors file (save_file's format), written atomically through lifelong_gen.atomic."""
    atomic_write_bytes(path, tensor_bytes(tensors, metadata))


# ---------------------------------------------------------------- bundles


def write_config(bundle: Path, run: RunConfig) -> None:
    """config.json alone (a training's start), and its entry in the bundle's manifest with it."""
    # Through the manifest: a resume may change config.json's execution settings, and a manifest
    # left with the old entry would call the new file damaged.
    manifest.write_files(Path(bundle), {CONFIG_NAME: run.to_json().encode()})


def save_bundle(bundle: Path, run: RunConfig, networks: dict[str, torch.nn.Module]) -> None:
    """Write config.json and one safetensors file per network given (keys of NETWORK_FILES), then
    BUNDLE/manifest.json: hashed from the bytes written, renamed into place after them (manifest.py)."""
    files = {CONFIG_NAME: run.to_json().encode()}
    for key, module in networks.items():
        files[NETWORK_FILES[key]] = tensor_bytes(module.state_dict(), metadata={"format": "pt", "network": key})
    manifest.write_files(Path(bundle), files)


def copy_parent_snapshots(parent: Path, run_dir: Path, inherited: int) -> None:
    """A continued run's snapshots/domain-K/ for the parent's domains (the forgetting matrix's rows).

    domain-`inherited` is the parent itself (its config and the EMA G and S it was continued
    from); earlier ones are the parent's own snapshots when it is a run directory that has them
    (an exported bundle has none: those rows stay empty). Byte copies, each directory atomic.
    """
    parent, root = Path(parent), Path(run_dir) / SNAPSHOTS_DIR
    sources = {k: parent / SNAPSHOTS_DIR / f"domain-{k}" for k in range(1, inherited)}
    sources[inherited] = parent
    for k, src in sources.items():
        files = [CONFIG_NAME, NETWORK_FILES["G_ema"], NETWORK_FILES["S"]]
        if not all((src / rel).is_file() for rel in files):
            continue
        with atomic_directory(root / f"domain-{k}") as tmp:
            for rel in files:
                shutil.copyfile(src / rel, tmp / rel)
            manifest.update(tmp)  # a snapshot is a bundle like any other: its files checked when read


def load_state_strict(module: torch.nn.Module, path: Path) -> None:
    """Load a safetensors file into a module; every key must match in name and shape."""
    if not Path(path).is_file():
        raise LgenError(f"bundle is missing {Path(path).name} ({path})")
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types on corrupt files
        raise LgenError(f"cannot read {path}: {one_line(e)}") from None
    tensors, folded = legacy.fold_norm_biases(module, tensors)
    legacy.notice_once(str(path), folded)
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
    """Rebuild networks from a bundle alone. Returns (RunConfig, {key: module in eval mode}).

    config.json and the weight files of `which` are first checked against BUNDLE/manifest.json
    (manifest.verify: a flipped byte in the tensor data still parses, only the sha256 sees it),
    so a damaged file ends in one line before any caller's work (`lgen train --from`, evaluate).
    """
    from lifelong_gen.train.networks import build_networks

    bundle = Path(bundle)
    # Checked and loaded under the directory's shared lock: a training saving into it renames
    # its files and manifest under the exclusive one, so what is checked is what is loaded.
    with manifest.locked(bundle, exclusive=False):
        manifest.verify(bundle, [CONFIG_NAME, *(NETWORK_FILES[k] for k in which if k in NETWORK_FILES)],
                        lock=False)
        run = read_run_config(bundle)
        run.require_current("rebuild its networks")
        G, D, S = build_networks(run.model)
        G_ema, _, _ = build_networks(run.model)
        modules = {"G": G, "G_ema": G_ema, "S": S, "D": D}
        out = {}
        for key in which:
            load_state_strict(modules[key], bundle / NETWORK_FILES[key])
            out[key] = modules[key].eval()
    return run, out


def load_networks(bundle_or_repo_id: str | Path, which: Sequence[str] = ("G_ema", "S"), *,
                  endpoint: Optional[str] = None):
    """Load a bundle, local or on the Hub, into PyTorch modules with strict key and shape checks.

    Unlike huggingface_hub's ModelHubMixin, which loads non-strictly.

    Args:
        bundle_or_repo_id: a bundle or run directory, or `org/name[@rev]` (downloads only
            config.json and the safetensors files of `which`, through resolve.fetch_bundle).
        which: keys of NETWORK_FILES: "G", "G_ema" (generators), "S" (encoder), "D" (critic;
            on the Hub only when pushed with --with-critic).

    Returns:
        (RunConfig, {key: module in eval mode}), as load_bundle.
    """
    which = tuple(which)
    unknown = [k for k in which if k not in NETWORK_FILES]
    if unknown or not which:
        raise LgenError(f"which must name some of {', '.join(NETWORK_FILES)}, got {list(which)}")
    hint = " (the critic is uploaded only by `lgen push --with-critic`)" if "D" in which else ""
    path = fetch_bundle(bundle_or_repo_id, [NETWORK_FILES[k] for k in which], endpoint=endpoint, hint=hint)
    return load_bundle(path, which=which)


# ---------------------------------------------------------------- training state


def numerics(device: torch.device) -> dict[str, Any]:
    """What a CPU run's floating-point results depend on beyond its seed and settings.

    The thread count sets how GEMMs, convolutions and reductions split their sums (MKL,
    oneDNN and ATen partition work statically by thread), the CPU capability picks the
    kernels (AVX2 / AVX-512 / AMX), and another torch may pick other kernels again. `adam` names
    the optimiser's implementation: versions before the fused kernel (absent there) rounded
    otherwise in the last bit.
    """
    return {"device": device.type, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "adam": "fused"}


def warn_if_numerics_differ(saved: Optional[dict[str, Any]], device: torch.device) -> None:
    """One warning when a resume cannot be bit-identical because the arithmetic changed."""
    if not saved:  # a checkpoint of an older version: nothing recorded
        return
    now = numerics(device)
    changed = [f"{k} {saved.get(k)} -> {now[k]}" for k in now if saved.get(k) != now[k]]
    if changed and device.type == "cpu":
        # The thread count is the one a user can set back; the rest come with the machine or the version.
        hint = f" (for that, e.g. --threads {saved.get('threads')})" if saved.get("threads") != now["threads"] else ""
        log.warning("this resume runs with other numerics than the checkpoint (%s): training continues, but not "
                    "bit-identical to an uninterrupted run%s", ", ".join(changed), hint)


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


def optimizer_from_tensors(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict,
                           index_map: Optional[dict[int, int]] = None) -> None:
    """Load what optimizer_to_tensors wrote. `index_map` ({saved position: position now}, from
    legacy.optimizer_index_maps) renumbers the state of a checkpoint whose networks had more
    parameters; the state of a saved position it lacks is dropped."""
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
    if index_map is not None:
        state = {index_map[i]: st for i, st in state.items() if i in index_map}
        groups = [{**g, "params": [index_map[i] for i in g["params"] if i in index_map]} for g in groups]
    opt.load_state_dict({"state": state, "param_groups": groups})


def _write_synced(path: Path, data: bytes) -> dict[str, Any]:
    """Write `data` to `path` and fsync it; returns its manifest entry (hashed from memory, not re-read)."""
    write_synced(path, data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def save_checkpoint(run_dir: Path, step: int, state: dict, tensors: dict[str, torch.Tensor], keep: int = 2) -> Path:
    """Write a complete checkpoint atomically (manifest last), point `latest` at it, prune older ones.

    A failure part-way (a full disk, a kill) leaves the previous checkpoints and `latest`
    as they were; the temp directory is removed (or, after a kill, by the next save).
    """
    ckpt_root = Path(run_dir) / CHECKPOINTS_DIR
    name = f"step-{step:08d}"
    final = ckpt_root / name
    with atomic_directory(final) as tmp:  # replaces a step-N re-written after a resume from an older one
        files = {
            "state.safetensors": _write_synced(tmp / "state.safetensors", tensor_bytes(tensors)),
            "state.json": _write_synced(tmp / "state.json", json.dumps(state, indent=2, sort_keys=True).encode()),
        }
        _write_synced(tmp / MANIFEST_NAME, json.dumps({"step": step, "files": files}, indent=2, sort_keys=True).encode())
    atomic_write_bytes(ckpt_root / "latest", (name + "\n").encode())
    existing = sorted(p for p in ckpt_root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for old in existing[:-keep]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in ckpt_root.glob(".step-*"):  # temp dirs left by a kill mid-write
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _read_verified(ckpt: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(state, tensors) of one checkpoint directory after checking its manifest; LgenError if damaged.

    Every checkpoint this package wrote has its manifest: one without is damaged.
    """
    manifest_path = ckpt / MANIFEST_NAME
    if not ckpt.is_dir():
        raise LgenError("it does not exist")
    if not manifest_path.is_file():
        raise LgenError(f"{MANIFEST_NAME} is missing")
    try:
        files = json.loads(manifest_path.read_text())["files"]
        listed = set(files)
    except (OSError, ValueError, KeyError, TypeError):
        raise LgenError(f"{manifest_path.name} is unreadable") from None
    if listed != {"state.safetensors", "state.json"}:  # not an assert: checks must survive python -O
        raise LgenError(f"{manifest_path.name} lists {sorted(listed)}, not the checkpoint's two files")
    for rel, entry in files.items():
        path = ckpt / rel
        if not path.is_file():
            raise LgenError(f"{rel} is missing")
        if path.stat().st_size != entry["bytes"]:
            raise LgenError(f"{rel} has {path.stat().st_size} bytes, the manifest says {entry['bytes']}")
        if sha256_file(path) != entry["sha256"]:
            raise LgenError(f"{rel} does not match its sha256")
    try:
        state = json.loads((ckpt / "state.json").read_text())
        tensors = load_file(str(ckpt / "state.safetensors"))
    except Exception as e:  # OSError, JSON errors, safetensors' own error types
        raise LgenError(f"unreadable ({one_line(e, 120)})") from None
    if not isinstance(state, dict) or "global_step" not in state:
        raise LgenError("state.json is not a training state")
    return state, tensors


def load_checkpoint(run_dir: Path) -> tuple[dict, dict[str, torch.Tensor]] | None:
    """The newest intact checkpoint's (state, tensors); None when the run has none yet.

    Tries the one `latest` names, then every other `step-*` directory, newest first. Falls
    back with one log line naming what was wrong; LgenError (one line) when checkpoints
    exist but none is intact.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    dirs = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")), reverse=True) \
        if root.is_dir() else []
    pointer = root / "latest"
    named = None
    if pointer.is_file():
        try:
            named = pointer.read_text().strip()
        except (OSError, UnicodeDecodeError):
            named = "<unreadable>"
    if named is None and not dirs:
        return None
    problems, candidates = [], []
    if named is not None:
        if named.startswith("step-") and "/" not in named:
            candidates.append(root / named)
        else:
            problems.append(f"checkpoints/latest is damaged ({named[:40]!r})")
    candidates += [d for d in dirs if d.name != named]
    for ckpt in candidates:
        try:
            found = _read_verified(ckpt)
        except LgenError as e:
            problems.append(f"{ckpt.name}: {e}")
            continue
        if problems:
            log.warning("checkpoint damaged (%s): resuming from the intact %s instead", "; ".join(problems),
                        ckpt.name)
        return found
    raise LgenError(f"no intact checkpoint in {root} ({'; '.join(problems) or 'none found'}): "
                    f"start a new run, or restore the directory from a copy")
