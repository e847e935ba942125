"""Issue 19's tables from the runs of experiments/continuation.sh (each run's metrics.json).

    python experiments/continuation_table.py [--runs runs] > experiments/continuation-results.md

Prints Markdown: the reference continuation against its targets (old domains' FID and S
accuracy before = the parent's row of the forgetting matrix, after = the last row, both on
the same evaluation classifier), the no-replay baseline, the critic-start comparison and the
continuation vs one run of all three domains.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

OLD, NEW = ("mnist", "fashion-mnist"), "animal-mnist"


def load(path: Path) -> dict | None:
    f = path / "metrics.json"
    return json.loads(f.read_text()) if f.is_file() else None


def fmt(v, digits=3):
    return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def summary(m: dict) -> dict:
    """The figures the targets name, from one metrics.json."""
    doms = m["training"]["domains"]
    per = m["per_domain"]
    f = m.get("forgetting") or {}
    inherited = m["training"].get("inherited_domains") or 0
    out = {"share": {d: per[d]["sample_share"] for d in doms},
           "fid": {d: per[d].get("fid") for d in doms},
           "acc": {d: (per[d].get("clustering") or {}).get("accuracy") for d in doms},
           "classes": {d: per[d]["covered_classes"] for d in doms}}
    rows = m["interpretability"]["d_purity"]["per_d"]
    k = doms.index(NEW) if NEW in doms else None
    if k is not None:
        size = len(rows) // len(doms)
        out["new_purity"] = statistics.mean(r["purity"] for r in rows[k * size:(k + 1) * size])
    if inherited and f.get("fid"):
        out["fid_before"] = {d: f["fid"][inherited - 1][j] for j, d in enumerate(doms[:inherited])}
        out["acc_before"] = {d: f["cluster_accuracy"][inherited - 1][j] for j, d in enumerate(doms[:inherited])}
        out["fid_after"] = {d: f["fid"][-1][j] for j, d in enumerate(doms[:inherited])}
        out["acc_after"] = {d: f["cluster_accuracy"][-1][j] for j, d in enumerate(doms[:inherited])}
    return out


def reference_table(ref: dict, noreplay: dict | None) -> list[str]:
    s = summary(ref)
    lines = ["| target | measured | |", "|---|---|---|"]

    def row(name, value, ok):
        lines.append(f"| {name} | {value} | {'met' if ok else '**missed**'} |")

    for d in OLD:
        b, a = s["fid_before"][d], s["fid_after"][d]
        row(f"{d} FID ≤ 1.25× the parent's", f"{a:.2f} vs {b:.2f} ({a / b:.2f}×)", a <= 1.25 * b)
    for d in OLD:
        b, a = s["acc_before"][d], s["acc_after"][d]
        row(f"{d} S clustering drops ≤ 0.03", f"{a:.3f} vs {b:.3f} ({a - b:+.3f})", b - a <= 0.03)
    for d in (*OLD, NEW):
        row(f"{d} share in [0.25, 0.42]", fmt(s["share"][d]), 0.25 <= s["share"][d] <= 0.42)
    row("animal classes present (≥ 1%) ≥ 9", s["classes"][NEW], s["classes"][NEW] >= 9)
    row("animal d's purity ≥ 0.85", fmt(s["new_purity"]), s["new_purity"] >= 0.85)
    row("S clustering of real animals ≥ 0.70", fmt(s["acc"][NEW]), (s["acc"][NEW] or 0) >= 0.70)
    if noreplay is not None:
        n = summary(noreplay)
        old_share = sum(n["share"][d] for d in OLD)
        row("no-replay continuation: MNIST + Fashion share ≤ 0.05", fmt(old_share), old_share <= 0.05)
    return lines


def runs_table(named: list[tuple[str, dict]]) -> list[str]:
    """A column per run: shares, FID, S accuracy per domain, animal purity, old-domain FID after/before."""
    sums = [(n, summary(m)) for n, m in named]
    lines = ["| metric | " + " | ".join(n for n, _ in sums) + " |", "|---" * (len(sums) + 1) + "|"]
    doms = (*OLD, NEW)
    for key, label in (("share", "share"), ("fid", "FID"), ("acc", "S clustering")):
        for d in doms:
            lines.append(f"| {d} {label} | " + " | ".join(fmt(s[key].get(d)) for _, s in sums) + " |")
    lines.append("| animal d purity | " + " | ".join(fmt(s.get("new_purity")) for _, s in sums) + " |")
    for d in OLD:
        lines.append(f"| {d} FID after / before | " + " | ".join(
            fmt(s["fid_after"][d] / s["fid_before"][d]) if "fid_before" in s and s["fid_after"][d] is not None
            else "–" for _, s in sums) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="runs")
    root = Path(ap.parse_args().runs)
    out = []
    ref, noreplay = load(root / "mnist-fashion-animals"), load(root / "mnist-fashion-animals-noreplay")
    if ref:
        out += ["## The embedded model continued onto animal-mnist, against the targets", ""]
        out += reference_table(ref, noreplay) + [""]
        named = [("continued (replay)", ref)] + ([("continued, no replay", noreplay)] if noreplay else [])
        out += runs_table(named) + [""]
    c = root / "continuation"
    critic = [(p.name, m) for p in sorted(c.glob("*-s[0-9]")) if (m := load(p))]
    if critic:
        out += ["## Critic start (quick parent, 1,000 steps onto animal-mnist)", ""] + runs_table(critic) + [""]
    single = load(c / "single-quick")
    cont = load(c / "parent-critic-s0")  # the default start when the parent has a critic
    if single and cont:
        out += ["## Continuation vs one run of the three domains (quick preset, one seed each)", ""]
        out += runs_table([("quick parent + continuation", cont), ("one run of three domains", single)]) + [""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
