"""Hungarian clustering accuracy against a case computed by hand."""

import numpy as np
import pytest

from lifelong_gen.eval.clustering import clustering_scores, contingency, hungarian_accuracy


def test_hand_computed_case():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([1, 1, 0, 0, 0, 2, 2, 2, 1])
    # codes x classes: code0 -> {c0: 1, c1: 2}, code1 -> {c0: 2, c2: 1}, code2 -> {c2: 3}
    assert contingency(pred, labels).tolist() == [[1, 2, 0], [2, 0, 1], [0, 0, 3]]
    # best one-to-one: code1->c0 (2) + code0->c1 (2) + code2->c2 (3) = 7 of 9
    assert hungarian_accuracy(pred, labels) == pytest.approx(7 / 9)


def test_permutation_invariance_and_more_codes_than_classes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 200)
    perm = rng.permutation(5)
    scores = clustering_scores(perm[labels], labels)
    assert scores == pytest.approx({"accuracy": 1.0, "nmi": 1.0, "ari": 1.0})
    # 20 codes, 10 classes: each class split over two codes -> only half can be matched.
    labels = np.repeat(np.arange(10), 2)
    assert hungarian_accuracy(np.arange(20), labels) == pytest.approx(0.5)
