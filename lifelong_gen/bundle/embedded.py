"""The models shipped inside the package: `lifelong_gen/pretrained/<name>/`, sha256-checked.

Owns DEFAULT_MODEL (what `lgen sample | encode | interpolate` use when given no --model),
the note the CLI prints about it, `pretrained_path` and `embedded_name` (a bare model name
such as `mnist-fashion` as --model, `lgen evaluate` or `lgen train --from` take it), each
shipped bundle's checksums.json (`write_checksums` when scripts/build_pretrained.py builds
one, `verify_checksums` of the files a command reads before it reads them, so a damaged
install ends in one line instead of sampling from broken files) and `installed_location`:
whether a directory is an installed or cached copy that no command may write into.
Torch-free; Hub I/O is hub.py's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

from lifelong_gen.atomic import atomic_write_json, sha256_file
from lifelong_gen.bundle import CHECKSUMS_NAME, CONFIG_NAME, RUNTIME_FILES
from lifelong_gen.errors import LgenError, one_line

PRETRAINED_ROOT = Path(__file__).resolve().parents[1] / "pretrained"  # lifelong_gen/pretrained/: package data
DEFAULT_MODEL = "mnist-fashion"
# What the embedded default is, as the torch-free commands say when they fall back on it.
DEFAULT_MODEL_NOTE = "the MNIST -> Fashion-MNIST reference model, `lgen train --preset mnist-fashion`"
# Where pip puts packages: a bundle below one of these came with an install (ours or another's).
INSTALL_DIRS = ("site-packages", "dist-packages")


def write_checksums(bundle: Path) -> Path:
    """Record the sha256 of every file of `bundle` (but checksums.json) in BUNDLE/checksums.json."""
    bundle = Path(bundle)
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*")
                   if p.is_file() and p.name != CHECKSUMS_NAME and not p.name.startswith("."))
    data = {"algorithm": "sha256", "files": {rel: sha256_file(bundle / rel) for rel in files}}
    return atomic_write_json(bundle / CHECKSUMS_NAME, data)


def verify_checksums(bundle: Path, files: Optional[Iterable[str]] = None) -> None:
    """Files of BUNDLE must exist with the sha256 its checksums.json lists (LgenError otherwise).

    Args:
        bundle: an embedded model's directory.
        files: the files to check, relative posix paths (what the caller is about to read;
            each must be listed); None: every listed file (the build's own check). A command
            checks only what it reads, so a damaged preview PNG or metrics.json cannot stop
            `lgen sample`.
    """
    bundle = Path(bundle)
    try:
        data = json.loads((bundle / CHECKSUMS_NAME).read_text())
        listed = data["files"]
        if not isinstance(listed, dict):
            raise TypeError(f"'files' is a {type(listed).__name__}, not a table")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LgenError(f"{bundle / CHECKSUMS_NAME} is missing or unreadable ({one_line(e)}): "
                        f"reinstall lifelong-gen") from None
    wanted = list(listed) if files is None else list(files)
    for rel in wanted:
        path = bundle / rel
        if rel not in listed:
            raise LgenError(f"{path} is not listed in {bundle / CHECKSUMS_NAME}: reinstall lifelong-gen")
        if not path.is_file():
            raise LgenError(f"{path} is missing: reinstall lifelong-gen")
        if sha256_file(path) != listed[rel]:
            raise LgenError(f"{path} does not match its sha256 in {CHECKSUMS_NAME}: reinstall lifelong-gen")


def embedded_names() -> list[str]:
    """The names of the models shipped in this install (directories of PRETRAINED_ROOT with a config.json)."""
    if not PRETRAINED_ROOT.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_ROOT.iterdir() if (p / CONFIG_NAME).is_file())


def pretrained_path(name: str = DEFAULT_MODEL, *, verify: bool = True,
                    files: Optional[Iterable[str]] = RUNTIME_FILES) -> Path:
    """The directory of a model shipped inside the package, checked against its checksums.json.

    Args:
        name: the model's folder under PRETRAINED_ROOT.
        verify: check the sha256 of `files` first.
        files: what the caller reads; default what the ONNX runtime reads (config.json and
            onnx/*.onnx); the torch side passes the safetensors it loads; None: every file.
    """
    path = PRETRAINED_ROOT / name
    if not (path / CONFIG_NAME).is_file():
        have = embedded_names()
        raise LgenError(f"no embedded model {name!r} in {PRETRAINED_ROOT} (have: {', '.join(have) or 'none'})")
    if verify:
        verify_checksums(path, files)
    return path


def embedded_name(value: str | Path | None) -> Optional[Path]:
    """The embedded model a command-line value names, or None: what `--model mnist-fashion` means.

    A value resolves to PRETRAINED_ROOT/<value> only when it is not an existing path and is
    a bare name (no path separator) of a shipped model: a local directory of the same name
    wins over the embedded model, as does anything that looks like a path. Unverified: the
    caller checks what it reads with `verify_checksums(path, files)` (or uses
    `pretrained_path(name, files=...)`).
    """
    if value is None:
        return None
    text = str(value)
    if not text or text in (".", "..") or "/" in text or "\\" in text or Path(text).expanduser().exists():
        return None
    path = PRETRAINED_ROOT / text
    return path if (path / CONFIG_NAME).is_file() else None


def is_embedded(path: Path) -> bool:
    """Whether `path` is (a copy in place of) one of the models shipped inside the package."""
    try:
        Path(path).resolve().relative_to(PRETRAINED_ROOT.resolve())
    except (ValueError, OSError):
        return False
    return True


def installed_location(path: Path) -> Optional[str]:
    """Why `path` is an installed or cached copy that must not be written into, or None.

    Such copies: the package's embedded models (PRETRAINED_ROOT), anything under a
    site-packages or dist-packages directory (an install: rewriting a file there breaks its
    checksums, or another package's RECORD), and the Hugging Face hub cache (HF_HUB_CACHE:
    a snapshot written into no longer matches its revision, and later downloads trust it).
    `path` need not exist.
    """
    path = Path(path).expanduser()
    forms = {path.absolute(), path.resolve()}  # a symlinked venv or cache counts under either name
    if is_embedded(path):
        return f"lifelong-gen's embedded models ({PRETRAINED_ROOT})"
    for form in forms:
        if any(part in INSTALL_DIRS for part in form.parts):
            return "an installed package (site-packages)"
    from lifelong_gen.bundle.hub import hf_hub_cache  # lazy: hub.py imports this module

    cache = hf_hub_cache()
    if cache is not None:
        roots = {cache.absolute(), cache.resolve()}
        for form in forms:
            for root in roots:
                if form == root or root in form.parents:
                    return f"the Hugging Face cache ({cache})"
    return None
