"""Evaluation figures as PNG: sample grids per domain, the d x c grid (paper fig. 3),
traversals of each continuous code (fig. 4) and the forgetting matrix as a heatmap.

Grids come from the EMA generator with fixed seeds, so reruns draw the same pictures; their
layouts are the runtime's (runtime/codes.py: `lgen interpolate` draws the same figures from
the ONNX graphs) and they are written by the one grid writer, images.save_grid. Every file
is written atomically (lifelong_gen.atomic).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from lifelong_gen import images as images_io
from lifelong_gen.atomic import atomic_write_bytes
from lifelong_gen.domain_names import split_selection
from lifelong_gen.runtime.codes import category_grid_codes, traversal_codes
from lifelong_gen.train.domains import to_float


def save_grid(images: torch.Tensor, path: Path, columns: int) -> Path:
    """images: float in [-1, 1] or uint8, [N, C, H, W]: written by images.save_grid, as every lgen grid
    (same padding, its layout in a PNG text chunk, so `lgen encode` cuts evaluation figures too)."""
    if images.dtype == torch.uint8:
        images = to_float(images)
    return images_io.save_grid(images.float().cpu().numpy(), path, columns)


def _layout_images(G: torch.nn.Module, codes) -> torch.Tensor:
    return G(*(torch.from_numpy(a) for a in (codes.z, codes.c, codes.d)))


@torch.no_grad()
def dc_grid(G: torch.nn.Module, rows: int = 8, seed: int = 0) -> tuple[torch.Tensor, int]:
    """Fig. 3: each column one d, each row one c, z shared: the layout of `lgen interpolate --vary d`
    (runtime/codes.py's category_grid_codes, the one definition of it)."""
    return _layout_images(G, category_grid_codes(G.cfg, rows, np.random.default_rng(seed))), G.cfg.d_dim


@torch.no_grad()
def traversal(G: torch.nn.Module, k: int, steps: int = 9, max_rows: int = 20, seed: int = 0) -> tuple[torch.Tensor, int]:
    """Fig. 4: c_k from -1 to 1 along columns, one row per d; z shared and the other codes 0: the layout
    of `lgen interpolate --vary cK` (runtime/codes.py's traversal_codes)."""
    rows = list(range(min(G.cfg.d_dim, max_rows)))
    return _layout_images(G, traversal_codes(G.cfg, k, steps, rows, np.random.default_rng(seed))), steps


@torch.no_grad()
def before_after(G_before: torch.nn.Module, G_after: torch.nn.Module, columns: int = 6,
                 seed: int = 0) -> tuple[torch.Tensor, int]:
    """A continued run's old domains side by side: one row per old d, `columns` images of the parent
    (left) then the same codes through the continued model (right)."""
    old, cfg = G_before.cfg.d_dim, G_after.cfg
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(columns, cfg.z_dim, generator=g).repeat(old, 1)  # the same z, c in every row
    c = torch.randn(columns, cfg.c_dim, generator=g).repeat(old, 1)
    d = torch.nn.functional.one_hot(torch.arange(old).repeat_interleave(columns), cfg.d_dim).float()
    shape = (old, columns, cfg.img_channels, cfg.img_resolution, cfg.img_resolution)
    left, right = G_before(z, c, d[:, :old]).view(shape), G_after(z, c, d).view(shape)
    return torch.cat([left, right], 1).flatten(0, 1), 2 * columns


def heatmap(matrix: list[list[Optional[float]]], labels: list[str], title: str, path: Path, fmt: str = "{:.3g}") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 + 1.3 * len(labels)), 1.5 + 1.0 * len(labels)))
    im = ax.imshow(m, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), [f"after {l}" for l in labels])
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("trained through")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if not np.isnan(m[i, j]):
                ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center", color="w")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_all(out: Path, G: torch.nn.Module, images: torch.Tensor, domain_of_sample: torch.Tensor, space: Any,
              forgetting: Optional[dict], parent_G: Optional[torch.nn.Module] = None) -> list[Path]:
    """Every figure of the evaluation report into `out`; returns the paths written.

    `parent_G`: a continued run's parent (its EMA G), for the old domains' before | after figure."""
    out = Path(out)
    written = []
    if parent_G is not None:
        grid, cols = before_after(parent_G, G)
        written.append(save_grid(grid, out / "before_after.png", cols))
    for k, spec in enumerate(space.domains):
        mine = images[domain_of_sample == k][:64]
        if mine.shape[0]:
            written.append(save_grid(mine, out / f"samples_domain-{k + 1}.png", 8))
    grid, cols = dc_grid(G)
    written.append(save_grid(grid, out / "dc_grid.png", cols))
    for k in range(G.cfg.c_dim):
        grid, cols = traversal(G, k)
        written.append(save_grid(grid, out / f"traversal_c{k + 1}.png", cols))
    if forgetting:
        # A folder by its path, a synthetic domain by its kind; a class selection (mnist:0-4) whole.
        names = [d if split_selection(d)[1] is not None else d.split(":")[-1] for d in forgetting["domains"]]
        written.append(heatmap(forgetting["fid"], names, "FID (classifier features), lower is better",
                               out / "forgetting_fid.png"))
        written.append(heatmap(forgetting["relative_share"], names, "share of samples / fair share",
                               out / "forgetting_share.png", "{:.2f}"))
    return written
