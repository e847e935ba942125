"""The training log as a callback (train/metrics_log.py): lines at log_every and a domain's end, its
checkpointed state, and the truncation of lines a resume re-runs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from lifelong_gen.train import distributed
from lifelong_gen.train.metrics_log import MetricsLog
from lifelong_gen.train.phase import Phase


def _phase(steps: int) -> Phase:
    return Phase(index=0, name="synthetic:bars", images=torch.zeros(1, 1, 2, 2, dtype=torch.uint8), steps=steps,
                 d_slots=2, replay_ratio=0.0)


def _steps(log: MetricsLog, trainer, phase: Phase, values: list[float]) -> None:
    for v in values:
        trainer.step += 1
        trainer.global_step += 1
        log.after_step(trainer, phase, {"loss_g": torch.tensor(v), "gp": torch.tensor(2 * v)})


def test_a_line_every_log_every_steps_and_at_the_domains_end(tmp_path):
    log = MetricsLog(tmp_path, log_every=2, dist=distributed.current())
    trainer, phase = SimpleNamespace(step=0, global_step=0), _phase(steps=5)
    log.before_domain(trainer, phase)
    _steps(log, trainer, phase, [1.0, 3.0, 5.0, 7.0, 9.0])
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss_g"], r["gp"]) for r in lines] == [(2, 2.0, 4.0), (4, 6.0, 12.0), (5, 9.0, 18.0)]
    assert all(r["sec_per_step"] > 0 and r["domain"] == "synthetic:bars" for r in lines)
    assert log.offset == (tmp_path / "metrics.jsonl").stat().st_size and len(log.window) == 0


def test_its_state_restores_the_window_and_cuts_the_lines_of_re_run_steps(tmp_path):
    log = MetricsLog(tmp_path, log_every=2, dist=distributed.current())
    trainer, phase = SimpleNamespace(step=0, global_step=0), _phase(steps=10)
    log.before_domain(trainer, phase)
    _steps(log, trainer, phase, [1.0, 3.0, 5.0])  # one line (step 2), step 3 waits in the window
    state = json.loads(json.dumps(log.state()))  # as a checkpoint's state.json holds it
    assert state["window"] == [{"loss_g": 5.0, "gp": 10.0}]
    _steps(log, trainer, phase, [7.0, 9.0, 11.0])  # a line at step 4 and 6, then a kill -9
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3

    resumed = MetricsLog(tmp_path, log_every=2, dist=distributed.current())
    resumed.restore(state)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1  # lines after the checkpoint are cut
    trainer.step, trainer.global_step = 3, 3
    resumed.before_domain(trainer, phase)
    _steps(resumed, trainer, phase, [7.0])
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert (last["step"], last["loss_g"]) == (4, 6.0)  # the same average as the uninterrupted run's


def test_a_fresh_start_discards_an_earlier_attempts_lines(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 5}\n')
    MetricsLog(tmp_path, log_every=2, dist=distributed.current()).discard()
    assert not (tmp_path / "metrics.jsonl").exists()
