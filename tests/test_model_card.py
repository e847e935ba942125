"""The model card's Hub metadata: model-index from metrics.json, base_model, datasets; usage first.

Each card is rendered from a copy of the embedded model's config.json and metrics.json (torch-free,
no Hub), and its YAML front matter is parsed as the Hub's own client parses it.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from lifelong_gen.bundle import embedded, model_card


@pytest.fixture()
def reference(tmp_path):
    """A bundle directory holding the embedded reference model's config.json and metrics.json."""
    source = embedded.pretrained_path()
    for name in ("config.json", "metrics.json"):
        shutil.copy(source / name, tmp_path / name)
    return tmp_path


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def with_parent(bundle, parent: dict) -> None:
    config = json.loads((bundle / "config.json").read_text())
    config["parent"] = parent
    config["train"]["inherited_domains"] = len(parent["domains"])
    (bundle / "config.json").write_text(json.dumps(config))


def test_model_index_carries_the_headline_metrics_of_metrics_json(reference):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    text = model_card.render_card(reference, repo_id="org/mnist-fashion")
    meta = front_matter(text)
    assert meta["datasets"] == ["mnist", "fashion_mnist"]
    assert meta["library_name"] == "lifelong-gen" and meta["pipeline_tag"] == "unconditional-image-generation"
    assert "base_model" not in meta  # trained from scratch
    # The Hub's client reads the model-index back into evaluation results.
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == "org/mnist-fashion"
    got = {(r.dataset_type, r.metric_type): r.metric_value for r in results}
    metrics = json.loads((reference / "metrics.json").read_text())
    for domain, hub_id in [("mnist", "mnist"), ("fashion-mnist", "fashion_mnist")]:
        figures = metrics["per_domain"][domain]
        assert got[(hub_id, "fid")] == pytest.approx(figures["fid"], abs=1e-4)
        assert got[(hub_id, "accuracy")] == pytest.approx(figures["clustering"]["accuracy"], abs=1e-4)
    # The reference model's published figures (docs/evaluation.md), so the card says what the docs say.
    assert got[("mnist", "d-purity")] == pytest.approx(0.995, abs=5e-4)
    assert got[("fashion_mnist", "d-purity")] == pytest.approx(0.785, abs=5e-4)
    assert len(results) == 6 and all(r.task_type == "unconditional-image-generation" for r in results)
    card = ModelCard(text)  # huggingface_hub parses the whole card too
    assert card.data.eval_results and card.data.model_name == "org/mnist-fashion"


def test_without_metrics_there_is_no_model_index(reference):
    (reference / "metrics.json").unlink()
    meta = front_matter(model_card.render_card(reference))
    assert "model-index" not in meta and meta["datasets"] == ["mnist", "fashion_mnist"]
    (reference / "metrics.json").write_text("{not json")
    assert "model-index" not in front_matter(model_card.render_card(reference))


def test_a_model_continued_from_a_hub_repo_names_it_as_base_model(reference):
    with_parent(reference, {"model": "org/parent@main", "source": "hub", "repo_id": "org/parent", "revision": "main",
                            "commit": "0123456789abcdef0123456789abcdef01234567", "domains": ["mnist"], "d_dim": 10,
                            "parent": None})
    text = model_card.render_card(reference)
    assert front_matter(text)["base_model"] == "org/parent"
    assert "`base_model`, `org/parent`" in text  # the lineage section says so


def test_a_model_continued_from_the_embedded_one_names_it_in_the_text_only(reference):
    # The Hub takes only a model id as base_model; the embedded model has none.
    with_parent(reference, {"model": "mnist-fashion", "source": "embedded", "name": "mnist-fashion",
                            "package_version": "0.1.0", "domains": ["mnist"], "d_dim": 10, "parent": None})
    text = model_card.render_card(reference)
    assert "base_model" not in front_matter(text)
    assert "`mnist-fashion (embedded in lifelong-gen 0.1.0)`" in text


def test_usage_comes_first_and_the_full_settings_are_folded(reference):
    text = model_card.render_card(reference, repo_id="org/mnist-fashion")
    body = text.split("---\n", 2)[2]
    headings = [line for line in body.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Usage", headings
    assert headings.index("## Settings") > headings.index("## Evaluation")
    settings = body[body.index("## Settings"):body.index("## ONNX contract")]
    key, folded = settings.split("<details>")
    assert "`steps_per_domain` | `8000`" in key and "`d_dim` | `20`" in key
    assert key.count("\n| `") == len(model_card.KEY_MODEL_SETTINGS) + len(model_card.KEY_TRAIN_SETTINGS)
    assert "</details>" in folded and "`s_neighbour_weight` | `0.2`" in folded  # every setting, folded away
