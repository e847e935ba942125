"""Seconds per generator step (n_critic critic steps + one G/S step) on this machine.

Usage: python benchmarks/step_time.py [--resolution 28|64] [--steps N] [--batch-size B] [--set key=value ...]
Measures the real Trainer.train_step on a synthetic domain of the right shape, after
warm-up steps, with replay active (the second domain's cost, the more expensive one).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=28)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--set", nargs="*", default=[], help="extra settings key=value (ints/floats)")
    args = ap.parse_args()

    from lifelong_gen.config import resolve_run_config
    from lifelong_gen.train.domains import load_domain
    from lifelong_gen.train.trainer import Trainer

    kind = "synthetic" if args.resolution == 28 else "synthetic64"
    settings = {"domains": [f"{kind}:bars", f"{kind}:rings"], "batch_size": args.batch_size,
                "steps_per_domain": args.steps + args.warmup}
    for item in args.set:
        k, v = item.split("=")
        settings[k] = float(v) if "." in v else int(v)
    run = resolve_run_config(settings)
    data = [load_domain(s, run.model.img_channels, run.model.img_resolution) for s in run.train.domains]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(run, tmp, data=data, progress=False)
        # Replay on: freeze a snapshot as at the end of domain 1 and time domain 2.
        trainer.advance_domain(trainer.phases[0])
        phase = trainer.phases[1]
        for _ in range(args.warmup):
            trainer.train_step(phase)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step(phase)
        sec = (time.perf_counter() - t0) / args.steps
    print(json.dumps({"resolution": args.resolution, "batch_size": args.batch_size, "n_critic": run.train.n_critic,
                      "model": run.model.__dict__, "sec_per_generator_step": round(sec, 4),
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "machine": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()
