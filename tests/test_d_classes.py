"""The d -> class table (lifelong_gen/bundle/d_classes.py) and what reads it: `lgen sample --class`, `encode`, cards.

The CLI tests run the embedded model's ONNX files (torch-free) from copies in tmp_path, with
a table written by hand, so every expectation (which d --class picks) is known in advance.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import lgen
from lifelong_gen.bundle import CONFIG_NAME, D_CLASSES_NAME, NETWORK_FILES, ONNX_FILES, d_classes, embedded, manifest
from lifelong_gen.errors import LgenError

CLASSES = {"mnist": [str(k) for k in range(10)],
           "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                             "Ankle boot"]}


def _row(d, domain, name, share, runner=None):
    return {"d": d, "domain": domain, "class": name, "share": share,
            "runner_up": None if runner is None else {"domain": runner[0], "class": runner[1], "share": runner[2]}}


# Twenty d's as the embedded model has: d 5 and d 12 both draw mostly bags, d 12 the purer;
# no d draws mostly shirts (they are the runner-up of d 14 and of d 2).
ROWS = ([_row(d, "mnist", str(d), 0.9) for d in range(10)]
        + [_row(10, "fashion-mnist", "Ankle boot", 0.8), _row(11, "fashion-mnist", "Trouser", 0.97),
           _row(12, "fashion-mnist", "Bag", 0.95), _row(13, "fashion-mnist", "T-shirt/top", 0.6),
           _row(14, "fashion-mnist", "Pullover", 0.45, ("fashion-mnist", "Shirt", 0.3)),
           _row(15, "fashion-mnist", "Sneaker", 0.9), _row(16, "fashion-mnist", "Dress", 0.85),
           _row(17, "fashion-mnist", "Coat", 0.7), _row(18, "fashion-mnist", "Sandal", 0.88),
           _row(19, "fashion-mnist", "Bag", 0.75)])
ROWS[2] = _row(2, "mnist", "2", 0.9, ("fashion-mnist", "Shirt", 0.05))
ROWS[5] = _row(5, "fashion-mnist", "Bag", 0.5)


def _table(tmp_path: Path, rows=ROWS, classes=CLASSES, sha="0" * 64) -> d_classes.DTable:
    data = d_classes.build(rows, classes, weights_sha256=sha, measured={"by": "test"})
    (tmp_path / D_CLASSES_NAME).write_text(json.dumps(data))
    table = d_classes.read(tmp_path)
    assert table is not None
    return table


# ---------------------------------------------------------------- the table


def test_a_table_reads_back_what_was_built(tmp_path):
    table = _table(tmp_path)
    assert [r.d for r in table.rows] == list(range(20))
    assert table.entry(14) == d_classes.DEntry(14, "fashion-mnist", "Pullover", 0.45, ("fashion-mnist", "Shirt", 0.3))
    assert table.label(12) == "Bag" and table.label(99) is None
    assert table.classes["fashion-mnist"][9] == "Ankle boot"


@pytest.mark.parametrize("name, d", [("7", 7), ("bag", 12), ("Bag", 12), ("ankle boot", 10), ("Ankle-Boot", 10),
                                     ("ankle_boot", 10), ("t-shirt/top", 13), ("T-shirt", 13), ("top", 13),
                                     ("fashion-mnist:bag", 12),
                                     ("mnist:3", 3)])
def test_class_names_resolve_to_the_purest_d_of_that_class(tmp_path, name, d):
    assert _table(tmp_path).resolve(name).d == d


def test_an_unknown_class_lists_the_known_ones_in_one_line(tmp_path):
    with pytest.raises(LgenError) as e:
        _table(tmp_path).resolve("giraffe")
    msg = str(e.value)
    assert "\n" not in msg and "'giraffe'" in msg and "known: 0, 1, 2" in msg and "Ankle boot" in msg
    assert msg.count("Bag") == 1  # two d's draw bags: the name is listed once


def test_a_class_of_the_data_that_no_d_draws_mostly_says_where_it_is_runner_up(tmp_path):
    with pytest.raises(LgenError) as e:
        _table(tmp_path).resolve("shirt")
    msg = str(e.value)
    assert "no d of this model draws mostly 'shirt'" in msg and "runner-up of d 14, 30%" in msg


def test_a_name_of_two_domains_must_be_qualified(tmp_path):
    classes = {"a": ["x", "y"], "b": ["x", "z"]}
    rows = [_row(0, "a", "x", 0.9), _row(1, "b", "x", 0.8), _row(2, "b", "z", 0.7)]
    table = _table(tmp_path, rows, classes)
    with pytest.raises(LgenError, match="is a class of a and b: say which, e.g. --class 'a:x'"):
        table.resolve("x")
    assert table.resolve("b:x").d == 1 and table.resolve("a:x").d == 0
    assert table.known() == ["a:x", "b:x", "z"]  # what --class accepts, qualified only where needed


@pytest.mark.parametrize("text, needle", [("{", "unreadable"), ('{"schema_version": 2}', "schema_version 2"),
                                          ('{"schema_version": 1, "classes": {}}', "not a d -> class table"),
                                          ("[1, 2]", "not a d -> class table")])
def test_a_broken_table_is_one_line_naming_the_file(tmp_path, text, needle):
    (tmp_path / D_CLASSES_NAME).write_text(text)
    with pytest.raises(LgenError) as e:
        d_classes.read(tmp_path)
    assert needle in str(e.value) and str(tmp_path / D_CLASSES_NAME) in str(e.value) and "\n" not in str(e.value)


def test_no_table_is_none(tmp_path):
    assert d_classes.read(tmp_path) is None and d_classes.load(tmp_path) is None


def test_the_stale_check_compares_the_weights_the_table_was_measured_on(tmp_path):
    weights = tmp_path / NETWORK_FILES["G_ema"]
    manifest.write_files(tmp_path, {NETWORK_FILES["G_ema"]: b"weights v1"})
    sha = manifest.file_entry(weights)["sha256"]
    assert d_classes.recorded_weights_sha256(tmp_path) == sha
    assert _table(tmp_path, sha=sha).stale_warning(tmp_path) is None
    manifest.write_files(tmp_path, {NETWORK_FILES["G_ema"]: b"weights v2 (trained on)"})
    warning = _table(tmp_path, sha=sha).stale_warning(tmp_path)
    assert warning and "measured on other weights" in warning and "lgen evaluate" in warning


def test_markdown_has_a_row_per_d_and_marks_mixed_ones(tmp_path):
    text = d_classes.markdown(_table(tmp_path))
    lines = text.splitlines()
    assert len(lines) == 2 + 20
    assert "| 14 | Pullover (mixed) | fashion-mnist | 0.45 | Shirt (fashion-mnist, 0.30) |" in lines
    assert "| 12 | Bag | fashion-mnist | 0.95 | – |" in lines


# ---------------------------------------------------------------- the CLI, on copies of the embedded model


def _runtime_copy(dst: Path) -> Path:
    """config.json and the ONNX files of the embedded model: a bundle with no d -> class table."""
    src = embedded.pretrained_path()
    for rel in (CONFIG_NAME, *ONNX_FILES):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel)
    return dst


@pytest.fixture
def labelled(tmp_path) -> Path:
    bundle = _runtime_copy(tmp_path / "bundle")
    data = d_classes.build(ROWS, CLASSES, weights_sha256=None, measured={"by": "test"})
    manifest.write_files(bundle, {D_CLASSES_NAME: json.dumps(data).encode()})
    return bundle


def _one_line_exit_2(r, *needles):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lgen: error:"), r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_sample_class_draws_every_image_from_the_purest_d(labelled, tmp_path):
    out = tmp_path / "bags.png"
    r = lgen("sample", "--model", str(labelled), "--class", "bag", "--n", "6", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["class"] == {"name": "Bag", "domain": "fashion-mnist", "d": 12, "share": 0.95}
    assert {s["d"] for s in data["samples"]} == {12} and out.is_file()
    assert "--class Bag: d 12, 95% of whose samples the evaluation classifier calls Bag (fashion-mnist)" in r.stderr
    # The same seed with --d 12 draws the same images: --class only picks d.
    same = tmp_path / "d12.png"
    r = lgen("sample", "--model", str(labelled), "--d", "12", "--n", "6", "--out", str(same))
    assert r.returncode == 0, r.stderr
    assert same.read_bytes() == out.read_bytes()


def test_sample_class_errors_are_one_line(labelled, tmp_path):
    out = tmp_path / "x.png"
    _one_line_exit_2(lgen("sample", "--model", str(labelled), "--class", "giraffe", "--out", str(out)),
                     "'giraffe'", "known: 0, 1")
    _one_line_exit_2(lgen("sample", "--model", str(labelled), "--class", "bag", "--d", "3", "--out", str(out)),
                     "--class or --d, not both")
    bare = _runtime_copy(tmp_path / "bare")
    _one_line_exit_2(lgen("sample", "--model", str(bare), "--class", "bag", "--out", str(out)),
                     f"{bare} has no {D_CLASSES_NAME}", "lgen evaluate")
    assert not out.exists()


def test_a_damaged_table_is_named_by_the_manifest(labelled, tmp_path):
    path = labelled / D_CLASSES_NAME
    path.write_text(path.read_text().replace('"share": 0.95', '"share": 0.96'))
    _one_line_exit_2(lgen("sample", "--model", str(labelled), "--class", "bag", "--out", str(tmp_path / "x.png")),
                     D_CLASSES_NAME)


def test_a_table_naming_a_d_the_model_lacks_is_refused(tmp_path):
    bundle = _runtime_copy(tmp_path / "bundle")
    data = d_classes.build([_row(25, "mnist", "7", 0.9)], CLASSES, weights_sha256=None, measured={})
    manifest.write_files(bundle, {D_CLASSES_NAME: json.dumps(data).encode()})
    _one_line_exit_2(lgen("sample", "--model", str(bundle), "--class", "7", "--out", str(tmp_path / "x.png")),
                     "names d 25, but the model has 20 categories")


def test_interpolate_class_fixes_the_rows_category(labelled, tmp_path):
    r = lgen("interpolate", "--model", str(labelled), "--vary", "c1", "--class", "trouser", "--steps", "3",
             "--out", str(tmp_path / "t.png"), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["class"]["d"] == 11 and {cell["d"] for cell in data["cells"]} == {11}
    _one_line_exit_2(lgen("interpolate", "--model", str(labelled), "--vary", "d", "--class", "bag",
                          "--out", str(tmp_path / "u.png")), "--class fixes the category")


def test_encode_shows_the_class_of_each_d(labelled, tmp_path):
    grid = tmp_path / "bags.png"
    assert lgen("sample", "--model", str(labelled), "--class", "bag", "--n", "4", "--out", str(grid)).returncode == 0
    r = lgen("encode", str(grid), "--model", str(labelled), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["images"]
    assert len(rows) == 4 and all(row["class"] == d_classes.read(labelled).label(row["d"]) for row in rows)
    table = lgen("encode", str(grid), "--model", str(labelled))
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:3] == ["file", "d", "class"]
    bare = _runtime_copy(tmp_path / "bare")
    r = lgen("encode", str(grid), "--model", str(bare), "--json")
    assert r.returncode == 0 and {row["class"] for row in json.loads(r.stdout)["images"]} == {None}
    r = lgen("encode", str(grid), "--model", str(bare))
    assert r.returncode == 0 and r.stdout.splitlines()[0].split()[:3] == ["file", "d", "p(d)"]
    assert "has no d -> class table" in r.stderr


def test_the_model_card_shows_the_table_or_says_it_is_missing(labelled, tmp_path):
    from lifelong_gen.bundle.model_card import render_card

    card = render_card(labelled)
    assert "### What each d draws" in card and "| 12 | Bag | fashion-mnist | 0.95 | – |" in card
    assert "--class 7 --out class.png" not in card and "--class Trouser" in card  # the purest d's class
    assert "no `d_classes.json`" in render_card(_runtime_copy(tmp_path / "bare"))


# ---------------------------------------------------------------- the embedded model's own table


def test_the_embedded_model_ships_a_table_of_its_own_weights():
    bundle = embedded.pretrained_path()
    table = d_classes.load(bundle)  # checked against its manifest
    assert table is not None and table.stale_warning(bundle) is None
    assert [r.d for r in table.rows] == list(range(20)) and table.measured["samples_per_d"] == 100
    # It is the table of the shipped evaluation: each d's class and share are metrics.json's.
    shipped = json.loads((bundle / "metrics.json").read_text())["interpretability"]["d_purity"]["per_d"]
    assert [(r.d, r.domain, r.name, r.share) for r in table.rows] == [
        (p["d"], p["domain"], p["name"], round(p["purity"], 4)) for p in shipped]


def test_sample_class_on_the_embedded_model(tmp_path):
    table = d_classes.load(embedded.pretrained_path())
    sevens = max((r for r in table.rows if r.name == "7"), key=lambda r: r.share)  # the purest d of 7s
    r = lgen("sample", "--class", "7", "--n", "4", "--out", str(tmp_path / "sevens.png"), "--json")
    assert r.returncode == 0, r.stderr
    assert {s["d"] for s in json.loads(r.stdout)["samples"]} == {sevens.d}
    encoded = lgen("encode", str(tmp_path / "sevens.png"), "--json")
    assert encoded.returncode == 0, encoded.stderr
    assert {row["class"] for row in json.loads(encoded.stdout)["images"]} <= set(CLASSES["mnist"])
    # A class no d of this model draws mostly (the README's results name them) is refused in one
    # line that says where it is the runner-up.
    owned = {r.name for r in table.rows}
    missing = [c for c in table.classes["fashion-mnist"] if c not in owned]
    assert missing, "every class owns a d: pick another refusal to test"
    name = missing[0]
    where = max((r for r in table.rows if r.runner_up and r.runner_up[1] == name), key=lambda r: r.runner_up[2])
    _one_line_exit_2(lgen("sample", "--class", name.lower(), "--out", str(tmp_path / "none.png")),
                     f"no d of this model draws mostly '{name.lower()}'",
                     f"runner-up of d {where.d}, {where.runner_up[2]:.0%}")