"""One writer per run directory: an OS lock held for the life of a training process.

`lgen train` (new, `--resume`, `--from`) takes an exclusive `fcntl.flock` on RUN/.lgen.lock
before it reads or writes the run's state, and holds it until the process ends. A second
training of the same directory (a scheduler's retry, a second terminal) fails at once in one
line naming the holder's PID, and changes nothing. The kernel drops a flock when its process
dies, however it dies, so a lock left by `kill -9` never blocks the resume that follows; the
PID written into the file is only for the message. Torch-free; POSIX only (fcntl).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from lifelong_gen.errors import LgenError

LOCK_NAME = ".lgen.lock"  # hidden: checksums, pushes and card listings skip dot-files


@contextlib.contextmanager
def run_lock(run_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Hold RUN/.lgen.lock exclusively inside the block (creating RUN if needed).

    Args:
        run_dir: the run directory.
        enabled: False on the non-writing ranks of a torchrun job (rank 0 holds it for all).
    """
    if not enabled:
        yield
        return
    import fcntl

    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise LgenError(f"{run_dir} is being trained by another process (PID {holder}): wait for it to end, "
                            f"or stop it, then try again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        except BaseException:
            # A new run refused before it wrote anything (bad data, a damaged parent) leaves no
            # directory behind: only the lock file is in it.
            if created and [p.name for p in run_dir.iterdir()] == [LOCK_NAME]:
                path.unlink(missing_ok=True)
                run_dir.rmdir()
            raise
    finally:
        os.close(fd)  # releases the lock
