"""How many CPU threads a training's kernels use: `--threads`, and several seeds shared out over the cores.

Owns `intra_op_threads` (torch's intra-op thread count for a block, restored after) and
`thread_layout` (`lgen train --seeds`: how many seeds train at once, each on how many threads).

Why a run records its thread count: a CPU kernel splits its sums over the threads, so the float
rounding, and after a few steps the weights, depend on how many there are (1 against 2
threads: 39 of 44 tensors of G and S differed after 5 steps). A run is bit-identical to another
only at the same count; config.json's `threads` keeps it for a resume.

Why several seeds run as threads of one process rather than as stacked (vmapped) weights: on
a 2-core CPU the step is compute-bound (a batch of 256 gave only 1.1-1.3x the images/s of a batch
of 64), and vmap turns convolutions into grouped ones, whose rounding differs from a single
run's. One seed per core at one thread each gave 1.30-1.61x the images/s of the same seeds one
after the other at two threads (2 and 4 seeds, two runs; benchmarks/seeds.json), and each seed
stays bit-identical to a single run at one thread.

torch.set_num_threads is process-wide, and a thread started later takes the count in force
when it first runs a parallel kernel, so the count is set before the seeds' threads start.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional

import torch


@contextlib.contextmanager
def intra_op_threads(threads: Optional[int]) -> Iterator[None]:
    """torch's intra-op thread count inside the block (None: leave it as it is), restored after."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class ThreadLayout:
    """Seeds trained at once (`workers`, one Python thread each) and the intra-op threads of each."""

    workers: int
    threads_per_run: int
    available: int  # the intra-op threads the process had at the start (torch's default: one per core)


def thread_layout(runs: int, threads_per_run: Optional[int], available: Optional[int] = None) -> ThreadLayout:
    """Share `available` threads (default: torch.get_num_threads()) among `runs` runs.

    Args:
        runs: the runs left to train.
        threads_per_run: each run's intra-op threads (`--threads`); None: the available threads
            divided among min(runs, available) runs at once (1 each where runs >= cores).
    """
    available = torch.get_num_threads() if available is None else available
    if threads_per_run is None:
        threads_per_run = max(1, available // max(1, min(runs, available)))
    workers = max(1, min(runs, available // threads_per_run))
    return ThreadLayout(workers, threads_per_run, available)
