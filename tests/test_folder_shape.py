"""The model's shape follows a folder's own images (issue 19): 28x28 grey folders get the 28x28 grey nets."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import lgen
from lifelong_gen.config import resolve_run_config
from lifelong_gen.domain_names import model_shape
from lifelong_gen.images import folder_image_shape


def make_images(root, n, size, mode, suffix=".png"):
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = root / f"part{i % 2}"  # nested: the listing is recursive
        sub.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).convert(mode).save(sub / f"img{i}{suffix}")
    return root


def shape_of(folder, **flags):
    cfg = resolve_run_config({"domains": f"folder:{folder}", **flags})
    return cfg.model.img_channels, cfg.model.img_resolution


def test_grey_28_folder_gets_the_28x28_grey_model(tmp_path):
    assert shape_of(make_images(tmp_path / "digits", 5, 28, "L")) == (1, 28)


def test_rgb_64_folder_gets_the_64x64_rgb_model(tmp_path):
    assert shape_of(make_images(tmp_path / "faces", 5, 64, "RGB")) == (3, 64)


@pytest.mark.parametrize("mode, size, expected", [
    ("L", 48, (1, 64)),  # grey but larger than 32 px
    ("RGB", 32, (3, 28)),  # small colour images: nearest supported resolution is 28
    ("I;16", 28, (1, 28)),
    ("LA", 28, (1, 28)),
    ("1", 20, (1, 28)),
])
def test_modes_and_sizes(tmp_path, mode, size, expected):
    assert folder_image_shape(make_images(tmp_path / "f", 3, size, mode)) == expected


def test_palette_images_count_as_grey_only_with_a_grey_palette(tmp_path):
    grey = tmp_path / "grey"
    grey.mkdir()
    ramp = (np.arange(28 * 28).reshape(28, 28) % 256).astype(np.uint8)
    Image.fromarray(ramp).convert("P").save(grey / "p.png")  # Pillow's default palette for L -> P: grey
    colour = tmp_path / "colour"
    colour.mkdir()
    rgb = np.stack([ramp, ramp // 2, 255 - ramp], -1)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(colour / "p.png")
    assert folder_image_shape(grey) == (1, 28)
    assert folder_image_shape(colour) == (3, 28)


def test_one_colour_or_large_image_among_grey_ones_decides(tmp_path):
    folder = make_images(tmp_path / "mixed", 4, 28, "L")
    Image.new("RGB", (28, 28), (255, 0, 0)).save(folder / "red.png")
    assert folder_image_shape(folder) == (3, 28)
    # Across folders: the larger and more colourful shape wins, so no domain loses pixels.
    small_grey = make_images(tmp_path / "small", 3, 28, "L")
    large_grey = make_images(tmp_path / "large", 3, 64, "L")
    assert model_shape([f"folder:{small_grey}", f"folder:{large_grey}"]) == (1, 64)


def test_sample_is_deterministic_and_bounded(tmp_path, monkeypatch):
    folder = make_images(tmp_path / "many", 40, 8, "L")
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k))
    assert folder_image_shape(folder, sample=32) == (1, 28)
    first, opened[:] = list(opened), []
    folder_image_shape(folder, sample=32)
    assert len(first) == 32 and opened == first


def test_non_images_and_unreadable_files_are_skipped(tmp_path):
    folder = make_images(tmp_path / "f", 2, 28, "L")
    (folder / "notes.txt").write_text("not an image")  # not an image suffix: never listed
    (folder / "bad.png").write_bytes(b"\x89PNG not really")  # listed, unreadable: skipped here
    assert folder_image_shape(folder) == (1, 28)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "bad.png").write_bytes(b"junk")
    assert folder_image_shape(only_bad) is None


def test_missing_or_empty_folder_keeps_the_old_default(tmp_path):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "nope", tmp_path / "empty"):
        assert folder_image_shape(folder) is None
        assert shape_of(folder) == (3, 64)


def test_explicit_flags_and_named_domains_win(tmp_path):
    digits = make_images(tmp_path / "digits", 3, 28, "L")
    assert shape_of(digits, img_resolution=64, img_channels=3) == (3, 64)
    assert shape_of(digits, img_channels=3) == (3, 28)
    faces = make_images(tmp_path / "faces", 3, 64, "RGB")
    assert model_shape(["mnist", f"folder:{faces}"]) == (1, 28)  # a named domain's native shape first


def test_dry_run_shows_the_folder_shape(tmp_path):
    digits = make_images(tmp_path / "digits", 3, 28, "L")
    r = lgen("train", "--domains", f"folder:{digits}", "--dry-run")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert (cfg["model"]["img_channels"], cfg["model"]["img_resolution"]) == (1, 28)
    r = lgen("train", "--domains", f"folder:{digits}", "--img-resolution", "64", "--dry-run")
    assert json.loads(r.stdout)["model"]["img_resolution"] == 64
