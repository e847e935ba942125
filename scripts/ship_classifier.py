"""Ship the evaluation classifier of a domain list with the package (lifelong_gen/pretrained/classifiers/).

    python scripts/ship_classifier.py mnist,fashion-mnist,animal-mnist

Trains it as `lgen evaluate` would on first use (eval/classifier.py, `train_classifier`, seed 0) into
the user's cache if it is not there yet, then copies the cache entry (weights and its JSON) into the
package, where `classifier_path` finds it before the cache.
"""

from __future__ import annotations

import shutil
import sys

from lifelong_gen.domain_names import parse_domains
from lifelong_gen.eval.classifier import PACKAGED_CLASSIFIERS, load_or_train
from lifelong_gen.train.domains import load_domain


def main() -> None:
    specs = parse_domains(sys.argv[1])
    data = [load_domain(s, 1, 28) for s in specs]
    _, _, info, path = load_or_train(data)
    PACKAGED_CLASSIFIERS.mkdir(parents=True, exist_ok=True)
    for src in (path, path.with_suffix(".json")):
        if src.parent != PACKAGED_CLASSIFIERS:
            shutil.copyfile(src, PACKAGED_CLASSIFIERS / src.name)
    print(f"{PACKAGED_CLASSIFIERS / path.name}: test accuracy {info['test_accuracy']}")


if __name__ == "__main__":
    main()
