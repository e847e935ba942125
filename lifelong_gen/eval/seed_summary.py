"""Each headline metric over the seeds of a seeds directory (`lgen train --seeds`): mean ± sd and n.

Owns `summarise` (the seeds' metrics.json dictionaries -> OUT/seeds-summary.json's content) and
`summary_table`, the table `lgen evaluate OUT` prints. The metrics are the rows of `lgen
evaluate`'s own table (metrics_summary.summary_rows); a metric that a seed lacks, or has as None
or NaN, is left out of that metric's n. sd is the sample standard deviation (n − 1 in the
denominator), as the studies in experiments/ report it; None where n < 2. Plain Python: it reads
dictionaries only.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from lifelong_gen.metrics_summary import fmt, summary_rows, table


def summarise(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """{"seeds": [...], "metrics": {name: {"mean", "sd", "n", "values": {seed: value}}}}, the metrics in
    the order `lgen evaluate`'s table lists them."""
    values: dict[str, dict[str, float]] = {}  # insertion order: the first seed's row order
    for seed, metrics in per_seed.items():
        for name, v in summary_rows(metrics):
            row = values.setdefault(name, {})
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                row[str(seed)] = v
    out = {}
    for name, by_seed in values.items():
        vals = list(by_seed.values())
        out[name] = {"mean": statistics.fmean(vals) if vals else None,
                     "sd": statistics.stdev(vals) if len(vals) > 1 else None,
                     "n": len(vals), "values": by_seed}
    return {"seeds": list(per_seed), "metrics": out}


def summary_table(summary: dict[str, Any]) -> str:
    """Markdown: metric | mean ± sd | n."""
    rows = []
    for name, m in summary["metrics"].items():
        cell = fmt(m["mean"]) if m["sd"] is None else f"{fmt(m['mean'])} ± {fmt(m['sd'])}"
        rows.append([name, cell, m["n"]])
    return table(["metric", "mean ± sd", "n"], rows)
