"""The d-purity a perfect generator would score: the evaluation classifier's own ceiling (issue 20).

    python experiments/purity_ceiling.py [--domains mnist,fashion-mnist]

d-purity (`lgen evaluate`, eval/metrics.py `d_purity`) is the share of a d's samples in the
evaluation classifier's most common class. A perfect d, one that draws exactly the real images of
one class, still scores only the classifier's majority share on that class's real images, since the
classifier (a small CNN, 2 epochs) confuses some classes itself. This script scores that perfect d
for every class: it groups each domain's real images by their true label (the d's a perfect
generator would have) and takes the classifier's majority share per group, on the test images (the
classifier never saw them) and on the training images (what G learns to draw). The mean over a
domain's classes is the ceiling of that domain's d-purity as `lgen evaluate` measures it.

It uses the cached classifier that `lgen evaluate` trains for the same domain list and data (the
same file: eval/classifier.py `load_or_train`), so run it after an evaluation of a run of those
domains, or it trains that classifier first (about a minute). Prints a markdown table.
"""

from __future__ import annotations

import argparse

import torch

from lifelong_gen.domain_names import model_shape, parse_domains
from lifelong_gen.eval.classifier import load_or_train, predict


def perfect_d_purity(classifier, space, domain_index: int, images: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    """Per true class of one domain: the classifier's majority share and class on its real images."""
    probs = predict(classifier, images)[1]
    predicted = probs.argmax(1) - space.offsets[domain_index]  # the domain's own class index (outside: < 0 or >= size)
    rows = []
    for cls in range(space.sizes[domain_index]):
        votes = predicted[labels == cls]
        counts = torch.bincount(votes.clamp(-1, space.sizes[domain_index]) + 1, minlength=space.sizes[domain_index] + 2)
        top = int(counts.argmax())
        rows.append({"class": cls, "n": int(votes.numel()), "majority": top - 1,
                     "share": float(counts[top]) / max(1, votes.numel())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", default="mnist,fashion-mnist")
    args = ap.parse_args()
    from lifelong_gen.train.domains import load_domain

    specs = parse_domains(args.domains)
    channels, resolution = model_shape(specs)
    data = [load_domain(s, channels, resolution) for s in specs]
    classifier, space, info, path = load_or_train(data)
    print(f"classifier {path.name}: test accuracy "
          + ", ".join(f"{k} {v:.3f}" for k, v in info["test_accuracy"].items()))
    print()
    print("| domain | class | perfect d's purity, test images | on training images | its majority class |")
    print("|---|---|---|---|---|")
    for k, d in enumerate(data):
        names = d.class_names
        test = perfect_d_purity(classifier, space, k, d.test_images, d.test_labels)
        train = perfect_d_purity(classifier, space, k, d.train_images, d.train_labels)
        for t, r in zip(test, train):
            majority = names[t["majority"]] if 0 <= t["majority"] < len(names) else "another domain's class"
            print(f"| {d.spec} | {names[t['class']]} | {t['share']:.3f} | {r['share']:.3f} | {majority} |")
        mean_test = sum(t["share"] for t in test) / len(test)
        mean_train = sum(r["share"] for r in train) / len(train)
        print(f"| {d.spec} | **mean (the ceiling)** | **{mean_test:.3f}** | **{mean_train:.3f}** | |")


if __name__ == "__main__":
    main()
