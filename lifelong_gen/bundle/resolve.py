"""Which model a string names: the one resolver from a string to a checked local bundle.

Every caller goes through `resolve_bundle`: `load_model` (and so `lgen sample | encode |
interpolate --model`), `lgen train --from` (lineage.py), `lgen evaluate`, `lgen card` and the
torch side's `load_networks` (`fetch_bundle`). A value is, in this order:

- None: the embedded default model (embedded.DEFAULT_MODEL);
- an existing path: that directory (a local directory wins over an embedded model or a Hub
  repo of the same name);
- a bare name, without a path separator: an embedded model (`mnist-fashion`);
- `ORG/NAME[@REV]`: a Hub model repo, through the HF cache; only the files the caller reads
  are downloaded, and HF_HUB_OFFLINE=1 answers from the cache.

Anything else (an unknown name, a missing path, a malformed repo id) is a one-line LgenError.
The bundle found must then hold config.json and the files the caller reads, its config must be
of a format this version reads, and each of those files must match manifest.json (manifest.py):
strictly for an embedded model, whose manifest lists every file it ships.

Also owns `installed_location`: whether a directory is an installed or cached copy of a bundle,
which no command writes into. Torch-free; huggingface_hub is imported only for a Hub repo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from lifelong_gen import __version__
from lifelong_gen.bundle import CONFIG_NAME, MANIFEST_NAME, ONNX_FILES, RUNTIME_FILES, embedded, hub, manifest
from lifelong_gen.bundle.hub import RepoRef
from lifelong_gen.config import read_run_config
from lifelong_gen.errors import LgenError

# Where pip puts packages: a bundle below one of these came with an install (ours or another's).
INSTALL_DIRS = ("site-packages", "dist-packages")
# What a missing ONNX file tells the user, by where the bundle came from.
_EXPORT_HINT = {"local": ": run `lgen export {path}` first",
                "hub": ": push an exported bundle (`lgen export BUNDLE`, then `lgen push BUNDLE ORG/NAME`)",
                "embedded": f": {embedded.REINSTALL}"}


@dataclass(frozen=True)
class Resolved:
    """A checked local bundle, and where it came from."""

    path: Path  # a local directory: the value itself, an embedded model's, or a Hub snapshot in the HF cache
    source: str  # "local", "embedded" or "hub"
    value: Optional[str]  # the string as given; None: the default model
    ref: Optional[RepoRef] = None  # the Hub repo and revision asked for (source "hub")

    def origin(self) -> dict[str, Any]:
        """Where the bundle was found, as a lineage record (config.json's `parent`) states it."""
        if self.source == "hub":
            # The cache's snapshot folder is named after the commit: the exact revision used.
            return {"source": "hub", "repo_id": self.ref.repo_id, "revision": self.ref.revision,
                    "commit": self.path.name}
        if self.source == "embedded":
            return {"source": "embedded", "name": self.path.name, "package_version": __version__}
        return {"source": "local", "path": str(self.path.resolve())}


def _locate(value: Optional[str | Path], patterns: Sequence[str], endpoint: Optional[str]) -> Resolved:
    """Where `value` points (module docstring's order), downloading `patterns` for a Hub repo."""
    if value is None:
        return Resolved(embedded.pretrained_path(), "embedded", None)
    text = str(value)
    local = Path(text).expanduser()
    if text and local.exists():
        if not local.is_dir():
            raise LgenError(f"{text} is not a directory (expected a run or bundle directory)")
        return Resolved(local, "local", text)
    if text and "/" not in text and "\\" not in text and text not in (".", ".."):
        if text not in embedded.embedded_names():
            raise LgenError(f"{text!r} is neither a directory nor an embedded model "
                            f"(embedded: {', '.join(embedded.embedded_names()) or 'none'})")
        return Resolved(embedded.pretrained_path(text), "embedded", text)
    ref = hub.parse_repo_ref(text)
    if ref is None:
        raise LgenError(f"{text!r} is neither a directory nor a Hub repo id of the form ORG/NAME[@REV]")
    path = hub.download(ref, (*patterns, MANIFEST_NAME), endpoint=endpoint, local_hint=True)
    return Resolved(path, "hub", text, ref)


def _missing_message(found: Resolved, missing: list[str], hint: str) -> str:
    where = f"Hub repo {found.ref}" if found.source == "hub" else str(found.path)
    if CONFIG_NAME in missing:
        return f"{where} is not a lifelong-gen run or bundle: it has no {CONFIG_NAME}"
    if not hint and any(rel in ONNX_FILES for rel in missing):
        hint = _EXPORT_HINT[found.source].format(path=found.path)
    elif not hint and found.source == "embedded":
        hint = f": {embedded.REINSTALL}"
    return f"{where} has no {', '.join(missing)}{hint}"


def resolve_bundle(value: Optional[str | Path] = None, files: Sequence[str] = RUNTIME_FILES, *,
                   fetch: Sequence[str] = (), lazy: Sequence[str] = (), endpoint: Optional[str] = None,
                   hint: str = "") -> Resolved:
    """The local bundle `value` names, checked for what the caller reads.

    Args:
        value: None, a path, an embedded model's name or `ORG/NAME[@REV]` (module docstring).
        files: what the caller reads, relative to the bundle; config.json is always read. Each
            must be present (for a Hub repo: downloaded) and match the bundle's manifest.
        fetch: files the caller reads when present (d_classes.json, the critic): downloaded from
            the Hub when the repo has them, checked when present, never required.
        lazy: files of `files` that the caller checks itself when it opens them (the runtime's
            graphs: `sample` never hashes the encoder). An embedded model has them checked
            here all the same, so that a damaged one says to reinstall.
        endpoint: the Hub URL; default HF_ENDPOINT (or huggingface.co).
        hint: appended to the message when one of `files` is missing.

    Raises:
        LgenError: one line: the value names nothing, the Hub refuses, a file is missing, the
            config is of a newer format, or a file fails its manifest check.
    """
    required = [CONFIG_NAME, *(rel for rel in files if rel != CONFIG_NAME)]
    found = _locate(value, (*required, *fetch), endpoint)
    missing = [rel for rel in required if not (found.path / rel).is_file()]
    if missing:
        raise LgenError(_missing_message(found, missing, hint))
    shipped = found.source == "embedded"
    checked = [rel for rel in required if shipped or rel not in lazy]
    checked += [rel for rel in fetch if (found.path / rel).is_file()]
    # No "has no manifest" notice here: the loaders that read the files say it (once per directory).
    manifest.verify(found.path, checked, notice=False, required=shipped, fix=embedded.REINSTALL if shipped else None)
    read_run_config(found.path)  # a config this version reads (a newer format is refused in one line)
    return found


def fetch_bundle(value: str | Path, files: Sequence[str], *, endpoint: Optional[str] = None, hint: str = "") -> Path:
    """The directory of `resolve_bundle(value, files)`: what the torch side's `load_networks` reads.

    Args:
        value: a bundle or run directory, an embedded model's name or `ORG/NAME[@REV]`.
        files: the weight files the caller loads, relative to the bundle.
        hint: appended to the message when one of them is missing.
    """
    return resolve_bundle(value, files, endpoint=endpoint, hint=hint).path


def installed_location(path: Path) -> Optional[str]:
    """Why `path` is an installed or cached copy that must not be written into, or None.

    Such copies: the package's embedded models (PRETRAINED_ROOT), anything under a
    site-packages or dist-packages directory (an install: rewriting a file there breaks its
    manifest, or another package's RECORD), and the Hugging Face hub cache (HF_HUB_CACHE:
    a snapshot written into no longer matches its revision, and later downloads trust it).
    `path` need not exist.
    """
    path = Path(path).expanduser()
    forms = {path.absolute(), path.resolve()}  # a symlinked venv or cache counts under either name
    if embedded.is_embedded(path):
        return f"lifelong-gen's embedded models ({embedded.PRETRAINED_ROOT})"
    for form in forms:
        if any(part in INSTALL_DIRS for part in form.parts):
            return "an installed package (site-packages)"
    cache = hub.hf_hub_cache()
    if cache is not None:
        roots = {cache.absolute(), cache.resolve()}
        for form in forms:
            for root in roots:
                if form == root or root in form.parents:
                    return f"the Hugging Face cache ({cache})"
    return None
