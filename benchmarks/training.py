"""Training speed: generator steps/s and achieved GFLOP/s against a matmul peak measured in the same run.

Usage: python benchmarks/training.py [--resolutions 28,64] [--steps N] [--rounds R] [--batch-size B]
                                     [--out benchmarks/training.json]

For each resolution (28x28: the InfoGAN-size nets, g_width 64, fc_width 1024; 64x64:
the default 64x64 nets) and each precision (fp32; bf16, the trainer's path, with
the gradient penalty's critic forward under autocast and its norm in fp32; bf16
with the penalty entirely in fp32, for the comparison), times the real `Trainer.train_step` of the second domain
(replay on: the more expensive step), alternating the variants for several rounds and
keeping each one's best rate, so background load hits all alike.

FLOPs per generator step come from torch.utils.flop_counter.FlopCounterMode around one
train_step: it counts the matmul-like aten ops (mm/addmm/bmm, convolution and
convolution_backward) dispatched in forward, backward AND the gradient penalty's double
backward (create_graph=True dispatches real convolution ops, so they are seen), at
2 FLOPs per multiply-add. Elementwise ops (BatchNorm, activations, Adam, EMA) are not
counted, so "achieved GFLOP/s" is a lower bound of the work done. The peak is the best
rate of a 2048x2048 @ 2048x2048 matmul in fp32 and in bf16, with the same threads.
Writes JSON with a machine description and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from sampling import cpu_model  # noqa: E402


class GlobalFlopCounter(FlopCounterMode):
    """FlopCounterMode without its per-module attribution.

    FlopCounterMode's ModuleTracker puts backward hooks on module inputs, and those hooks
    raise inside torch.autograd.grad ("A leaf node was passed to _will_engine_execute_node
    ... autograd.grad()"), which the gradient penalty calls. Only the total is needed here,
    so the dispatch-mode counter (private class, torch 2.x) runs alone, everything under "Global".
    """

    def __enter__(self):
        from torch.utils.flop_counter import _FlopCounterMode

        self.flop_counts.clear()
        self.mode = _FlopCounterMode(self)
        self.mode.__enter__()
        return self

    def __exit__(self, *args):
        out = self.mode.__exit__(*args)
        self.mode = None
        return out


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 1.0) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = 0.0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def make_trainer(resolution: int, precision: str, batch_size: int, tmp: str, overrides: dict):
    from lifelong_gen.config import resolve_run_config
    from lifelong_gen.train.domains import load_domain
    from lifelong_gen.train.trainer import Trainer

    kind = "synthetic" if resolution == 28 else "synthetic64"
    settings = {"domains": [f"{kind}:bars", f"{kind}:rings"], "batch_size": batch_size, "precision": precision,
                **({"g_width": 64, "fc_width": 1024} if resolution == 28 else {}), **overrides}
    run = resolve_run_config(settings)
    data = [load_domain(s, run.model.img_channels, run.model.img_resolution) for s in run.train.domains]
    trainer = Trainer(run, Path(tmp) / f"{resolution}-{precision}", data=data, progress=False)
    trainer.advance_domain(trainer.phases[0])  # replay on: time domain 2
    return trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", default="28,64")
    ap.add_argument("--steps", type=int, default=3, help="generator steps per timing round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--set", nargs="*", default=[], help="extra settings key=value (ints/floats)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("training.json"))
    args = ap.parse_args()
    overrides = {k: (float(v) if "." in v else int(v)) for k, v in (s.split("=") for s in args.set)}

    load_before = os.getloadavg()
    peak = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for res in (int(r) for r in args.resolutions.split(",")):
            variants = {"fp32": make_trainer(res, "fp32", args.batch_size, tmp, overrides),
                        "bf16": make_trainer(res, "bf16", args.batch_size, tmp, overrides),
                        "bf16_gp_fp32": make_trainer(res, "bf16", args.batch_size, tmp, overrides)}
            variants["bf16_gp_fp32"].gp_autocast = False  # the alternative: the penalty entirely in fp32
            phase = variants["fp32"].phases[1]
            with GlobalFlopCounter(display=False) as counter:
                variants["fp32"].train_step(phase)
            flops = counter.get_total_flops()

            def step(name: str) -> None:
                variants[name].train_step(phase)

            for name in variants:  # warm-up (oneDNN primitive caches)
                step(name)
            rates: dict[str, list[float]] = {k: [] for k in variants}
            for _ in range(args.rounds):
                for name in variants:
                    t0 = time.perf_counter()
                    for _ in range(args.steps):
                        step(name)
                    rates[name].append(args.steps / (time.perf_counter() - t0))
            best = {k: max(v) for k, v in rates.items()}
            row = {"resolution": res, "batch_size": args.batch_size, "n_critic": variants["fp32"].tc.n_critic,
                   "model": variants["fp32"].cfg.__dict__, "gflop_per_generator_step": round(flops / 1e9, 3),
                   "generator_steps_per_s": {k: round(v, 3) for k, v in best.items()},
                   "achieved_gflops": {k: round(v * flops / 1e9, 1) for k, v in best.items()},
                   "fraction_of_fp32_matmul_peak": {k: round(v * flops / 1e9 / peak["fp32"], 3) for k, v in best.items()},
                   "fraction_of_bf16_matmul_peak": {k: round(v * flops / 1e9 / peak["bf16"], 3)
                                                    for k, v in best.items() if k != "fp32"},
                   "bf16_over_fp32": round(best["bf16"] / best["fp32"], 3),
                   "bf16_gp_fp32_over_fp32": round(best["bf16_gp_fp32"] / best["fp32"], 3),
                   "all_rounds": {k: [round(x, 3) for x in v] for k, v in rates.items()}}
            results.append(row)
            print(f"{res}x{res}: {flops / 1e9:.2f} GFLOP/step; steps/s " +
                  ", ".join(f"{k} {v:.3f} ({v * flops / 1e9:.0f} GFLOP/s, {v * flops / 1e9 / peak['fp32']:.0%} of fp32 peak)"
                            for k, v in best.items()) + f"; bf16/fp32 {row['bf16_over_fp32']:.2f}x", flush=True)

    report = {
        "matmul_2048_peak_gflops": {k: round(v, 1) for k, v in peak.items()},
        "results": results,
        "flop_count": "FlopCounterMode over one train_step (n_critic critic steps incl. gradient-penalty double "
                      "backward, one G+S step): matmul/conv forward and backward ops only, 2 FLOPs per MAC",
        "machine": {"cpu": cpu_model(), "threads": torch.get_num_threads(), "os": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(f"matmul 2048 peak: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s; "
          f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
