"""Resume after `kill -9` ends bit-identical to an uninterrupted run (CPU, same seed)."""

import signal
import subprocess

import pytest
from safetensors.torch import load_file

from conftest import STOP_AT, TINY_FLAGS, lgen, wait_stopped

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


def kill_at(out, step, args=ARGS):
    """Start a run, SIGKILL it after global step `step` (where it stops itself: lgen_stop_at.py)."""
    proc = subprocess.Popen([*STOP_AT, str(step), *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_stopped(proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


# Global steps between checkpoints (every 7 steps, and at each domain's end, step 24): progress
# after the newest checkpoint is lost and re-done by the resume.
MOMENTS = {"first-checkpoint": (9, "checkpoints/step-00000007"),
           "second-domain": (27, "snapshots/domain-1/config.json"),
           "before-any-checkpoint": (2, "config.json")}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_kill9_then_resume_is_bit_identical(tmp_path, reference, moment):
    out = tmp_path / "run"
    step, written = MOMENTS[moment]
    kill_at(out, step)
    assert (out / written).exists() and (out / "checkpoints" / "latest").is_file() == (moment != "before-any-checkpoint")
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
    kill_at(out, 9, FAST_ARGS)
    r = lgen("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0 and "resumed" in r.stderr, r.stderr
    assert_same_weights(reference, out)
