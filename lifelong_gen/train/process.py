"""Process-wide concerns of a training: the kernels it allows and the signals it catches.

Owns `choose_kernels` (deterministic algorithms, cuDNN's benchmark) and `stop_on_signals`
(SIGINT / SIGTERM become a flag the loop checks after each step). Both change state of the
whole process, not of one Trainer, which is why they live apart from the method.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator, Optional

import torch


def choose_kernels(device: torch.device, cuda_deterministic: bool, compiled: bool) -> None:
    """Deterministic algorithms on the CPU always; on CUDA unless the run asks for the fastest.

    CUDA has ops without a deterministic kernel (e.g. grid_sample's backward): there it
    warns instead of failing. Without determinism cuDNN benchmarks its algorithms per shape
    (the step's shapes are static, so that is paid once). The Trainer calls it when it is
    built, before the first forward: benchmarks/device_step.py times train_step without train().
    """
    deterministic = device.type != "cuda" or cuda_deterministic
    if compiled:  # the public switch, which also sets inductor's
        torch.use_deterministic_algorithms(deterministic, warn_only=device.type == "cuda")
    else:  # the same switch without importing inductor, which cost every `lgen train` 1-3 s
        torch._C._set_deterministic_algorithms(deterministic, warn_only=device.type == "cuda")
    torch.backends.cudnn.benchmark = not deterministic


class StopFlag:
    """The signal that asked the loop to stop, or None."""

    signum: Optional[int] = None


@contextlib.contextmanager
def stop_on_signals(enabled: bool) -> Iterator[StopFlag]:
    """SIGINT / SIGTERM set a flag instead of killing the process: the loop finishes its step,
    writes a checkpoint and stops (TrainingInterrupted). Only in a single process's main
    thread (under torchrun the launcher owns the signals); the old handlers come back after.
    """
    flag = StopFlag()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.signum = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
