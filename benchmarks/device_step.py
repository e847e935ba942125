"""Training speed of one device: eager vs compiled vs graphed vs the whole step in one CUDA graph, in one run.

Usage: python benchmarks/device_step.py --device cuda [--preset mnist-fashion] [--quick]
           [--variants eager,compiled,graphed] [--steps 50] [--warmup 15] [--out FILE]

Times the real `Trainer.train_step` (n_critic critic steps + one G/S step, replay on: the
second domain's cost) with the preset's networks and settings, on synthetic domains of
the preset's shape (speed does not depend on the pixels). Variants:

- eager:    `--compile off` (the default path);
- compiled: `--compile default` (Inductor kernels; the gradient penalty's critic stays eager);
- graphed:  `--compile reduce-overhead` (also CUDA graphs; on a CPU the same as compiled, so skipped);
- graphed-fastest: the same with `--cuda-fastest` (cuDNN's fastest, nondeterministic kernels; CUDA only);
- whole-graph: `--cuda-graph`, the whole step captured in one CUDA graph (train/cuda_graph.py; CUDA only),
  timed after its warm-up and capture; whole-graph-fastest: the same with `--cuda-fastest`.

Reports per variant: ms per generator step, images/s (batch_size x generator steps/s),
the warm-up's seconds (compilation), and on CUDA from torch.profiler over
`--profile-steps` steps: the GPU-busy share (kernel time / wall time), kernel
launches per step and the 25 operators with the most host time per step; plus the
preset's estimated wall time (steps x ms/step + warm-up).
Writes JSON with the device name; `benchmarks/device_step-<device>.json` by default.
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

# name -> (--compile, cuda_deterministic, --cuda-graph)
VARIANTS = {"eager": ("off", True, False), "compiled": ("default", True, False),
            "graphed": ("reduce-overhead", True, False), "graphed-fastest": ("reduce-overhead", False, False),
            "whole-graph": ("off", True, True), "whole-graph-fastest": ("off", False, True)}
LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaGraphLaunch")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_trainer(preset: str, quick: bool, variant: tuple[str, bool], device: str, tmp: str):
    from lifelong_gen.config import preset_settings, resolve_run_config
    from lifelong_gen.train.domains import load_domain
    from lifelong_gen.train.trainer import Trainer

    settings = preset_settings(preset, quick)
    shape = resolve_run_config(settings).model
    kind = "synthetic" if shape.img_resolution == 28 else "synthetic64"
    # The preset's settings on as many synthetic domains of its shape (same d_dim, same nets).
    settings.update(domains=[f"{kind}:{k}" for k in ("bars", "rings")][:len(settings["domains"])],
                    compile=variant[0], cuda_deterministic=variant[1], cuda_graph=variant[2])
    run = resolve_run_config(settings)
    data = [load_domain(s, run.model.img_channels, run.model.img_resolution) for s in run.train.domains]
    trainer = Trainer(run, Path(tmp) / "-".join(map(str, variant)), data=data, progress=False, device=device)
    trainer.advance_domain(trainer.phases[0])  # replay on: time domain 2
    return trainer


def step_function(trainer, phase):
    """What the training loop runs per step: the eager step, or --cuda-graph's GraphedStep."""
    from lifelong_gen.train.cuda_graph import GraphedStep

    if trainer.tc.cuda_graph:
        return GraphedStep(trainer, phase)
    return lambda: trainer.train_step(phase)


def profile(trainer, step, steps: int) -> dict:
    """GPU-busy share and kernel launches per step over `steps` steps (CUDA only)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    sync(trainer.device)
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync(trainer.device)
        wall_us = (time.perf_counter() - t0) * 1e6
    events = prof.events()
    kernel_us = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    launches = sum(1 for e in events if e.name in LAUNCHES)
    return {"gpu_busy_share": round(kernel_us / wall_us, 3), "kernel_ms_per_step": round(kernel_us / steps / 1e3, 3),
            "kernel_launches_per_step": round(launches / steps, 1), "top_host_ops": top_host_ops(prof, steps)}


def top_host_ops(prof, steps: int, n: int = 25) -> list[dict]:
    """The `n` operators with the most host (self CPU) time per step: where a host-bound step's time goes."""
    rows = sorted(prof.key_averages(), key=lambda r: r.self_cpu_time_total, reverse=True)[:n]
    return [{"op": r.key, "calls_per_step": round(r.count / steps, 1),
             "self_host_ms_per_step": round(r.self_cpu_time_total / steps / 1e3, 3),
             "device_ms_per_step": round(getattr(r, "device_time_total", 0.0) / steps / 1e3, 3)} for r in rows]


def write_report(args, device: torch.device, results: dict, tc) -> Path:
    """The JSON report of the variants measured so far (rewritten after each: a cut-off run keeps them)."""
    results = {name: dict(row) for name, row in results.items()}
    if "eager" in results:
        for name, row in results.items():
            row["speedup_over_eager"] = round(results["eager"]["ms_per_generator_step"] / row["ms_per_generator_step"], 2)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    report = {
        "device": args.device, "device_name": name, "preset": args.preset + (" --quick" if args.quick else ""),
        "batch_size": tc.batch_size, "n_critic": tc.n_critic,
        "steps_timed": args.steps, "warmup_steps": args.warmup, "variants": results,
        "machine": {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
                    "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    out = args.out or Path(__file__).with_name(f"device_step-{device.type}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--preset", default="mnist-fashion")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--profile-steps", type=int, default=20)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    device = torch.device(args.device)
    names = [v for v in args.variants.split(",") if not (("graph" in v) and device.type != "cuda")]

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            trainer = make_trainer(args.preset, args.quick, VARIANTS[name], args.device, tmp)
            tc = trainer.tc
            phase = trainer.phases[1]
            step = step_function(trainer, phase)
            t0 = time.perf_counter()
            for _ in range(args.warmup):
                step()
            sync(device)
            warmup_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            sync(device)
            ms = (time.perf_counter() - t0) / args.steps * 1e3
            row = {"compile": VARIANTS[name][0], "cuda_deterministic": VARIANTS[name][1],
                   "cuda_graph": VARIANTS[name][2], "ms_per_generator_step": round(ms, 2),
                   "images_per_s": round(trainer.tc.batch_size * 1e3 / ms, 1), "warmup_s": round(warmup_s, 1)}
            total_steps = tc.joint_steps  # every domain's steps (the lifelong and the joint run alike)
            row["preset_minutes_est"] = round((total_steps * ms / 1e3 + warmup_s) / 60, 2)
            if device.type == "cuda":
                row.update(profile(trainer, step, args.profile_steps))
            results[name] = row
            print(name, json.dumps({k: v for k, v in row.items() if k != "top_host_ops"}), flush=True)
            write_report(args, device, results, tc)
            del trainer
    print(f"wrote {write_report(args, device, results, tc)}")


if __name__ == "__main__":
    main()
