"""The animal-mnist domain and the restricted unpickler that reads its data.

The unpickler tests build hostile pickles by hand (objects whose __reduce__ names os.system
or builtins.eval) and check both the refusal and that the refused call never ran (a marker
file it would have created stays absent).
"""

import gzip
import hashlib
import importlib.util
import os
import pickle
import sys

import numpy as np
import pytest
import torch

from lifelong_gen.config import resolve_run_config
from lifelong_gen.domain_names import model_shape, parse_domains
from lifelong_gen.errors import LgenError
from lifelong_gen.safe_pickle import load_arrays
from lifelong_gen.train import domains

HAS_ANIMALS = importlib.util.find_spec("animal_mnist") is not None
needs_animals = pytest.mark.skipif(not HAS_ANIMALS, reason="animal-mnist not installed (scripts/setup.sh installs it)")


class _Call:
    """Pickles as a call of `fn(*args)`: what a malicious pickle does on load."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class Harmless:
    """A plain class of this test module: not numpy, so refused too."""


def write(path, value, protocol=4):
    data = pickle.dumps(value, protocol=protocol)
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- the restricted unpickler


@pytest.mark.parametrize("make, refused", [
    (lambda m: _Call(os.system, f"touch {m}"), f"{os.system.__module__}.system"),  # posix.system on Linux
    (lambda m: _Call(eval, f"open({str(m)!r}, 'w').close()"), "builtins.eval"),
    # Hidden next to real arrays in a container: still refused, still not run.
    (lambda m: {"x": np.zeros(3), "y": [_Call(os.system, f"touch {m}")]}, f"{os.system.__module__}.system"),
])
def test_refuses_code_execution_without_running_it(tmp_path, make, refused):
    marker = tmp_path / "ran"
    path = write(tmp_path / "evil.pkl", make(marker))
    with pytest.raises(LgenError, match=f"refused to unpickle global {refused}") as e:
        load_arrays(path)
    assert "\n" not in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("value, refused", [
    (Harmless(), f"{__name__}.Harmless"),
    (np.save, "numpy.save"),  # a numpy global, but not one that array pickling writes
    (np.float32(1.5), "numpy._core.multiarray.scalar"),  # numpy scalars are not admitted either
])
def test_refuses_other_globals(tmp_path, value, refused):
    with pytest.raises(LgenError, match=f"refused to unpickle global {refused}"):
        load_arrays(write(tmp_path / "x.pkl", value))


def test_refuses_object_arrays_and_other_values(tmp_path):
    # dtype object is built from admitted globals only, so the result check must catch it.
    with pytest.raises(LgenError, match="object array"):
        load_arrays(write(tmp_path / "o.pkl", np.array([1, "a"], dtype=object)))
    with pytest.raises(LgenError, match="holds a float"):
        load_arrays(write(tmp_path / "f.pkl", {"lr": 0.5}))


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_reads_real_numpy_pickles(tmp_path, protocol):
    value = {"images": np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28),
             "labels": np.array([3, 7]), "meta": ["bear", 2, ("x", np.asfortranarray(np.eye(3, dtype=np.float32)))]}
    out = load_arrays(write(tmp_path / "a.pkl.gz", value, protocol))
    assert out["images"].dtype == np.uint8 and np.array_equal(out["images"], value["images"])
    assert np.array_equal(out["labels"], [3, 7]) and out["meta"][:2] == ["bear", 2]
    assert np.array_equal(out["meta"][2][1], np.eye(3)) and out["meta"][2][1].flags.f_contiguous


def test_unreadable_files_are_one_line_errors(tmp_path):
    good = pickle.dumps(np.arange(100))
    (tmp_path / "cut.pkl").write_bytes(good[: len(good) // 2])
    for path in (tmp_path / "cut.pkl", tmp_path / "missing.pkl"):
        with pytest.raises(LgenError, match="cannot read pickled arrays"):
            load_arrays(path)


# ---------------------------------------------------------------- the animal-mnist domain


@needs_animals
def test_the_real_data_files_read_safely():
    images_path, labels_path, version = domains._animal_files()
    images, labels = load_arrays(images_path), load_arrays(labels_path)
    assert version == "0.4"
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and np.bincount(labels).tolist() == [1000] * 10
    # The package's __init__ and its TensorFlow loader were never run.
    assert "animal_mnist" not in sys.modules and "tensorflow" not in sys.modules


@pytest.fixture(scope="module")
def animals():
    if not HAS_ANIMALS:
        pytest.skip("animal-mnist not installed (scripts/setup.sh installs it)")
    return domains.load_domain("animal-mnist", 1, 28)


def test_domain_shape_split_and_source(animals):
    assert len(domains.ANIMAL_CLASSES) == 10 and animals.num_classes == 10
    assert animals.train_images.dtype == torch.uint8
    assert animals.train_images.shape == (9000, 1, 28, 28) and animals.test_images.shape == (1000, 1, 28, 28)
    assert torch.bincount(animals.test_labels).tolist() == [100] * 10
    assert torch.bincount(animals.train_labels).tolist() == [900] * 10
    assert animals.source == ("PyPI package animal-mnist 0.4 (10,000 real silhouettes, "
                              "9,000 train / 1,000 test, stratified)")
    # No test image is an exact copy of a training image (the package holds 284 repeated images).
    train = {hashlib.sha256(x.numpy().tobytes()).digest() for x in animals.train_images}
    assert not any(hashlib.sha256(x.numpy().tobytes()).digest() in train for x in animals.test_images)


def test_domain_is_white_on_black_like_mnist(animals):
    images = animals.train_images.float()  # [N, 1, 28, 28]
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], -1)
    assert border.mean() < 10 and images[..., 10:18, 10:18].mean() > 150


def test_domain_is_deterministic(animals):
    again = domains.load_domain("animal-mnist", 1, 28)
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(animals, name), getattr(again, name)), name


def test_domain_name_and_shape():
    assert parse_domains("animal-mnist,mnist") == ["animal-mnist", "mnist"]
    assert model_shape(["animal-mnist"]) == (1, 28)
    cfg = resolve_run_config({"domains": "animal-mnist"})
    assert (cfg.model.img_channels, cfg.model.img_resolution) == (1, 28)
    with pytest.raises(LgenError, match="animal-mnist, folder:PATH"):
        parse_domains("animals")


def test_missing_package_names_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "animal_mnist" else real(name, *a))
    with pytest.raises(LgenError) as e:
        domains.load_domain("animal-mnist", 1, 28)
    assert str(e.value) == "animal-mnist not found: pip install --no-deps animal-mnist==0.4"
