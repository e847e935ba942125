"""Evaluation of a bundle or run: quality, memory, interpretability and forgetting.

Owns `evaluate` (what `lgen evaluate` computes) and the metric functions it uses:

- quality: FID and KID through torch-fidelity (`calculate_metrics`) between generated
  samples and each domain's real test images, on the features of our own classifier
  (classifier.py, registered with torch-fidelity); standard Inception FID as well when
  the user has Inception weights (`inception_weights=`).
- memory (MeRGAN-style): which domain each sample belongs to (classifier argmax), the
  share of samples per domain, per-class coverage and the classifier's confidence.
- interpretability: clustering accuracy (Hungarian), NMI and ARI of S's argmax d on real
  test images, per domain and joint; d-purity of generated samples; a traversal score
  per continuous code.
- forgetting: each per-domain snapshot of a run evaluated on every domain seen so far
  (domains trained x domains evaluated), with backward transfer.

Samples come from the EMA generator of the bundle (what users sample). All randomness is
seeded; the schema of metrics.json is versioned (SCHEMA_VERSION).
"""

from __future__ import annotations

import datetime
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from lifelong_gen import __version__
from lifelong_gen.bundle import CONFIG_NAME, SNAPSHOTS_DIR
from lifelong_gen.config import RunConfig, read_run_config
from lifelong_gen.errors import LgenError, one_line
from lifelong_gen.eval.classifier import DomainClassifier, LabelSpace, load_or_train, predict, register_with_fidelity
from lifelong_gen.eval.clustering import clustering_scores
from lifelong_gen.eval.forgetting import forgetting, snapshot_dirs
from lifelong_gen.eval.registry import METRICS, Context, register_metric, run_metrics, timed
from lifelong_gen.train.checkpoint import load_bundle
from lifelong_gen.train.domains import DomainData, data_home, load_domain, to_float, to_uint8
from lifelong_gen.train.replay import sample_codes, sample_noise

log = logging.getLogger("lifelong_gen")

SCHEMA_VERSION = 1
MIN_FID_SAMPLES = 50  # fewer samples attributed to a domain: FID is not reported (null)
COVERAGE_THRESHOLD = 0.01  # a class is "present" with at least 1% of all samples
D_SAMPLES = 100  # samples per d for its purity and the d -> class table


class _Images(torch.utils.data.Dataset):
    """uint8 [N, C, H, W] as a torch-fidelity input (optionally grey -> RGB for Inception)."""

    def __init__(self, images: torch.Tensor, rgb: bool = False):
        self.images = images
        self.rgb = rgb

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.images[i]
        return x.expand(3, -1, -1).contiguous() if self.rgb and x.shape[0] == 1 else x


@dataclass
class Evaluator:
    """Shared state of one evaluation: the domains' data, the classifier, the settings."""

    data: list[DomainData]
    classifier: DomainClassifier
    space: LabelSpace
    classifier_path: Path
    classifier_info: dict
    num_samples: int = 5000
    seed: int = 0
    inception_weights: Optional[Path] = None

    # ------------------------------------------------------------ sampling

    @torch.no_grad()
    def generate(self, G: torch.nn.Module, n: int, d_slots: int, seed: int):
        """n samples of G (eval mode) with codes from the priors; d uniform over `d_slots`."""
        cfg = G.cfg
        g = torch.Generator().manual_seed(seed)
        z, c, d, d_idx = sample_codes(n, cfg.z_dim, cfg.c_dim, cfg.d_dim, d_slots, g)
        out = torch.cat([G(z[i:i + 500], c[i:i + 500], d[i:i + 500]) for i in range(0, n, 500)])
        return to_uint8(out), d_idx  # uint8 [n, C, H, W]

    @torch.no_grad()
    def own_d_fid(self, G: torch.nn.Module, first: int, count: int, domain: int, seed: int) -> Optional[float]:
        """FID of the samples of one domain's own d's (`count` of them from `first`) against that
        domain's test images: the same codes for every snapshot that has those d's, so a generator
        that kept the domain exactly scores exactly what it scored (classifier attribution plays no part)."""
        cfg = G.cfg
        n = max(MIN_FID_SAMPLES, self.num_samples // len(self.data))
        g = torch.Generator().manual_seed(seed + 7919 * (domain + 1))
        z, c = sample_noise(n, cfg.z_dim, cfg.c_dim, g)
        d = torch.nn.functional.one_hot(first + torch.arange(n) % count, cfg.d_dim).float()
        out = torch.cat([G(z[i:i + 500], c[i:i + 500], d[i:i + 500]) for i in range(0, n, 500)])
        return self.fidelity(to_uint8(out), self.data[domain].test_images, real_key=f"domain{domain}")["fid"]

    # ------------------------------------------------------------ quality and memory

    def fidelity(self, generated: torch.Tensor, real: torch.Tensor, real_key: Optional[str] = None) -> dict[str, float]:
        """FID and KID on our classifier's features (and Inception FID when weights are given)."""
        import torch_fidelity

        name = register_with_fidelity()
        n = min(len(generated), len(real))
        kw = dict(cuda=False, verbose=False, batch_size=250, save_cpu_ram=True)
        # The real side's features are cached by torch-fidelity under our data home, keyed
        # on the classifier and the domain: the forgetting matrix reuses them many times.
        cache = {}
        if real_key is not None:
            cache = dict(cache=True, cache_root=str(data_home() / "fidelity"),
                         input2_cache_name=f"{self.classifier_path.stem}-{real_key}-{len(real)}")
        m = torch_fidelity.calculate_metrics(
            input1=_Images(generated), input2=_Images(real), fid=True, kid=True, **cache,
            kid_subset_size=min(1000, n), kid_subsets=50, feature_extractor=name,
            feature_extractor_weights_path=str(self.classifier_path), **kw)
        out = {"fid": float(m["frechet_inception_distance"]), "kid_mean": float(m["kernel_inception_distance_mean"]),
               "kid_std": float(m["kernel_inception_distance_std"])}
        if self.inception_weights is not None:
            mi = torch_fidelity.calculate_metrics(
                input1=_Images(generated, rgb=True), input2=_Images(real, rgb=True), fid=True,
                feature_extractor="inception-v3-compat",
                feature_extractor_weights_path=str(self.inception_weights), **kw)
            out["inception_fid"] = float(mi["frechet_inception_distance"])
        return out

    def memory(self, probs: torch.Tensor) -> dict[str, Any]:
        """Share of samples per domain, per-class coverage, confidence (from classifier probs)."""
        cls = probs.argmax(1)
        dom = self.space.domain_of(cls)
        per_domain = {}
        for k, spec in enumerate(self.space.domains):
            mask = dom == k
            lo, size = self.space.offsets[k], self.space.sizes[k]
            class_shares = [float((cls == lo + j).float().mean()) for j in range(size)]
            per_domain[spec] = {
                "sample_share": float(mask.float().mean()),
                "class_shares": class_shares,
                "covered_classes": int(sum(s >= COVERAGE_THRESHOLD for s in class_shares)),
                "num_classes": size,
                "confidence": float(probs[mask].max(1).values.mean()) if mask.any() else None,
            }
        return {"per_domain": per_domain, "domain_of_sample": dom, "confidence": float(probs.max(1).values.mean())}

    # ------------------------------------------------------------ interpretability

    @torch.no_grad()
    def s_clustering(self, S: torch.nn.Module) -> dict[str, Any]:
        """Clustering scores of argmax_d S(d|o) on each domain's real test images, and joint."""
        per, preds, joint = {}, [], []
        for k, d in enumerate(self.data):
            pred = torch.cat([S(to_float(d.test_images[i:i + 500]))[0].argmax(1)
                              for i in range(0, d.test_images.shape[0], 500)]).numpy()
            labels = d.test_labels.numpy()
            if d.num_classes and (labels >= 0).all():
                per[d.spec] = clustering_scores(pred, labels)
            preds.append(pred)
            joint.append(self.space.joint_labels(k, d.test_labels).numpy())
        out: dict[str, Any] = {"per_domain": per}
        if len(self.data) > 1:
            out["joint"] = clustering_scores(np.concatenate(preds), np.concatenate(joint))
        return out

    @torch.no_grad()
    def d_purity(self, G: torch.nn.Module, d_slots: int, seed: int, per_code: int = D_SAMPLES) -> dict[str, Any]:
        """For each d: the share of its samples in the classifier's most common class (its purity),
        that class's domain and name, and the runner-up class (what d_classes.json records)."""
        cfg = G.cfg
        g = torch.Generator().manual_seed(seed)
        rows = []
        for j in range(d_slots):
            z, c = sample_noise(per_code, cfg.z_dim, cfg.c_dim, g)
            d = torch.nn.functional.one_hot(torch.full((per_code,), j), cfg.d_dim).float()
            images = to_uint8(G(z, c, d))
            cls = predict(self.classifier, images)[1].argmax(1)
            counts = torch.bincount(cls, minlength=self.space.num_classes)
            ranked = counts.argsort(descending=True, stable=True).tolist()
            top, second = ranked[0], ranked[1] if len(ranked) > 1 else None
            domain, name = self.class_of(top)
            runner = None
            if second is not None and counts[second] > 0:
                r_domain, r_name = self.class_of(second)
                runner = {"domain": r_domain, "class": r_name, "share": float(counts[second]) / per_code}
            rows.append({"d": j, "class": self._class_name(top), "purity": float(counts[top]) / per_code,
                         "domain": domain, "name": name, "runner_up": runner})
        return {"mean": float(np.mean([r["purity"] for r in rows])), "samples_per_d": per_code, "per_d": rows}

    @torch.no_grad()
    def traversal_scores(self, G: torch.nn.Module, d_slots: int, seed: int, n: int = 200,
                         steps: int = 9) -> dict[str, Any]:
        """Per continuous code c_k swept from -1 to 1 (others fixed): how much the classifier's
        output changes (total variation between the endpoints) and the mean pixel change."""
        cfg = G.cfg
        g = torch.Generator().manual_seed(seed)
        z, c0, d, _ = sample_codes(n, cfg.z_dim, cfg.c_dim, cfg.d_dim, d_slots, g)
        out = {}
        for k in range(cfg.c_dim):
            probs, images = [], []
            for v in torch.linspace(-1, 1, steps):
                c = c0.clone()
                c[:, k] = v
                x = to_uint8(G(z, c, d))
                images.append(x)
                probs.append(predict(self.classifier, x)[1])
            class_change = 0.5 * (probs[0] - probs[-1]).abs().sum(1).mean()
            pixel_change = (images[0].float() - images[-1].float()).abs().mean() / 255
            out[f"c{k + 1}"] = {"class_change": float(class_change), "pixel_change": float(pixel_change)}
        return out

    def class_of(self, joint_class: int) -> tuple[str, str]:
        """(domain spec, class name) of a joint class of the classifier's label space."""
        k = int(self.space.domain_of(torch.tensor([joint_class]))[0])
        return self.space.domains[k], self.data[k].class_names[joint_class - self.space.offsets[k]]

    def _class_name(self, joint_class: int) -> str:
        """How reports name a joint class: `domain:name`, or the domain alone for a one-class (unlabelled) domain."""
        domain, name = self.class_of(joint_class)
        return domain if name == domain else f"{domain}:{name}"

    # ------------------------------------------------------------ one bundle

    def evaluate_generator(self, G: torch.nn.Module, d_slots: int, domains: list[int], seed: int,
                           progress=None) -> dict[str, Any]:
        """Quality and memory of G on the given domain indices (the ones it has seen)."""
        images, _ = self.generate(G, self.num_samples, d_slots, seed)
        _, probs = predict(self.classifier, images)
        mem = self.memory(probs)
        per = {}
        task = progress.add_task("FID/KID per domain", total=len(domains)) if progress else None
        for k in domains:
            spec = self.space.domains[k]
            entry = dict(mem["per_domain"][spec])
            mine = images[mem["domain_of_sample"] == k]
            entry["samples_attributed"] = int(mine.shape[0])
            if mine.shape[0] >= MIN_FID_SAMPLES:
                entry.update(self.fidelity(mine, self.data[k].test_images, real_key=f"domain{k}"))
            else:
                entry.update({"fid": None, "kid_mean": None, "kid_std": None})
            per[spec] = entry
            if progress:
                progress.advance(task)
        seen_real = torch.cat([self.data[k].test_images[:max(1, self.num_samples // len(domains))] for k in domains])
        overall = {"confidence": mem["confidence"],
                   **self.fidelity(images, seen_real, real_key="seen" + "-".join(map(str, domains)))}
        return {"per_domain": per, "overall": overall, "images": images, "domain_of_sample": mem["domain_of_sample"]}


def _check_plain_weights(path: Path) -> None:
    """torch-fidelity unpickles its Inception weights (torch.load, weights_only=False). Load the
    file first with the safe loader: only a plain tensor state dict goes on to torch-fidelity."""
    if not path.is_file():
        raise LgenError(f"Inception weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle payloads beyond tensors are refused here
        raise LgenError(f"{path} is not a plain tensor state dict (refusing to unpickle it): "
                        f"{one_line(e, first_line=True)}") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise LgenError(f"{path} is not a tensor state dict of torch-fidelity's Inception network")


def _versions() -> dict[str, str]:
    import torch_fidelity

    return {"lifelong_gen": __version__, "torch": torch.__version__, "torch_fidelity": torch_fidelity.__version__,
            "python": platform.python_version()}


# ---------------------------------------------------------------- the registered metrics (registry.py)


@register_metric("quality", seed_offset=0, section="core")
def _quality(ev: Evaluator, ctx: Context, seed: int) -> dict[str, Any]:
    """FID/KID and memory of the whole model on every domain."""
    return ev.evaluate_generator(ctx.G, ctx.run.model.d_dim, list(range(len(ctx.run.train.domains))), seed,
                                 progress=ctx.progress)


@register_metric("clustering", seed_offset=1, section="core")
def _clustering(ev: Evaluator, ctx: Context, seed: int) -> dict[str, Any]:
    """S's clustering of real test images (draws nothing)."""
    return ev.s_clustering(ctx.S)


@register_metric("d_purity", seed_offset=7)
def _d_purity(ev: Evaluator, ctx: Context, seed: int) -> dict[str, Any]:
    return ev.d_purity(ctx.G, ctx.run.model.d_dim, seed)


@register_metric("traversal", seed_offset=11)
def _traversal(ev: Evaluator, ctx: Context, seed: int) -> dict[str, Any]:
    return ev.traversal_scores(ctx.G, ctx.run.model.d_dim, seed)


@register_metric("forgetting", seed_offset=0, section="core")
def _forgetting(ev: Evaluator, ctx: Context, seed: int) -> Optional[dict[str, Any]]:
    """Each per-domain snapshot on the domains seen so far; None for a bundle without snapshots."""
    snaps = snapshot_dirs(ctx.bundle)
    return forgetting(ev, ctx.run, snaps, seed, progress=ctx.progress) if snaps else None


def evaluate(bundle: Path, *, num_samples: int = 5000, seed: int = 0, inception_weights: Optional[Path] = None,
             data: Optional[list[DomainData]] = None, figures_dir: Optional[Path] = None,
             progress: bool = True) -> dict[str, Any]:
    """Every metric of `lgen evaluate` for a run directory or bundle; returns the metrics.json dict.

    Args:
        bundle: a run directory (with snapshots/: the forgetting matrix is computed) or a bundle.
        num_samples: generated samples for the quality and memory metrics.
        inception_weights: torch-fidelity Inception weights file, for standard FID as well.
        data: already loaded domains (tests); loaded from the config's domain list otherwise.
        figures_dir: where to write the PNG figures (None: no figures).
    """
    from rich.console import Console
    from rich.progress import Progress

    bundle = Path(bundle)
    run = read_run_config(bundle)
    if inception_weights is not None:
        _check_plain_weights(Path(inception_weights))
    if num_samples < 10:
        raise LgenError(f"--num-samples must be >= 10, got {num_samples}")
    # The bundle first: a damaged weight file ends in one line before any data or classifier work.
    _, nets = load_bundle(bundle, which=("G_ema", "S"))
    torch.manual_seed(seed)
    timings: dict[str, float] = {}
    with timed(timings, "data"):
        if data is None:
            data = [load_domain(s, run.model.img_channels, run.model.img_resolution, run.train.data_root,
                                run.train.download) for s in run.train.domains]
    bar = Progress(console=Console(stderr=True), transient=True, disable=not progress)
    with bar:
        with timed(timings, "classifier"):  # read from its cache, or trained once per data
            classifier, space, info, path = load_or_train(data)
        ev = Evaluator(data, classifier, space, path, info, num_samples, seed,
                       Path(inception_weights) if inception_weights else None)
        results = run_metrics(ev, Context(nets["G_ema"], nets["S"], run, bundle, progress=bar), timings)
        if figures_dir is not None:
            from lifelong_gen.eval import figures

            quality = results["quality"]
            with timed(timings, "figures"):
                figures.write_all(Path(figures_dir), nets["G_ema"], quality["images"], quality["domain_of_sample"],
                                  space, results["forgetting"], _parent_generator(bundle, run))

    return {**_metrics_json(bundle, run, data, info, path.name, results, seed, num_samples), "timings_s": timings}


def _parent_generator(bundle: Path, run: RunConfig) -> Optional[torch.nn.Module]:
    """A continued run's parent EMA G (its snapshot of the last inherited domain), or None."""
    k = run.train.inherited_domains
    snapshot = Path(bundle) / SNAPSHOTS_DIR / f"domain-{k}"
    if not k or not (snapshot / CONFIG_NAME).is_file():
        return None
    return load_bundle(snapshot, which=("G_ema",))[1]["G_ema"].eval()


def _metrics_json(bundle: Path, run: RunConfig, data: list[DomainData], classifier_info: dict, classifier_file: str,
                  results: dict[str, Any], seed: int, num_samples: int) -> dict[str, Any]:
    """The metrics.json dictionary (schema SCHEMA_VERSION) from the registered metrics' results."""
    res, clustering = results["quality"], results["clustering"]
    per_domain = res["per_domain"]
    for spec, scores in clustering["per_domain"].items():
        per_domain[spec]["clustering"] = scores
    return {
        "schema_version": SCHEMA_VERSION,
        "bundle": str(bundle),
        "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "num_samples": num_samples,
        "versions": _versions(),
        "training": {"domains": run.train.domains, "replay": run.train.replay, "joint": run.train.joint,
                     "growth": run.train.growth, "adapter_rank": run.model.adapter_rank if run.model.domain_groups else None,
                     "d_per_domain": run.train.d_per_domain, "steps_per_domain": run.train.steps_per_domain,
                     "replay_ratio": run.train.replay_ratio,
                     "inherited_domains": run.train.inherited_domains,
                     "parent": (run.parent or {}).get("model"), "critic": (run.parent or {}).get("critic")},
        "data_sources": [d.describe() for d in data],
        "class_names": {d.spec: list(d.class_names) for d in data},
        "classifier": {"feature_extractor": "lgen-classifier (registered with torch-fidelity)",
                       "cache_file": classifier_file, **classifier_info},
        "per_domain": per_domain,
        "overall": {**res["overall"], "joint_clustering": clustering.get("joint")},
        "interpretability": {m.name: results[m.name] for m in METRICS.values() if m.section == "interpretability"},
        "forgetting": results["forgetting"],
    }
