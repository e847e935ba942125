"""Shared test helpers: tiny model settings, cached synthetic domains, running `lgen`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]

# torch.compile's kernel cache defaults to one folder per user in /tmp, shared by every run on the
# machine. A cache written by other runs (other checkouts, other ATEN_CPU_CAPABILITY settings, runs
# at the same time) was measured to abort the compiled-step test in a later run (Fatal Python
# error: Aborted), while a fresh folder passed: the suite compiles into its own, set before any
# test imports torch (subprocesses inherit it).
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="lgen-tests-inductor-")

# Small enough that a two-domain run takes seconds on 2 CPU cores.
TINY = {"g_width": 8, "d_width": 8, "fc_width": 32, "z_dim": 8, "batch_size": 8, "n_critic": 2,
        "log_every": 5, "download": False}
TINY_FLAGS = ["--g-width", "8", "--d-width", "8", "--fc-width", "32", "--z-dim", "8", "--batch-size", "8",
              "--n-critic", "2", "--log-every", "5", "--no-download", "--no-progress"]


def lgen(*args: str, env: dict | None = None, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m lifelong_gen.cli ARGS` in a fresh interpreter and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "lifelong_gen.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd)


# `lgen` that stops itself after a given global step: [*STOP_AT, "STEP", *ARGS] (lgen_stop_at.py).
STOP_AT = [sys.executable, str(ROOT / "tests" / "lgen_stop_at.py")]


def process_state(pid: int | str) -> Optional[str]:
    """The state letter in /proc/PID/stat (R, S, T, Z, ...); None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]  # after the command name, which may hold spaces


def alive(pid: int) -> bool:
    """A process with a thread that has not exited. Its leader turns zombie before the other threads
    are gone, and they hold its files (and so its locks) until then; an orphan may stay a zombie."""
    try:
        tasks = [t.name for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return False
    return any(process_state(f"{pid}/task/{t}") not in (None, "Z", "X") for t in tasks)


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (e.g. a run directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], what: str, limit: float = 120) -> None:
    """Poll `condition` until it holds; `limit` seconds only guard against a hang."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {limit:g} s: {what}")
        time.sleep(0.02)


def wait_stopped(proc: subprocess.Popen, limit: float = 120) -> None:
    """Wait until a training started through STOP_AT has stopped itself (it must not end first)."""
    wait_until(lambda: proc.poll() is not None or process_state(proc.pid) == "T", "the training stopped", limit)
    assert proc.poll() is None, f"the training ended (exit {proc.returncode}) before the step it should stop at"


@pytest.fixture(scope="session")
def synthetic28():
    from lifelong_gen.train.domains import load_domain

    return [load_domain(s, 1, 28) for s in ("synthetic:bars", "synthetic:rings")]


@pytest.fixture(autouse=True, scope="session")
def _isolated_data_home(tmp_path_factory):
    # Folder caches, classifiers and downloads of the tests never touch the user's cache.
    # Session scope: module-scoped fixtures (trained runs, evaluations) run inside it too.
    old = os.environ.get("LGEN_DATA_HOME")
    os.environ["LGEN_DATA_HOME"] = str(tmp_path_factory.getbasetemp() / "data_home")
    yield
    if old is None:
        os.environ.pop("LGEN_DATA_HOME", None)
    else:
        os.environ["LGEN_DATA_HOME"] = old


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    """A tiny trained and exported bundle (tiny_onnx.py), shared by the export, runtime and Hub tests."""
    from tiny_onnx import exported_bundle

    return exported_bundle(tmp_path_factory)


@pytest.fixture(scope="session")
def grown_embedded(tmp_path_factory) -> Path:
    """The embedded 20-d model continued onto a third domain for one step (the cheapest continued
    model: d_dim 30, a lineage), then exported. Shared: tests only read it."""
    child = tmp_path_factory.mktemp("grown") / "child"
    r = lgen("train", "--from", "mnist-fashion", "--domains", "synthetic:bars", "--steps-per-domain", "1",
             "--batch-size", "8", "--out", str(child), "--no-progress")
    assert r.returncode == 0, r.stderr
    r = lgen("export", str(child))
    assert r.returncode == 0, r.stderr
    return child


@pytest.fixture(scope="session")
def no_torch(tmp_path_factory):
    """Environment variables for a subprocess in which torch (and the torch side) cannot be imported."""
    from tiny_onnx import torch_free_env

    return torch_free_env(tmp_path_factory)


def pytest_sessionfinish(session, exitstatus):
    """The suite's own compile cache goes with it."""
    import shutil

    shutil.rmtree(os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)
