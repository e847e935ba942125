"""The headline figures of one evaluation (a metrics.json dictionary) as (name, value) rows.

Owns `summary_rows`, shared by `lgen evaluate`'s report and `--compare` table (eval/report.py)
and by the model card's Evaluation section (model_card.py), and the Markdown `table` they are
shown in. Torch-free and in the core package: the model card renders where no evaluation
dependency is installed, and the core never imports lifelong_gen.eval.
"""

from __future__ import annotations

from typing import Any, Optional


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_rows(m: dict) -> list[tuple[str, Optional[float]]]:
    """(metric name, value) pairs that summarise one evaluation, in a stable order."""
    rows: list[tuple[str, Optional[float]]] = []
    for spec, e in m["per_domain"].items():
        rows += [(f"{spec}: sample share", e["sample_share"]),
                 (f"{spec}: classes present (≥1%)", e["covered_classes"]),
                 (f"{spec}: FID (classifier)", e.get("fid")),
                 (f"{spec}: KID", e.get("kid_mean")),
                 (f"{spec}: confidence", e.get("confidence")),
                 (f"{spec}: S clustering accuracy", e.get("clustering", {}).get("accuracy")),
                 (f"{spec}: S NMI", e.get("clustering", {}).get("nmi"))]
        if "inception_fid" in e:
            rows.append((f"{spec}: FID (Inception)", e["inception_fid"]))
    joint = m["overall"].get("joint_clustering") or {}
    rows += [("overall FID (classifier)", m["overall"].get("fid")),
             ("joint S clustering accuracy", joint.get("accuracy")),
             ("joint S NMI", joint.get("nmi")),
             ("d purity (mean)", m["interpretability"]["d_purity"]["mean"])]
    rows += [(f"d purity ({spec}'s d)", value) for spec, value in domain_purities(m).items()]
    for name, t in m["interpretability"]["traversal"].items():
        rows.append((f"{name} traversal: class change", t["class_change"]))
    f = m.get("forgetting")
    if f:
        rows += [("BWT FID (+ = forgetting)", f["bwt"]["fid"]),
                 ("BWT relative share (− = forgetting)", f["bwt"]["relative_share"]),
                 ("BWT S accuracy (− = forgetting)", f["bwt"]["cluster_accuracy"])]
    return rows


def domain_purities(m: dict) -> dict[str, Optional[float]]:
    """Per domain, the mean d-purity over the d's that domain added (`--d-per-domain`: domain k
    owns d = k·n … (k+1)·n − 1); empty when the d's are shared (no d_per_domain, or joint)."""
    t = m.get("training", {})
    n = t.get("d_per_domain")
    if not n or t.get("joint"):
        return {}
    purity = {r["d"]: r["purity"] for r in m["interpretability"]["d_purity"]["per_d"]}
    out: dict[str, Optional[float]] = {}
    for k, spec in enumerate(t["domains"]):
        values = [purity[d] for d in range(k * n, (k + 1) * n) if d in purity]
        out[spec] = sum(values) / len(values) if values else None
    return out
