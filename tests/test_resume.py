"""Resume after `kill -9` ends bit-identical to an uninterrupted run (CPU, same seed)."""

import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from conftest import TINY_FLAGS, lgen

# Heavy: trainings in subprocesses / under torchrun; a longer timeout than the default 120 s.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ARGS = ["train", "--domains", "synthetic:bars,synthetic:rings", "--steps-per-domain", "24",
        "--checkpoint-every", "7", "--seed", "3", "--replay-alignment", "0.05", *TINY_FLAGS]
FILES = ["generator.safetensors", "generator_ema.safetensors", "encoder.safetensors", "critic.safetensors"]


def assert_same_weights(a, b):
    for name in FILES:
        ta, tb = load_file(str(a / name)), load_file(str(b / name))
        assert ta.keys() == tb.keys()
        for k in ta:
            assert ta[k].equal(tb[k]), f"{name}:{k} differs"
    assert (a / "metrics.jsonl").read_text().splitlines() != []
    strip = lambda p: [l.split('"sec_per_step"')[0] for l in (p / "metrics.jsonl").read_text().splitlines()]
    assert strip(a) == strip(b)  # losses logged after the last checkpoint were not duplicated


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    r = lgen(*ARGS, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def kill_when(out, predicate, extra_delay, args=ARGS):
    """Start a run, SIGKILL it once `predicate(out)` holds (+ a delay), return the exit code."""
    proc = subprocess.Popen([sys.executable, "-m", "lifelong_gen.cli", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not predicate(out) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(extra_delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


@pytest.mark.parametrize("moment", ["first-checkpoint", "second-domain", "before-any-checkpoint"])
def test_kill9_then_resume_is_bit_identical(tmp_path, reference, moment):
    out = tmp_path / "run"
    latest = lambda o: (o / "checkpoints" / "latest").is_file()
    predicate, delay = {
        "first-checkpoint": (latest, 0.05),
        "second-domain": (lambda o: (o / "snapshots" / "domain-1" / "config.json").is_file(), 0.1),
        "before-any-checkpoint": (lambda o: (o / "config.json").is_file(), 0.0),
    }[moment]
    code = kill_when(out, predicate, delay)
    assert code == -signal.SIGKILL, "the run finished before it could be killed; make it longer"
    r = lgen("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    if moment != "before-any-checkpoint":
        assert "resumed" in r.stderr  # continued from a checkpoint, not from scratch
    assert_same_weights(reference, out)


# The speed settings with bf16 autocast (what `--precision auto` picks on a bf16 CPU):
# a new process must pick the same kernels, so kill -9 and resume still end bit-identical.
FAST_ARGS = [*ARGS, "--gp-subsample", "2", "--s-real-weight", "0.5", "--s-real-reuse", "--precision", "bf16"]


def test_kill9_then_resume_is_bit_identical_with_the_speed_settings_and_bf16(tmp_path):
    reference = tmp_path / "reference"
    r = lgen(*FAST_ARGS, "--out", str(reference))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "run"
    code = kill_when(out, lambda o: (o / "checkpoints" / "latest").is_file(), 0.05, FAST_ARGS)
    assert code == -signal.SIGKILL, "the run finished before it could be killed; make it longer"
    r = lgen("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0 and "resumed" in r.stderr, r.stderr
    assert_same_weights(reference, out)
