"""A worker dies with its launcher (lifelong_gen/worker_lifetime.py): after a SIGKILL of its parent,
through prctl's parent-death signal or the watchdog thread, and under a real torchrun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, alive, processes_mentioning, wait_until
from lifelong_gen.worker_lifetime import bind_to_launcher, is_torchrun_worker

# The child arms, says which mechanism and its PID, then sleeps; the parent only waits.
CHILD = ("import os, sys, time\nfrom lifelong_gen.worker_lifetime import die_with_parent\n"
         "m = die_with_parent(use_prctl={use_prctl}, poll_seconds=0.05)\n"
         "print('armed', m, os.getpid(), flush=True)\ntime.sleep(600)\n")
PARENT = ("import subprocess, sys, time\n"
          "subprocess.Popen([sys.executable, '-c', sys.argv[1]], start_new_session=True)\ntime.sleep(600)\n")


@pytest.mark.parametrize("use_prctl, mechanism", [(True, "prctl" if sys.platform.startswith("linux") else "watchdog"),
                                                  (False, "watchdog")], ids=["prctl", "watchdog"])
def test_a_child_in_its_own_session_dies_with_its_sigkilled_parent(use_prctl, mechanism):
    # Its own session, as torch elastic starts workers: a signal to the parent's group misses it.
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD.format(use_prctl=use_prctl)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = None
    try:
        line = parent.stdout.readline().split()
        assert line[:2] == ["armed", mechanism], line
        child = int(line[2])
        assert alive(child)
        os.killpg(parent.pid, signal.SIGKILL)
        assert parent.wait() == -signal.SIGKILL
        wait_until(lambda: not alive(child), "the child died with its parent", limit=10)
    finally:
        parent.kill()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)


def test_a_parent_gone_before_arming_kills_at_once():
    # The parent the caller saw is not the parent now: it died before prctl could watch it.
    code = ("import os\nfrom lifelong_gen.worker_lifetime import die_with_parent\n"
            "die_with_parent(parent=os.getppid() + 1)\nprint('survived')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL and "survived" not in r.stdout, r


def test_only_a_torchrun_worker_is_bound():
    assert is_torchrun_worker({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "2"})
    assert not is_torchrun_worker({"WORLD_SIZE": "2"})
    assert bind_to_launcher({}) is None


def test_arming_twice_keeps_one_watchdog():
    code = ("import threading\nfrom lifelong_gen.worker_lifetime import die_with_parent\n"
            "print(die_with_parent(use_prctl=False), die_with_parent(use_prctl=False),\n"
            "      sum(t.name == 'die-with-parent' for t in threading.enumerate()))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["watchdog", "watchdog", "1"], r


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_no_torchrun_worker_outlives_its_sigkilled_launcher(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "sleeping_worker.py"), str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        wait_until(lambda: proc.poll() is not None or all((tmp_path / f"ready-{r}").is_file() for r in (0, 1)),
                   "both workers joined the process group")
        assert proc.poll() is None, f"torchrun ended (exit {proc.returncode})"
        workers = [p for p in processes_mentioning(str(tmp_path)) if p != proc.pid]
        assert sorted(workers) == sorted(int((tmp_path / f"ready-{r}").read_text()) for r in (0, 1))
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun alone: each worker is in a session of its own
        assert proc.wait() == -signal.SIGKILL
        wait_until(lambda: not any(alive(p) for p in workers), "no worker outlives torchrun", limit=10)
    finally:
        proc.kill()
        for p in workers:
            if alive(p):
                os.kill(p, signal.SIGKILL)
