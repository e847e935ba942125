"""One writer per run directory (lifelong_gen/runlock.py): a second training of the same run is
refused in one line naming the holder's PID, and a lock left by `kill -9` never blocks a resume."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from conftest import STOP_AT, TINY_FLAGS, lgen, wait_stopped
from lifelong_gen.errors import LgenError
from lifelong_gen.runlock import LOCK_NAME, run_lock

# Short on purpose: the first training stops itself (SIGSTOP, lgen_stop_at.py) after step 12, its
# first checkpoint written, and stays stopped until it is killed, so it need not outlast the refused
# commands; the resume stops itself after step 30 in the same way while a second one is refused.
ARGS = ["train", "--domains", "synthetic:bars", "--steps-per-domain", "60", "--checkpoint-every", "10", *TINY_FLAGS]


def files(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != LOCK_NAME}


def test_lock_is_exclusive_and_released(tmp_path):
    with run_lock(tmp_path / "run"):
        holder = (tmp_path / "run" / LOCK_NAME).read_text().strip()
        # flock locks belong to the open file: a second open in another process is refused.
        code = ("import sys; from lifelong_gen.runlock import run_lock\n"
                "from lifelong_gen.errors import LgenError\n"
                f"try:\n    run_lock({str(tmp_path / 'run')!r}).__enter__()\nexcept LgenError as e:\n"
                "    print(e); sys.exit(3)\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode == 3 and f"PID {holder}" in r.stdout
    with run_lock(tmp_path / "run"):  # released at the end of the block
        pass


def test_a_refused_new_run_leaves_no_directory(tmp_path):
    with pytest.raises(LgenError):
        with run_lock(tmp_path / "new"):
            raise LgenError("bad data")
    assert not (tmp_path / "new").exists()


def _start(out):
    proc = subprocess.Popen([*STOP_AT, "12", *ARGS, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Stopped, the training still holds its lock, and its files hold still while they are compared.
    wait_stopped(proc)
    return proc


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_second_training_of_a_running_run_is_refused_then_resume_after_kill9_works(tmp_path):
    out = tmp_path / "run"
    first = _start(out)
    try:
        for args in (["train", "--resume", str(out), "--no-progress"], [*ARGS, "--out", str(out)]):
            before = files(out)
            r = lgen(*args)
            assert r.returncode == 2, r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and f"PID {first.pid}" in lines[0], r.stderr
            assert files(out) == before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The killed process's lock is gone with it: a resume takes it, and a second resume at once is refused.
    resume = subprocess.Popen([*STOP_AT, "30", "train", "--resume", str(out), "--no-progress"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_stopped(resume)
    assert (out / LOCK_NAME).read_text().strip() == str(resume.pid)
    r = lgen("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 2 and f"PID {resume.pid}" in r.stderr, r.stderr
    resume.send_signal(signal.SIGCONT)
    _, err = resume.communicate(timeout=240)
    assert resume.returncode == 0, err
    assert "resumed" in err
