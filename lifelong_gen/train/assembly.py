"""What a run trains, assembled: G, D, S and G's EMA copy on the device, their two Adam
optimisers, and the callables the step's forwards go through (forwards.py).

Owns `TrainingNetworks` and `build_training_networks`. The trainer (the method and its loop)
takes these as its attributes; the networks themselves are networks.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lifelong_gen.config import ModelConfig, TrainConfig
from lifelong_gen.errors import LgenError
from lifelong_gen.train.distributed import DistContext
from lifelong_gen.train.forwards import Forwards, training_forwards
from lifelong_gen.train.networks import build_networks, frozen_copy, parameter_groups


@dataclass
class TrainingNetworks:
    G: torch.nn.Module
    D: torch.nn.Module
    S: torch.nn.Module
    G_ema: torch.nn.Module  # eval mode, no gradients: the sampler, snapshots and exports use it
    opt_d: torch.optim.Adam  # the critic's parameters (and S's heads when S shares the critic's trunk)
    opt_g: torch.optim.Adam  # G's and a separate S's
    fw: Forwards


def build_training_networks(cfg: ModelConfig, tc: TrainConfig, device: torch.device,
                            dist: DistContext) -> TrainingNetworks:
    """The run's networks initialised from its seed (without reseeding the caller's global RNG),
    on `device`, with their optimisers and the step's forwards (DDP-wrapped or compiled as `tc` says)."""
    shared = cfg.encoder_shares_critic
    if shared and tc.s_real_weight > 0:
        raise LgenError("s_real_weight trains S on real images and needs a separate S (drop --shared-encoder)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc.seed)
        G, D, S = build_networks(cfg)
    for module in (G, D, S):
        module.to(device)
    G_ema = frozen_copy(G)
    groups = parameter_groups(G, D, S)
    d_params, g_params = ([p for _, p in groups[k]] for k in ("opt_d", "opt_g"))
    # The fused Adam kernel on every device: one operator per step for all of a network's tensors
    # instead of about ten per tensor, and its step counts stay tensors, where the reference
    # implementation reads each back to the host (45 `item` calls a step).
    # --cuda-graph: capturable, so its step may run inside a CUDA graph (train/cuda_graph.py).
    capturable = tc.cuda_graph and device.type == "cuda"
    opt_d = torch.optim.Adam(d_params, lr=tc.lr_d, betas=tc.betas, fused=True, capturable=capturable)
    opt_g = torch.optim.Adam(g_params, lr=tc.lr_g, betas=tc.betas, fused=True, capturable=capturable)
    return TrainingNetworks(G, D, S, G_ema, opt_d, opt_g, training_forwards(G, D, S, dist, tc.compile))
