"""Image files and pixels, torch-free: what an image becomes as model input, and PNG output.

Owns `read_model_pixels`, the one way an image file becomes model input, for training's
folder domains (train/domains.py) and for `lgen encode | interpolate --from/--to` alike:
`open_image` (pixel limit, EXIF orientation, first frame, one-line errors), then
`to_model_pixels` (any mode and size -> the model's channels and resolution). Also float
images in [-1, 1] <-> uint8, atomic PNG writes and PNG grids that record their layout in a
text chunk (GRID_KEY), so that `lgen encode` can cut them back into their images; a folder's
image files and the model shape its images suggest (`folder_image_shape`, from headers only).
numpy and Pillow only.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from lifelong_gen.atomic import atomic_write_bytes
from lifelong_gen.errors import LgenError, one_line

# The files a folder domain reads as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
# Bumped whenever to_model_pixels changes what a file becomes: preprocessed folder caches are keyed on it.
PIXELS_VERSION = 2


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float images [N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C]."""
    scaled = np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return scaled.transpose(0, 2, 3, 1)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1], same shape (numpy twin of train.domains.to_float)."""
    return pixels.astype(np.float32) / 127.5 - 1.0


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


def save_png(image, path: Path, text: Optional[dict[str, str]] = None) -> Path:
    """Write a Pillow image as PNG atomically (temp file in the same folder, then rename).

    Args:
        text: PNG text chunks (tEXt) to store, e.g. the layout of a grid (GRID_KEY).

    Raises:
        LgenError: the file cannot be written; the message names `path`, not the temp file.
    """
    from PIL import PngImagePlugin

    path = Path(path)
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:  # its filename is the random temp name beside `path`: name what the user gave
        raise LgenError(f"cannot write {path}: {e.strerror or one_line(e)}") from None
    return path


# The PNG text chunk in which save_grid records a grid's layout, so that `lgen encode` can
# cut the grid back into its images: shrunk whole to the model's size, 64 samples would be
# encoded as one confident but meaningless image. JSON: {"rows", "cols", "n" (images; the
# last row may be short), "cell": [height, width], "padding"} (make_grid's black borders).
GRID_KEY = "lgen-grid"


def grid_text(n: int, columns: int, cell: tuple[int, int], padding: int = 2) -> dict[str, str]:
    """The GRID_KEY text chunk of a make_grid grid of `n` images of `cell` = (height, width)."""
    columns = max(1, min(columns, n))
    layout = {"rows": math.ceil(n / columns), "cols": columns, "n": n, "cell": [int(cell[0]), int(cell[1])],
              "padding": padding}
    return {GRID_KEY: json.dumps(layout, sort_keys=True)}


def save_grid(images: np.ndarray, path: Path, columns: int, padding: int = 2) -> Path:
    """float images [N, C, H, W] in [-1, 1] -> PNG grid at `path` (atomic), its layout in a GRID_KEY chunk."""
    text = grid_text(images.shape[0], columns, images.shape[2:4], padding)
    return save_png(to_pil(make_grid(images, columns, padding)), path, text=text)


def grid_layout(image) -> Optional[dict]:
    """The layout save_grid recorded in a Pillow image's GRID_KEY chunk; None when it has none.

    Raises:
        ValueError: the chunk is there but unreadable or does not match the image's size
            (e.g. the image was resized by a tool that kept the chunk).
    """
    raw = image.info.get(GRID_KEY)
    if raw is None:
        return None
    try:
        layout = json.loads(raw)
        rows, cols, n, padding = (layout[k] for k in ("rows", "cols", "n", "padding"))
        height, width = layout["cell"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"unreadable {GRID_KEY} chunk ({one_line(e)})") from None
    values = (rows, cols, n, padding, height, width)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values) or min(rows, cols, height, width) < 1 \
            or padding < 0 or not (rows - 1) * cols < n <= rows * cols:
        raise ValueError(f"inconsistent {GRID_KEY} chunk {' '.join(str(raw).split())[:120]}")
    expected = (cols * (width + padding) + padding, rows * (height + padding) + padding)
    if tuple(image.size) != expected:
        raise ValueError(f"its {GRID_KEY} chunk describes a {expected[0]}x{expected[1]} grid, "
                         f"not {image.size[0]}x{image.size[1]}")
    return {"rows": rows, "cols": cols, "n": n, "cell": (height, width), "padding": padding}


def grid_cells(image, layout: dict) -> list[tuple[tuple[int, int], object]]:
    """Cut a grid into its images: [((row, column), Pillow image of one cell)], row-major, `n` of them."""
    height, width = layout["cell"]
    padding, cols = layout["padding"], layout["cols"]
    cells = []
    for i in range(layout["n"]):
        r, c = divmod(i, cols)
        y, x = padding + r * (height + padding), padding + c * (width + padding)  # as make_grid places it
        cells.append(((r, c), image.crop((x, y, x + width, y + height))))
    return cells


# The largest image `lgen encode` and `interpolate --from-image/--to-image` accept: 50 megapixels (e.g.
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
        raise LgenError(f"cannot read image {path}: it is not an image Pillow can read") from None
    except Image.DecompressionBombError as e:
        raise LgenError(f"{path} is too large to decode safely: {one_line(e)}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated / corrupt data
        raise LgenError(f"cannot read image {path}: {one_line(e)}") from None
    image.info["lgen_notes"] = notes
    return image


def to_model_pixels(image, channels: int, resolution: int) -> tuple[np.ndarray, Optional[str]]:
    """A Pillow image -> uint8 [C, H, W] in the model's channels and resolution, and a note of what changed.

    Any mode and size: CMYK to RGB, 16-bit and float modes scaled to 8 bits, transparency
    (RGBA, LA, palette) composited on black (the background of MNIST-like images), colour
    <-> grey (ITU-R 601 luma), then a centre crop to a square and a bicubic resize
    (ImageOps.fit). The note is None when the image already matched.
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
    arr = np.asarray(image, dtype=np.uint8)
    arr = arr[None] if channels == 1 else arr.transpose(2, 0, 1)  # [C, H, W]
    return np.ascontiguousarray(arr), ("; ".join(notes) if notes else None)


def read_model_pixels(path: Path, channels: int, resolution: int) -> tuple[np.ndarray, Optional[str]]:
    """An image file as the model sees it, in training and inference: uint8 [C, H, W] and the note."""
    return to_model_pixels(open_image(path), channels, resolution)


def preprocess(image, channels: int, resolution: int) -> tuple[np.ndarray, Optional[str]]:
    """A Pillow image -> float32 [C, H, W] in [-1, 1] for the encoder, and the note of to_model_pixels."""
    pixels, note = to_model_pixels(image, channels, resolution)
    return to_float(pixels), note


def load_images(paths: Sequence[Path], channels: int, resolution: int) -> tuple[np.ndarray, list[Optional[str]]]:
    """Read image files for the encoder -> (float32 [N, C, H, W] in [-1, 1], conversion note per file)."""
    read = [read_model_pixels(path, channels, resolution) for path in paths]
    return to_float(np.stack([pixels for pixels, _ in read])), [note for _, note in read]


def image_files(root: Path) -> list[Path]:
    """Every image file under `root` (recursively, by IMAGE_SUFFIXES), sorted: what a folder domain reads."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


# Modes whose pixels are one grey value (with or without alpha); "P" counts when its palette is grey.
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _palette_is_grey(palette) -> bool:
    """Whether every entry of a Pillow palette has r == g == b; a palette not yet read counts as colour."""
    if palette is None or palette.mode not in ("L", "LA", "RGB", "RGBA"):
        return False
    if palette.mode in ("L", "LA"):
        return True
    step = len(palette.mode)
    raw = bytes(palette.palette)
    entries = np.frombuffer(raw[: len(raw) // step * step], np.uint8).reshape(-1, step)  # [K, 3|4]
    return len(entries) > 0 and bool((entries[:, :3] == entries[:, :1]).all())


def folder_image_shape(root: Path, sample: int = 32) -> Optional[tuple[int, int]]:
    """The model shape a folder's own images suggest: (channels, resolution), or None.

    Reads only the headers (Image.open does not decode) of up to `sample` files spread
    evenly over the sorted list, so the answer is deterministic and cheap for any folder
    size. Channels: 1 when every sampled image is grey (GREY_MODES, or a palette image
    whose whole palette is grey, known from a PNG's header), else 3. Resolution: 28 when
    no sampled side exceeds 32 (the nearest supported size for MNIST-like images), else 64.
    None when the folder is missing or no sampled file has a readable header: the folder
    loader reports that.
    """
    import warnings

    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        return None
    files = image_files(root)
    picks = sorted({len(files) * i // sample for i in range(sample)}) if len(files) > sample else range(len(files))
    grey, largest, read = True, 0, 0
    for i in picks:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. DecompressionBombWarning: nothing is decoded here
                with Image.open(files[i]) as im:
                    mode, size, palette = im.mode, im.size, im.palette
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
            continue  # unreadable or not an image: skipped here, the folder loader names the file
        read += 1
        largest = max(largest, *size)
        if mode in ("P", "PA"):
            grey = grey and _palette_is_grey(palette)
        elif mode not in GREY_MODES:
            grey = False
    if read == 0:
        return None
    return (1 if grey else 3), (28 if largest <= 32 else 64)
