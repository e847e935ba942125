"""Seeds side by side in one process (`lgen train --seeds`) against the same seeds one after the other.

Usage: python benchmarks/seeds.py [--counts 1,2,4] [--steps 30] [--warmup 2] [--rounds 2] [--out FILE]
           [--device cuda [--cuda-graph]]

On a GPU (`--device cuda`, scripts/gpu_check.sh) each worker queues on a CUDA stream of its own, the
times include a final synchronisation, and the report adds ms per model-step (wall / (N x steps));
`--cuda-graph` runs each seed's step as one CUDA graph (train/cuda_graph.py), warmed up and captured
in the warm-up steps (give `--warmup` >= 4 with it).

For N seeds of the reference preset (mnist-fashion networks and settings, replay on: the second
domain's step, on synthetic 28x28 domains, as benchmarks/cpu_regression.py), times `--steps`
generator steps (`Trainer.train_step`) of every seed two ways, in one process:

- sequential: each seed in turn in the main thread at torch's default intra-op threads, what N
  separate `lgen train --seed K` runs one after the other do;
- seeds: train/seeds.py's workers (`run_in_workers`) with its thread layout (cpu_threads.py:
  min(N, cores) seeds at once, the cores shared among them), what `lgen train --seeds` does.

Each seed is warmed up first (`--warmup` steps, outside the timing: the neighbour tables are
mined at a phase's first step). The two ways alternate within each round, their order swapping
from round to round, so both see the same machine load. Reports per N and way the median over
rounds of images/s in all and per model (batch size x generator steps / s), and seeds/sequential.
Writes benchmarks/seeds.json with the machine (lscpu model, bf16 instructions, torch, threads,
load average before and after) and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from trees import cpu

from lifelong_gen.config import preset_settings, resolve_run_config
from lifelong_gen.train.cpu_threads import intra_op_threads, thread_layout
from lifelong_gen.train.cuda_graph import GraphedStep
from lifelong_gen.train.domains import load_domain
from lifelong_gen.train.process import StopFlag
from lifelong_gen.train.seeds import run_in_workers
from lifelong_gen.train.trainer import Trainer


def machine() -> dict:
    info = cpu()
    return {"cpu": info["model"], "avx512_bf16": info["avx512_bf16"], "cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_cpu_capability": info["torch_cpu_capability"],
            "threads": torch.get_num_threads(), "python": platform.python_version()}


STEP_FUNCTIONS: dict[int, object] = {}  # id(trainer) -> its step (a GraphedStep keeps its graph)


def trainers(n: int, tmp: Path, data, device: str = "cpu", cuda_graph: bool = False) -> list[Trainer]:
    settings = preset_settings("mnist-fashion")
    settings["domains"] = ["synthetic:bars", "synthetic:rings"]
    out = []
    for seed in range(n):
        run = resolve_run_config({**settings, "seed": seed, "cuda_graph": cuda_graph})
        t = Trainer(run, tmp / f"seed-{seed}", data=data, progress=False, device=device)
        t.advance_domain(t.phases[0])  # replay on: the second domain's step
        phase = t.phases[1]
        STEP_FUNCTIONS[id(t)] = GraphedStep(t, phase) if cuda_graph else (lambda t=t, phase=phase: t.train_step(phase))
        out.append(t)
    return out


def steps_of(trainer: Trainer, steps: int):
    step = STEP_FUNCTIONS[id(trainer)]
    return lambda: [step() for _ in range(steps)]


def sync(ts: list[Trainer]) -> None:
    if ts and ts[0].device.type == "cuda":
        torch.cuda.synchronize(ts[0].device)


def sequential(ts: list[Trainer], steps: int) -> float:
    sync(ts)
    t0 = time.perf_counter()
    for t in ts:
        steps_of(t, steps)()
    sync(ts)
    return time.perf_counter() - t0


def side_by_side(ts: list[Trainer], steps: int, available: int) -> tuple[float, dict]:
    layout = thread_layout(len(ts), None, available)
    with intra_op_threads(layout.threads_per_run):
        sync(ts)
        t0 = time.perf_counter()
        results = run_in_workers([(k, steps_of(t, steps)) for k, t in enumerate(ts)], layout.workers, StopFlag(),
                                 ts[0].device)
        sync(ts)
        wall = time.perf_counter() - t0
    for r in results:
        if r.error is not None:
            raise r.error
    return wall, {"workers": layout.workers, "threads_per_run": layout.threads_per_run}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1,2,4")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cuda-graph", action="store_true")
    args = ap.parse_args()
    args.out = args.out or Path(__file__).with_name("seeds.json" if args.device == "cpu" else f"seeds-{args.device}.json")
    available = torch.get_num_threads()
    load_before = [round(x, 2) for x in os.getloadavg()]
    data = [load_domain(s, 1, 28) for s in ("synthetic:bars", "synthetic:rings")]
    counts = [int(c) for c in args.counts.split(",")]
    walls: dict[int, dict[str, list[float]]] = {n: {"sequential": [], "seeds": []} for n in counts}
    layouts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            ts = trainers(n, Path(tmp) / f"n{n}", data, args.device, args.cuda_graph)
            batch = ts[0].tc.batch_size
            for t in ts:
                steps_of(t, args.warmup)()
            for r in range(args.rounds):
                for way in (("sequential", "seeds") if r % 2 == 0 else ("seeds", "sequential")):
                    if way == "sequential":
                        walls[n][way].append(sequential(ts, args.steps))
                    else:
                        wall, layouts[n] = side_by_side(ts, args.steps, available)
                        walls[n][way].append(wall)
                    print(n, way, round(walls[n][way][-1], 2), "s", flush=True)
            precision = ts[0].tc.precision
            del ts
    results = {}
    for n in counts:
        images = n * args.steps * batch
        row = {}
        for way, ws in walls[n].items():
            wall = statistics.median(ws)
            row[way] = {"wall_s": [round(w, 2) for w in ws], "images_per_s": round(images / wall, 1),
                        "images_per_s_per_model": round(images / wall / n, 1),
                        "ms_per_model_step": round(wall / (n * args.steps) * 1e3, 3)}
        row["seeds"].update(layouts[n])
        row["sequential"].update({"workers": 1, "threads_per_run": available})
        row["seeds_over_sequential"] = round(row["seeds"]["images_per_s"] / row["sequential"]["images_per_s"], 2)
        results[str(n)] = row
    report = {
        "what": "images/s (batch x generator steps / s) of N reference-preset seeds: one after the other at the "
                "default threads, against side by side in one process (lgen train --seeds)",
        "preset": "mnist-fashion (synthetic 28x28 domains, replay on: domain 2's step)", "precision": precision,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(), "cuda_graph": args.cuda_graph,
        "batch_size": batch, "steps_timed_per_seed": args.steps, "warmup_steps": args.warmup, "rounds": args.rounds,
        "results": results,
        "machine": {**machine(), "load_average_before": load_before,
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
