"""A torchrun worker dies with its launcher: no orphan keeps training after a `kill -9` of torchrun.

torch elastic starts each worker in a session of its own (`start_new_session=True`), so a
signal to torchrun's process group misses the workers, and a launcher killed with SIGKILL (by
hand, by the OOM killer, by a scheduler's hard stop) cannot pass anything on. Orphaned workers
would go on using the cores and writing checkpoints, and rank 0 would keep the run lock, so
`lgen train --resume` is refused until they end. `die_with_parent` makes the worker notice:

- Linux: `prctl(PR_SET_PDEATHSIG, SIGKILL)`. The kernel signals the worker when the thread
  that forked it exits; torchrun's elastic agent starts its workers from its main thread
  (`LocalElasticAgent._start_workers`, run by `launch_agent` -> `agent.run()`), so that is
  when the torchrun process ends. A launcher that dies while the call arms is caught by
  reading the parent PID again after it. `lgen train` arms it first thing, so only a
  launcher killed while the worker's interpreter starts goes unnoticed.
- Elsewhere (no prctl): a daemon thread polls the parent PID every half second and kills
  the worker when it changes (the orphan was re-parented), so it may outlive its launcher by
  that long.

SIGKILL, not SIGTERM: once the launcher is gone the worker's peers are going too, and a
collective would wait for them; a handler (the single-process `lgen train` turns SIGTERM into
"checkpoint and stop") would write after the user stopped the run. Killed, a worker leaves
what it had written: checkpoints and bundle files are renamed into place whole (atomic.py),
a temp directory of a checkpoint cut short is removed by the next save, and the kernel drops
rank 0's flock (runlock.py) with the process. Torch-free: `lgen train` arms it before torch loads.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Mapping, Optional

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_SECONDS = 0.5

_watchdog: Optional[threading.Thread] = None


def is_torchrun_worker(environ: Mapping[str, str] = os.environ) -> bool:
    """True in a process torch elastic (torchrun) started: it sets TORCHELASTIC_RUN_ID for each worker."""
    return "TORCHELASTIC_RUN_ID" in environ


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _set_pdeathsig() -> bool:
    """prctl(PR_SET_PDEATHSIG, SIGKILL) on Linux; False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        # The process's own symbols, libc's among them (find_library would start ldconfig).
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, poll_seconds: float) -> None:
    while os.getppid() == parent:
        time.sleep(poll_seconds)
    _die()


def die_with_parent(parent: Optional[int] = None, *, use_prctl: bool = True,
                    poll_seconds: float = POLL_SECONDS) -> str:
    """Kill this process (SIGKILL) when its parent ends; returns the mechanism: "prctl" or "watchdog".

    Args:
        parent: the parent PID the caller saw first (default: os.getppid() now). If the
            parent is already another one, the process dies at once.
        use_prctl: False forces the watchdog thread (what non-Linux systems get).
        poll_seconds: the watchdog's polling period.
    """
    global _watchdog
    parent = os.getppid() if parent is None else parent
    if use_prctl and _set_pdeathsig():
        mechanism = "prctl"
    else:
        mechanism = "watchdog"
        if _watchdog is None or not _watchdog.is_alive():
            _watchdog = threading.Thread(target=_watch, args=(parent, poll_seconds), name="die-with-parent",
                                         daemon=True)
            _watchdog.start()
    # The parent may have died before prctl armed: the kernel then signals nobody.
    if os.getppid() != parent:
        _die()
    return mechanism


def bind_to_launcher(environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """In a torchrun worker, `die_with_parent()`; elsewhere nothing. Returns the mechanism or None."""
    return die_with_parent() if is_torchrun_worker(environ) else None
