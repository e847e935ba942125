"""CPU step time of this tree against an earlier commit, measured in one run (issue 14).

Usage: python benchmarks/cpu_regression.py [--ref 7b64fee] [--rounds 5] [--steps 10]

Checks out `--ref` into a temporary git worktree, then alternates the two trees round by
round, each round a fresh interpreter timing `Trainer.train_step` of the reference preset
(mnist-fashion networks and settings, replay on, synthetic 28x28 domains), so both see
the same machine load. Reports the median ms per step of each and the ratio
current / ref (< 1: faster). Writes benchmarks/cpu_regression.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

from trees import ROOT, run_snippet, worktree

# After trees.PRESET_STEP: warm up, then time the steps.
TIMER = r"""
import time
steps, warmup = int(sys.argv[2]), int(sys.argv[3])
for _ in range(warmup):
    t.train_step(phase)
t0 = time.perf_counter()
for _ in range(steps):
    t.train_step(phase)
print(json.dumps({"ms": (time.perf_counter() - t0) / steps * 1e3}))
"""


def time_tree(tree: Path, steps: int, warmup: int) -> float:
    return run_snippet(tree, TIMER, {}, str(steps), str(warmup))["ms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="7b64fee")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("cpu_regression.json"))
    args = ap.parse_args()
    with worktree(args.ref) as ref_tree:
        times: dict[str, list[float]] = {"current": [], "ref": []}
        for i in range(args.rounds):
            order = ("current", "ref") if i % 2 == 0 else ("ref", "current")
            for name in order:
                times[name].append(time_tree(ROOT if name == "current" else ref_tree, args.steps, args.warmup))
            print(f"round {i + 1}: current {times['current'][-1]:.1f} ms, ref {times['ref'][-1]:.1f} ms", flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    report = {"ref": args.ref, "median_ms_per_generator_step": {k: round(v, 2) for k, v in median.items()},
              "current_over_ref": round(median["current"] / median["ref"], 3),
              "all_rounds_ms": {k: [round(x, 2) for x in v] for k, v in times.items()},
              "setup": "mnist-fashion preset networks and settings, synthetic 28x28 domains, replay on, CPU",
              "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                          "threads_env": os.environ.get("OMP_NUM_THREADS"), "python": platform.python_version(),
                          "load_average": [round(x, 2) for x in os.getloadavg()]},
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"current / ref = {report['current_over_ref']} (medians {median['current']:.1f} / {median['ref']:.1f} ms); "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
