"""The growth study's table from the evaluated runs of experiments/growth.sh (each run's metrics.json).

    python experiments/growth_table.py [--runs runs/growth] [--jsonl experiments/growth-results.jsonl] \
        > experiments/growth-results.md

Per setting, mean ± sd over seeds: each old domain's FID after ÷ before and its S clustering and
d-purity before -> after (the forgetting matrix's row of the parent against its last row, same
classifier), the new domain's FID, d-purity, S clustering, classes present and new d's drawing
mostly another domain, G parameters added, and seconds per step (median of the logged windows).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

from safetensors import safe_open

OLD, NEW = ("mnist", "fashion-mnist"), "animal-mnist"


def parameters(bundle: Path) -> int:
    with safe_open(str(bundle / "generator_ema.safetensors"), "pt") as f:
        total = 0
        for k in f.keys():
            if "running" not in k and "num_batches" not in k:
                n = 1
                for s in f.get_slice(k).get_shape():
                    n *= s
                total += n
        return total


def summary(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    doms, f = m["training"]["domains"], m["forgetting"]
    k = m["training"]["inherited_domains"]
    out = {}
    for j, d in enumerate(doms[:k]):
        after = f["fid"][-1][j]  # None where the old domain has no samples left (no replay)
        out[f"{d} FID after/before"] = None if after is None else after / f["fid"][k - 1][j]
        out[f"{d} S clustering before"] = f["cluster_accuracy"][k - 1][j]
        out[f"{d} S clustering after"] = f["cluster_accuracy"][-1][j]
        if f.get("d_purity") and f["d_purity"][-1][j] is not None:
            out[f"{d} d-purity before"] = f["d_purity"][k - 1][j]
            out[f"{d} d-purity after"] = f["d_purity"][-1][j]
    new = m["per_domain"][NEW]
    per_d = m["interpretability"]["d_purity"]["per_d"]
    size = m["training"]["d_per_domain"]
    mine = per_d[k * size:(k + 1) * size]
    out[f"{NEW} FID"] = new["fid"]
    out[f"{NEW} d-purity"] = statistics.mean(r["purity"] for r in mine)
    out[f"{NEW} S clustering"] = (new.get("clustering") or {}).get("accuracy")
    out[f"{NEW} classes present"] = new["covered_classes"]
    out[f"{NEW} share"] = new["sample_share"]
    out["new d's mostly another domain"] = sum(r["domain"] != NEW for r in mine)
    out["G parameters added"] = parameters(run) - parameters(run / "snapshots" / f"domain-{k}")
    steps = [json.loads(line)["sec_per_step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    out["s/step (median window)"] = statistics.median(steps)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs/growth")
    ap.add_argument("--jsonl", type=Path, default=None, help="also write one JSON line per run")
    args = ap.parse_args()
    root = Path(args.runs)
    by_setting: dict[str, list[dict]] = defaultdict(list)
    lines = []
    for run in sorted(root.glob("*-s[0-9]")):
        if (run / "metrics.json").is_file():
            setting, seed = re.sub(r"-s\d+$", "", run.name), int(run.name.rsplit("-s", 1)[1])
            by_setting[setting].append(summary(run))
            flags = json.loads((run / "config.json").read_text())["train"]
            lines.append(json.dumps({"setting": setting, "seed": seed, "growth": flags.get("growth"),
                                     **by_setting[setting][-1]}))
    if args.jsonl:
        args.jsonl.write_text("\n".join(lines) + "\n")
    order = [s for s in ("replay", "align", "adapters-r0", "adapters-r16", "adapters-r16-sfrozen", "alone") if s in by_setting]
    order += [s for s in by_setting if s not in order]
    keys = list(dict.fromkeys(k for s in order for r in by_setting[s] for k in r))
    print("| metric | " + " | ".join(f"{s} (n={len(by_setting[s])})" for s in order) + " |")
    print("|---" * (len(order) + 1) + "|")
    for key in keys:
        cells = []
        for s in order:
            vals = [r[key] for r in by_setting[s] if r.get(key) is not None]
            if not vals:
                cells.append("–")
            elif isinstance(vals[0], int) and all(isinstance(v, int) for v in vals) and "parameters" in key:
                cells.append(f"{statistics.mean(vals):,.0f}")
            else:
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.mean(vals):.3f} ± {sd:.3f}")
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
