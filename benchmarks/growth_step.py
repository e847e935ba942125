"""Step time of a continuation under each growth, as a ratio measured in one run.

    python benchmarks/growth_step.py [--steps 20] [--rounds 3] [--precision fp32|bf16|auto] [--out FILE]

The embedded model (mnist-fashion) continued onto animal-mnist, as `lgen train --from mnist-fashion
--domains animal-mnist` starts it: one trainer per growth, built once, then rounds of `--steps`
generator steps taken in turn (replay, adapters, replay, ...), so both meet the same machine
state. Prints (and writes) seconds per step of each and adapters / replay per round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from trees import cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from lifelong_gen.bundle.lineage import continue_config, resolve_parent
    from lifelong_gen.train.domains import load_domain
    from lifelong_gen.train.trainer import Trainer

    parent = resolve_parent("mnist-fashion")
    data = [load_domain("animal-mnist", 1, 28)]
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for growth in ("replay", "adapters"):
            run = continue_config(parent, ["animal-mnist"], {"growth": growth, "precision": args.precision})
            t = Trainer(run, Path(tmp) / growth, data=data, progress=False, parent=parent.path)
            t.enter_phase(t.phases[0])
            t.train_step(t.phases[0])  # warm-up
            trainers[growth] = t
        times = {g: [] for g in trainers}
        for _ in range(args.rounds):
            for growth, t in trainers.items():
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    t.train_step(t.phases[0])
                times[growth].append((time.perf_counter() - t0) / args.steps)
        precision = trainers["replay"].tc.precision
    ratios = [a / r for a, r in zip(times["adapters"], times["replay"])]
    result = {"machine": cpu(), "precision": precision, "batch_size": trainers["replay"].tc.batch_size,
              "steps_per_round": args.steps, "sec_per_step": times, "adapters_over_replay": ratios,
              "median_ratio": statistics.median(ratios), "torch": torch.__version__}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
