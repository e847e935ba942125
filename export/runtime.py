"""Torch-free inference on an exported bundle: the public API of sample, encode, interpolate.

Owns `OnnxModel` (a bundle's onnx/generator.onnx and onnx/encoder.onnx under onnxruntime:
G(z, c, d) -> images, S(o) -> (d_logits, c_mean)) and `load_model`; re-exports what a caller
of `lgen sample | encode | interpolate`'s library side needs from the modules that own it:
sessions.py (onnxruntime, providers, cached and checked sessions), codes.py (the generator's
inputs in numpy) and lifelong_gen/images.py (image files in, PNG grids out). Imports only
numpy, onnxruntime, Pillow and torch-free lifelong_gen modules: it runs where PyTorch (and
the onnx package) is not installed. The graph contract is documented in spec.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from lifelong_gen.bundle import ENCODER_ONNX, GENERATOR_ONNX, ONNX_FILES, stale_onnx
from lifelong_gen.config import ModelConfig, RunConfig, read_run_config
from lifelong_gen.errors import LgenError
from lifelong_gen.export import spec
from lifelong_gen.export.codes import (Codes, category_grid_codes, check_category, lerp_codes, parse_code_flags,
                                       random_codes, softmax, traversal_codes)
from lifelong_gen.export.sessions import checked_session, choose_providers, import_onnxruntime, usable_cores
from lifelong_gen.images import (MAX_IMAGE_PIXELS, load_images, make_grid, open_image, preprocess, save_grid,
                                 save_png, to_pil, to_uint8)

# The public inference API: defined here, or re-exported from the module that owns it.
__all__ = [
    "OnnxModel", "load_model", "read_model_config",
    "Codes", "random_codes", "traversal_codes", "category_grid_codes", "lerp_codes", "softmax",
    "parse_code_flags", "check_category",
    "choose_providers", "import_onnxruntime", "usable_cores",
    "MAX_IMAGE_PIXELS", "open_image", "preprocess", "load_images", "to_uint8", "make_grid", "to_pil", "save_png",
    "save_grid",
]


# ---------------------------------------------------------------- the model


def read_model_config(bundle: Path) -> RunConfig:
    """config.json of a run or bundle directory, with one-line errors for the CLI."""
    bundle = Path(bundle)
    if not bundle.exists():
        raise LgenError(f"model directory {bundle} does not exist")
    if not bundle.is_dir():
        raise LgenError(f"{bundle} is not a directory (expected a run or bundle directory)")
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

    @property
    def active_d(self) -> int:
        """Categories sampled by default: all d_dim (a finished run has learned every domain's)."""
        return self.cfg.d_dim

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


def _as_batch(a: Any, name: str, width: int) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] != width:
        raise LgenError(f"{name} must be [N, {width}], got {list(a.shape)}")
    return a


def load_model(bundle: Path, provider: Optional[str] = None, threads: Optional[int] = None) -> OnnxModel:
    """Open an exported bundle (sessions are cached per process, so reopening is cheap)."""
    return OnnxModel(bundle, provider=provider, threads=threads)
