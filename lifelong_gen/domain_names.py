"""Domain names: which names `--domains` accepts, the classes each selects and the shape it comes in.

A domain spec is a dataset name (`mnist`, `synthetic:bars`, `folder:PATH`), optionally followed
by `:SEL`, a selection of the dataset's classes for class-incremental sequences: class ids
joined by `+`, or ranges `A-B` (`mnist:0-4`, `fashion-mnist:0+1`, `mnist:0-1+5`). Labels only
choose the images; training stays unsupervised. Image folders have no classes.

Owns `parse_domains` (the CLI's comma-separated list, each name checked), `check_domains` (a
whole sequence: each spec, and no class learned twice, across a continued run's lineage too),
`split_selection` / `domain_classes` (the class ids a spec covers), `native_shape` (channels,
resolution of a named domain; None for folders, which adapt) and `model_shape` (the model's
shape for a domain list). Torch-free, like config.py, which resolves a run's shape through it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from lifelong_gen.errors import LgenError

SYNTHETIC_KINDS = ("bars", "rings")  # the tiny generated domains of tests and demos

# animal-mnist's labels 0..9, in the package's order (alphabetical; checked against its images).
ANIMAL_CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
# Fashion-MNIST's labels 0..9 (Xiao et al. 2017; torchvision's FashionMNIST.classes).
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
# The names of each labelled dataset's classes 0, 1, ...; the synthetic ones are named by their label.
CLASS_NAMES = {"mnist": tuple("0123456789"), "fashion-mnist": FASHION_CLASSES, "animal-mnist": ANIMAL_CLASSES,
               **{f"{kind}:{name}": tuple("0123456789") for kind in ("synthetic", "synthetic64")
                  for name in SYNTHETIC_KINDS}}
# What a selection may hold: ids and ranges joined by "+". Used to tell a folder path's trailing
# ":0-4" (a selection, refused) from a path that merely holds a colon.
_SELECTION_CHARS = re.compile(r"[0-9+\-]+")


def parse_domains(text: str) -> list[str]:
    """The CLI's comma-separated --domains, each name and the sequence checked (one-line LgenError)."""
    specs = [s.strip() for s in text.split(",") if s.strip()]
    if not specs:
        raise LgenError("--domains is empty: name at least one domain, e.g. mnist,fashion-mnist")
    check_domains(specs)
    return specs


def check_domains(specs: list[str], inherited: int = 0) -> None:
    """Each spec names a domain and a valid selection, and no class is learned twice.

    Two specs overlap when they share a class of the same dataset (`mnist:0-4,mnist:3-9`;
    `mnist,mnist:0-1`; `mnist,mnist`), or name the same unlabelled folder twice: the model
    would learn those images as two domains. The first `inherited` specs are a parent's
    lineage (`lgen train --from`): only the new ones are checked against them and each other.

    Raises:
        LgenError: one line naming the specs and the classes they share.
    """
    seen: list[tuple[str, str, Optional[frozenset[int]]]] = []  # (spec, dataset, class ids; None: a folder)
    for k, spec in enumerate(specs):
        classes = domain_classes(spec)  # raises LgenError on an unknown name or a bad selection
        base, ids = split_selection(spec)[0], None if classes is None else frozenset(classes)
        for j, (other, other_base, other_ids) in enumerate(seen if k >= inherited else ()):
            shared = sorted(ids & other_ids) if ids is not None and other_ids is not None else []
            if other_base != base or (ids is not None and not shared):
                continue
            where = "the parent's lineage" if j < inherited else "this sequence"
            what = f"class{'es' if len(shared) > 1 else ''} {_class_list(base, shared)}" if ids is not None \
                else "the same images"
            raise LgenError(f"domain {spec} overlaps {other} of {where}: both hold {what}; each class (each "
                            f"folder) is learned once per lineage, e.g. mnist:0-4,mnist:5-9")
        seen.append((spec, base, ids))


def _class_list(base: str, ids: list[int]) -> str:
    """`3, 4` for MNIST-like names, `0 (T-shirt/top), 1 (Trouser)` where names are words."""
    names = CLASS_NAMES[base]
    return ", ".join(str(c) if names[c] == str(c) else f"{c} ({names[c]})" for c in ids)


def split_selection(spec: str) -> tuple[str, Optional[str]]:
    """(dataset, selection text or None): `mnist:0-4` -> (`mnist`, `0-4`); `synthetic:bars` -> (`synthetic:bars`, None).

    A folder's path may hold colons, so only a trailing `:SEL` made of ids, `+` and `-` is read as
    a selection there, and only when the whole path is not a directory.
    """
    if spec.startswith("folder:"):
        path, sep, tail = spec.rpartition(":")
        if path != "folder" and _SELECTION_CHARS.fullmatch(tail) and not Path(spec[7:]).expanduser().is_dir():
            return path, tail
        return spec, None
    kind, sep, rest = spec.partition(":")
    if kind in ("synthetic", "synthetic64"):
        name, sep2, selection = rest.partition(":")
        return f"{kind}:{name}", selection if sep2 else None
    return kind, rest if sep else None


def domain_classes(spec: str) -> Optional[tuple[int, ...]]:
    """The class ids (labels of the dataset, ascending) a spec covers: all of a labelled dataset
    without a selection; None for an image folder (it has no classes).

    Raises:
        LgenError: an empty or reversed range, an id the dataset lacks, a class named twice,
            or a selection on a folder.
    """
    base, selection = split_selection(spec)
    names = CLASS_NAMES.get(base)
    if names is None:
        _base_shape(base)  # raises LgenError on an unknown name
        if selection is not None:
            raise LgenError(f"domain {spec}: an image folder has no classes to select; drop :{selection}")
        return None
    if selection is None:
        return tuple(range(len(names)))
    known = f"{base} has classes {_class_list(base, list(range(len(names))))}"
    if not selection:
        raise LgenError(f"domain {spec}: empty class selection; give ids joined by + or ranges, "
                        f"e.g. {base}:0-4 ({known})")
    chosen: list[int] = []
    for part in selection.split("+"):
        low, dash, high = part.partition("-")
        if not (low.isdigit() and (not dash or high.isdigit())) or not all(c.isascii() for c in part):
            raise LgenError(f"domain {spec}: {part!r} is not a class id or range A-B; {known}")
        first, last = int(low), int(high) if dash else int(low)
        if first > last:
            raise LgenError(f"domain {spec}: reversed range {part}; write {last}-{first}")
        if last >= len(names):
            raise LgenError(f"domain {spec}: {base} has no class {last if first < len(names) else first}; "
                            f"{known}")
        for c in range(first, last + 1):
            if c in chosen:
                raise LgenError(f"domain {spec} names class {c} twice")
            chosen.append(c)
    return tuple(sorted(chosen))


def native_shape(spec: str) -> Optional[tuple[int, int]]:
    """(channels, resolution) a domain comes in, or None for folders (they adapt); its class selection checked."""
    domain_classes(spec)  # raises LgenError on an unknown name or a bad selection
    return _base_shape(split_selection(spec)[0])


def _base_shape(spec: str) -> Optional[tuple[int, int]]:
    """native_shape of a dataset without a selection."""
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
