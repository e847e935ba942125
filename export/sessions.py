"""onnxruntime for the torch-free runtime: its import, providers, cached sessions, contract checks.

Owns `import_onnxruntime` (a one-line error naming the extra when it is missing), the
provider choice (CUDA when onnxruntime-gpu offers it, else CPU; `provider=` forces either),
`open_session` and `checked_session`: a session of one .onnx file, checked against the
graph contract of spec.py and the shapes config.json promises.

Sessions run with full graph optimisation, one intra-op thread per usable core (threads
sleep rather than spin when idle), and are cached per process, keyed on the file's path,
size and mtime, so a re-export is picked up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

from lifelong_gen.errors import LgenError
from lifelong_gen.export import spec

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}

_SESSIONS: dict[tuple, Any] = {}  # (path, size, mtime, providers, threads) -> InferenceSession


def import_onnxruntime():
    """onnxruntime, or a one-line LgenError naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise LgenError(f"onnxruntime is not installed: {spec.INSTALL_CPU} (or {spec.INSTALL_GPU} for CUDA)") from None
    return onnxruntime


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours container CPU sets, unlike os.cpu_count()
    except AttributeError:
        return os.cpu_count() or 1


def choose_providers(provider: Optional[str], available: Sequence[str]) -> list[str]:
    """onnxruntime provider list for `provider` (None: CUDA when offered, else CPU)."""
    if provider is None:
        if PROVIDERS["cuda"] in available:
            return [PROVIDERS["cuda"], PROVIDERS["cpu"]]
        return [PROVIDERS["cpu"]]
    if provider not in PROVIDERS:
        raise LgenError(f"--provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    if PROVIDERS[provider] not in available:
        hint = f"; for CUDA: {spec.INSTALL_GPU} (in place of [cpu])" if provider == "cuda" else ""
        raise LgenError(f"this onnxruntime offers no {PROVIDERS[provider]} (it has {', '.join(available)}){hint}")
    return [PROVIDERS[provider]]


def open_session(path: Path, provider: Optional[str], threads: Optional[int], bundle: Path):
    """An onnxruntime session of `path` (cached); one-line LgenError when it cannot be loaded."""
    ort = import_onnxruntime()
    providers = choose_providers(provider, ort.get_available_providers())
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, tuple(providers), threads)
    if key in _SESSIONS:
        return _SESSIONS[key]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1  # the graphs are chains: no parallel branches to run
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: the CLI's stderr is one line on failure
    # Idle pool threads sleep instead of spinning: on a machine shared with training, spinning
    # threads fight for the busy cores (measured: 2 threads on 2 loaded cores, batch 64,
    # 1.7k -> 2.8k images/s with spinning off). The cost on an idle machine, a little latency
    # per small batch, was not measurable here (no idle machine).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as e:  # InvalidProtobuf, Fail, ...: onnxruntime's own exception types
        reason = " ".join(str(e).split())
        reason = reason.split(" : ")[-1] if " : " in reason else reason
        raise LgenError(f"cannot load {path}: {reason[:200]} (re-run `lgen export {bundle}`)") from None
    if provider == "cuda" and session.get_providers()[0] != PROVIDERS["cuda"]:
        raise LgenError("--provider cuda: onnxruntime could not start CUDA (no GPU, or CUDA/cuDNN libraries missing)")
    _SESSIONS[key] = session
    return session


def checked_session(path: Path, inputs: dict[str, tuple[int, ...]], outputs: tuple[str, ...], *,
                    provider: Optional[str], threads: Optional[int], bundle: Path):
    """The cached session of `path`, checked against the contract and config.json.

    Args:
        inputs: input name -> expected dims after the batch axis (from config.json).
        outputs: the output names spec.py promises, in order.
        bundle: the bundle directory, named in the re-export hint of every message.
    """
    session = open_session(path, provider, threads, bundle)
    got = {i.name: tuple(i.shape) for i in session.get_inputs()}
    out_names = tuple(o.name for o in session.get_outputs())
    if set(got) != set(inputs) or out_names != outputs:
        raise LgenError(f"{path} does not follow the lifelong-gen ONNX contract (inputs {sorted(got)}, "
                        f"outputs {list(out_names)}): re-run `lgen export {bundle}`")
    for name, dims in inputs.items():
        if got[name][1:] != dims:  # a stale export of a differently shaped model
            raise LgenError(f"{path} was exported for another model ({name} is {list(got[name])}, config.json "
                            f"says [N, {', '.join(map(str, dims))}]): re-run `lgen export {bundle}`")
    return session
