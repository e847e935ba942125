"""The models shipped inside the package: `lifelong_gen/pretrained/<name>/`, sha256-checked.

Owns DEFAULT_MODEL (what `lgen sample | encode | interpolate` use when given no --model),
the note the CLI prints about it, `pretrained_path`, and each shipped bundle's checksums.json:
`write_checksums` when scripts/build_pretrained.py builds one, `verify_checksums` before it is
used, so a damaged install ends in one line instead of sampling from broken files.
Torch-free; Hub I/O is hub.py's.
"""

from __future__ import annotations

import json
from pathlib import Path

from lifelong_gen.atomic import atomic_write_json, sha256_file
from lifelong_gen.bundle import CHECKSUMS_NAME, CONFIG_NAME
from lifelong_gen.errors import LgenError, one_line

PRETRAINED_ROOT = Path(__file__).resolve().parent / "pretrained"
DEFAULT_MODEL = "mnist-fashion"
# What the embedded default is, as the torch-free commands say when they fall back on it.
DEFAULT_MODEL_NOTE = "the MNIST -> Fashion-MNIST reference model, `lgen train --preset mnist-fashion`"


def write_checksums(bundle: Path) -> Path:
    """Record the sha256 of every file of `bundle` (but checksums.json) in BUNDLE/checksums.json."""
    bundle = Path(bundle)
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*")
                   if p.is_file() and p.name != CHECKSUMS_NAME and not p.name.startswith("."))
    data = {"algorithm": "sha256", "files": {rel: sha256_file(bundle / rel) for rel in files}}
    return atomic_write_json(bundle / CHECKSUMS_NAME, data)


def verify_checksums(bundle: Path) -> None:
    """Every file listed in BUNDLE/checksums.json must exist with that sha256 (LgenError otherwise)."""
    bundle = Path(bundle)
    try:
        data = json.loads((bundle / CHECKSUMS_NAME).read_text())
        listed = data["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LgenError(f"{bundle / CHECKSUMS_NAME} is missing or unreadable ({one_line(e)}): "
                        f"reinstall lifelong-gen") from None
    for rel, expected in listed.items():
        path = bundle / rel
        if not path.is_file():
            raise LgenError(f"{path} is missing: reinstall lifelong-gen")
        if sha256_file(path) != expected:
            raise LgenError(f"{path} does not match its sha256 in {CHECKSUMS_NAME}: reinstall lifelong-gen")


def pretrained_path(name: str = DEFAULT_MODEL, *, verify: bool = True) -> Path:
    """The directory of a model shipped inside the package (checked against its checksums.json)."""
    path = PRETRAINED_ROOT / name
    if not (path / CONFIG_NAME).is_file():
        have = sorted(p.name for p in PRETRAINED_ROOT.iterdir() if p.is_dir()) if PRETRAINED_ROOT.is_dir() else []
        raise LgenError(f"no embedded model {name!r} in {PRETRAINED_ROOT} (have: {', '.join(have) or 'none'})")
    if verify:
        verify_checksums(path)
    return path
