"""`lgen train --seeds`: many seeds of one config in one process (train/seeds.py).

Each seed must end bit-identical to a single run of that seed at the same intra-op thread count,
whatever runs beside it; a signal stops every seed with a checkpoint and a resume ends where an
uninterrupted run does; a seed that fails stops the others; `lgen evaluate` summarises the seeds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import subprocess
import threading
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import STOP_AT, TINY, TINY_FLAGS, lgen, wait_stopped
from lifelong_gen.config import resolve_run_config
from lifelong_gen.errors import LgenError, TrainingInterrupted
from lifelong_gen.seed_list import SEEDS_NAME, new_jobs, parse_seeds, read_seeds, resume_jobs
from lifelong_gen.train.callbacks import Callback
from lifelong_gen.train.cpu_threads import intra_op_threads, thread_layout
from lifelong_gen.train.seeds import train_seeds
from lifelong_gen.train.trainer import Trainer

SETTINGS = {**TINY, "domains": ["synthetic:bars", "synthetic:rings"], "steps_per_domain": 8, "checkpoint_every": 3}
FILES = {"G": "generator.safetensors", "G_ema": "generator_ema.safetensors", "S": "encoder.safetensors",
         "D": "critic.safetensors"}


def weights(run_dir) -> dict[str, dict[str, torch.Tensor]]:
    return {key: load_file(str(run_dir / name)) for key, name in FILES.items()}


def assert_same(a: dict, b: dict) -> None:
    for key in FILES:
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"


def differs(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k][n], b[k][n]) for k in FILES for n in a[k])


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory, synthetic28):
    """Seeds 0 and 1 trained side by side: 2 workers at 1 intra-op thread each."""
    out = tmp_path_factory.mktemp("seeds") / "out"
    report = train_seeds(new_jobs(resolve_run_config(SETTINGS), [0, 1], out), out, data=synthetic28,
                         progress=False, available_threads=2)
    return out, report


@pytest.mark.parametrize("text,seeds", [("0,1,2,3", [0, 1, 2, 3]), ("0-3", [0, 1, 2, 3]), ("5", [5]),
                                        ("0-2, 7", [0, 1, 2, 7]), ("10-11,3", [10, 11, 3])])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text,fragment", [("0,x", "'x' is not a seed"), ("", "is not a seed"), ("-1", "is not a seed"),
                                           ("0,1,0", "names seed 0 more than once"),
                                           ("0-3,2", "names seed 2 more than once"), ("3-1", "runs backwards")])
def test_parse_seeds_refuses_in_one_line(text, fragment):
    with pytest.raises(LgenError, match=fragment) as e:
        parse_seeds(text)
    assert "\n" not in str(e.value)


def test_thread_layout_shares_the_cores():
    assert thread_layout(4, None, 2) == thread_layout(4, 1, 2)
    assert (thread_layout(4, None, 2).workers, thread_layout(4, None, 2).threads_per_run) == (2, 1)
    assert (thread_layout(1, None, 2).workers, thread_layout(1, None, 2).threads_per_run) == (1, 2)  # a single run
    assert (thread_layout(3, None, 16).workers, thread_layout(3, None, 16).threads_per_run) == (3, 5)
    assert (thread_layout(4, 2, 2).workers, thread_layout(4, 2, 2).threads_per_run) == (1, 2)
    assert thread_layout(0, 1, 2).workers == 1


def test_each_seed_is_bit_identical_to_a_single_run_at_one_thread(two_seeds, synthetic28, tmp_path):
    out, report = two_seeds
    session = report["sessions"][-1]
    assert (session["workers"], session["threads_per_run"]) == (2, 1)  # really side by side
    assert {k: v["status"] for k, v in session["seeds"].items()} == {"0": "finished", "1": "finished"}
    assert read_seeds(out)["seeds"] == [0, 1]
    trained = {k: weights(out / f"seed-{k}") for k in (0, 1)}
    for k in (0, 1):
        config = json.loads((out / f"seed-{k}" / "config.json").read_text())
        assert config["train"]["seed"] == k and config["train"]["threads"] == 1
        single = tmp_path / f"single-{k}"
        with intra_op_threads(1):
            Trainer(resolve_run_config({**SETTINGS, "seed": k}), single, data=synthetic28, progress=False).train()
        assert_same(trained[k], weights(single))
    # The seeds are not one model twice: a shared random stream or swapped data would fail above or here.
    assert differs(trained[0], trained[1])


def test_one_seed_is_a_single_run_at_the_process_threads(synthetic28, tmp_path):
    out = tmp_path / "out"
    report = train_seeds(new_jobs(resolve_run_config(SETTINGS), [3], out), out, data=synthetic28, progress=False,
                         available_threads=2)
    assert (report["sessions"][-1]["workers"], report["threads_per_run"]) == (1, 2)
    with intra_op_threads(2):
        Trainer(resolve_run_config({**SETTINGS, "seed": 3}), tmp_path / "single", data=synthetic28,
                progress=False).train()
    assert_same(weights(out / "seed-3"), weights(tmp_path / "single"))


class SignalAt(Callback):
    """SIGINT to the process at seed 0's global step `step`, held there until the main thread has run
    its handler, so seed 0 stops right after that step."""

    def __init__(self, step: int):
        self.step = step

    def after_step(self, trainer, phase, losses):
        if trainer.tc.seed == 0 and trainer.global_step == self.step:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(0.5)


def test_interrupted_seeds_resume_bit_identical(two_seeds, synthetic28, tmp_path, caplog):
    out = tmp_path / "out"
    with pytest.raises(TrainingInterrupted, match=f"stopped by SIGINT: .*lgen train --resume {out}") as e:
        train_seeds(new_jobs(resolve_run_config(SETTINGS), [0, 1], out), out, data=synthetic28, progress=False,
                    available_threads=2, callbacks=[SignalAt(4)])
    assert e.value.exit_code == 130
    stopped = read_seeds(out)["sessions"][-1]["seeds"]["0"]
    assert stopped == {**stopped, "status": "stopped", "steps": 4}
    assert (out / "seed-0" / "checkpoints" / "latest").is_file()

    with caplog.at_level("INFO", logger="lifelong_gen"):
        report = train_seeds(resume_jobs(out, {}), out, data=synthetic28, progress=False, available_threads=2)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("seed 0: resumed") for m in messages)
    assert not any("other numerics" in m for m in messages)  # restored at the seeds' own thread count
    assert len(report["sessions"]) == 2 and report["sessions"][-1]["seeds"]["0"]["steps"] == 12
    for k in (0, 1):
        assert_same(weights(two_seeds[0] / f"seed-{k}"), weights(out / f"seed-{k}"))
    # Resumed again with nothing left: every seed is skipped.
    report = train_seeds(resume_jobs(out, {}), out, data=synthetic28, progress=False, available_threads=2)
    assert set(s["status"] for s in report["sessions"][-1]["seeds"].values()) == {"finished before"}


class FailAt(Callback):
    """Seed 1 raises at its step 2; seed 0 waits there until it has, so it is still training."""

    def __init__(self):
        self.failed = threading.Event()

    def after_step(self, trainer, phase, losses):
        if trainer.global_step != 2:
            return
        if trainer.tc.seed == 1:
            self.failed.set()
            raise LgenError("the disk is full")
        if trainer.tc.seed == 0:
            self.failed.wait(30)
            time.sleep(0.3)


def test_a_failing_seed_stops_the_others(synthetic28, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(LgenError, match=r"^seed 1: the disk is full \(the other seeds stopped") as e:
        train_seeds(new_jobs(resolve_run_config(SETTINGS), [0, 1, 2], out), out, data=synthetic28, progress=False,
                    available_threads=2, callbacks=[FailAt()])
    assert "\n" not in str(e.value)
    seeds = read_seeds(out)["sessions"][-1]["seeds"]
    assert [seeds[k]["status"] for k in "012"] == ["stopped", "failed", "not started"]
    assert (out / "seed-0" / "checkpoints" / "latest").is_file()
    assert (out / "seed-2" / "config.json").is_file()  # resumable although never started


def test_seeds_record_different_threads_refused(synthetic28, tmp_path):
    run = resolve_run_config(SETTINGS)
    jobs = new_jobs(run, [0, 1], tmp_path / "out")
    jobs[1].run = dataclasses.replace(jobs[1].run, train=dataclasses.replace(jobs[1].run.train, threads=2))
    with pytest.raises(LgenError, match="record different --threads"):
        train_seeds(jobs, tmp_path / "out", data=synthetic28, progress=False)


# ------------------------------------------------------------ the summary over seeds

def hand_made(share, fid, accuracy):
    """The parts of a metrics.json that `lgen evaluate`'s table reads, for one domain "a"."""
    return {"per_domain": {"a": {"sample_share": share, "covered_classes": 10, "fid": fid, "kid_mean": None,
                                 "confidence": 0.9, "clustering": {"accuracy": accuracy, "nmi": 0.5}}},
            "overall": {"fid": fid}, "training": {},
            "interpretability": {"d_purity": {"mean": 0.25, "per_d": []}, "traversal": {"c1": {"class_change": 0.1}}}}


def test_summary_is_mean_and_sample_sd_over_the_seeds():
    from lifelong_gen.eval.seed_summary import summarise, summary_table

    summary = summarise({0: hand_made(0.2, 10.0, 0.5), 1: hand_made(0.4, None, float("nan")),
                         3: hand_made(0.9, 20.0, 0.7)})
    assert summary["seeds"] == [0, 1, 3]
    m = summary["metrics"]
    share = m["a: sample share"]
    assert share["n"] == 3 and share["mean"] == pytest.approx(0.5)
    assert share["sd"] == pytest.approx(math.sqrt((0.3 ** 2 + 0.1 ** 2 + 0.4 ** 2) / 2))  # n - 1: the sample sd
    assert share["values"] == {"0": 0.2, "1": 0.4, "3": 0.9}
    fid = m["a: FID (classifier)"]  # seed 1 has none: left out of n
    assert (fid["n"], fid["mean"], fid["sd"]) == (2, 15.0, pytest.approx(math.sqrt(50)))
    assert m["a: S clustering accuracy"]["n"] == 2  # NaN left out
    assert m["a: KID"] == {"mean": None, "sd": None, "n": 0, "values": {}}
    assert m["d purity (mean)"]["sd"] == 0.0
    text = summary_table(summary)
    assert "| a: sample share | 0.500 ± 0.361 | 3 |" in text and "| a: KID | – | 0 |" in text
    assert list(m)[:2] == ["a: sample share", "a: classes present (≥1%)"]  # the evaluation table's order


# ------------------------------------------------------------ the command line

TRAIN = ["train", "--domains", "synthetic:bars,synthetic:rings", "--steps-per-domain", "8", *TINY_FLAGS]


@pytest.mark.parametrize("args,env,fragment", [
    (["--seeds", "0,x"], {}, "'x' is not a seed"),
    (["--seeds", "0,1,1"], {}, "names seed 1 more than once"),
    (["--seeds", "0,1", "--seed", "3"], {}, "drop --seed"),
    (["--seeds", "0,1"], {"WORLD_SIZE": "2"}, "without torchrun"),
    (["--seeds", "0,1", "--resume", "somewhere"], {}, "drop --seeds"),
])
def test_cli_refuses_in_one_line(tmp_path, args, env, fragment):
    r = lgen(*TRAIN, "--out", str(tmp_path / "out"), *args, env=env)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("lgen: error: ") and fragment in lines[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_cli_dry_run_prints_the_first_seeds_config():
    r = lgen(*TRAIN, "--seeds", "4-6", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["train"]["seed"] == 4


def test_cli_seeds_continue_one_parent(tmp_path):
    out = tmp_path / "out"
    r = lgen("train", "--from", "mnist-fashion", "--domains", "synthetic:bars", "--steps-per-domain", "2",
             "--batch-size", "8", "--seeds", "0,1", "--out", str(out), "--no-progress")
    assert r.returncode == 0 and r.stdout.strip() == str(out), r.stderr
    for k in (0, 1):
        config = json.loads((out / f"seed-{k}" / "config.json").read_text())
        assert config["train"]["seed"] == k and config["train"]["inherited_domains"] == 2
        assert (out / f"seed-{k}" / "snapshots" / "domain-2").is_dir()  # the parent's, copied in
    assert differs(weights(out / "seed-0"), weights(out / "seed-1"))


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_cli_sigterm_stops_every_seed_then_resume_and_evaluate(tmp_path):
    out = tmp_path / "out"
    args = [*TRAIN[:4], "30", *TINY_FLAGS, "--checkpoint-every", "5", "--seeds", "0,1", "--out", str(out)]
    proc = subprocess.Popen([*STOP_AT, "7", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_stopped(proc)
    proc.send_signal(signal.SIGTERM)
    # Continued until it ends: the other seed may reach step 7, and stop the process, before it
    # sees the stop flag.
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.1)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    last = proc.stderr.read().strip().splitlines()[-1]
    assert last == f"lgen: stopped by SIGTERM: every seed in training wrote a checkpoint; continue them with " \
                   f"`lgen train --resume {out}`"
    # The same command again does not start the seeds afresh over the stopped ones.
    r = lgen(*args)
    assert r.returncode == 2 and "already holds a run" in r.stderr
    r = lgen("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0 and r.stdout.strip() == str(out), r.stderr
    assert "seed 0: resumed" in r.stderr and "seed 1: resumed" in r.stderr
    statuses = json.loads((out / SEEDS_NAME).read_text())["sessions"][-1]["seeds"]
    assert {k: s["status"] for k, s in statuses.items()} == {"0": "finished", "1": "finished"}

    r = lgen("evaluate", str(out), "--num-samples", "100", "--no-progress")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "seeds-summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    share = summary["metrics"]["synthetic:bars: sample share"]
    each = [json.loads((out / f"seed-{k}" / "metrics.json").read_text())["per_domain"]["synthetic:bars"]["sample_share"]
            for k in (0, 1)]
    assert share["n"] == 2 and share["mean"] == pytest.approx(sum(each) / 2)
    assert "| synthetic:bars: sample share |" in r.stdout
