"""How a torch command shares the CPU: the OpenMP wait policy, chosen before torch loads.

torch's CPU kernels (ATen, MKL and oneDNN) run on one GNU OpenMP thread pool whose threads,
after each parallel region, spin for a while (GOMP_SPINCOUNT, 300,000 spins by default)
before they sleep. Alone that saves a wake-up per region. Beside another busy process the
spinning threads hold the cores the other's threads need, and both crawl: two reference-
preset trainings on 2 cores took 917 ms per step each against 210 ms alone
(benchmarks/oversubscription.json), far beyond the 2x that sharing explains. With
OMP_WAIT_POLICY=PASSIVE the threads sleep at once: 384 ms each side by side, but 281 ms
alone. So the policy is chosen per process, at its start: PASSIVE when other processes
already keep the cores busy, libgomp's default otherwise (a default-policy training beside
a PASSIVE one: 322 and 327 ms).

Only scheduling changes: the threads' share of the work is the same, so the results are
bit-identical under either policy (checked on the tests' run). A policy the user set
(OMP_WAIT_POLICY or GOMP_SPINCOUNT) is left alone, and so is a process that has already
loaded torch (libgomp reads the variables when it loads). Linux only (/proc/stat).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Optional

# Busy cores (of other processes) from which a new training sleeps rather than spins.
BUSY_THRESHOLD = 0.5
USER_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def _usable_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))  # a container's or taskset's CPUs, not the host's
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _cpu_times(cpus: set[int]) -> Optional[tuple[int, int]]:
    """(busy, total) jiffies summed over `cpus`, from /proc/stat's cpuN lines; None where unreadable."""
    busy = total = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *rest = line.split()
                if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
                    continue
                fields = [int(x) for x in rest[:8]]  # user .. steal; guest time is already inside user
                idle = fields[3] + fields[4]  # idle + iowait
                busy, total = busy + sum(fields) - idle, total + sum(fields)
    except (OSError, ValueError, IndexError):
        return None
    return (busy, total) if total else None


def busy_cores(interval: float = 0.1, samples: int = 3) -> Optional[float]:
    """How many of this process's usable cores others keep busy: the least over `samples`
    windows of `interval` s each (it sleeps meanwhile).

    The least, not the mean: another training keeps the cores busy in every window, while a
    momentary blip (a shell command, a file sync) fills one. A single 0.1 s window once put a
    lone reference training on the sleeping policy, about 1/3 slower (its no-replay run, README).
    """
    cpus = _usable_cpus()
    least = None
    last = _cpu_times(cpus)
    for _ in range(samples):
        time.sleep(interval)
        now = _cpu_times(cpus)
        if last is None or now is None or now[1] <= last[1]:
            return None
        busy = len(cpus) * (now[0] - last[0]) / (now[1] - last[1])
        least = busy if least is None else min(least, busy)
        last = now
    return least


def choose_wait_policy(environ=os.environ, measure=busy_cores, modules=sys.modules) -> Optional[str]:
    """Set OMP_WAIT_POLICY=PASSIVE in `environ` when the cores are shared; returns the policy set.

    Call before torch is imported; does nothing when it is, or when the user chose a policy.
    """
    if "torch" in modules or any(k in environ for k in USER_SETTINGS):
        return None
    busy = measure()
    if busy is None or busy < BUSY_THRESHOLD:
        return None
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    global _chosen
    _chosen = (busy, len(_usable_cpus()))
    return "PASSIVE"


_chosen: Optional[tuple[float, int]] = None


def notice() -> Optional[str]:
    """The line a training logs when it starts, if this process chose PASSIVE (not earlier:
    a command that fails on its input keeps its one-line error)."""
    if _chosen is None:
        return None
    busy, cores = _chosen
    return (f"{busy:.1f} of {cores} cores were busy with other processes at the start: OpenMP threads sleep "
            f"when idle (OMP_WAIT_POLICY=PASSIVE; several times faster beside another training, same results); "
            f"set GOMP_SPINCOUNT=300000 to keep libgomp's default")
