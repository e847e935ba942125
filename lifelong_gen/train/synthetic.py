"""The synthetic domains: ten classes of simple shapes, drawn deterministically per spec.

`synthetic:bars` (a bar through the centre, its angle the class) and `synthetic:rings` (a
ring, its radius the class), 28x28 grey, and their 64x64 RGB `synthetic64:` twins (a colour
per class): small, instant domains for tests and demos. domains.py wraps them as DomainData.
"""

from __future__ import annotations

import hashlib

import numpy as np

# One colour per class for the RGB variants.
PALETTE = np.array([[1.0, 0.3, 0.3], [0.3, 1.0, 0.3], [0.3, 0.5, 1.0], [1.0, 1.0, 0.3], [1.0, 0.4, 1.0],
                    [0.3, 1.0, 1.0], [1.0, 0.6, 0.2], [0.7, 0.7, 0.7], [0.6, 0.3, 1.0], [1.0, 1.0, 1.0]])


def make_images(spec: str, kind: str, channels: int, resolution: int, n: int = 2500
                ) -> tuple[np.ndarray, np.ndarray, str]:
    """(uint8 images [n, C, R, R], int64 labels [n], a description): ten jittered classes of `kind`
    ("bars" or "rings"), the same for the same spec (seeded by its hash)."""
    seed = int(hashlib.sha256(spec.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    R = resolution
    yy, xx = np.mgrid[0:R, 0:R].astype(np.float32) / (R - 1) * 2 - 1  # [-1, 1] coordinates
    images = np.empty((n, channels, R, R), dtype=np.uint8)
    for i, k in enumerate(labels):
        if kind == "bars":
            # A bar through the centre at angle k * 18 degrees, jittered offset and width.
            angle = np.pi * k / 10 + rng.normal(0, 0.05)
            offset = rng.normal(0, 0.1)
            width = rng.uniform(0.08, 0.16)
            dist = np.abs(np.cos(angle) * yy - np.sin(angle) * xx - offset)
            mask = np.clip(1.5 - dist / width, 0, 1)
        else:
            # A ring whose radius grows with k, at a jittered centre.
            cx, cy = rng.normal(0, 0.08, size=2)
            radius = 0.2 + 0.07 * k + rng.normal(0, 0.015)
            dist = np.abs(np.hypot(xx - cx, yy - cy) - radius)
            mask = np.clip(1.5 - dist / 0.07, 0, 1)
        if channels == 1:
            images[i, 0] = (mask * 255).astype(np.uint8)
        else:
            images[i] = (mask[None] * PALETTE[k][:, None, None] * 255).astype(np.uint8)
    return images, labels.astype(np.int64), f"synthetic generator ({kind}, seed {seed})"
