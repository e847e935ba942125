"""SCAN's mined neighbours: each real image's nearest images of its own phase (a lever for S's clustering).

Van Gansbeke et al., "SCAN: Learning to Classify Images without Labels" (ECCV 2020;
wvangansbeke/Unsupervised-Classification, `utils/memory.py` `mine_nearest_neighbors`, then
`losses.SCANLoss`): the k nearest neighbours of every image are mined once, and a clusterer is
trained to put each image and a random one of its neighbours in the same cluster. SCAN mines in
the features of a pretext network (SimCLR); here there is none, so the neighbours are mined in
pixel space (2x2 average-pooled, cosine), where 81% of a Fashion-MNIST training image's 20 nearest
neighbours share its class (S's own trunk, after training: 78%, on 10,000 images;
experiments/fashion.md). The term itself is losses.neighbour_consistency_loss,
added by levers.py under `s_neighbour_weight`.

Owns `mine_neighbours` and `NeighbourTables` (a phase's table, mined when the phase first needs
it). Mining draws nothing random and reads only the phase's own images (Definition 2: the new
data), so a table is not checkpointed: a resumed run mines the same one again.
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F

from lifelong_gen.train.phase import Phase

log = logging.getLogger("lifelong_gen")

# Pixel-space mining is O(N^2 x features): pooled to at most this side, a 64x64 RGB image
# has 3 x 14 x 14 features, as a 28x28 grey one (2x2-pooled) has 196.
MINING_SIDE = 14


@torch.no_grad()
def mine_neighbours(images: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """The k nearest other images of each image, by cosine similarity of pooled pixels.

    Args:
        images: uint8 [N, C, H, W] (a phase's images, on any device).
        k: neighbours per image (SCAN: 20); must be < N.
        chunk: rows of the similarity matrix held at once ([chunk, N] floats).
    Returns:
        int64 [N, k] on the images' device: row i holds i's neighbours, nearest first, never i
        itself (a duplicate image elsewhere in the set may still be one).
    """
    n = images.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n}) for {n} images, got {k}")
    x = images.float()
    if x.shape[-1] > MINING_SIDE:
        x = F.adaptive_avg_pool2d(x, MINING_SIDE)
    x = F.normalize(x.flatten(1), dim=1)  # [N, F]
    out = []
    for start in range(0, n, chunk):
        sim = x[start:start + chunk] @ x.T  # [chunk, N]
        rows = torch.arange(sim.shape[0], device=sim.device)
        sim[rows, rows + start] = float("-inf")  # not its own neighbour
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out)


class NeighbourTables:
    """The neighbour table of each phase (by its index), mined on first use."""

    def __init__(self, k: int):
        self.k = k
        self._tables: dict[int, torch.Tensor] = {}

    def of(self, phase: Phase) -> torch.Tensor:
        """int64 [N, k]: phase.images' mined neighbours (indices into phase.images)."""
        if phase.index not in self._tables:
            t0 = time.perf_counter()
            self._tables[phase.index] = mine_neighbours(phase.images, self.k)
            log.info("mined %d neighbours of %d %s images in %.0f s", self.k, phase.images.shape[0], phase.name,
                     time.perf_counter() - t0)
        return self._tables[phase.index]
