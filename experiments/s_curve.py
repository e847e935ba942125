"""S's clustering of real test images along a training run: does it rise, settle or decay with steps?

`python experiments/s_curve.py --domains mnist --steps 8000 --every 500 --seed 0 --out exp/curve-mnist-s0`
trains the reference preset (`--preset mnist-fashion`'s settings) on the given domains and,
every N generator steps, scores S's argmax d on each learned domain's real test images
(Hungarian accuracy and NMI, as `lgen evaluate`), one JSON line per point in OUT/curve.jsonl.
Extra settings: `--set name=value` (config field names, e.g. `--set s_overcluster_dim=50`).

The probe only reads S under no_grad in eval mode (BatchNorm then neither uses nor updates
batch statistics) and draws nothing from the run's random stream, so the run trains exactly as
`lgen train` would; its last point is what `lgen evaluate` reports for the finished bundle.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lifelong_gen.config import resolve_run_config
from lifelong_gen.eval.clustering import clustering_scores
from lifelong_gen.presets import PRESETS
from lifelong_gen.train.callbacks import Callback
from lifelong_gen.train.domains import load_domain, to_float
from lifelong_gen.train.trainer import Trainer


class SCurve(Callback):
    """Every `every` steps: S's clustering scores on the test images of each domain learned so far."""

    def __init__(self, data, every: int, path: Path):
        self.data, self.every, self.path = data, every, path
        self.t0 = time.time()

    def after_step(self, trainer, phase, losses):
        if trainer.step % self.every:
            return
        S = trainer.S
        was_training = S.training
        S.eval()
        row = {"domain": phase.name, "step": trainer.step, "global_step": trainer.global_step,
               "minutes": (time.time() - self.t0) / 60}
        with torch.no_grad():
            for k, d in enumerate(self.data[:phase.index + 1]):
                pred = torch.cat([S(to_float(d.test_images[i:i + 500]))[0].argmax(1)
                                  for i in range(0, d.test_images.shape[0], 500)]).numpy()
                scores = clustering_scores(pred, d.test_labels.numpy())
                row[f"{d.spec}_acc"], row[f"{d.spec}_nmi"] = scores["accuracy"], scores["nmi"]
        S.train(was_training)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", default="mnist")
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", action="append", default=[], help="name=value: a config field over the preset's")
    args = ap.parse_args()
    settings = {k: v for k, v in PRESETS["mnist-fashion"].items() if k != "quick"}
    settings.update(domains=args.domains, steps_per_domain=args.steps, seed=args.seed, download=False)
    for item in args.set:
        name, value = item.split("=", 1)
        settings[name] = json.loads(value)
    run = resolve_run_config(settings)
    data = [load_domain(s, run.model.img_channels, run.model.img_resolution, download=False)
            for s in run.train.domains]
    args.out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(run, args.out, data=data, progress=False)
    trainer.callbacks.append(SCurve(data, args.every, args.out / "curve.jsonl"))
    trainer.train()


if __name__ == "__main__":
    main()
