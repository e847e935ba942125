"""A model on disk: the names of the files inside a bundle, and the one staleness rule between them.

This package owns what a bundle is, how it is checked, where it comes from and how it is
described, all torch-free: the file table (here), the manifest (manifest.py), the models
shipped in the package (embedded.py), the Hub (hub.py), the one resolver from a string to a
checked local bundle (resolve.py), `--from`'s lineage (lineage.py), the d -> class table
(d_classes.py) and the model card (model_card.py). It imports only the ground floor of
lifelong_gen (atomic writes, errors, config, domain names, the metrics summary) and the ONNX graph contract
(export/spec.py); the runtime, the CLI and the torch side import it.

A bundle (or run directory) is the diffusers layout plus what export, evaluation and the
Hub add; every module that reads or writes one takes the names from here:

    config.json                      RunConfig (config.py)
    generator.safetensors, generator_ema.safetensors, encoder.safetensors, critic.safetensors
    onnx/generator.onnx, onnx/encoder.onnx    `lgen export` (graph contract: export/spec.py)
    metrics.json, report.md, figures/*.png    `lgen evaluate`
    d_classes.json                   `lgen evaluate`'s d -> class table (d_classes.py); sampling reads it
    samples/*.png, metrics.jsonl              the trainer's sample grids and loss log
    README.md                        model card (model_card.py)
    manifest.json                    size + sha256 of config.json, *.safetensors, onnx/*.onnx, d_classes.json
                                     (an embedded model's: of every file) (manifest.py)

Also owns `stale_onnx`: the ONNX graphs are a derived copy of the weights, so a bundle whose
weights changed after its export (exported mid-training, then trained on) must be re-exported;
and `bundle_images`, the preview PNGs that cards show and `lgen push` uploads. Numpy-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

# The RunConfig's own file: config.py (the ground floor) reads it, so it names it; listed here with the rest.
from lifelong_gen.config import CONFIG_NAME

# One safetensors file per separately trained network, keyed as in networks.py.
NETWORK_FILES = {
    "G": "generator.safetensors",
    "G_ema": "generator_ema.safetensors",
    "S": "encoder.safetensors",
    "D": "critic.safetensors",
}

ONNX_DIR = "onnx"
GENERATOR_ONNX = f"{ONNX_DIR}/generator.onnx"
ENCODER_ONNX = f"{ONNX_DIR}/encoder.onnx"
ONNX_FILES = (GENERATOR_ONNX, ENCODER_ONNX)
# All that `lgen sample | encode | interpolate` read: no weights.
RUNTIME_FILES = (CONFIG_NAME, *ONNX_FILES)

CARD_NAME = "README.md"
METRICS_NAME = "metrics.json"  # `lgen evaluate`'s results
REPORT_NAME = "report.md"
# Which class each d draws (d_classes.py): written by `lgen evaluate` into the bundle, read by `sample --class`.
D_CLASSES_NAME = "d_classes.json"
COMPARE_NAME = "compare.md"  # `lgen evaluate --compare --out DIR`
TRAINING_LOG_NAME = "metrics.jsonl"  # the trainer's averaged losses, one JSON line per log step
# Size and sha256 of the files the loaders read (manifest.py); a checkpoint has its own of the same name.
MANIFEST_NAME = "manifest.json"
SAMPLES_DIR = "samples"  # the trainer's grid after each domain
SNAPSHOTS_DIR = "snapshots"  # a run's bundle of G_ema and S after each domain (snapshots/domain-K/)
CHECKPOINTS_DIR = "checkpoints"  # a run's resumable training states (checkpoint.py)
FIGURES_DIR = "figures"  # `lgen evaluate`'s figures
# Where preview images may sit (what model cards show and `lgen push` uploads).
IMAGE_PATTERNS = (f"{SAMPLES_DIR}/*.png", f"{FIGURES_DIR}/*.png", "*.png")

# A bundle copied file by file (cp, a Hub download) gets mtimes in copy order, not in export
# order: a second of slack keeps such a copy from looking stale.
MTIME_SLACK_S = 1.0


def stale_onnx(root: Path, weights: Optional[Sequence[str]] = None) -> Optional[str]:
    """A one-line message when the ONNX files of `root` are older than its weights, else None.

    Args:
        root: a bundle or run directory whose ONNX_FILES exist (callers check that first).
        weights: the safetensors files to compare, relative to `root`; None: every one present.
    """
    root = Path(root)
    paths = [root / rel for rel in weights] if weights is not None else list(root.glob("*.safetensors"))
    newest_weights = max((p.stat().st_mtime for p in paths), default=0.0)
    oldest_onnx = min((root / rel).stat().st_mtime for rel in ONNX_FILES)
    if newest_weights > oldest_onnx + MTIME_SLACK_S:
        return f"the ONNX files in {root} are older than its weights: re-run `lgen export {root}`"
    return None


def bundle_images(bundle: Path) -> list[Path]:
    """Preview PNGs of a bundle (IMAGE_PATTERNS), relative to it, in a stable order."""
    bundle = Path(bundle)
    found: list[Path] = []
    for pattern in IMAGE_PATTERNS:
        for path in sorted(bundle.glob(pattern)):
            rel = path.relative_to(bundle)
            if path.is_file() and rel not in found:
                found.append(rel)
    return found
