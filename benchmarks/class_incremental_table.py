"""The 10-task class-incremental table from benchmarks/class_incremental.sh's two evaluated runs.

    python benchmarks/class_incremental_table.py [--runs runs/class-incremental]

Prints Markdown: per task, the final FID of the lifelong run and of the joint run of the same
nets and total budget (and their ratio), each task's share of samples against its fair share,
parameters added and seconds spent per task; then the forgetting matrix (FID of the snapshot
after each task on every task seen so far) and the d -> class table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open


def load(path: Path) -> dict:
    return json.loads((path / "metrics.json").read_text())


def g_parameters(bundle: Path) -> int:
    with safe_open(str(bundle / "generator_ema.safetensors"), "pt") as f:
        return sum(_numel(f.get_slice(k).get_shape()) for k in f.keys()
                   if "running" not in k and "num_batches" not in k)  # parameters, not statistics


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def parameters_per_task(bundle: Path, d_per_domain: int) -> int:
    """G parameters each later task owns: its slices of every adapter, its d columns of the input
    layer and of each conditional batch norm (a run from scratch allocates every task's at the start)."""
    config = json.loads((bundle / "config.json").read_text())["model"]
    groups = len(config["domain_groups"])
    if not groups:
        return 0
    with safe_open(str(bundle / "generator_ema.safetensors"), "pt") as f:
        adapters = sum(_numel(f.get_slice(k).get_shape()) for k in f.keys() if k.startswith("adapters."))
        rows = sum(f.get_slice(k).get_shape()[0] for k in f.keys()
                   if k == "fc.0.weight" or k.endswith((".gain.weight", ".bias.weight")))
    return adapters // groups + rows * d_per_domain


def seconds_per_task(run: Path) -> dict[int, float]:
    """Training seconds per task from metrics.jsonl (each logged window's mean step time x its steps)."""
    out: dict[int, float] = {}
    last: dict[int, int] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        k = r["domain_index"]
        steps = r["step"] - last.get(k, 0)
        last[k] = r["step"]
        out[k] = out.get(k, 0.0) + steps * r["sec_per_step"]
    return out


def fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs/class-incremental")
    root = Path(ap.parse_args().runs)
    life, joint = load(root / "lifelong"), load(root / "joint")
    tasks = life["training"]["domains"]
    fair = 1.0 / len(tasks)
    secs = seconds_per_task(root / "lifelong")
    total = g_parameters(root / "lifelong")
    per_task = parameters_per_task(root / "lifelong", life["training"]["d_per_domain"])
    print(f"Growth: {life['training'].get('growth')} (adapter rank {life['training'].get('adapter_rank')}); "
          f"{life['training']['steps_per_domain']} steps per task; G: {total:,} parameters.\n")
    print("| task | FID lifelong | FID joint | ratio | share (fair 0.10) | joint share | G parameters of its own | "
          "train s |")
    print("|---|---|---|---|---|---|---|---|")
    ratios, shares = [], []
    for k, t in enumerate(tasks):
        a, b = life["per_domain"][t]["fid"], joint["per_domain"][t]["fid"]
        share = life["per_domain"][t]["sample_share"]
        # No FID where the classifier attributes too few samples to the task: a miss, listed as such.
        ratio = a / b if a is not None and b is not None else None
        ratios.append(ratio)
        shares.append(share)
        print(f"| {t} | {fmt(a, 1)} | {fmt(b, 1)} | {fmt(ratio)} | {share:.3f} | "
              f"{joint['per_domain'][t]['sample_share']:.3f} | {per_task if k else 0:,} | {fmt(secs.get(k))} |")
    known = [r for r in ratios if r is not None]
    over = sum(r > 1.3 for r in known) + len(ratios) - len(known)
    print(f"\nTasks within 1.3x of the joint run's FID: {len(ratios) - over} of {len(ratios)} (worst measured "
          f"{max(known):.2f}, {len(ratios) - len(known)} without a FID); smallest share {min(shares):.3f} = "
          f"{min(shares) / fair:.2f} of the fair share (target ≥ 0.5). G after the first task: every weight "
          f"trained; each later task owns {per_task:,} parameters.\n")
    f = life.get("forgetting") or {}
    if f.get("fid"):
        print("Forgetting matrix (FID; row: the model after task i, column: task j):\n")
        print("| after \\ task | " + " | ".join(str(j + 1) for j in range(len(tasks))) + " |")
        print("|---" * (len(tasks) + 1) + "|")
        for i, row in enumerate(f["fid"]):
            print(f"| {i + 1} | " + " | ".join(fmt(v, 1) for v in row) + " |")
        print()
    print("d -> class (the classifier's majority class among each d's samples, and its share):\n")
    print("| d | task | class | purity |")
    print("|---|---|---|---|")
    for r in life["interpretability"]["d_purity"]["per_d"]:
        print(f"| {r['d']} | {r['domain']} | {r['name']} | {r['purity']:.2f} |")


if __name__ == "__main__":
    main()
