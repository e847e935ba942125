"""The models shipped inside the package: `lifelong_gen/pretrained/<name>/`.

Owns DEFAULT_MODEL (what `lgen sample | encode | interpolate` and `load_model()` use when
given no model), the note the CLI prints about it, the names shipped (`embedded_names`), the
directory of one (`pretrained_path`) and `is_embedded`. An embedded model is a bundle like any
other, checked through its manifest.json (manifest.py), which lists every file it ships
(scripts/build_pretrained.py writes it with `manifest.record`); the resolver (resolve.py)
checks what a command reads against it, strictly: an installed model has nothing unlisted.
"""

from __future__ import annotations

from pathlib import Path

from lifelong_gen.bundle import CONFIG_NAME
from lifelong_gen.errors import LgenError

PRETRAINED_ROOT = Path(__file__).resolve().parents[1] / "pretrained"  # lifelong_gen/pretrained/: package data
DEFAULT_MODEL = "mnist-fashion"
# What the embedded default is, as the torch-free commands say when they fall back on it.
DEFAULT_MODEL_NOTE = "the MNIST -> Fashion-MNIST reference model, `lgen train --preset mnist-fashion`"
# What an error about a damaged embedded model tells the user: its files came with the install.
REINSTALL = "reinstall lifelong-gen"


def embedded_names() -> list[str]:
    """The names of the models shipped in this install (directories of PRETRAINED_ROOT with a config.json)."""
    if not PRETRAINED_ROOT.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_ROOT.iterdir() if (p / CONFIG_NAME).is_file())


def pretrained_path(name: str = DEFAULT_MODEL) -> Path:
    """The directory of a model shipped inside the package, unchecked (resolve.resolve_bundle checks it).

    Raises:
        LgenError: no embedded model of that name (one line naming those shipped).
    """
    path = PRETRAINED_ROOT / name
    if not name or "/" in name or "\\" in name or name in (".", "..") or not (path / CONFIG_NAME).is_file():
        raise LgenError(f"no embedded model {name!r} (embedded: {', '.join(embedded_names()) or 'none'})")
    return path


def is_embedded(path: Path) -> bool:
    """Whether `path` is (a copy in place of) one of the models shipped inside the package."""
    try:
        Path(path).resolve().relative_to(PRETRAINED_ROOT.resolve())
    except (ValueError, OSError):
        return False
    return True
