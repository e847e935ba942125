"""`lgen train --resume` takes execution settings (device-side options, data location, cadence) and
records each change; it refuses method settings in one line naming the flag, changing nothing."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from conftest import STOP_AT, TINY_FLAGS, lgen, wait_stopped
from lifelong_gen.config import EXECUTION_SETTINGS, MODEL_KEYS, TRAIN_KEYS

ARGS = ["train", "--domains", "synthetic:bars", "--steps-per-domain", "300", "--checkpoint-every", "10",
        *TINY_FLAGS]


def test_execution_settings_are_declared_on_the_fields():
    assert set(EXECUTION_SETTINGS) == {"checkpoint_every", "log_every", "data_root", "download", "precision",
                                       "compile", "cuda_deterministic", "cuda_graph", "threads"}
    assert not set(EXECUTION_SETTINGS) & MODEL_KEYS and set(EXECUTION_SETTINGS) <= TRAIN_KEYS


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run stopped by SIGTERM after its first checkpoint (it checkpoints and exits 143)."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    # It stops itself after step 12 (lgen_stop_at.py), so the signal finds it there on any machine.
    proc = subprocess.Popen([*STOP_AT, "12", *ARGS, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_stopped(proc)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    return out


@pytest.mark.parametrize("flag,value", [("--g-width", "16"), ("--lr-g", "0.1"), ("--seed", "9"),
                                        ("--steps-per-domain", "5"), ("--replay-ratio", "0.3")])
def test_resume_refuses_a_method_setting_in_one_line(stopped_run, flag, value):
    before = {p: p.read_bytes() for p in stopped_run.rglob("*") if p.is_file()}
    r = lgen("train", "--resume", str(stopped_run), flag, value, "--no-progress")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and f"drop {flag}" in lines[0], r.stderr
    assert {p: p.read_bytes() for p in stopped_run.rglob("*") if p.is_file()} == before


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_resume_takes_execution_settings_and_records_them(stopped_run):
    r = lgen("train", "--resume", str(stopped_run), "--log-every", "7", "--checkpoint-every", "50",
             "--no-download", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "--log-every 5 -> 7" in r.stderr
    config = json.loads((stopped_run / "config.json").read_text())
    assert config["train"]["log_every"] == 7 and config["train"]["checkpoint_every"] == 50
    (change,) = config["execution_changes"]
    assert change["changed"] == {"log_every": [5, 7], "checkpoint_every": [10, 50]} and change["global_step"] >= 10
    steps = [json.loads(line)["step"] for line in (stopped_run / "metrics.jsonl").read_text().splitlines()]
    resumed = [s for s in steps if s > change["global_step"]]
    assert resumed and all(s % 7 == 0 or s == 300 for s in resumed), steps


def test_a_resume_with_other_numerics_warns_that_it_is_not_bit_identical(stopped_run, caplog):
    import torch

    from lifelong_gen.train import checkpoint as ckpt

    state, _ = ckpt.load_checkpoint(stopped_run)
    assert state["numerics"] == ckpt.numerics(torch.device("cpu"))  # recorded by the stopped run
    with caplog.at_level("WARNING", logger="lifelong_gen"):
        ckpt.warn_if_numerics_differ(state["numerics"], torch.device("cpu"))
        assert not caplog.records
        ckpt.warn_if_numerics_differ({**state["numerics"], "threads": 7}, torch.device("cpu"))
    [record] = caplog.records
    assert f"threads 7 -> {torch.get_num_threads()}" in record.getMessage()
    assert "not bit-identical" in record.getMessage() and "--threads 7" in record.getMessage()
    # A checkpoint of a version before the fused Adam (its numerics lack the key): said, without a thread hint.
    caplog.clear()
    older = {k: v for k, v in state["numerics"].items() if k != "adam"}
    with caplog.at_level("WARNING", logger="lifelong_gen"):
        ckpt.warn_if_numerics_differ(older, torch.device("cpu"))
    [record] = caplog.records
    assert "adam None -> fused" in record.getMessage() and "--threads" not in record.getMessage()
