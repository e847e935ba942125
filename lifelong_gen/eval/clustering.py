"""Clustering scores of a discrete code against true labels (Hungarian accuracy, NMI, ARI).

Used to measure how interpretable S's discrete code d is: assign each real test image
to argmax_d S(d|o), then match codes to classes one-to-one (scipy's Hungarian solver)
and count agreements. Torch-free (numpy, scipy, scikit-learn).
"""

from __future__ import annotations

import numpy as np


def contingency(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts [n_codes, n_classes]: how often code i co-occurs with class j."""
    pred, labels = np.asarray(pred, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    table = np.zeros((pred.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(table, (pred, labels), 1)
    return table


def hungarian_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Best one-to-one matching of codes to classes, as a share of samples (unmatched codes count as errors)."""
    from scipy.optimize import linear_sum_assignment

    table = contingency(pred, labels)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(labels))


def clustering_scores(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "accuracy": hungarian_accuracy(pred, labels),
        "nmi": float(normalized_mutual_info_score(labels, pred)),
        "ari": float(adjusted_rand_score(labels, pred)),
    }
