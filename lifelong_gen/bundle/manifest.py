"""The manifest of a bundle or run directory: size and sha256 of each file its loaders read.

Every bundle's one integrity file, the embedded models' included. BUNDLE/manifest.json lists
config.json, every top-level *.safetensors, onnx/*.onnx and d_classes.json present; an embedded
model's lists every file it ships (`record`, when scripts/build_pretrained.py builds one). A
checkpoint's manifest.json (train/checkpoint.py) is the same idea for checkpoints/step-N/:

    {"files": {"config.json": {"bytes": 1489, "sha256": "9f86d0..."},
               "generator_ema.safetensors": {...}, "onnx/generator.onnx": {...}, ...}}

Writers (checkpoint.save_bundle and write_config, the ONNX export) go through `write_files` or
`publish_files`: the new files are in temp files, hashed from the bytes written; the new
manifest (their entries, the recorded entries of the other files still present, fresh ones for
files never listed) goes to a temp file too; then the files are renamed into place and the
manifest last. A failed write (a full disk) so changes nothing, and a manifest never vouches for
a file before that file is in place. Readers call `verify(root, files)` on what they are about
to read: a listed file whose size or sha256 differs is a one-line LgenError naming it; a file
the manifest does not list (an older version wrote it) is read as before; a directory with no
manifest (an older version's run, or a copy of an older install's embedded model, which had a
checksums.json instead) is read as before, with one `lifelong_gen` log line per directory and
process. With `required=True` (an installed embedded model) both are errors instead.

Writers rename under an exclusive flock on the directory, readers hash under a shared one, so
`lgen export RUN` during a training never sees the trainer's new weights with its old manifest,
nor does either drop the other's entries. Torch-free.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

from lifelong_gen.atomic import publish, sha256_file, write_temp
from lifelong_gen.bundle import CONFIG_NAME, D_CLASSES_NAME, MANIFEST_NAME, ONNX_DIR
from lifelong_gen.errors import LgenError, one_line

log = logging.getLogger("lifelong_gen")

# How long a writer or reader waits for the directory's lock before going on without it: a
# holder renames a few files (a writer) or hashes a few MB (a reader), so only a stopped
# process (Ctrl-Z) holds it this long, and it must not block the others for ever.
LOCK_WAIT_S = 30.0
_NOTICED: set[str] = set()  # directories already said to have no manifest, in this process


# ---------------------------------------------------------------- entries


def entry_of(data: bytes) -> dict[str, Any]:
    """The manifest entry of a file holding `data` (what a writer hashes, instead of re-reading it)."""
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest entry of a file on disk."""
    return {"bytes": Path(path).stat().st_size, "sha256": sha256_file(path)}


def covered_files(root: Path) -> list[str]:
    """The files of ROOT a manifest lists: config.json, top-level *.safetensors, onnx/*.onnx and
    d_classes.json (what sampling reads of the evaluation), posix and relative."""
    root = Path(root)
    found = [rel for rel in (CONFIG_NAME, D_CLASSES_NAME) if (root / rel).is_file()]
    # Temp files (.NAME.*.tmp) end in .tmp: never matched here.
    found += sorted(p.name for p in root.glob("*.safetensors") if p.is_file())
    found += sorted(f"{ONNX_DIR}/{p.name}" for p in (root / ONNX_DIR).glob("*.onnx") if p.is_file())
    return found


def _plain(rel: str) -> bool:
    """A relative posix path inside the directory (a manifest naming ../x or /x is never followed)."""
    return bool(rel) and not rel.startswith("/") and "\\" not in rel and ".." not in rel.split("/")


def _parse(text: bytes) -> dict[str, dict[str, Any]]:
    """The "files" table of a manifest's bytes; ValueError naming what is wrong."""
    files = json.loads(text)["files"] if text.strip() else None
    if not isinstance(files, dict):
        raise ValueError(f"'files' is a {type(files).__name__}, not a table")
    for rel, entry in files.items():
        ok = (isinstance(entry, dict) and type(entry.get("bytes")) is int and entry["bytes"] >= 0
              and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64)
        if not ok:
            raise ValueError(f"the entry of {rel!r} is not {{bytes, sha256}}")
    return files


def read_manifest(root: Path) -> Optional[dict[str, dict[str, Any]]]:
    """ROOT/manifest.json's table {rel: {"bytes", "sha256"}}; None when there is none.

    Raises:
        LgenError: the manifest exists but cannot be read or parsed (one line).
    """
    path = Path(root) / MANIFEST_NAME
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise LgenError(f"cannot read {path}: {e.strerror or one_line(e)}") from None
    try:
        return _parse(text)
    except (ValueError, KeyError, TypeError) as e:  # JSON errors are ValueErrors
        raise LgenError(f"{path} is unreadable ({one_line(e, 120)}): restore it from a copy, or delete it "
                        f"to read the bundle's files unchecked") from None


# ---------------------------------------------------------------- the directory's lock


def _acquire(fd: int, exclusive: bool, root: Path) -> None:
    import fcntl

    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, mode)
            return
        except BlockingIOError:  # another process writes (or, for a writer, reads) the directory
            if time.monotonic() > deadline:
                log.warning("%s stayed locked by another lgen process for %.0f s: going on without the lock",
                            root, LOCK_WAIT_S)
                return
            time.sleep(0.05)
        except OSError:  # a filesystem without flock (some network mounts): no lock to take
            return


@contextlib.contextmanager
def locked(root: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold a flock on the directory ROOT inside the block: exclusive to write, shared to read.

    Best effort: where ROOT does not exist, cannot be opened or locked (no fcntl, a network
    mount), the block runs unlocked.
    """
    fd = None
    try:
        import fcntl  # noqa: F401  (POSIX only)

        fd = os.open(root, os.O_RDONLY)
    except (ImportError, OSError):
        pass
    try:
        if fd is not None:
            _acquire(fd, exclusive, Path(root))
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


# ---------------------------------------------------------------- writing


def _merged(root: Path, written: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The manifest after `written` lands: their entries, the old ones of other files still present,
    fresh ones for present files it never listed; entries of files gone are dropped."""
    path = root / MANIFEST_NAME
    try:
        old = _parse(path.read_bytes())
    except FileNotFoundError:
        old = {}
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("%s was unreadable (%s): written anew from the files present", path, one_line(e, 120))
        old = {}
    listing: dict[str, dict[str, Any]] = {}
    for rel in sorted(set(covered_files(root)) | set(old) | set(written)):
        if rel in written:
            listing[rel] = dict(written[rel])
        elif not _plain(rel) or not (root / rel).is_file():
            continue
        elif rel in old:
            # Kept as recorded, never re-hashed: a file damaged since still fails its check.
            listing[rel] = old[rel]
        else:  # present but never listed (written by an older version, or copied in)
            listing[rel] = file_entry(root / rel)
    return listing


def _encode(listing: Mapping[str, dict[str, Any]]) -> bytes:
    return (json.dumps({"files": listing}, indent=2, sort_keys=True) + "\n").encode()


def publish_files(root: Path, temps: Mapping[str, Path], entries: Mapping[str, dict[str, Any]]) -> Path:
    """Rename temp files into ROOT, then ROOT/manifest.json listing them (its new text written first).

    Args:
        root: the bundle or run directory.
        temps: relative path -> a `write_temp` file beside ROOT/path, complete and fsync'd.
        entries: relative path -> its entry, from the bytes written (`entry_of`); one per temp.

    Every temp file not renamed is removed, however this ends. Returns the manifest's path.
    """
    root = Path(root)
    pending = dict(temps)
    try:
        with locked(root, exclusive=True):
            # The manifest's temp first: a full disk here stops everything before any rename.
            pending[MANIFEST_NAME] = write_temp(root / MANIFEST_NAME, _encode(_merged(root, entries)))
            for rel in temps:
                publish(pending.pop(rel), root / rel)
            publish(pending.pop(MANIFEST_NAME), root / MANIFEST_NAME)  # last: it vouches for files in place
    finally:
        for tmp in pending.values():
            Path(tmp).unlink(missing_ok=True)
    return root / MANIFEST_NAME


def write_files(root: Path, files: Mapping[str, bytes]) -> Path:
    """Write `files` (relative path -> bytes) into ROOT atomically, then its manifest (publish_files)."""
    root = Path(root)
    temps: dict[str, Path] = {}
    entries: dict[str, dict[str, Any]] = {}
    try:
        for rel, data in files.items():
            temps[rel] = write_temp(root / rel, data)
            entries[rel] = entry_of(data)
    except BaseException:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise
    return publish_files(root, temps, entries)


def update(root: Path) -> Path:
    """Rewrite ROOT/manifest.json for the files present (e.g. a directory of copied files): recorded
    entries kept, files never listed hashed from disk, entries of files gone dropped."""
    return publish_files(root, {}, {})


def record(root: Path, files: Iterable[str]) -> Path:
    """Rewrite ROOT/manifest.json with `files` (relative posix paths) hashed afresh from disk, beside
    what `update` keeps: an embedded model lists every file it ships, previews and card included."""
    root = Path(root)
    return publish_files(root, {}, {rel: file_entry(root / rel) for rel in files})


# ---------------------------------------------------------------- reading


def _notice(root: Path) -> None:
    key = str(root.resolve())
    if key in _NOTICED:
        return
    _NOTICED.add(key)
    log.info("%s has no %s (written by an older lifelong-gen): its files are read without a sha256 check; "
             "`lgen export %s` writes one", root, MANIFEST_NAME, root)


def _check(root: Path, rel: str, entry: dict[str, Any], fix: Optional[str]) -> None:
    path, manifest = root / rel, root / MANIFEST_NAME
    if fix is None:
        fix = (f"re-run `lgen export {root}`, or restore it from a copy" if rel.endswith(".onnx")
               else "restore it from a copy")
    size = path.stat().st_size
    if size != entry["bytes"]:  # free, and spares hashing a truncated file
        raise LgenError(f"{path} has {size} bytes, {manifest} says {entry['bytes']} (truncated or changed after it "
                        f"was written): {fix}")
    if sha256_file(path) != entry["sha256"]:
        raise LgenError(f"{path} does not match its sha256 in {manifest} (damaged or changed after it was "
                        f"written): {fix}")


def verify(root: Path, files: Iterable[str], *, lock: bool = True, notice: bool = True, required: bool = False,
           fix: Optional[str] = None) -> None:
    """Check the files of ROOT a caller is about to read against ROOT/manifest.json.

    Args:
        root: a bundle or run directory.
        files: relative posix paths (config.json, safetensors, onnx/*.onnx). One that does not
            exist is skipped (the caller reports it in its own words), as is one not listed.
        lock: take the directory's shared lock; False when the caller holds it already
            (`locked(root, exclusive=False)` around checking and loading both).
        notice: log the once-per-directory line when there is no manifest; False where the
            caller's bundle had its say already (an ONNX session after its config.json).
        required: the manifest must exist and list every file of `files` present (an installed
            model, which nothing may have changed).
        fix: what the error tells the user to do; default: re-export (an ONNX file) or restore it.

    Raises:
        LgenError: one line naming the first listed file whose size or sha256 differs, the
            unreadable manifest, or (required) the missing manifest or the unlisted file.
    """
    root = Path(root)
    present = [rel for rel in files if (root / rel).is_file()]
    if not present:  # nothing to read here: no notice about a missing manifest either
        return
    with locked(root, exclusive=False) if lock else contextlib.nullcontext():
        listed = read_manifest(root)
        if listed is None and required:
            raise LgenError(f"{root} has no {MANIFEST_NAME}: {fix or 'restore it from a copy'}")
        if listed is None:
            if notice:
                _notice(root)
            return
        for rel in present:
            if rel in listed:
                _check(root, rel, listed[rel], fix)
            elif required:
                raise LgenError(f"{root / rel} is not listed in {root / MANIFEST_NAME}: {fix or 'restore it from a copy'}")
