"""Where S sends each domain's real test images: into its own domain's d's, or another's?

`python experiments/domain_leakage.py RUN [RUN ...]` prints, per run and domain, S's Hungarian
accuracy over all d (what `lgen evaluate` reports), the share of real test images whose argmax d
is one of their own domain's d's, the accuracy with S's argmax restricted to those d's, and per
class the share that lands outside them. Needs a run or bundle trained with `--d-per-domain`
(each domain owns a block of d's, in the order of its domains).
"""

from __future__ import annotations

import argparse
import json

import torch

from lifelong_gen.eval.clustering import hungarian_accuracy
from lifelong_gen.train.checkpoint import load_networks
from lifelong_gen.train.domains import load_domain, to_float


@torch.no_grad()
def leakage(run_dir: str) -> dict:
    run, nets = load_networks(run_dir, ("S",))
    S, per = nets["S"], run.train.d_per_domain
    if per is None:
        raise SystemExit(f"{run_dir}: trained without --d-per-domain, so no d belongs to a domain")
    out = {}
    for k, spec in enumerate(run.train.domains):
        data = load_domain(spec, run.model.img_channels, run.model.img_resolution, download=False)
        logits = torch.cat([S(to_float(data.test_images[i:i + 500]))[0]
                            for i in range(0, data.test_images.shape[0], 500)])
        pred, labels = logits.argmax(1), data.test_labels
        inside = (pred >= k * per) & (pred < (k + 1) * per)
        out[spec] = {
            "accuracy": hungarian_accuracy(pred.numpy(), labels.numpy()),
            "share_in_own_d": float(inside.float().mean()),
            "accuracy_own_d_only": hungarian_accuracy(logits[:, k * per:(k + 1) * per].argmax(1).numpy(),
                                                      labels.numpy()),
            "outside_share_per_class": {data.class_names[c]: round(float((~inside[labels == c]).float().mean()), 3)
                                        for c in range(int(labels.max()) + 1)},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    for run_dir in args.runs:
        print(json.dumps({"run": run_dir, **leakage(run_dir)}))


if __name__ == "__main__":
    main()
