"""Metrics along one training run: where S's clustering, d-purity and FID move, step by step.

    python experiments/trajectory.py --config runs/mnist-fashion --out exp/trajectory --every 1000

trains a run directory's config.json from scratch (the same run `lgen train` made: same seed,
same settings; `--set key=value` changes one setting) with a callback that, every `--every`
generator steps and at each domain's end, measures the EMA generator and S on the domains seen
so far with `lgen evaluate`'s own classifier and Evaluator:
- S's Hungarian accuracy on each domain's real test images, with the batch-norm statistics S has
  mid-domain (`_acc`) and with those a bundle written at that step would have (`_acc_recal`:
  a copy of S recalibrated as train/bn_recalibration.py does at a domain's end);
- the d-purity of each domain's d's (`--d-per-domain` blocks), drawn exactly as `lgen evaluate` draws it;
- FID per domain on `--num-samples` samples (the classifier's features, as `lgen evaluate`).
One JSON row per measurement goes to OUT/trajectory.jsonl as it comes; the run directory is OUT/run.

Why: the 2,000-step lifelong study protocol and the 8,000-step reference disagree on Fashion's
d-purity (seed 0: 0.83 against 0.70, experiments/fashion.md), so levers screened at 2,000 steps
may not hold at full length. This measures where along the run it changes.

The probe leaves the training as it is: it draws from its own generators inside
`torch.random.fork_rng` with numpy's state restored, and puts S in eval mode only while it
measures (S's batch-norm statistics must not see test images). So the last row should equal
`lgen evaluate` of the run `lgen train` made with the same config; the script's log says how far it does.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lifelong_gen.config import read_run_config, resolve_run_config
from lifelong_gen.eval.classifier import load_or_train
from lifelong_gen.eval.metrics import Evaluator
from lifelong_gen.train.bn_recalibration import recalibrate_s
from lifelong_gen.train.callbacks import Callback
from lifelong_gen.train.domains import load_domain
from lifelong_gen.train.trainer import Trainer

# lgen evaluate's seeds (registry.run_metrics: evaluator seed 0 x 1000 + each metric's offset).
QUALITY_SEED, D_PURITY_SEED = 0, 7


class TrajectoryProbe(Callback):
    """Every `every` steps and at each domain's end: one row of metrics, appended to `path`."""

    def __init__(self, ev: Evaluator, path: Path, every: int, d_per_domain: int):
        self.ev, self.path, self.every, self.n = ev, path, every, d_per_domain

    def after_step(self, trainer, phase, losses):
        if trainer.step % self.every == 0 and trainer.step < phase.steps:
            self.measure(trainer, phase, trainer.step)

    def after_domain(self, trainer, phase):
        self.measure(trainer, phase, phase.steps)

    @torch.no_grad()
    def measure(self, trainer: Trainer, phase, step: int) -> None:
        t0 = time.perf_counter()
        seen = list(range(phase.index + 1))
        S, was_training = trainer.S, trainer.S.training
        np_state = np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            S.eval()
            try:
                clustering = self.ev.s_clustering(S)["per_domain"]
                recal = copy.deepcopy(S)
                recalibrated = recalibrate_s(trainer, phase, recal)
                recal.eval()
                clustering_recal = self.ev.s_clustering(recal)["per_domain"] if recalibrated else None
                purity = self.ev.d_purity(trainer.G_ema, phase.d_slots, D_PURITY_SEED)["per_d"]
                quality = self.ev.evaluate_generator(trainer.G_ema, phase.d_slots, seen, QUALITY_SEED)["per_domain"]
            finally:
                S.train(was_training)
                np.random.set_state(np_state)
        row = {"domain": phase.name, "domain_index": phase.index, "step": step, "global_step": trainer.global_step}
        for k in seen:
            spec = self.ev.data[k].spec
            row[f"{spec}_acc"] = clustering[spec]["accuracy"]
            if clustering_recal is not None:
                row[f"{spec}_acc_recal"] = clustering_recal[spec]["accuracy"]
            row[f"{spec}_purity"] = float(np.mean([r["purity"] for r in purity[k * self.n:(k + 1) * self.n]]))
            row[f"{spec}_fid"] = quality[spec]["fid"]
            row[f"{spec}_share"] = quality[spec]["sample_share"]
        row["probe_s"] = round(time.perf_counter() - t0, 1)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, required=True, help="a run directory whose config.json to train")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--num-samples", type=int, default=2000)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change one training setting (JSON value), e.g. --set steps_per_domain=4000")
    args = ap.parse_args()

    run = read_run_config(args.config)
    if args.set:
        settings = {**run.train.__dict__, **{k: v for k, v in run.model.__dict__.items() if k != "d_dim"}}
        for item in args.set:
            key, _, text = item.partition("=")
            settings[key] = _value(text)
        run = resolve_run_config(settings)
    if run.train.d_per_domain is None:
        sys.exit("trajectory.py: the config needs --d-per-domain (d-purity is reported per domain's d's)")
    args.out.mkdir(parents=True, exist_ok=True)
    data = [load_domain(s, run.model.img_channels, run.model.img_resolution, run.train.data_root, run.train.download)
            for s in run.train.domains]
    classifier, space, info, path = load_or_train(data)
    ev = Evaluator(data, classifier, space, path, info, args.num_samples, 0)
    probe = TrajectoryProbe(ev, args.out / "trajectory.jsonl", args.every, run.train.d_per_domain)
    (args.out / "settings.json").write_text(json.dumps({"config": str(args.config), "set": args.set}, indent=2))
    Trainer(run, args.out / "run", data=data, progress=False, callbacks=[probe]).train()


if __name__ == "__main__":
    main()
