"""Operators per generator step on the CPU, counted with torch.profiler, this tree against an earlier commit.

Usage: python benchmarks/step_ops.py [--ref COMMIT] [--steps 5] [--out benchmarks/step_ops.json]

Counted at the preset's precision (`auto`: bf16 on a CPU with bf16 instructions) and at fp32 (a GPU's
and an AVX2-only CPU's).

Counts, for the reference preset's step (mnist-fashion networks and settings, synthetic 28x28
domains, replay on: the second domain's step, `Trainer.train_step`), every `aten::` operator the
profiler records per generator step (nested ones included: an `aten::linear` and the `aten::addmm`
under it count two), the ones that read a value back to the host (`aten::item`,
`aten::_local_scalar_dense`, `aten::nonzero`, `aten::multinomial`) and the most frequent
operators. `--ref` runs the same count in a temporary git worktree of that commit, so the
before/after figures come from one run on one machine. On a GPU each of these operators is at
least one kernel launch or host round trip, so the count is the step's launch budget.
Writes benchmarks/step_ops.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from trees import ROOT, cpu, run_snippet, worktree

# After trees.PRESET_STEP: profile the steps, count the operators.
COUNTER = r"""
import collections
from torch.profiler import ProfilerActivity, profile
steps = int(sys.argv[2])
for _ in range(3):
    t.train_step(phase)
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(steps):
        t.train_step(phase)
counts = collections.Counter(e.name for e in prof.events() if e.name.startswith("aten::"))
sync = ("aten::item", "aten::_local_scalar_dense", "aten::nonzero", "aten::multinomial")


def in_fused_adam_kernel(e):
    while e.cpu_parent is not None:
        e = e.cpu_parent
        if e.name == "aten::_fused_adam_":
            return True
    return False


outside = collections.Counter(e.name for e in prof.events() if e.name in sync and not in_fused_adam_kernel(e))
print(json.dumps({"aten_ops_per_step": sum(counts.values()) / steps,
                  "sync_ops_per_step": {k: counts[k] / steps for k in sync if counts[k]},
                  "sync_ops_per_step_outside_the_fused_adam_cpu_kernel": {k: v / steps for k, v in outside.items()},
                  "top_ops_per_step": {k: v / steps for k, v in counts.most_common(15)},
                  "precision": t.tc.precision, "batch_size": run.train.batch_size, "n_critic": run.train.n_critic}))
"""

PRECISIONS = ("auto", "fp32")  # the preset's (bf16 on a CPU with bf16 instructions), and the GPU's


def count_tree(tree: Path, steps: int) -> dict:
    """{precision: counts} for the tree."""
    return {precision: run_snippet(tree, COUNTER, {"precision": precision}, str(steps)) for precision in PRECISIONS}


def cpu_model() -> str:
    info = cpu()
    isa = "avx512_bf16" if info["avx512_bf16"] else "avx512f" if info["avx512f"] else "avx2"
    return f"{info['model']} ({isa})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", help="an earlier commit to count too")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("step_ops.json"))
    args = ap.parse_args()
    report: dict = {"current": count_tree(ROOT, args.steps)}
    if args.ref:
        with worktree(args.ref) as ref_tree:
            report["ref"] = {"commit": args.ref, **count_tree(ref_tree, args.steps)}
        report["current_over_ref"] = {p: round(report["current"][p]["aten_ops_per_step"]
                                               / report["ref"][p]["aten_ops_per_step"], 3) for p in PRECISIONS}
    import torch

    report.update(setup="mnist-fashion preset networks and settings, synthetic 28x28 domains, replay on, CPU",
                  machine={"cpu": cpu_model(), "cpus": os.cpu_count(), "torch": torch.__version__,
                           "python": platform.python_version()},
                  command=" ".join([Path(sys.executable).name, *sys.argv]))
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for p in PRECISIONS:
        ref = report.get("ref", {}).get(p, {}).get("aten_ops_per_step")
        print(f"{p} ({report['current'][p]['precision']}): {report['current'][p]['aten_ops_per_step']:.0f} aten ops per "
              f"generator step" + (f", ref {ref:.0f}: {report['current_over_ref'][p]}x" if ref else ""))


if __name__ == "__main__":
    main()
