"""`--later-domain-steps`: each domain after the first trains for its own number of steps.

Owns the schedule's closed form (`TrainConfig.steps_for`, `joint_steps`), the phases built from
it (lifelong, no replay and joint), a tiny run that trains exactly the scheduled steps, a
continuation's schedule (the new domain is a later one; a `--steps-per-domain` given alone wins
over the parent's later-domain steps), the one-line refusal of a bad value, and the report's words.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY, TINY_FLAGS, lgen
from lifelong_gen.bundle.lineage import continue_config, resolve_parent
from lifelong_gen.config import TrainConfig, read_run_config, resolve_run_config
from lifelong_gen.eval.report import steps_text
from lifelong_gen.train.phase import make_phases


@pytest.mark.parametrize("later,inherited,want,joint", [
    (0, 0, [10, 10, 10], 30),   # off: every domain steps_per_domain (the schedule before the option)
    (15, 0, [10, 15, 15], 40),  # the first domain keeps steps_per_domain
    (15, 1, [10, 15, 15], 30),  # a continuation's joint-equivalent counts only the domains it learns
    (4, 0, [10, 4, 4], 18),     # shorter later domains are allowed too
])
def test_steps_for_and_joint_steps_closed_form(later, inherited, want, joint):
    tc = TrainConfig(domains=["a", "b", "c"], steps_per_domain=10, later_domain_steps=later,
                     inherited_domains=inherited)
    assert [tc.steps_for(k) for k in range(3)] == want
    assert tc.joint_steps == joint


@pytest.mark.parametrize("extra,want", [
    ({}, [3, 5]),
    ({"replay": False}, [3, 5]),  # the schedule is by position, so the no-replay baseline matches the lifelong run
    ({"joint": True}, [8]),       # a joint run spends the lifelong run's steps
])
def test_phases_follow_the_schedule(synthetic28, extra, want):
    run = resolve_run_config({**TINY, "domains": [d.spec for d in synthetic28], "steps_per_domain": 3,
                              "later_domain_steps": 5, **extra})
    phases = make_phases(run.train, run.model, synthetic28, torch.device("cpu"))
    assert [p.steps for p in phases] == want


def test_a_two_domain_run_trains_the_scheduled_steps(tmp_path, synthetic28):
    from lifelong_gen.train.trainer import Trainer

    run = resolve_run_config({**TINY, "domains": [d.spec for d in synthetic28], "steps_per_domain": 3,
                              "later_domain_steps": 5, "log_every": 1})
    trainer = Trainer(run, tmp_path / "r", data=synthetic28, progress=False)
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    last = {}
    for row in rows:
        last[row["domain_index"]] = (row["step"], row["global_step"])
    assert last == {0: (3, 3), 1: (5, 8)}
    assert read_run_config(tmp_path / "r").train.later_domain_steps == 5  # a resume reads it back


def test_a_continuation_learns_a_later_domain(tmp_path):
    parent = tmp_path / "p"
    r = lgen("train", "--domains", "synthetic:bars", "--steps-per-domain", "2", "--later-domain-steps", "4",
             "--d-per-domain", "2", *TINY_FLAGS, "--out", str(parent))
    assert r.returncode == 0, r.stderr
    p = resolve_parent(str(parent))
    inherited = continue_config(p, ["synthetic:rings"], {})
    assert inherited.train.steps_for(1) == 4  # the parent's schedule for a later domain
    alone = continue_config(p, ["synthetic:rings"], {"steps_per_domain": 7})
    assert alone.train.steps_for(1) == 7  # --steps-per-domain alone is what the user asked for
    both = continue_config(p, ["synthetic:rings"], {"steps_per_domain": 7, "later_domain_steps": 9})
    assert both.train.steps_for(1) == 9


def test_a_negative_value_is_one_line_and_exit_2(tmp_path):
    r = lgen("train", "--domains", "synthetic:bars,synthetic:rings", "--later-domain-steps", "-1", *TINY_FLAGS,
             "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "later-domain-steps" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_the_report_says_the_schedule():
    t = {"domains": ["mnist", "fashion-mnist"], "steps_per_domain": 8000}
    assert steps_text(t) == "8000 steps per domain"  # metrics.json from before the option
    assert steps_text({**t, "later_domain_steps": 12000}) == "8000 steps for the first domain, 12000 for each later one"
    assert steps_text({**t, "domains": ["mnist"], "later_domain_steps": 12000}) == "8000 steps per domain"
