"""The forgetting matrix of `lgen evaluate`: each per-domain snapshot of a run on every domain seen so far.

Owns `forgetting` (domains trained x domains evaluated: FID, relative sample share and S's
clustering accuracy, with backward transfer) and how snapshots are found (`snapshot_dirs`:
RUN/snapshots/domain-K/, written after each domain by the trainer's DomainSnapshots callback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lifelong_gen.bundle import CONFIG_NAME, SNAPSHOTS_DIR
from lifelong_gen.config import RunConfig, domain_slots
from lifelong_gen.train.checkpoint import load_bundle


class Evaluator(Protocol):
    """What the matrix needs of metrics.Evaluator (which imports this module to register the metric)."""

    def evaluate_generator(self, G: Any, d_slots: int, domains: list[int], seed: int) -> dict[str, Any]: ...

    def s_clustering(self, S: Any) -> dict[str, Any]: ...


def snapshot_number(path: Path) -> int:
    """K of snapshots/domain-K (0 for a name that is not of that form)."""
    tail = path.name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else 0


def snapshot_dirs(run_dir: Path) -> list[Path]:
    root = run_dir / SNAPSHOTS_DIR
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if (p / CONFIG_NAME).is_file() and snapshot_number(p)),
                  key=snapshot_number)


def forgetting(ev: Evaluator, run: RunConfig, snapshots: list[Path], seed: int, progress=None) -> dict[str, Any]:
    """Domains-trained x domains-evaluated matrices of FID, relative sample share, S clustering accuracy
    and, where each domain has its own d's (--d-per-domain), the mean d-purity of domain j's d's.

    Row i is the snapshot after domain i+1, column j domain j+1; cells with j > i are null.
    Backward transfer (Lopez-Paz & Ranzato) = mean over j < T-1 of (M[T-1, j] - M[j, j]):
    for FID a positive BWT is forgetting, for share and accuracy a negative one.
    """
    T = len(run.train.domains)
    # fid_own_d: FID of domain j's own d's (same codes in every row): where each domain has its own d's,
    # the retention figure that the classifier's attribution of other domains' samples cannot move.
    names = ("fid", "relative_share", "cluster_accuracy", "d_purity", "fid_own_d")
    mats = {k: [[None] * T for _ in range(T)] for k in names}
    # snapshots/domain-K is row K-1. A continued run of an exported parent lacks the rows of the
    # parent's earlier domains (lineage.py): those rows stay null.
    rows = {snapshot_number(p) - 1: p for p in snapshots if 1 <= snapshot_number(p) <= T}
    task = progress.add_task("forgetting matrix", total=len(rows)) if progress else None
    for i, snap in sorted(rows.items()):
        _, nets = load_bundle(snap, which=("G_ema", "S"))
        slots = domain_slots(run.train, run.model, i)
        res = ev.evaluate_generator(nets["G_ema"], slots, list(range(i + 1)), seed)
        clus = ev.s_clustering(nets["S"])["per_domain"]
        per_d = ev.d_purity(nets["G_ema"], slots, seed)["per_d"] if run.train.d_per_domain else None
        for j in range(i + 1):
            spec = run.train.domains[j]
            mats["fid"][i][j] = res["per_domain"][spec]["fid"]
            # Share relative to a fair 1/(i+1) split of the domains seen: 1.0 = fully kept.
            mats["relative_share"][i][j] = res["per_domain"][spec]["sample_share"] * (i + 1)
            mats["cluster_accuracy"][i][j] = clus.get(spec, {}).get("accuracy")
            if per_d is not None:  # domain j's d's are its block of d_per_domain slots
                size = run.train.d_per_domain
                block = per_d[j * size:(j + 1) * size]
                mats["d_purity"][i][j] = float(np.mean([r["purity"] for r in block]))
                mats["fid_own_d"][i][j] = ev.own_d_fid(nets["G_ema"], j * size, size, j, seed)
        if progress:
            progress.advance(task)
    last = max(rows, default=-1)
    bwt = {}
    for k in names:
        diffs = [mats[k][last][j] - mats[k][j][j] for j in range(last)
                 if mats[k][last][j] is not None and mats[k][j][j] is not None]
        bwt[k] = float(np.mean(diffs)) if diffs else None
    return {"domains": list(run.train.domains), "rows": [rows[i].name if i in rows else None for i in range(last + 1)],
            **mats, "bwt": bwt}
