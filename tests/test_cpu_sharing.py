"""The OpenMP wait policy a torch command picks at its start: PASSIVE only when the cores are shared."""

from __future__ import annotations

import subprocess
import sys

import pytest
from safetensors.torch import load_file

from conftest import TINY_FLAGS, lgen
from lifelong_gen import cpu_sharing


def _spinners(n: int) -> list[subprocess.Popen]:
    """Processes that keep a core busy each, returned once every one is spinning (not after a guessed delay)."""
    spinners = [subprocess.Popen([sys.executable, "-c", "print('spinning', flush=True)\nwhile True: pass"],
                                 stdout=subprocess.PIPE, text=True) for _ in range(n)]
    for s in spinners:
        s.stdout.readline()
    return spinners


def _never(*_):
    raise AssertionError("measured although the choice was already made")


def test_passive_only_when_other_processes_keep_the_cores_busy():
    env = {}
    assert cpu_sharing.choose_wait_policy(env, measure=lambda: 1.6, modules={}) == "PASSIVE"
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {}
    assert cpu_sharing.choose_wait_policy(env, measure=lambda: 0.2, modules={}) is None and env == {}
    assert cpu_sharing.choose_wait_policy(env, measure=lambda: None, modules={}) is None and env == {}


@pytest.mark.parametrize("user", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "300000"}])
def test_a_policy_the_user_set_is_kept(user):
    env = dict(user)
    assert cpu_sharing.choose_wait_policy(env, measure=_never, modules={}) is None and env == user


def test_nothing_changes_once_torch_is_loaded():
    env = {}
    assert cpu_sharing.choose_wait_policy(env, measure=_never, modules={"torch": object()}) is None and env == {}


def test_busy_cores_sees_a_spinning_process():
    spinner, = _spinners(1)
    try:
        busy = cpu_sharing.busy_cores(0.3)
    finally:
        spinner.kill()
    assert busy is not None and 0.6 <= busy <= len(cpu_sharing._usable_cpus()) + 0.01


@pytest.mark.integration
def test_a_training_beside_a_busy_process_sleeps_its_threads_with_the_same_weights(tmp_path):
    args = ["train", "--domains", "synthetic:bars", "--steps-per-domain", "12", "--seed", "4", *TINY_FLAGS]
    # libgomp's default policy, named, so this run keeps it whatever else the machine runs.
    alone = lgen(*args, "--out", str(tmp_path / "alone"), env={"GOMP_SPINCOUNT": "300000"})
    assert alone.returncode == 0 and "cores were busy" not in alone.stderr, alone.stderr
    spinners = _spinners(2)
    try:
        shared = lgen(*args, "--out", str(tmp_path / "shared"))
    finally:
        for s in spinners:
            s.kill()
    assert shared.returncode == 0 and "cores were busy with other processes" in shared.stderr, shared.stderr
    for name in ("generator_ema.safetensors", "encoder.safetensors", "critic.safetensors"):
        a, b = load_file(str(tmp_path / "alone" / name)), load_file(str(tmp_path / "shared" / name))
        assert all(a[k].equal(b[k]) for k in a), name


def test_an_error_beside_busy_cores_is_still_one_line(tmp_path):
    spinners = _spinners(2)
    try:
        r = lgen("export", str(tmp_path / "missing-run"))
    finally:
        for s in spinners:
            s.kill()
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_busy_cores_is_the_least_window_so_a_blip_does_not_count(monkeypatch):
    # Scripted /proc/stat readings (busy, total jiffies) over the usable cores: the first window
    # is a blip (all cores busy), the next two are idle; a sustained load is busy in every window.
    cores = len(cpu_sharing._usable_cpus())
    monkeypatch.setattr(cpu_sharing.time, "sleep", lambda s: None)
    readings = iter([(0, 0), (100, 100), (100, 200), (105, 300)])
    monkeypatch.setattr(cpu_sharing, "_cpu_times", lambda cpus: next(readings))
    assert cpu_sharing.busy_cores() == pytest.approx(cores * 0.0)
    env: dict = {}
    readings = iter([(0, 0), (100, 100), (100, 200), (105, 300)])
    assert cpu_sharing.choose_wait_policy(env, modules={}) is None and env == {}
    readings = iter([(0, 0), (90, 100), (170, 200), (260, 300)])
    assert cpu_sharing.busy_cores() == pytest.approx(cores * 0.8)
    readings = iter([(0, 0), (None)])
    assert cpu_sharing.busy_cores() is None  # /proc/stat unreadable: no policy is chosen
