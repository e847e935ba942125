"""Does S's trunk hold the classes its clustering misses? (issue 20, session 15)

    python experiments/representation_probe.py [BUNDLE]   (default: the embedded model)

For each domain of the bundle (MNIST-like domains with labels), on S's trunk features (the
256-wide layer before the d and c heads) of the real test images:
- S's own clustering: Hungarian accuracy of argmax over the domain's own d's (as `lgen evaluate`,
  there over all d's);
- k-means (k = 10, 3 seeds) on the L2-normalised features, and on PCA-50 of the pixels (a floor);
- a linear probe: logistic regression fit on the features of (up to) 10,000 labelled training
  images, scored on the test images. It uses labels, so it is a diagnostic of what the features
  hold, never a figure of the method;
- neighbour agreement: the share of each training image's k nearest (cosine) training images with
  its label, in S's features and in 2x2-pooled pixels (what SCAN's neighbour term pulls together:
  lifelong_gen/train/neighbours.py);
- the contingency table of S's d against the true class (which classes S merges).

Prints markdown. Needs scikit-learn (a dependency of the evaluation's torch-fidelity stack here).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def trunk_and_logits(S, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from lifelong_gen.train.domains import to_float

    hs, logits = [], []
    with torch.no_grad():
        for i in range(0, images.shape[0], 1000):
            h = S.trunk(to_float(images[i:i + 1000]))
            hs.append(h)
            logits.append(S.d_head(h))
    return torch.cat(hs), torch.cat(logits)


def neighbour_agreement(x: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Mean share of each row's k nearest other rows (cosine) with its label."""
    x = F.normalize(x.flatten(1).float(), dim=1)
    agree = []
    for i in range(0, x.shape[0], 2000):
        sim = x[i:i + 2000] @ x.T
        rows = torch.arange(sim.shape[0])
        sim[rows, rows + i] = float("-inf")
        agree.append((labels[sim.topk(k, dim=1).indices] == labels[i:i + 2000, None]).float().mean(1))
    return float(torch.cat(agree).mean())


def main() -> None:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    from lifelong_gen.bundle.embedded import pretrained_path
    from lifelong_gen.config import read_run_config
    from lifelong_gen.eval.clustering import hungarian_accuracy
    from lifelong_gen.train import checkpoint as ckpt
    from lifelong_gen.train.domains import load_domain

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", nargs="?", type=Path, default=None)
    args = ap.parse_args()
    bundle = args.bundle or pretrained_path()
    run = read_run_config(bundle)
    _, nets = ckpt.load_bundle(bundle, which=("S",))
    S = nets["S"].eval()
    per = run.train.d_per_domain or run.model.d_dim
    print(f"bundle: {bundle}\n")
    print("| domain | S's argmax (own d's) | k-means on S's trunk | k-means on pixels (PCA-50) | linear probe on S's trunk "
          "(labels) | neighbours agreeing, S's trunk, k=5 / 20 | in pooled pixels, k=5 / 20 |")
    print("|---|---|---|---|---|---|---|")
    tables = []
    for k, spec in enumerate(run.train.domains):
        d = load_domain(spec, run.model.img_channels, run.model.img_resolution, run.train.data_root, download=False)
        if not d.num_classes:
            continue
        y = d.test_labels.numpy()
        h, logits = trunk_and_logits(S, d.test_images)
        own = logits[:, k * per:(k + 1) * per].argmax(1).numpy()
        s_acc = hungarian_accuracy(own, y)
        hn = F.normalize(h, dim=1).numpy()
        pixels = PCA(50, random_state=0).fit_transform(d.test_images.flatten(1).numpy() / 255.0)
        km = [np.mean([hungarian_accuracy(KMeans(d.num_classes, n_init=10, random_state=s).fit_predict(x), y)
                       for s in range(3)]) for x in (hn, pixels)]
        n = min(10000, d.train_images.shape[0])
        h_train, _ = trunk_and_logits(S, d.train_images[:n])
        probe = LogisticRegression(max_iter=2000).fit(h_train.numpy(), d.train_labels[:n].numpy()).score(h.numpy(), y)
        pooled = F.avg_pool2d(d.train_images[:n].float(), 2)
        agree_s = [neighbour_agreement(h_train, d.train_labels[:n], kk) for kk in (5, 20)]
        agree_p = [neighbour_agreement(pooled, d.train_labels[:n], kk) for kk in (5, 20)]
        print(f"| {spec} | {s_acc:.3f} | {km[0]:.3f} | {km[1]:.3f} | {probe:.3f} | "
              f"{agree_s[0]:.3f} / {agree_s[1]:.3f} | {agree_p[0]:.3f} / {agree_p[1]:.3f} |")
        counts = np.zeros((per, d.num_classes), dtype=int)
        np.add.at(counts, (own, y), 1)
        tables.append((spec, k * per, d.class_names, counts))
    for spec, first, names, counts in tables:
        print(f"\n{spec}: real test images by S's d (rows, own d's) and true class (columns)\n")
        print("| d | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for j, row in enumerate(counts):
            print(f"| {first + j} | " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
