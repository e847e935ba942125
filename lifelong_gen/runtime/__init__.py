"""Torch-free inference on an exported bundle: the library side of `lgen sample | encode | interpolate`.

The torch-free side of the ONNX line has this folder to itself (the exporter, torch-side, is
export/onnx_export.py; the graph contract both sides share is export/spec.py). This module
owns `OnnxModel` (a bundle's onnx/generator.onnx and onnx/encoder.onnx under onnxruntime:
G(z, c, d) -> images, S(o) -> (d_logits, c_mean)), `load_model` and `read_encoder_inputs`
(image files as the encoder's batch: lgen's PNG grids cut into their cells, a warning for an
image far from the model's shape). `load_model` takes what `--model` takes (a directory, an
embedded model's name, `ORG/NAME[@REV]`, or nothing: the default model) and resolves it
through lifelong_gen/bundle/resolve.py. Its helpers live where they are owned, with one import
path each: runtime/codes.py (the generator's inputs in numpy: priors, traversals, paths),
runtime/sessions.py (onnxruntime, providers, cached and checked sessions) and
lifelong_gen/images.py (image files in, PNG grids out).

    from lifelong_gen.runtime import load_model
    from lifelong_gen.runtime.codes import random_codes

    model = load_model("mnist-fashion")  # or a bundle directory, or "ORG/NAME@REV" from the Hub

Imports only numpy, onnxruntime, Pillow and torch-free lifelong_gen modules: it runs where
PyTorch (and the onnx package) is not installed. config.json, and each ONNX file when its
session is opened (sessions.py), are checked against the bundle's manifest.json first
(lifelong_gen/bundle/manifest.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from lifelong_gen.bundle import (
    CONFIG_NAME,
    D_CLASSES_NAME,
    ENCODER_ONNX,
    GENERATOR_ONNX,
    ONNX_FILES,
    RUNTIME_FILES,
    manifest,
    stale_onnx,
)
from lifelong_gen.bundle.resolve import resolve_bundle
from lifelong_gen.config import ModelConfig, RunConfig, read_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.export import spec
from lifelong_gen.images import grid_cells, grid_layout, open_image, to_float, to_model_pixels
from lifelong_gen.runtime.sessions import checked_session, choose_providers, import_onnxruntime

__all__ = ["OnnxModel", "load_model", "read_model_config", "EncoderInput", "read_encoder_inputs", "shape_warning"]

# Beyond these an image is far from what the model was trained on (a square of its resolution):
# the centre crop drops much of a wide or tall image, and shrinking a large one by more than 8x
# turns a page, a photo of several objects or a collage into one smudge. A warning, not an error.
MAX_ASPECT = 1.5
MAX_SCALE = 8


# ---------------------------------------------------------------- the model


def read_model_config(bundle: Path) -> RunConfig:
    """config.json of a run or bundle directory (checked against its manifest), with one-line errors for the CLI."""
    bundle = Path(bundle)
    if not bundle.exists():
        raise LgenError(f"model directory {bundle} does not exist")
    if not bundle.is_dir():
        raise LgenError(f"{bundle} is not a directory (expected a run or bundle directory)")
    manifest.verify(bundle, [CONFIG_NAME])  # a flipped digit in a shape still parses: only the sha256 sees it
    return read_run_config(bundle)


class OnnxModel:
    """An exported bundle under onnxruntime: G(z, c, d) -> images and S(o) -> (d_logits, c_mean).

    Sessions are created on first use, so `sample` never loads the encoder.
    """

    def __init__(self, bundle: Path, provider: Optional[str] = None, threads: Optional[int] = None):
        """
        Args:
            bundle: a run directory or bundle directory holding config.json and onnx/.
            provider: "cpu" or "cuda" to force one; None: CUDA when available, else CPU.
            threads: intra-op threads (CPU); None: one per usable core.
        """
        self.bundle = Path(bundle)
        self.run = read_model_config(self.bundle)
        self.cfg: ModelConfig = self.run.model
        self.requested_provider = provider
        self.threads = threads
        if provider is not None:  # reject a bad --provider before any work
            choose_providers(provider, import_onnxruntime().get_available_providers())
        for rel in ONNX_FILES:
            if not (self.bundle / rel).is_file():
                raise LgenError(f"{self.bundle} has no {rel}: run `lgen export {self.bundle}` first")

    # dimensions --------------------------------------------------------------
    @property
    def z_dim(self) -> int:
        return self.cfg.z_dim

    @property
    def c_dim(self) -> int:
        return self.cfg.c_dim

    @property
    def d_dim(self) -> int:
        return self.cfg.d_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.cfg.img_channels, self.cfg.img_resolution, self.cfg.img_resolution)

    # sessions ----------------------------------------------------------------
    def _get(self, rel: str, inputs: dict[str, tuple[int, ...]], outputs: tuple[str, ...]):
        """The cached session of `rel`, checked against the contract and config.json (sessions.py)."""
        return checked_session(self.bundle / rel, inputs, outputs, provider=self.requested_provider,
                               threads=self.threads, bundle=self.bundle)

    @property
    def generator(self):
        """The generator's onnxruntime session."""
        cfg = self.cfg
        return self._get(GENERATOR_ONNX, {"z": (cfg.z_dim,), "c": (cfg.c_dim,), "d": (cfg.d_dim,)},
                         spec.GENERATOR_OUTPUTS)

    @property
    def encoder(self):
        """The encoder's onnxruntime session."""
        return self._get(ENCODER_ONNX, {"image": self.image_shape}, spec.ENCODER_OUTPUTS)

    def provider(self, which: str = "generator") -> str:
        """The execution provider that runs `which` ("generator" or "encoder")."""
        return (self.generator if which == "generator" else self.encoder).get_providers()[0]

    def stale_warning(self) -> Optional[str]:
        """A message when the bundle's weights are newer than its ONNX files (exported mid-training)."""
        return stale_onnx(self.bundle)

    # inference ---------------------------------------------------------------
    def sample(self, z: np.ndarray, c: np.ndarray, d: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """G(z, c, d) -> float32 images [N, C, H, W] in [-1, 1].

        Args:
            z: [N, z_dim] noise. c: [N, c_dim] continuous codes. d: [N, d_dim] one-hot or probabilities.
            batch_size: largest batch sent to onnxruntime at once.
        """
        cfg = self.cfg
        z, c, d = (_as_batch(a, name, width) for a, name, width in
                   ((z, "z", cfg.z_dim), (c, "c", cfg.c_dim), (d, "d", cfg.d_dim)))
        if not z.shape[0] == c.shape[0] == d.shape[0]:
            raise LgenError(f"z, c and d need the same batch size, got {z.shape[0]}, {c.shape[0]}, {d.shape[0]}")
        session = self.generator
        chunks = [session.run(["image"], {"z": z[i:i + batch_size], "c": c[i:i + batch_size],
                                          "d": d[i:i + batch_size]})[0]
                  for i in range(0, z.shape[0], batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, *self.image_shape), np.float32)

    def encode(self, images: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """S(o) -> (d_logits [N, d_dim], c_mean [N, c_dim]) for float32 images [N, C, H, W] in [-1, 1]."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != self.image_shape:
            raise LgenError(f"images must be [N, {', '.join(map(str, self.image_shape))}], got {list(images.shape)}"
                            f" (see preprocess())")
        session = self.encoder
        logits, means = [], []
        for i in range(0, images.shape[0], batch_size):
            d_logits, c_mean = session.run(list(spec.ENCODER_OUTPUTS), {"image": images[i:i + batch_size]})
            logits.append(d_logits)
            means.append(c_mean)
        if not logits:
            return np.zeros((0, self.d_dim), np.float32), np.zeros((0, self.c_dim), np.float32)
        return np.concatenate(logits), np.concatenate(means)


# ---------------------------------------------------------------- images in


@dataclass(frozen=True)
class EncoderInput:
    """What one row of the encoder's batch is: a file, or one cell of a grid that lgen wrote."""

    file: str  # the path as the user gave it
    cell: Optional[tuple[int, int]]  # (row, column), 0-based, in a grid with a GRID_KEY chunk; else None
    converted: Optional[str]  # what to_model_pixels changed (None: nothing)

    @property
    def label(self) -> str:
        """FILE, or FILE[row,column] for a grid cell."""
        return self.file if self.cell is None else f"{self.file}[{self.cell[0]},{self.cell[1]}]"


def shape_warning(label: str, size: tuple[int, int], resolution: int) -> Optional[str]:
    """A one-line warning when an image of `size` = (width, height) is far from the model's square; else None."""
    w, h = size
    aspect = w / h
    if aspect > MAX_ASPECT or aspect < 1 / MAX_ASPECT:
        side = min(w, h)
        return (f"{label} is {w}x{h} (aspect {aspect:.2f}), far from the model's square {resolution}x{resolution}: "
                f"only its centre {side}x{side} is encoded")
    if max(w, h) > MAX_SCALE * resolution:
        return (f"{label} is {w}x{h}, over {MAX_SCALE}x the model's {resolution}x{resolution}: it is shrunk whole, "
                f"so several objects in it (a grid, a page) read as one image")
    return None


def read_encoder_inputs(paths: Sequence[Path], channels: int, resolution: int, *, split_grids: bool = True,
                        flag: str = "") -> tuple[np.ndarray, list[EncoderInput], list[str]]:
    """Image files as the encoder's batch: float32 [N, C, R, R] in [-1, 1], what each row is, and warnings.

    A PNG grid written by lgen (`sample`, `interpolate`, evaluation figures: a GRID_KEY chunk)
    is cut into its cells, one row each; with `split_grids=False` (one image per file
    expected, as for `interpolate --from-image/--to-image`) it is a one-line LgenError instead. Other
    files are one row each, with a warning (shape_warning) when far from the model's shape.

    Args:
        flag: the option that named the files, for messages (e.g. "--from-image").
    """
    rows: list[np.ndarray] = []
    inputs: list[EncoderInput] = []
    warnings: list[str] = []
    for path in paths:
        image = open_image(path)
        try:
            layout = grid_layout(image)
        except ValueError as e:  # a chunk that no longer fits the image: read it as one image
            warnings.append(f"{path} is not read as a grid: {e}")
            layout = None
        if layout is not None:
            if not split_grids:
                raise LgenError(f"{flag + ' ' if flag else ''}{path} is a grid of {layout['n']} images written by "
                                f"lgen ({layout['rows']}x{layout['cols']}): give one image (e.g. one of "
                                f"`lgen sample --out-dir`'s)")
            for cell, tile in grid_cells(image, layout):
                pixels, note = to_model_pixels(tile, channels, resolution)
                rows.append(pixels)
                inputs.append(EncoderInput(str(path), cell, note))
            continue
        warning = shape_warning(str(path), image.size, resolution)
        if warning:
            warnings.append(warning)
        pixels, note = to_model_pixels(image, channels, resolution)
        rows.append(pixels)
        inputs.append(EncoderInput(str(path), None, note))
    return to_float(np.stack(rows)), inputs, warnings


def _as_batch(a: Any, name: str, width: int) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] != width:
        raise LgenError(f"{name} must be [N, {width}], got {list(a.shape)}")
    return a


def load_model(model: Optional[str | Path] = None, provider: Optional[str] = None, threads: Optional[int] = None,
               *, endpoint: Optional[str] = None) -> OnnxModel:
    """Open an exported model (sessions are cached per process, so reopening is cheap).

    Args:
        model: a run or bundle directory, the name of a model embedded in the package
            (`mnist-fashion`; a local directory of that name wins), a Hub repo `ORG/NAME[@REV]`
            (config.json, onnx/*.onnx and d_classes.json only, through the HF cache), or None:
            the embedded default model. Resolved and checked by resolve.resolve_bundle.
        provider: "cpu" or "cuda" to force one; None: CUDA when available, else CPU.
        threads: intra-op threads (CPU); None: one per usable core.
        endpoint: the Hub URL; default HF_ENDPOINT (or huggingface.co).
    """
    # Each graph is checked against the manifest when its session opens (sessions.py).
    found = resolve_bundle(model, RUNTIME_FILES, fetch=[D_CLASSES_NAME], lazy=ONNX_FILES, endpoint=endpoint)
    return OnnxModel(found.path, provider=provider, threads=threads)
