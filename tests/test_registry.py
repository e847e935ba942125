"""The metric registry of `lgen evaluate` (eval/registry.py): order, seeds, sections, and one-place additions."""

from __future__ import annotations

import pytest

from lifelong_gen.eval import metrics
from lifelong_gen.eval.registry import METRICS, Context, register_metric, run_metrics


def test_the_built_in_metrics_in_their_order_with_their_seeds():
    assert [(m.name, m.seed_offset, m.section) for m in METRICS.values()] == [
        ("quality", 0, "core"), ("clustering", 1, "core"), ("d_purity", 7, "interpretability"),
        ("traversal", 11, "interpretability"), ("forgetting", 0, "core")]


def test_names_and_sections_are_checked():
    with pytest.raises(ValueError, match="registered already"):
        register_metric("d_purity", seed_offset=99)(lambda ev, ctx, seed: {})
    with pytest.raises(ValueError, match="section must be one of"):
        register_metric("new", seed_offset=99, section="elsewhere")


class _Stub:
    seed = 3


def test_a_registered_metric_runs_with_its_seed_and_lands_in_interpretability(monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", {})  # only the new metric, for run_metrics and the JSON
    import lifelong_gen.eval.registry as registry

    monkeypatch.setattr(registry, "METRICS", metrics.METRICS)
    seen = []

    @register_metric("sharpness", seed_offset=13)
    def sharpness(ev, ctx, seed):
        seen.append(seed)
        return {"mean": 0.5}

    results = run_metrics(_Stub(), Context(G=None, S=None, run=None, bundle=None))
    assert results == {"sharpness": {"mean": 0.5}} and seen == [3 * 1000 + 13]
    # metrics.json puts it under "interpretability" with no other change.
    from lifelong_gen.config import resolve_run_config

    run = resolve_run_config({"domains": ["synthetic:bars"]})
    core = {"quality": {"per_domain": {}, "overall": {}}, "clustering": {"per_domain": {}}, "forgetting": None}
    out = metrics._metrics_json(None, run, [], {}, "c.safetensors", {**core, **results}, seed=3, num_samples=10)
    assert out["interpretability"] == {"sharpness": {"mean": 0.5}}
