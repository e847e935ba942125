"""The CUDA try of export/sessions.py on a machine without a GPU: a quiet CPU fallback.

onnxruntime-gpu lists CUDAExecutionProvider on any machine; when the provider cannot load it
logs a red error and a yellow warning and runs on the CPU. These tests fake onnxruntime (a
module object that lists CUDA and whose sessions end up CPU-only, or raise) and check what the
user sees: one line, no traceback, the CPU used; with --provider cuda a one-line error. The
last test runs the real onnxruntime-gpu and is skipped unless it is installed.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import subprocess
import sys
import types
import warnings

import pytest

from lifelong_gen.errors import LgenError
from lifelong_gen.runtime import sessions

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
MISSING = "Failed to load libcublasLt.so.13: libcublasLt.so.13: cannot open shared object file: No such file or directory"
ORT_NOISE = ("\x1b[1;31m[E:onnxruntime:Default, provider_bridge_ort.cc:2458 operator()] Failed to load library "
             "libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file\x1b[m\n")


class FakeSession:
    def __init__(self, providers):
        self.providers = list(providers)

    def get_providers(self):
        return self.providers


def fake_ort(cuda="dropped", preload=True, bad_file=False):
    """A stand-in for onnxruntime-gpu on a GPU-less machine.

    Args:
        cuda: what a session asked for CUDA does: "dropped" (onnxruntime 1.31 when the provider
            library cannot load: CPU-only session), "raises" (an EP error, no fallback),
            "ep-error" (onnxruntime's own fallback, printed to stdout) or "works".
        preload: whether the module has preload_dlls (onnxruntime >= 1.21); it reports a missing library.
        bad_file: every session fails, as for a corrupt .onnx file.
    """
    ort = types.ModuleType("onnxruntime")
    ort.calls, ort.severity = [], 2
    ort.get_available_providers = lambda: ["TensorrtExecutionProvider", CUDA, CPU]
    ort.SessionOptions = lambda: types.SimpleNamespace(add_session_config_entry=lambda k, v: None)
    ort.GraphOptimizationLevel = types.SimpleNamespace(ORT_ENABLE_ALL=99)
    ort.ExecutionMode = types.SimpleNamespace(ORT_SEQUENTIAL=0)

    def set_default_logger_severity(level):
        ort.severity = level

    def preload_dlls(cuda=True, cudnn=True, msvc=True, directory=None):
        ort.calls.append("preload")
        print(MISSING)  # what onnxruntime's preload_dlls does for a missing library

    def InferenceSession(path, sess_options=None, providers=()):
        ort.calls.append(tuple(providers))
        if bad_file:
            raise RuntimeError("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from g.onnx failed:"
                               "Protobuf parsing failed.")
        if CUDA not in providers:
            return FakeSession([CPU])
        if ort.severity < 4:  # onnxruntime's C++ logger, unless silenced
            sys.stderr.write(ORT_NOISE)
        warnings.warn("Specified provider 'CUDAExecutionProvider' is not in available provider names.")
        if cuda == "raises":
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : CUDA failure 100: no CUDA-capable device is detected ; "
                               "GPU=0 ; expr=cudaSetDevice(info_.device_id);")
        if cuda == "ep-error":
            print("*************** EP Error ***************")
            print("EP Error [ONNXRuntimeError] : 1 : FAIL : CUDA failure 35: CUDA driver version is insufficient "
                  "when using ['CUDAExecutionProvider', 'CPUExecutionProvider']")
            return FakeSession([CPU])
        return FakeSession([CUDA, CPU] if cuda == "works" else [CPU])

    ort.set_default_logger_severity = set_default_logger_severity
    ort.InferenceSession = InferenceSession
    if preload:
        ort.preload_dlls = preload_dlls
    return ort


@pytest.fixture
def use(monkeypatch, tmp_path):
    """use(fake) -> an open_session(provider) that runs against it, with a fresh cache and CUDA state."""
    monkeypatch.setattr(sessions, "_SESSIONS", {})
    # An in-process `lgen` run earlier in the session (cli/app.py: _setup_logging) gives the
    # lifelong_gen logger its own stderr handler and stops propagation; caplog listens at the root.
    lgen_log = logging.getLogger("lifelong_gen")
    monkeypatch.setattr(lgen_log, "handlers", [])
    monkeypatch.setattr(lgen_log, "propagate", True)
    monkeypatch.setattr(sessions, "_CUDA", {"unavailable": None, "preloaded": False})
    monkeypatch.setattr(sessions, "cuda_driver_missing", lambda: None)  # as on a machine with the driver
    for name in ("generator.onnx", "encoder.onnx"):
        (tmp_path / name).write_bytes(b"onnx")

    def install(ort):
        monkeypatch.setattr(sessions, "import_onnxruntime", lambda: ort)
        return lambda provider=None, name="generator.onnx": sessions.open_session(tmp_path / name, provider, 1, tmp_path)

    return install


def cuda_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "lifelong_gen"]


def test_missing_cuda_libraries_one_quiet_line_then_cpu(use, caplog, capfd):
    ort = fake_ort()
    open_session = use(ort)
    with caplog.at_level(logging.INFO, logger="lifelong_gen"), warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning escaping the try would fail here
        generator, encoder = open_session(), open_session(name="encoder.onnx")
        assert open_session() is generator  # cached
    assert generator.get_providers() == [CPU] and encoder.get_providers() == [CPU]
    assert cuda_lines(caplog) == ["CUDA provider unavailable (libcublasLt.so.13 not found): running on CPU"]
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no onnxruntime noise, no preload_dlls print, no traceback
    # preload once, one CUDA try; the encoder goes straight to the CPU; logger severity restored
    assert ort.calls == ["preload", (CUDA, CPU), (CPU,), (CPU,)]
    assert ort.severity == sessions.ORT_DEFAULT_SEVERITY


def test_forced_cuda_failure_is_a_one_line_error(use, caplog, capfd):
    open_session = use(fake_ort())
    with caplog.at_level(logging.INFO, logger="lifelong_gen"):
        with pytest.raises(LgenError) as first:
            open_session("cuda")
        with pytest.raises(LgenError) as again:  # remembered: no second try
            open_session("cuda", name="encoder.onnx")
    assert str(first.value) == str(again.value) == \
        "--provider cuda: onnxruntime could not start CUDA (libcublasLt.so.13 not found)"
    assert cuda_lines(caplog) == [] and capfd.readouterr() == ("", "")


@pytest.mark.parametrize("cuda, reason", [
    ("raises", "CUDA failure 100: no CUDA-capable device is detected ; GPU=0 ; expr=cudaSetDevice(info_.device_id);"),
    ("ep-error", "CUDA failure 35: CUDA driver version is insufficient"),
])
def test_cuda_errors_give_their_reason(use, caplog, capfd, cuda, reason):
    open_session = use(fake_ort(cuda=cuda))
    with caplog.at_level(logging.INFO, logger="lifelong_gen"):
        assert open_session().get_providers() == [CPU]
    assert cuda_lines(caplog) == [f"CUDA provider unavailable ({reason}): running on CPU"]
    assert capfd.readouterr() == ("", "")


def test_preload_dlls_optional(use, caplog, capfd):
    ort = fake_ort(preload=False)  # onnxruntime-gpu < 1.21
    open_session = use(ort)
    with caplog.at_level(logging.INFO, logger="lifelong_gen"):
        assert open_session().get_providers() == [CPU]
    assert cuda_lines(caplog) == ["CUDA provider unavailable (its libraries did not load): running on CPU"]
    assert ort.calls == [(CUDA, CPU), (CPU,)] and capfd.readouterr() == ("", "")


def test_working_cuda_says_nothing(use, caplog):
    ort = fake_ort(cuda="works")
    open_session = use(ort)
    with caplog.at_level(logging.INFO, logger="lifelong_gen"):
        assert open_session().get_providers() == [CUDA, CPU]
        assert open_session("cuda", name="encoder.onnx").get_providers() == [CUDA, CPU]
    assert cuda_lines(caplog) == [] and ort.calls == ["preload", (CUDA, CPU), (CUDA, CPU)]


def test_no_driver_skips_the_try(use, monkeypatch, caplog, capfd):
    ort = fake_ort()
    open_session = use(ort)
    monkeypatch.setattr(sessions, "cuda_driver_missing", lambda: "no NVIDIA driver: libcuda.so.1 not found")
    with caplog.at_level(logging.INFO, logger="lifelong_gen"):
        assert open_session().get_providers() == [CPU]
    assert cuda_lines(caplog) == ["CUDA provider unavailable (no NVIDIA driver: libcuda.so.1 not found): running on CPU"]
    assert ort.calls == [(CPU,)] and capfd.readouterr() == ("", "")  # no preload, no CUDA session


def test_bad_file_is_not_blamed_on_cuda(use, caplog):
    open_session = use(fake_ort(bad_file=True))
    with caplog.at_level(logging.INFO, logger="lifelong_gen"):
        with pytest.raises(LgenError, match=r"^cannot load .*generator.onnx: Load model from g.onnx failed:Protobuf"):
            open_session()
    assert cuda_lines(caplog) == [] and sessions._CUDA["unavailable"] is None


def test_driver_check(monkeypatch):
    def no_library(name):
        raise OSError(f"{name}: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(sessions.sys, "platform", "linux")
    monkeypatch.setattr(sessions.ctypes, "CDLL", no_library)
    assert sessions.cuda_driver_missing() == "no NVIDIA driver: libcuda.so.1 not found"
    monkeypatch.setattr(sessions.ctypes, "CDLL", lambda name: object())
    assert sessions.cuda_driver_missing() is None
    monkeypatch.setattr(sessions.sys, "platform", "win32")  # checked on Linux only
    monkeypatch.setattr(sessions.ctypes, "CDLL", no_library)
    assert sessions.cuda_driver_missing() is None


# ---------------------------------------------------------------- `lgen sample` as the user runs it

# Wraps the installed onnxruntime (CPU or GPU build) into onnxruntime-gpu on a GPU-less machine
# whose CUDA libraries are missing, with onnxruntime's real noise when its logger is not silenced.
FAKE_GPU_SITE = f"""import os, onnxruntime as ort
_real_session, _real_severity, _state = ort.InferenceSession, ort.set_default_logger_severity, {{"severity": 2}}
def set_default_logger_severity(level):
    _state["severity"] = level
    _real_severity(level)
def preload_dlls(cuda=True, cudnn=True, msvc=True, directory=None):
    print({MISSING!r})
def InferenceSession(path, sess_options=None, providers=None, **kwargs):
    if providers and {CUDA!r} in providers and _state["severity"] < 4:
        os.write(2, {ORT_NOISE.encode()!r})
    return _real_session(path, sess_options=sess_options, providers=[{CPU!r}])
ort.get_available_providers = lambda: ["TensorrtExecutionProvider", {CUDA!r}, {CPU!r}]
ort.set_default_logger_severity, ort.preload_dlls = set_default_logger_severity, preload_dlls
ort.InferenceSession = InferenceSession
import lifelong_gen.runtime.sessions as s
s.cuda_driver_missing = lambda: None  # try CUDA, as on a machine with the driver
"""

BYPASS_DRIVER_SITE = "import lifelong_gen.runtime.sessions as s\ns.cuda_driver_missing = lambda: None\n"


def lgen_sample(site_dir, *args):
    env = {**os.environ}
    if site_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site_dir), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "lifelong_gen.cli", "sample", "--n", "1", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_lgen_sample_with_fake_gpu_build(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(FAKE_GPU_SITE)
    out = tmp_path / "one.png"
    r = lgen_sample(tmp_path, "--out", str(out))
    assert r.returncode == 0 and r.stdout.strip() == str(out) and out.is_file(), r.stderr
    lines = r.stderr.splitlines()  # the one CUDA line and the embedded-model note, nothing of onnxruntime's
    assert len(lines) == 2 and lines[1].startswith("lgen: no --model given"), r.stderr
    assert lines[0] == "lgen: CUDA provider unavailable (libcublasLt.so.13 not found): running on CPU"
    forced = lgen_sample(tmp_path, "--provider", "cuda", "--out", str(tmp_path / "forced.png"))
    assert forced.returncode == 2 and not (tmp_path / "forced.png").exists()
    assert forced.stderr.splitlines()[-1] == \
        "lgen: error: --provider cuda: onnxruntime could not start CUDA (libcublasLt.so.13 not found)", forced.stderr
    assert "Traceback" not in forced.stderr and "\x1b" not in forced.stderr + r.stderr


def onnxruntime_gpu_installed() -> bool:
    try:
        importlib.metadata.distribution("onnxruntime-gpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not onnxruntime_gpu_installed(), reason="onnxruntime-gpu is not installed")
@pytest.mark.parametrize("bypass_driver_check", [False, True])
def test_lgen_sample_with_real_onnxruntime_gpu(tmp_path, bypass_driver_check):
    """Real onnxruntime-gpu: on CUDA silently, or on the CPU after one line; none of onnxruntime's noise.

    With the driver check bypassed, preload_dlls and the provider library's load failure run for
    real on a GPU-less machine (the path a machine with a driver but no usable GPU takes).
    """
    site = None
    if bypass_driver_check:
        (tmp_path / "sitecustomize.py").write_text(BYPASS_DRIVER_SITE)
        site = tmp_path
    out = tmp_path / "one.png"
    r = lgen_sample(site, "--verbose", "--out", str(out))
    assert r.returncode == 0 and r.stdout.strip() == str(out), r.stdout + r.stderr
    for noise in ("\x1b", "[E:onnxruntime", "[W:onnxruntime", "EP Error", "Traceback", "Failed to load"):
        assert noise not in r.stderr + r.stdout, r.stderr
    fallback = [line for line in r.stderr.splitlines() if "CUDA provider unavailable" in line]
    if "ran on onnxruntime CUDAExecutionProvider" in r.stderr:
        assert fallback == []
    else:
        assert len(fallback) == 1 and fallback[0].startswith("lgen: CUDA provider unavailable (")
        assert fallback[0].endswith("): running on CPU") and "ran on onnxruntime CPUExecutionProvider" in r.stderr
