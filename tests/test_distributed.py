"""Data-parallel training under torchrun (2 CPU processes, gloo): identical weights on every
rank after every step, per-rank data, rank-0-only files, and kill -9 of torchrun (its workers die
with it, the lock is free, nothing is written after) + resume bit-identical."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import ROOT, STOP_AT, TINY_FLAGS, alive, lgen, process_state, processes_mentioning, wait_until
from lifelong_gen.runlock import run_lock

# Heavy: trainings in subprocesses / under torchrun; a longer timeout than the default 120 s.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
FILES = ["generator.safetensors", "generator_ema.safetensors", "encoder.safetensors", "critic.safetensors"]
ARGS = ["train", "--domains", "synthetic:bars,synthetic:rings", "--steps-per-domain", "16",
        "--checkpoint-every", "5", "--seed", "5", "--replay-alignment", "0.05", *TINY_FLAGS]


def torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("shared", [False, True], ids=["separate-encoder", "shared-encoder"])
def test_ddp_two_ranks_hold_identical_weights_every_step(tmp_path, shared):
    # Shared encoder: the S heads get gradient only in the critic step; separate: S has
    # BatchNorm whose per-rank running statistics must be re-synchronised.
    r = torchrun(str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path), *(["--shared"] if shared else []))
    assert r.returncode == 0, r.stderr[-3000:]
    records = json.loads((tmp_path / "hashes.json").read_text())
    assert [x["step"] for x in records] == list(range(1, 9))  # 2 domains x 4 steps, all checked
    assert all(x["rng_differs"] for x in records)  # each rank drew its own data and codes
    assert len({x["hash"] for x in records}) == len(records)  # the weights did change every step
    run = tmp_path / "run"
    for name in FILES + ["metrics.jsonl", "samples/domain-2.png", "snapshots/domain-1/generator_ema.safetensors"]:
        assert (run / name).is_file(), name
    state = json.loads(next((run / "checkpoints").glob("step-*/state.json")).read_text())
    assert state["world_size"] == 2
    tensors = load_file(str(next((run / "checkpoints").glob("step-*/state.safetensors"))))
    assert not tensors["rng.train"].equal(tensors["rng.train.rank1"])


@pytest.mark.parametrize("shared", [False, True], ids=["separate-encoder", "shared-encoder"])
def test_ddp_gradients_equal_the_rank_mean_of_per_rank_gradients(tmp_path, shared):
    # The trainer's real steps (critic + gradient penalty, G + S, replay alignment) through
    # DDP vs the same steps on the bare networks with every gradient all-reduced by hand.
    r = torchrun(str(ROOT / "tests" / "ddp_grad_worker.py"), str(tmp_path), *(["--shared"] if shared else []))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "grads.json").read_text())
    # 2 domains x 3 steps x (n_critic 2 critic steps + 1 generator step)
    assert len(res["relative_max_diff"]) == len(res["rank_spread"]) == 18
    assert max(res["relative_max_diff"]) < 1e-5, res
    assert min(res["rank_spread"]) > 1e-3, res  # each rank's own gradient was far from the mean


def assert_same_run(a: Path, b: Path) -> None:
    for name in FILES:
        ta, tb = load_file(str(a / name)), load_file(str(b / name))
        assert ta.keys() == tb.keys()
        for k in ta:
            assert ta[k].equal(tb[k]), f"{name}:{k} differs"
    strip = lambda p: [l.split('"sec_per_step"')[0] for l in (p / "metrics.jsonl").read_text().splitlines()]
    assert strip(a) and strip(a) == strip(b)


def checkpoint_listing(run: Path) -> tuple[list[str], str]:
    """Every entry of RUN/checkpoints (temp directories included) and what `latest` names."""
    ckpt = run / "checkpoints"
    return sorted(p.name for p in ckpt.iterdir()), (ckpt / "latest").read_text()


def test_distributed_cli_kill9_then_resume_is_bit_identical(tmp_path):
    ref = tmp_path / "ref"
    r = torchrun("-m", "lifelong_gen.cli", *ARGS, "--out", str(ref))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines() == [str(ref)]  # rank 0 alone prints

    out = tmp_path / "killed"
    # Both ranks stop themselves after global step 11 (lgen_stop_at.py), the step-10 checkpoint
    # written: the kill lands there on any machine, and nothing is written between the look at
    # the checkpoints and the kill.
    proc = subprocess.Popen([*TORCHRUN, STOP_AT[1], "11", *ARGS, "--out", str(out)], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = lambda: [p for p in processes_mentioning(str(out)) if p != proc.pid]  # noqa: E731
    ranks: list[int] = []
    try:
        wait_until(lambda: proc.poll() is not None or
                   (len(pids := workers()) == 2 and all(process_state(p) == "T" for p in pids)),
                   "both workers stopped after step 11")
        assert proc.poll() is None, f"torchrun ended (exit {proc.returncode}) before its workers stopped"
        ranks = workers()
        before = checkpoint_listing(out)
        assert "step-00000010" in before[0], before
        # torchrun's process group is torchrun alone: torch elastic starts each worker in a session
        # of its own. The workers must die with it (lifelong_gen/worker_lifetime.py).
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        for pid in ranks:  # a survivor would go on training from here and write step 15
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        wait_until(lambda: not any(alive(p) for p in ranks), "no worker outlives a SIGKILLed torchrun", limit=30)
    finally:
        for pid in ranks:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert processes_mentioning(str(out)) == []
    with run_lock(out):  # free: taken at once (LgenError naming the holder otherwise)
        pass
    assert checkpoint_listing(out) == before  # nothing written after the kill

    # A 2-process checkpoint refuses a 1-process resume (its per-rank RNG states would not fit).
    single = lgen("train", "--resume", str(out), "--no-progress")
    assert single.returncode == 2 and "--nproc_per_node 2" in single.stderr, single.stderr

    r = torchrun("-m", "lifelong_gen.cli", "train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed" in r.stderr
    assert_same_run(ref, out)
