"""Class-incremental domain specs (`mnist:0-4`): parsing, one-line refusals before anything is
written, loading only the selected classes, and the class list a selected domain reports."""

import json

import pytest
import torch

from conftest import TINY_FLAGS, lgen
from lifelong_gen.domain_names import check_domains, domain_classes, parse_domains, split_selection
from lifelong_gen.errors import LgenError


def assert_one_line_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("lgen: error: ") and "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.parametrize("spec, dataset, classes", [
    ("mnist", "mnist", tuple(range(10))),
    ("mnist:0-4", "mnist", (0, 1, 2, 3, 4)),
    ("fashion-mnist:0+1", "fashion-mnist", (0, 1)),
    ("mnist:0-1+5", "mnist", (0, 1, 5)),
    ("mnist:7+2", "mnist", (2, 7)),
    ("animal-mnist:9", "animal-mnist", (9,)),
    ("synthetic:bars:3-4", "synthetic:bars", (3, 4)),
    ("synthetic64:rings", "synthetic64:rings", tuple(range(10))),
])
def test_a_selection_parses_to_its_dataset_and_class_ids(spec, dataset, classes):
    assert split_selection(spec)[0] == dataset
    assert domain_classes(spec) == classes


def test_folders_have_no_classes_but_may_hold_colons(tmp_path):
    odd = tmp_path / "shots:2020"
    odd.mkdir()
    assert domain_classes(f"folder:{odd}") is None  # an existing folder's own colon is no selection
    assert domain_classes(f"folder:{tmp_path}") is None
    with pytest.raises(LgenError, match="an image folder has no classes"):
        domain_classes(f"folder:{tmp_path}:0-4")


def test_commas_still_separate_domains_and_disjoint_selections_pass():
    assert parse_domains("mnist:0-4, mnist:5-9,fashion-mnist:0+1") == ["mnist:0-4", "mnist:5-9", "fashion-mnist:0+1"]
    check_domains(["synthetic:bars", "synthetic64:bars", "synthetic:rings:0-4"])  # different datasets
    check_domains(["mnist", "mnist"], inherited=2)  # a parent's own lineage is not judged again


def test_a_continuation_may_not_learn_a_class_of_its_lineage_again():
    with pytest.raises(LgenError, match="mnist:4-9 overlaps mnist:0-4 of the parent's lineage: both hold class 4;"):
        check_domains(["mnist:0-4", "fashion-mnist", "mnist:4-9"], inherited=2)
    check_domains(["mnist:0-4", "fashion-mnist", "mnist:5-9"], inherited=2)


BAD = [
    ("mnist:12", ["mnist:12", "no class 12", "mnist has classes 0, 1, 2"]),
    ("mnist:a", ["'a' is not a class id", "mnist has classes 0, 1, 2"]),
    ("fashion-mnist:10", ["no class 10", "0 (T-shirt/top)", "9 (Ankle boot)"]),
    ("mnist:", ["empty class selection"]),
    ("mnist:5-2", ["reversed range 5-2"]),
    ("mnist:0-4,mnist:3-9", ["mnist:3-9 overlaps mnist:0-4", "classes 3, 4"]),
    ("mnist,mnist:0-1", ["mnist:0-1 overlaps mnist", "classes 0, 1"]),
    ("mnist,mnist", ["mnist overlaps mnist"]),
    ("fashion-mnist:2+3,fashion-mnist:3", ["class 3 (Dress)"]),
    ("folder:/tmp:0-4", ["folder:/tmp:0-4", "an image folder has no classes", "drop :0-4"]),
]


@pytest.mark.parametrize("domains, fragments", BAD, ids=[b[0] for b in BAD])
def test_bad_selections_are_one_line_and_write_nothing(domains, fragments, tmp_path):
    assert_one_line_error(lgen("train", "--domains", domains, "--dry-run"), *fragments)
    out = tmp_path / "run"
    assert_one_line_error(lgen("train", "--domains", domains, "--out", str(out), *TINY_FLAGS), *fragments)
    assert not out.exists()


def test_a_selection_loads_only_its_classes_train_and_test():
    from lifelong_gen.train.domains import load_domain

    full = load_domain("mnist", 1, 28, download=False)
    part = load_domain("mnist:0-1", 1, 28, download=False)
    assert part.class_names == ("0", "1") and part.num_classes == 2
    for split in ("train", "test"):
        images, labels = getattr(part, f"{split}_images"), getattr(part, f"{split}_labels")
        full_images, full_labels = getattr(full, f"{split}_images"), getattr(full, f"{split}_labels")
        keep = (full_labels == 0) | (full_labels == 1)
        assert 0 < len(labels) < len(full_labels)
        assert torch.equal(images, full_images[keep]) and torch.equal(labels, full_labels[keep])
    # Labels are positions in the selection; class_names gives the dataset's names back.
    late = load_domain("mnist:5+7", 1, 28, download=False)
    assert late.class_names == ("5", "7") and sorted(late.test_labels.unique().tolist()) == [0, 1]
    names = [late.class_names[k] for k in late.train_labels.tolist()]
    assert names == [str(k) for k in full.train_labels[(full.train_labels == 5) | (full.train_labels == 7)].tolist()]
    assert late.describe()["classes"] == ["5", "7"] and "classes" not in full.describe()


@pytest.fixture(scope="module")
def selected_run(tmp_path_factory):
    """A few steps over two selections of one synthetic dataset."""
    out = tmp_path_factory.mktemp("sel") / "run"
    r = lgen("train", "--domains", "synthetic:bars:0-1,synthetic:bars:2+5", "--steps-per-domain", "2",
             "--d-per-domain", "2", "--out", str(out), *TINY_FLAGS)
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_selected_run_reports_its_classes_by_their_names(selected_run):
    from lifelong_gen.eval.classifier import LabelSpace
    from lifelong_gen.eval.metrics import evaluate
    from lifelong_gen.train.domains import load_domain

    config = json.loads((selected_run / "config.json").read_text())
    assert config["train"]["domains"] == ["synthetic:bars:0-1", "synthetic:bars:2+5"]
    assert [s["classes"] for s in config["data_sources"]] == [["0", "1"], ["2", "5"]]
    data = [load_domain(s, 1, 28) for s in config["train"]["domains"]]
    space = LabelSpace.for_domains(data)
    assert space.sizes == [2, 2]  # the classifier's label space holds the selected classes only
    metrics = evaluate(selected_run, num_samples=60, data=data, progress=False)
    assert metrics["class_names"] == {"synthetic:bars:0-1": ["0", "1"], "synthetic:bars:2+5": ["2", "5"]}
    for row in metrics["interpretability"]["d_purity"]["per_d"]:
        assert (row["domain"], row["name"]) in {("synthetic:bars:0-1", "0"), ("synthetic:bars:0-1", "1"),
                                                ("synthetic:bars:2+5", "2"), ("synthetic:bars:2+5", "5")}
    assert metrics["per_domain"]["synthetic:bars:2+5"]["num_classes"] == 2


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_continuation_refuses_classes_its_parent_learned(selected_run, tmp_path):
    frag = "synthetic:bars:5-9 overlaps synthetic:bars:2+5 of the parent's lineage: both hold class 5;"
    assert_one_line_error(lgen("train", "--from", str(selected_run), "--domains", "synthetic:bars:5-9",
                               "--dry-run"), frag)
    out = tmp_path / "child"
    assert_one_line_error(lgen("train", "--from", str(selected_run), "--domains", "synthetic:bars:5-9",
                               "--out", str(out), "--no-progress"), frag)
    assert not out.exists()
    r = lgen("train", "--from", str(selected_run), "--domains", "synthetic:bars:6-9,synthetic:rings", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["train"]["domains"][2:] == ["synthetic:bars:6-9", "synthetic:rings"]
