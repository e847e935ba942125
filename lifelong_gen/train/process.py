"""Process-wide concerns of a training: the kernels it allows, the precision the machine
suits, and the signals it catches.

Owns `choose_kernels` (deterministic algorithms, cuDNN's benchmark), `resolve_precision`
(what `--precision auto` means on this machine) and `stop_on_signals` (SIGINT / SIGTERM
become a flag the loop checks after each step). They concern the whole process or machine,
not one Trainer, which is why they live apart from the method.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
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
    # Deterministic mode also fills every new tensor with NaN, so a kernel that read memory it
    # had not written would show it: 1,105 fills per reference step on the CPU (benchmarks/step_ops.py),
    # its most frequent operator. No kernel of the step reads such memory (the resume and
    # reproducibility tests compare weights bit for bit), so the fills are pure cost.
    torch.utils.deterministic.fill_uninitialized_memory = False


# Instructions that run bf16 matmuls natively; without them oneDNN emulates bf16 through fp32
# (AVX2-only and plain AVX-512 CPUs), which is slower than fp32 itself.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.split(":", 1)[-1].split())


def resolve_precision(precision: str, device: torch.device, flags: Optional[frozenset[str]] = None,
                      capability: Optional[str] = None) -> str:
    """`auto` as this machine runs it: bf16 on a CPU with native bf16 instructions, fp32 elsewhere.

    CUDA gets fp32: bf16 was measured (speed and quality) on the CPU only. Other values pass through.
    The CPU must have the instructions (`flags`, /proc/cpuinfo) and torch must be dispatching its
    kernels at the AVX-512 level or above (`capability`, torch.backends.cpu.get_cpu_capability()):
    under ATEN_CPU_CAPABILITY=avx2, which stands in for an AVX2-only machine, auto is fp32 as there.
    """
    if precision != "auto":
        return precision
    if device.type != "cpu":
        return "fp32"
    level = torch.backends.cpu.get_cpu_capability() if capability is None else capability
    if not level.upper().startswith(("AVX512", "AMX")):
        return "fp32"
    return "bf16" if NATIVE_BF16_FLAGS & (cpu_flags() if flags is None else flags) else "fp32"


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
