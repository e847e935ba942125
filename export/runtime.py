"""Torch-free inference on an exported bundle: sample, encode, interpolate, PNG grids.

Owns `OnnxModel` (a bundle's `onnx/generator.onnx` and `onnx/encoder.onnx` under
onnxruntime), the code samplers and interpolation paths of `lgen sample | encode |
interpolate`, image preprocessing for the encoder and PNG grid writing. Imports
only numpy, onnxruntime, Pillow and the torch-free `lifelong_gen.config`, `.errors`
and `export.spec`: it runs where PyTorch (and the onnx package) is not installed.
The graph contract (names, shapes, value ranges) is documented in spec.py.

Sessions use the CUDA provider when onnxruntime-gpu offers it, else the CPU one
(`provider=` forces either), with full graph optimisation, one intra-op thread per
usable core (threads sleep rather than spin when idle), and are cached per process (keyed on the file's path, size and
mtime, so a re-export is picked up).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from lifelong_gen.atomic import atomic_write_bytes
from lifelong_gen.bundle import ENCODER_ONNX, GENERATOR_ONNX, ONNX_FILES, stale_onnx
from lifelong_gen.config import ModelConfig, RunConfig, read_run_config
from lifelong_gen.errors import LgenError, one_line
from lifelong_gen.export import spec

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

_SESSIONS: dict[tuple, Any] = {}  # (path, size, mtime, providers, threads) -> InferenceSession


# ---------------------------------------------------------------- onnxruntime sessions


def import_onnxruntime():
    """onnxruntime, or a one-line LgenError naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise LgenError(f"onnxruntime is not installed: {spec.INSTALL_CPU} (or {spec.INSTALL_GPU} for CUDA)") from None
    return onnxruntime


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours container CPU sets, unlike os.cpu_count()
    except AttributeError:
        return os.cpu_count() or 1


def choose_providers(provider: Optional[str], available: Sequence[str]) -> list[str]:
    """onnxruntime provider list for `provider` (None: CUDA when offered, else CPU)."""
    if provider is None:
        if PROVIDERS["cuda"] in available:
            return [PROVIDERS["cuda"], PROVIDERS["cpu"]]
        return [PROVIDERS["cpu"]]
    if provider not in PROVIDERS:
        raise LgenError(f"--provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    if PROVIDERS[provider] not in available:
        hint = f"; for CUDA: {spec.INSTALL_GPU} (in place of [cpu])" if provider == "cuda" else ""
        raise LgenError(f"this onnxruntime offers no {PROVIDERS[provider]} (it has {', '.join(available)}){hint}")
    return [PROVIDERS[provider]]


def _session(path: Path, provider: Optional[str], threads: Optional[int], bundle: Path):
    ort = import_onnxruntime()
    providers = choose_providers(provider, ort.get_available_providers())
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, tuple(providers), threads)
    if key in _SESSIONS:
        return _SESSIONS[key]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1  # the graphs are chains: no parallel branches to run
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: the CLI's stderr is one line on failure
    # Idle pool threads sleep instead of spinning: on a machine shared with training, spinning
    # threads fight for the busy cores (measured: 2 threads on 2 loaded cores, batch 64,
    # 1.7k -> 2.8k images/s with spinning off). The cost on an idle machine, a little latency
    # per small batch, was not measurable here (no idle machine).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as e:  # InvalidProtobuf, Fail, ...: onnxruntime's own exception types
        reason = " ".join(str(e).split())
        reason = reason.split(" : ")[-1] if " : " in reason else reason
        raise LgenError(f"cannot load {path}: {reason[:200]} (re-run `lgen export {bundle}`)") from None
    if provider == "cuda" and session.get_providers()[0] != PROVIDERS["cuda"]:
        raise LgenError("--provider cuda: onnxruntime could not start CUDA (no GPU, or CUDA/cuDNN libraries missing)")
    _SESSIONS[key] = session
    return session


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
        """The cached session of `rel`, checked against the contract and config.json.

        Args:
            inputs: input name -> expected dims after the batch axis.
        """
        path = self.bundle / rel
        session = _session(path, self.requested_provider, self.threads, self.bundle)
        got = {i.name: tuple(i.shape) for i in session.get_inputs()}
        out_names = tuple(o.name for o in session.get_outputs())
        if set(got) != set(inputs) or out_names != outputs:
            raise LgenError(f"{path} does not follow the lifelong-gen ONNX contract (inputs {sorted(got)}, "
                            f"outputs {list(out_names)}): re-run `lgen export {self.bundle}`")
        for name, dims in inputs.items():
            if got[name][1:] != dims:  # a stale export of a differently shaped model
                raise LgenError(f"{path} was exported for another model ({name} is {list(got[name])}, config.json "
                                f"says [N, {', '.join(map(str, dims))}]): re-run `lgen export {self.bundle}`")
        return session

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


# ---------------------------------------------------------------- codes


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def one_hot(indices: np.ndarray, d_dim: int) -> np.ndarray:
    out = np.zeros((len(indices), d_dim), np.float32)
    out[np.arange(len(indices)), indices] = 1.0
    return out


@dataclass
class Codes:
    """A batch of generator inputs: z [N, z_dim], c [N, c_dim], d [N, d_dim] (one-hot or soft)."""

    z: np.ndarray
    c: np.ndarray
    d: np.ndarray

    def __len__(self) -> int:
        return self.z.shape[0]

    def as_records(self, include_z: bool = True) -> list[dict[str, Any]]:
        """Per sample: argmax d, the d vector when it is not one-hot, c (and z), rounded for JSON."""
        records = []
        for i in range(len(self)):
            d = self.d[i]
            rec: dict[str, Any] = {"d": int(d.argmax())}
            if not (np.count_nonzero(d) == 1 and d.max() == 1.0):
                rec["d_probs"] = [round(float(v), 6) for v in d]
            rec["c"] = [round(float(v), 6) for v in self.c[i]]
            if include_z:
                rec["z"] = [round(float(v), 6) for v in self.z[i]]
            records.append(rec)
        return records


def random_codes(model: OnnxModel, n: int, rng: np.random.Generator, *, d: Optional[int] = None,
                 fixed_c: Optional[dict[int, float]] = None) -> Codes:
    """z, c ~ N(0, I) and d uniform over the active categories; `d` and `fixed_c` (0-based index ->
    value) pin codes. Draw order is fixed (z, then c, then d), so a seed gives the same z whatever is pinned."""
    z = rng.standard_normal((n, model.z_dim), dtype=np.float32)
    c = rng.standard_normal((n, model.c_dim), dtype=np.float32)
    d_idx = rng.integers(0, model.active_d, size=n)
    for k, value in (fixed_c or {}).items():
        c[:, k] = value
    if d is not None:
        d_idx[:] = d
    return Codes(z, c, one_hot(d_idx, model.d_dim))


def traversal_codes(model: OnnxModel, k: int, steps: int, rows: Sequence[int], rng: np.random.Generator,
                    z_per_row: bool = False, lo: float = -1.0, hi: float = 1.0) -> Codes:
    """Vary continuous code c_k from lo to hi along each row (paper fig. 4), the other c at 0.

    Rows are the d categories in `rows`, with one z shared by the whole grid, or (z_per_row)
    one fresh z per row for a single repeated category.
    """
    values = np.linspace(lo, hi, steps, dtype=np.float32)
    n_rows = len(rows)
    z_rows = rng.standard_normal((n_rows if z_per_row else 1, model.z_dim), dtype=np.float32)
    z = np.repeat(z_rows, steps, axis=0) if z_per_row else np.repeat(z_rows, n_rows * steps, axis=0)
    c = np.zeros((n_rows * steps, model.c_dim), np.float32)
    c[:, k] = np.tile(values, n_rows)
    d = one_hot(np.repeat(np.asarray(rows), steps), model.d_dim)
    return Codes(z, c, d)


def category_grid_codes(model: OnnxModel, rows: int, rng: np.random.Generator) -> Codes:
    """The d x c grid (paper fig. 3): one column per category, one row per c ~ N(0, I), z shared."""
    cols = model.active_d
    z = np.repeat(rng.standard_normal((1, model.z_dim), dtype=np.float32), rows * cols, axis=0)
    c = np.repeat(rng.standard_normal((rows, model.c_dim), dtype=np.float32), cols, axis=0)
    d = one_hot(np.tile(np.arange(cols), rows), model.d_dim)
    return Codes(z, c, d)


def lerp_codes(model: OnnxModel, d_probs: np.ndarray, c_means: np.ndarray, steps: int,
               rng: np.random.Generator) -> Codes:
    """Linear path from u_a = (p_a(d), c_a) to u_b in `steps` points, one shared z.

    Args:
        d_probs: [2, d_dim] softmax of S's d logits for the two endpoints.
        c_means: [2, c_dim] S's c means for the two endpoints.
    """
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]  # [steps, 1]
    d = (1 - t) * d_probs[0] + t * d_probs[1]  # stays a probability vector
    c = (1 - t) * c_means[0] + t * c_means[1]
    z = np.repeat(rng.standard_normal((1, model.z_dim), dtype=np.float32), steps, axis=0)
    return Codes(z, c.astype(np.float32), d.astype(np.float32))


# ---------------------------------------------------------------- images


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float images [N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C]."""
    scaled = np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return scaled.transpose(0, 2, 3, 1)


def make_grid(images: np.ndarray, columns: int, padding: int = 2) -> np.ndarray:
    """float images [N, C, H, W] -> one uint8 [H', W', C] grid, row-major, black `padding` px borders."""
    tiles = to_uint8(images)
    n, h, w, ch = tiles.shape
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, ch), np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = tiles[i]
    return grid


def to_pil(array: np.ndarray):
    """uint8 [H, W, 1|3] -> a Pillow image ("L" or "RGB")."""
    from PIL import Image

    if array.shape[-1] == 1:
        return Image.fromarray(np.ascontiguousarray(array[..., 0]))  # uint8 [H, W] -> "L"
    return Image.fromarray(np.ascontiguousarray(array))  # uint8 [H, W, 3] -> "RGB"


def save_png(image, path: Path) -> Path:
    """Write a Pillow image as PNG atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path


def save_grid(images: np.ndarray, path: Path, columns: int) -> Path:
    """float images [N, C, H, W] in [-1, 1] -> PNG grid at `path` (atomic)."""
    return save_png(to_pil(make_grid(images, columns)), path)


# The largest image `lgen encode` and `interpolate --from/--to` accept: 50 megapixels (e.g.
# 8660 x 5773, above any common camera). Checked from the header, before decoding, so a
# decompression bomb costs nothing; below Pillow's own warning threshold (89.5 MP), so no
# DecompressionBombWarning reaches stderr. The images are shrunk to 28x28 or 64x64 anyway.
MAX_IMAGE_PIXELS = 50_000_000


def open_image(path: Path):
    """Open and fully decode an image file; one-line LgenError when it is missing, too large or not an image.

    Returns a Pillow image, upright (EXIF orientation applied) and, for an animated file
    (GIF, APNG, WebP), its first frame; what was done is in `image.info["lgen_notes"]`.
    """
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise LgenError(f"no such file: {path}")
    if not path.is_file():
        raise LgenError(f"{path} is not a file")
    try:
        with warnings.catch_warnings():
            # Pillow warns about odd but readable files (palette transparency, EXIF quirks):
            # handled below on purpose, so nothing of it belongs on the user's stderr.
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise LgenError(f"{path} is {w}x{h} = {w * h:,} pixels, over the limit of "
                                    f"{MAX_IMAGE_PIXELS:,} ({MAX_IMAGE_PIXELS // 1_000_000} megapixels): shrink it first")
                notes = []
                frames = getattr(im, "n_frames", 1)
                if frames > 1:
                    im.seek(0)
                    notes.append(f"first of {frames} frames")
                im.load()  # decode now: a truncated file fails here, not later
                orientation = im.getexif().get(0x0112, 1)  # EXIF Orientation tag; 1 = upright
                if orientation not in (1, None):
                    image = ImageOps.exif_transpose(im)
                    notes.append(f"rotated upright per EXIF orientation {orientation}")
                else:
                    image = im.copy()
    except LgenError:
        raise
    except UnidentifiedImageError:
        raise LgenError(f"{path} is not an image Pillow can read") from None
    except Image.DecompressionBombError as e:
        raise LgenError(f"{path} is too large to decode safely: {one_line(e)}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated / corrupt data
        raise LgenError(f"cannot read image {path}: {one_line(e)}") from None
    image.info["lgen_notes"] = notes
    return image


def preprocess(image, channels: int, resolution: int) -> tuple[np.ndarray, Optional[str]]:
    """A Pillow image -> float32 [C, H, W] in [-1, 1] for the encoder, and a note of what changed.

    Any mode and size: transparency is composited on black (the training images' background),
    16-bit and float modes are scaled to 8 bits, colour <-> grey (ITU-R 601 luma, as training's
    folder domains), then a centre crop to a square and a bicubic resize (ImageOps.fit, as the
    training folder loader does). The note is None when the image already matched.
    """
    from PIL import Image, ImageOps

    notes = list(image.info.get("lgen_notes", []))
    w, h = image.size
    mode = image.mode
    if mode == "CMYK":  # print colours: Pillow's conversion to RGB (no ICC profile applied)
        image = image.convert("RGB")
        notes.append("RGB from CMYK")
        mode = "RGB"
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        peak = float(arr.max(initial=0.0))
        # Float images in [0, 1], 16-bit in [0, 65535]; 8-bit values stored in wide modes stay as they are.
        top = 1.0 if mode == "F" and peak <= 1.0 else (65535.0 if peak > 255 else 255.0)
        image = Image.fromarray(np.clip(np.rint(arr / top * 255), 0, 255).astype(np.uint8))
        notes.append(f"{mode} scaled to 8 bits")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba).convert("RGB")
        notes.append("alpha composited on black")
    target_mode = "L" if channels == 1 else "RGB"
    if image.mode != target_mode:
        notes.append(f"{'grey' if target_mode == 'L' else 'RGB'} from {mode}")
        image = image.convert(target_mode)
    if (w, h) != (resolution, resolution):
        side = min(w, h)
        crop = f"centre crop {side}x{side}, " if w != h else ""
        notes.append(f"{crop}resize {w}x{h} -> {resolution}x{resolution}")
        image = ImageOps.fit(image, (resolution, resolution), method=Image.Resampling.BICUBIC)
    arr = np.asarray(image, dtype=np.float32)
    arr = arr[None] if channels == 1 else arr.transpose(2, 0, 1)  # [C, H, W]
    return arr / 127.5 - 1.0, ("; ".join(notes) if notes else None)


def load_images(paths: Sequence[Path], channels: int, resolution: int) -> tuple[np.ndarray, list[Optional[str]]]:
    """Read and preprocess image files -> (float32 [N, C, H, W] in [-1, 1], conversion note per file)."""
    arrays, notes = [], []
    for path in paths:
        array, note = preprocess(open_image(path), channels, resolution)
        arrays.append(array)
        notes.append(note)
    return np.stack(arrays).astype(np.float32), notes
