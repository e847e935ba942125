"""Fast interpretability probe for the settings search: S's clustering on real test images.

`python experiments/probe.py RUN [RUN ...]` prints, per run, the Hungarian clustering
accuracy of argmax_d S(d|o) on each domain's real test set and on the joint problem
(labels offset per domain), plus the run's wall time from metrics.jsonl. No classifier,
no FID: seconds per run, so the search can try many settings; `lgen evaluate` gives the
full picture for the chosen ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from lifelong_gen.config import read_run_config
from lifelong_gen.eval.clustering import clustering_scores
from lifelong_gen.train.checkpoint import load_bundle
from lifelong_gen.train.domains import load_domain, to_float

_cache: dict = {}


@torch.no_grad()
def probe(run_dir: Path) -> dict:
    run = read_run_config(run_dir)
    _, nets = load_bundle(run_dir, which=("S",))
    S = nets["S"].eval()
    out, preds, labels = {}, [], []
    for k, spec in enumerate(run.train.domains):
        key = (spec, run.model.img_channels, run.model.img_resolution)
        if key not in _cache:
            _cache[key] = load_domain(spec, *key[1:], run.train.data_root, False)
        d = _cache[key]
        pred = torch.cat([S(to_float(d.test_images[i:i + 1000]))[0].argmax(1)
                          for i in range(0, len(d.test_images), 1000)]).numpy()
        lab = d.test_labels.numpy()
        out[spec] = clustering_scores(pred, lab)["accuracy"]
        preds.append(pred)
        labels.append(lab + 1000 * k)
    if len(preds) > 1:
        out["joint"] = clustering_scores(np.concatenate(preds), np.concatenate(labels))["accuracy"]
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    out["minutes"] = sum(r["sec_per_step"] * 50 for r in lines) / 60 if lines else float("nan")
    out["info_ce"] = lines[-1]["info_ce"] if lines else float("nan")
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        res = probe(Path(arg))
        print(arg, " ".join(f"{k}={v:.3f}" for k, v in res.items()), flush=True)
