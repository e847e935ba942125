"""Atomic file writes (temp file in the same folder, fsync, rename), torch-free.

Every file lifelong-gen writes goes through here, so a crash or `kill -9` leaves either
the old file or the new one, never half of one. Files get the permissions a plain
`open()` would give (0666 minus the umask), not mkstemp's private 0600. Where several
files must appear together (a training checkpoint), `atomic_directory` builds them in a
temp directory, fsync'd with `write_synced`, and renames the directory into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Union

# What a write takes: the bytes, or a function that writes them to the open file (for data
# too large to hold twice in memory, e.g. np.save of a whole image folder).
Data = Union[bytes, Callable[[BinaryIO], Any]]


# os.umask reads the mask only by setting it: two threads doing so at once (the seeds of
# `lgen train --seeds` write their checkpoints side by side) could leave the process's umask at
# 0, and a directory made meanwhile gets 0777. Linux shows the mask without changing it.
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def _write_and_sync(f: BinaryIO, data: Data) -> None:
    if callable(data):
        data(f)
    else:
        f.write(data)
    f.flush()
    os.fsync(f.fileno())  # on disk before any rename makes the file visible under its name


def _named(e: OSError, path: Path) -> OSError:
    """The same error about `path`: the temp file's random name means nothing to the user."""
    return OSError(e.errno, e.strerror, str(path)) if e.errno is not None else e


def write_temp(path: Path, data: Data) -> Path:
    """Write `data` to a new temp file beside `path` (same filesystem, so rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _named(e, path) from e
    try:
        with os.fdopen(fd, "wb") as f:
            _write_and_sync(f, data)
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _named(e, path) from e
        raise
    return Path(tmp)


def publish(tmp: Path, path: Path) -> Path:
    """Rename a write_temp file to `path` (atomic); the temp file is removed if that fails."""
    try:
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _named(e, path) from e
        raise
    return Path(path)


def atomic_write_bytes(path: Path, data: Data) -> Path:
    return publish(write_temp(path, data), path)


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_synced(path: Path, data: bytes) -> None:
    """Write and fsync a file in place: only inside a directory that atomic_directory publishes."""
    with open(path, "wb") as f:
        _write_and_sync(f, data)


def fsync_directory(path: Path) -> None:
    """fsync a directory's entries (the names of files just written in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Build a directory under a temp name beside `path`, then rename it into place.

    Yields the temp directory (mode 0700, as mkdtemp makes it) to write into with
    write_synced. On success its entries are fsync'd, an existing `path` is removed and the
    temp directory renamed to `path`; on an exception it is removed and `path` is untouched.
    A kill leaves a `.NAME.*` directory beside `path` for the caller to clear.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        fsync_directory(tmp)  # the entries too, before the rename publishes them
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():  # e.g. a checkpoint re-written after a resume from an older one
        shutil.rmtree(path)
    os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (bundle checksums, checkpoint manifests)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
