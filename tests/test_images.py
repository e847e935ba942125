"""One image reader for training and inference (lifelong_gen/images.py).

A folder domain's training array and `lgen encode`'s encoder input must be the same pixels
for the same file, whatever the file's mode: transparency composited on black (not the
colours hidden under alpha 0), palette, 16-bit grey, CMYK, EXIF rotation.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lifelong_gen import images as runtime_images
from lifelong_gen.images import read_model_pixels
from lifelong_gen.train.domains import load_domain


def _rgba_with_transparent_half(path):
    a = np.zeros((40, 50, 4), np.uint8)
    a[..., :3] = 255  # white everywhere, ...
    a[:, 25:, 3] = 255  # ... but only the right half is opaque
    Image.fromarray(a, "RGBA").save(path)


def _palette_with_transparency(path):
    im = Image.new("P", (30, 30), 1)
    im.putpalette([255, 255, 255, 250, 240, 10] + [0] * 762)
    im.paste(0, (0, 0, 15, 30))  # left half white
    im.save(path, transparency=1)  # palette index 1 (the yellow right half) is transparent


def _grey16(path):
    Image.fromarray((np.linspace(0, 65535, 32 * 36).reshape(32, 36)).astype(np.uint16)).save(path)


def _cmyk(path):
    Image.new("CMYK", (36, 30), (10, 200, 30, 0)).save(path)


def _exif_rotated(path):
    a = np.zeros((40, 28, 3), np.uint8)
    a[:14] = 255  # the top third: after turning upright, the right third (kept by the centre crop)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    Image.fromarray(a).save(path, exif=exif.tobytes())


MAKERS = {"rgba.png": _rgba_with_transparent_half, "palette.png": _palette_with_transparency,
          "grey16.png": _grey16, "cmyk.jpg": _cmyk, "exif.jpg": _exif_rotated}


@pytest.mark.parametrize("channels, resolution", [(1, 28), (3, 64)])
def test_training_folder_and_encode_see_the_same_pixels(tmp_path, channels, resolution):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, make in MAKERS.items():
        make(folder / name)
    data = load_domain(f"folder:{folder}", channels, resolution)
    # Files in sorted order; every 10th (here the first) is the test split.
    trained = np.concatenate([data.test_images.numpy(), data.train_images.numpy()])  # uint8 [5, C, R, R]
    files = sorted(folder.iterdir())
    encoded, notes = runtime_images.load_images(files, channels, resolution)  # float32 [5, C, R, R] in [-1, 1]
    assert np.array_equal(np.rint((encoded + 1) * 127.5).astype(np.uint8), trained)
    for path, pixels in zip(files, trained):
        assert np.array_equal(read_model_pixels(path, channels, resolution)[0], pixels), path.name

    by_name = dict(zip((p.name for p in files), trained))
    rgba = by_name["rgba.png"]
    assert rgba[:, :, : resolution // 2 - 2].max() == 0  # transparent: black, not the white under alpha 0
    assert rgba[:, :, resolution // 2 + 2:].min() == 255
    palette = by_name["palette.png"]
    assert palette[:, :, : resolution // 2 - 2].min() == 255 and palette[:, :, resolution // 2 + 2:].max() == 0
    assert by_name["grey16.png"].max() > 200  # scaled from 16 bits, not clipped to white or truncated
    assert by_name["exif.jpg"][:, :, -3:].mean() > 200 and by_name["exif.jpg"][:, :, :3].mean() < 50  # upright
    assert "alpha composited on black" in notes[files.index(folder / "rgba.png")]
    assert "RGB from CMYK" in notes[files.index(folder / "cmyk.jpg")]
