"""Domain names: which names `--domains` accepts and the shape each domain comes in.

Owns `parse_domains` (the CLI's comma-separated list, each name checked), `native_shape`
(channels, resolution of a named domain; None for folders, which adapt) and `model_shape`
(the model's shape for a domain list). Torch-free, like config.py, which resolves a run's
shape through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from lifelong_gen.errors import LgenError

SYNTHETIC_KINDS = ("bars", "rings")  # the tiny generated domains of tests and demos


def parse_domains(text: str) -> list[str]:
    """The CLI's comma-separated --domains, each name checked (one-line LgenError)."""
    specs = [s.strip() for s in text.split(",") if s.strip()]
    for spec in specs:
        native_shape(spec)  # raises LgenError on an unknown name
    if not specs:
        raise LgenError("--domains is empty: name at least one domain, e.g. mnist,fashion-mnist")
    return specs


def native_shape(spec: str) -> Optional[tuple[int, int]]:
    """(channels, resolution) a domain comes in, or None for folders (they adapt)."""
    if spec in ("mnist", "fashion-mnist", "animal-mnist"):
        return (1, 28)
    kind, _, arg = spec.partition(":")
    if kind == "folder":
        if not arg:
            raise LgenError("folder domain needs a path: folder:/data/celeba")
        return None
    if kind in ("synthetic", "synthetic64"):
        if arg not in SYNTHETIC_KINDS:
            raise LgenError(f"unknown synthetic domain {spec!r}: use {kind}:bars or {kind}:rings")
        return (1, 28) if kind == "synthetic" else (3, 64)
    raise LgenError(
        f"unknown domain {spec!r}: use mnist, fashion-mnist, animal-mnist, folder:PATH, synthetic:bars|rings "
        "or synthetic64:bars|rings"
    )


def model_shape(specs: list[str]) -> tuple[int, int]:
    """The model's (channels, resolution): the first native shape; for folders only, what their images suggest.

    Folders are judged from a sample of their image headers (images.folder_image_shape):
    RGB if any folder is colour, 64 if any has images larger than 32 px, so no domain is
    shrunk or greyed more than the others need. 64x64 RGB when no folder can be read yet
    (missing or empty: the loader then gives its one-line error).
    """
    for spec in specs:
        shape = native_shape(spec)
        if shape is not None:
            return shape
    # Imported here: Pillow and numpy are needed only for folder-only domain lists.
    from lifelong_gen.images import folder_image_shape

    folders = [Path(spec.split(":", 1)[1]).expanduser() for spec in specs if spec.startswith("folder:")]
    shapes = [s for s in map(folder_image_shape, folders) if s is not None]
    if not shapes:
        return (3, 64)
    return max(c for c, _ in shapes), max(r for _, r in shapes)
