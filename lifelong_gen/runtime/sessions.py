"""onnxruntime for the torch-free runtime: its import, providers, cached sessions, contract checks.

Owns `import_onnxruntime` (a one-line error naming the extra when it is missing), the
provider choice (CUDA when onnxruntime-gpu offers it, else CPU; `provider=` forces either),
`open_session` and `checked_session`: a session of one .onnx file, checked against the
graph contract of spec.py and the shapes config.json promises.

CUDA is tried quietly: onnxruntime-gpu lists CUDAExecutionProvider even on a machine with no
GPU and, when the provider cannot load, logs a red error and a yellow warning to stderr and runs
on the CPU. Here the try is silenced (C++ logger, Python warnings, onnxruntime's prints to
stdout) and its outcome is one `lifelong_gen` log line ("CUDA provider unavailable (why):
running on CPU"), once per process; with `provider="cuda"` it is a one-line LgenError instead.

Sessions run with full graph optimisation, one intra-op thread per usable core (threads
sleep rather than spin when idle), and are cached per process, keyed on the file's path,
size and mtime, so a re-export is picked up. A file is checked against its bundle's
manifest.json (lifelong_gen/bundle/manifest.py) before its first session in a process is created.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

from lifelong_gen.bundle import manifest
from lifelong_gen.errors import LgenError, one_line
from lifelong_gen.export import spec

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}

# onnxruntime's default-logger severities: 2 (warning) is its default, 4 (fatal) silences the
# provider-load error. It offers a setter only, so the quiet CUDA try restores the default.
ORT_DEFAULT_SEVERITY, ORT_QUIET_SEVERITY = 2, 4

log = logging.getLogger("lifelong_gen")

_SESSIONS: dict[tuple, Any] = {}  # (path, size, mtime, providers, threads) -> InferenceSession
# The CUDA try's outcome in this process: "unavailable" is its reason once it failed (later
# sessions go straight to the CPU, with no second log line); preload_dlls runs once.
_CUDA: dict[str, Any] = {"unavailable": None, "preloaded": False}


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


def cuda_driver_missing() -> Optional[str]:
    """Why CUDA cannot start on this Linux machine when its NVIDIA driver is missing; else None.

    libcuda.so.1 comes with the driver, never from pip, and onnxruntime's CUDA provider library
    links it: without it the provider cannot load, and trying (preload_dlls maps ~1 GB of CUDA
    libraries; measured 0.07-0.5 s here) only costs time. A 5 ms check instead.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver: libcuda.so.1 not found"
    return None


def _cuda_reason(printed: str, error: Optional[BaseException]) -> str:
    """A short reason for a failed CUDA try, from its exception or what onnxruntime printed."""
    if error is not None:
        text = one_line(error, limit=1000)
    else:
        fallback = re.search(r"EP Error:? (.+?) (?:when )?using \[", printed)  # onnxruntime's own CPU fallback
        missing = re.findall(r"Failed to load (\S+?):", printed)  # preload_dlls' report, one line a library
        if fallback:
            text = " ".join(fallback.group(1).split())
        elif missing:
            return ", ".join(dict.fromkeys(os.path.basename(m) for m in missing)) + " not found"
        else:
            return "its libraries did not load"
    return text.split(" : ")[-1][:120]  # drop onnxruntime's "[ONNXRuntimeError] : 1 : FAIL :" prefix


def _try_cuda(ort, path: Path, options) -> tuple[Any, Optional[str]]:
    """(a session running on CUDA, None) or (None, why not), with onnxruntime's own output silenced.

    preload_dlls (onnxruntime-gpu >= 1.21) loads CUDA and cuDNN from the nvidia-* pip packages
    (the [gpu] extra's, or torch's of the same CUDA major): onnxruntime does not find them by
    itself. It reports a missing library with print(), hence stdout is captured too.
    """
    reason = cuda_driver_missing()
    if reason is not None:
        return None, reason
    printed, error, session = io.StringIO(), None, None
    set_severity = getattr(ort, "set_default_logger_severity", None)
    if set_severity is not None:
        set_severity(ORT_QUIET_SEVERITY)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
            warnings.simplefilter("ignore")
            if not _CUDA["preloaded"] and hasattr(ort, "preload_dlls"):
                _CUDA["preloaded"] = True
                try:
                    ort.preload_dlls()
                except Exception as e:  # it raises only on a bad `directory`; never fatal here
                    print(f"preload_dlls: {e}")
            try:
                session = ort.InferenceSession(str(path), sess_options=options,
                                               providers=[PROVIDERS["cuda"], PROVIDERS["cpu"]])
            except Exception as e:  # a CUDA error without onnxruntime's fallback, or a bad file
                error = e
    finally:
        if set_severity is not None:
            set_severity(ORT_DEFAULT_SEVERITY)
    if session is not None and PROVIDERS["cuda"] in session.get_providers():
        return session, None
    return None, _cuda_reason(printed.getvalue(), error)


def _new_session(ort, path: Path, options, providers: list[str], bundle: Path):
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as e:  # InvalidProtobuf, Fail, ...: onnxruntime's own exception types
        reason = " ".join(str(e).split())
        reason = reason.split(" : ")[-1] if " : " in reason else reason
        raise LgenError(f"cannot load {path}: {reason[:200]} (re-run `lgen export {bundle}`)") from None


def _warn(message: str) -> None:
    """A warning on the `lifelong_gen` logger, or as "lgen: ..." on stderr where no logging is set up
    (`lgen sample | encode | interpolate` set none up; Python's last-resort handler would drop the prefix)."""
    if log.hasHandlers():
        log.warning(message)
    else:
        print(f"lgen: {message}", file=sys.stderr)


def _cuda_failed(reason: str) -> LgenError:
    return LgenError(f"--provider cuda: onnxruntime could not start CUDA ({reason})")


def _verify(path: Path, bundle: Path) -> None:
    """`path` against BUNDLE/manifest.json: only the graph about to be opened is hashed (sample
    never hashes the encoder)."""
    try:
        rel = Path(path).relative_to(bundle).as_posix()
    except ValueError:  # a file outside the bundle: no manifest speaks for it
        return
    # No "has no manifest" line here: OnnxModel read config.json through the same check first.
    manifest.verify(bundle, [rel], notice=False)


def open_session(path: Path, provider: Optional[str], threads: Optional[int], bundle: Path):
    """An onnxruntime session of `path` (cached); one-line LgenError when it cannot be loaded.

    With CUDA in the provider list, a failed CUDA start falls back to the CPU with one log line
    (provider=None) or is a one-line LgenError (provider="cuda").
    """
    ort = import_onnxruntime()
    providers = choose_providers(provider, ort.get_available_providers())
    cuda = providers[0] == PROVIDERS["cuda"]
    if cuda and _CUDA["unavailable"] is not None:  # tried and failed earlier in this process
        if provider == "cuda":
            raise _cuda_failed(_CUDA["unavailable"])
        providers, cuda = [PROVIDERS["cpu"]], False
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, tuple(providers), threads)
    if key in _SESSIONS:
        return _SESSIONS[key]
    _verify(path, bundle)
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
    session, reason = _try_cuda(ort, path, options) if cuda else (None, None)
    if session is None:
        if cuda:
            providers = [PROVIDERS["cpu"]]
            key = key[:3] + (tuple(providers), threads)
        # A file onnxruntime cannot load fails here, with its own message, before any CUDA verdict.
        session = _SESSIONS[key] if key in _SESSIONS else _new_session(ort, path, options, providers, bundle)
        if cuda:
            _CUDA["unavailable"] = reason
            if provider == "cuda":
                raise _cuda_failed(reason)
            _warn(f"CUDA provider unavailable ({reason}): running on CPU")
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
