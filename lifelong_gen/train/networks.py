"""The three networks of the method: generator G, critic D, inference network S.

Notation (paper, sec. II): z ~ N(0, I) is noise, c ~ N(0, I) the continuous codes,
d ~ Cat(d_dim) the discrete code (one-hot), u = (d, c) the interpretable codes and
o an image in [-1, 1]. G(z, c, d) -> o; D(o) -> Wasserstein critic score;
S(u|o) -> (d logits, c means), the auxiliary posterior of eq. (10).

Two architectures, picked by `img_resolution`: the InfoGAN MNIST nets for 28x28
and DCGAN-style nets for 64x64. Modules, and the two helpers the training step applies
to them (`update_ema`, `frozen`); losses live in losses.py.

Why S is a separate network by default (`encoder_shares_critic=False`), measured:

    MNIST, 2,000 steps, widths 32, fc 256, batch 32, n_critic 2, lr 5e-4, seed 0
    (clustering of S's argmax d on 1,000 real test digits):
      separate S: L_MI terms on G's samples CE 0.097, NLL 0.300; real-digit accuracy 0.278, NMI 0.181
      shared S:   L_MI terms on G's samples CE 0.122, NLL 0.396; real-digit accuracy 0.315, NMI 0.229
    synthetic:bars, tiny nets (widths 8, fc 32), n_critic 1, lr 2e-3, 150 steps, d cross-entropy
    per 15 steps:
      separate S: 1.98 -> 0.17;   shared S: 2.33 -> 2.12 (barely learning)

On the critic's trunk, S must read the codes from features that the Wasserstein loss
and the gradient penalty keep reshaping; it learns L_MI far more slowly, and not at all
at small widths. A separate S learns L_MI reliably at every size tried, may use batch
norm (which the critic must not) and exports as its own graph. The shared layout's
slightly better transfer to real digits in the one MNIST run (one seed) keeps it
available as `--shared-encoder` (InfoGAN's layout); the reference model picks by
measurement.

Layers directly followed by batch norm have no bias (DCGAN's practice): the norm subtracts
the batch mean, so such a bias has an analytically zero gradient, and Adam, which divides
by the gradient's own size, turned its float round-off into full-size steps; any last-bit
difference between two runs grew into ~1e-3 there. Bundles written with those biases load
with each one folded into its norm's running mean (legacy.py).
"""

from __future__ import annotations

import contextlib
import copy
import functools
from typing import Iterator, Optional, Union

import torch
from torch import nn

from lifelong_gen.config import ModelConfig
from lifelong_gen.train.domain_groups import DomainBatchNorm, LowRankAdapters, gate_of, group_matrix


def _check_image(o: torch.Tensor, cfg: ModelConfig) -> None:
    expected = (cfg.img_channels, cfg.img_resolution, cfg.img_resolution)
    assert o.dim() == 4 and tuple(o.shape[1:]) == expected, f"image must be [N, {expected}], got {tuple(o.shape)}"


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose per-channel gain and bias also depend on d (`g_conditioning="cbn"`).

    out = BN(h) · (1 + γ(d)) + β(d), with γ, β linear in d (so a soft d, any probability
    vector, mixes the categories' modulations, as the ONNX contract allows). γ and β start
    at zero: at initialisation the layer is the plain BatchNorm of the "input" layout.
    """

    def __init__(self, bn: nn.Module, d_dim: int):
        super().__init__()
        self.bn = bn
        self.gain = nn.Linear(d_dim, bn.num_features, bias=False)
        self.bias = nn.Linear(d_dim, bn.num_features, bias=False)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, h: torch.Tensor, d: torch.Tensor, gate: Optional[torch.Tensor] = None) -> torch.Tensor:
        shape = (d.shape[0], -1) + (1,) * (h.dim() - 2)  # broadcast over H, W for conv features
        normed = self.bn(h, gate) if isinstance(self.bn, DomainBatchNorm) else self.bn(h)
        return normed * (1 + self.gain(d).view(shape)) + self.bias(d).view(shape)


@functools.lru_cache(maxsize=None)
def _constant(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """torch.tensor(values) on `device`, made once: a constant a forward would otherwise build at every call."""
    return torch.tensor(values, device=device, dtype=dtype)


def norm_fed_layers(module: nn.Module) -> dict[str, str]:
    """{name of each bias-free layer directly followed by batch norm: that BatchNorm's name}.

    The layers whose bias older versions had and legacy.py folds away; found from the
    modules themselves, so every architecture and conditioning is covered.
    """
    found = {}
    for name, seq in module.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for (a, layer), (b, after) in zip(children, children[1:]):
            bn, suffix = (after.bn, ".bn") if isinstance(after, ConditionalBatchNorm) else (after, "")
            if isinstance(bn, nn.modules.batchnorm._BatchNorm) and getattr(layer, "bias", False) is None:
                prefix = f"{name}." if name else ""
                found[prefix + a] = prefix + b + suffix
    return found


def _run(layers: nn.Sequential, h: torch.Tensor, d: torch.Tensor, gate: Optional[torch.Tensor] = None,
         adapters: Optional[nn.ModuleDict] = None, prefix: str = "") -> torch.Tensor:
    """A Sequential whose ConditionalBatchNorm layers also receive d, and with domain groups
    (domain_groups.py) whose per-group batch norms receive the gate and whose adapted layers add
    their group's low-rank update."""
    for i, layer in enumerate(layers):
        if isinstance(layer, ConditionalBatchNorm):
            out = layer(h, d, gate)
        elif isinstance(layer, DomainBatchNorm):
            out = layer(h, gate)
        else:
            out = layer(h)
        if adapters is not None and f"{prefix}{i}" in adapters:
            out = out + adapters[f"{prefix}{i}"](h, gate)
        h = out
    return h


class Generator(nn.Module):
    """G(z, c, d) -> image [N, C, H, W] in [-1, 1] (tanh).

    d always enters at the input (the paper); with `g_conditioning="cbn"` every batch
    norm is also conditioned on d (ConditionalBatchNorm). The "input" layout's parameter
    names are those of earlier bundles, which load unchanged.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        in_dim = cfg.z_dim + cfg.c_dim + cfg.d_dim
        w = cfg.g_width
        C = cfg.img_channels
        if cfg.img_resolution == 28:
            # InfoGAN (Chen et al. 2016, table 1) MNIST generator.
            self.base = 7
            self.base_ch = 2 * w
            self.fc = nn.Sequential(
                nn.Linear(in_dim, cfg.fc_width, bias=False), nn.BatchNorm1d(cfg.fc_width), nn.ReLU(True),
                nn.Linear(cfg.fc_width, self.base_ch * 7 * 7, bias=False), nn.BatchNorm1d(self.base_ch * 7 * 7),
                nn.ReLU(True),
            )
            self.conv = nn.Sequential(
                nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),  # 14x14
                nn.ConvTranspose2d(w, C, 4, 2, 1), nn.Tanh(),  # 28x28
            )
        else:
            # DCGAN 64x64 generator: 4 -> 8 -> 16 -> 32 -> 64.
            self.base = 4
            self.base_ch = 8 * w
            self.fc = nn.Sequential(
                nn.Linear(in_dim, self.base_ch * 16, bias=False), nn.BatchNorm1d(self.base_ch * 16), nn.ReLU(True),
            )
            blocks: list[nn.Module] = []
            ch = 8 * w
            for _ in range(3):
                blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
                ch //= 2
            blocks += [nn.ConvTranspose2d(ch, C, 4, 2, 1), nn.Tanh()]
            self.conv = nn.Sequential(*blocks)
        self.adapters: Optional[nn.ModuleDict] = None
        if cfg.domain_groups:
            self._add_domain_groups(cfg)
        if cfg.g_conditioning == "cbn":
            for seq in (self.fc, self.conv):
                for i, layer in enumerate(seq):
                    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, DomainBatchNorm)):
                        seq[i] = ConditionalBatchNorm(layer, cfg.d_dim)

    def _add_domain_groups(self, cfg: ModelConfig) -> None:
        """Per-group batch-norm statistics and, with `adapter_rank`, low-rank adapters of every
        linear and transposed-convolution layer (domain_groups.py)."""
        groups = len(cfg.domain_groups)
        # Not saved: it follows from the config, and the ONNX graph holds it as a constant.
        self.register_buffer("group_matrix", group_matrix(cfg.d_dim, cfg.domain_groups), persistent=False)
        adapters = {}
        for prefix, seq in (("fc_", self.fc), ("conv_", self.conv)):
            for i, layer in enumerate(seq):
                if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    seq[i] = DomainBatchNorm(layer.num_features, groups + 1, layer.eps, layer.momentum)
                elif isinstance(layer, (nn.Linear, nn.ConvTranspose2d)) and cfg.adapter_rank > 0:
                    adapters[f"{prefix}{i}"] = LowRankAdapters(layer, groups, cfg.adapter_rank)
        if adapters:
            self.adapters = nn.ModuleDict(adapters)

    def _code_scale(self, codes: torch.Tensor) -> torch.Tensor:
        """[z_dim + c_dim + d_dim]: the codes' scales in the codes' dtype, a constant made once per device
        and dtype (not a buffer: bundles keep their tensors)."""
        cfg = self.cfg
        values = (cfg.z_scale,) * cfg.z_dim + (cfg.c_scale,) * cfg.c_dim + (1.0,) * cfg.d_dim
        if type(codes) is not torch.Tensor or torch.compiler.is_compiling():
            # Traced (the ONNX export's fake tensors, torch.compile): a constant of the graph, never kept,
            # since a kept fake tensor would leak into later real calls.
            return torch.tensor(values, device=codes.device, dtype=codes.dtype)
        return _constant(values, codes.device, codes.dtype)

    def forward(self, z: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        assert z.dim() == 2 and z.shape[1] == cfg.z_dim, f"z must be [N, {cfg.z_dim}], got {tuple(z.shape)}"
        assert c.shape == (z.shape[0], cfg.c_dim), f"c must be [N, {cfg.c_dim}], got {tuple(c.shape)}"
        assert d.shape == (z.shape[0], cfg.d_dim), f"d must be [N, {cfg.d_dim}], got {tuple(d.shape)}"
        # Scaled inside G so every caller (and the ONNX graph's inputs) keeps N(0, I) codes: one product
        # of [z, c, d] with [z_scale…, c_scale…, 1…] (d times 1 is d exactly), not one per code.
        codes = torch.cat([z, c, d], dim=1)
        if cfg.z_scale != 1.0 or cfg.c_scale != 1.0:
            codes = codes * self._code_scale(codes)
        gate = gate_of(d, self.group_matrix) if cfg.domain_groups else None  # [N, 1 + groups]
        h = _run(self.fc, codes, d, gate, self.adapters, "fc_")
        h = h.view(-1, self.base_ch, self.base, self.base)  # [N, base_ch, base, base]
        return _run(self.conv, h, d, gate, self.adapters, "conv_")  # [N, C, H, W]


class Trunk(nn.Module):
    """Conv feature extractor shared in shape by D and S: image -> features [N, F]."""

    def __init__(self, cfg: ModelConfig, batch_norm: bool):
        super().__init__()
        w, fc = cfg.d_width, cfg.fc_width
        C = cfg.img_channels

        def block(cin: int, cout: int, norm: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
            if norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, True))
            return layers

        if cfg.img_resolution == 28:
            # InfoGAN MNIST discriminator trunk; no norm on the first layer.
            layers = block(C, w, False) + block(w, 2 * w, batch_norm)  # 14 -> 7
            layers += [nn.Flatten(), nn.Linear(2 * w * 7 * 7, fc, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm1d(fc))
            layers.append(nn.LeakyReLU(0.2, True))
            self.out_features = fc
        else:
            layers = block(C, w, False)  # 32
            ch = w
            for _ in range(3):  # 16, 8, 4
                layers += block(ch, 2 * ch, batch_norm)
                ch *= 2
            layers.append(nn.Flatten())
            self.out_features = ch * 4 * 4
        self.net = nn.Sequential(*layers)

    def forward(self, o: torch.Tensor) -> torch.Tensor:
        return self.net(o)


class Critic(nn.Module):
    """D(o) -> score [N]. No batch norm: the gradient penalty is per sample (Gulrajani et al.)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.trunk = Trunk(cfg, batch_norm=False)
        self.head = nn.Linear(self.trunk.out_features, 1)

    def forward(self, o: torch.Tensor) -> torch.Tensor:
        _check_image(o, self.cfg)
        return self.head(self.trunk(o)).squeeze(1)


class Encoder(nn.Module):
    """S(u|o): image -> (d_logits [N, d_dim], c_mean [N, c_dim]).

    With `trunk` given, S is two heads on that (the critic's) trunk, as in InfoGAN;
    otherwise it owns a trunk of the same shape (with batch norm unless the config
    says the trunk is the critic's: then a bundle's S is rebuilt standalone).
    """

    def __init__(self, cfg: ModelConfig, trunk: Trunk | None = None):
        super().__init__()
        self.cfg = cfg
        self.shares_trunk = trunk is not None
        # A standalone S rebuilt from a shared-trunk bundle keeps the critic's trunk layout.
        self.trunk = trunk if trunk is not None else Trunk(cfg, batch_norm=not cfg.encoder_shares_critic)
        feat = self.trunk.out_features
        self.d_head = nn.Linear(feat, cfg.d_dim)
        self.c_head = nn.Linear(feat, cfg.c_dim) if cfg.c_dim > 0 else None

    def forward(self, o: torch.Tensor):
        """(d_logits [N, d_dim], c_mean [N, c_dim])."""
        _check_image(o, self.cfg)
        h = self.trunk(o)
        d_logits = self.d_head(h)
        if self.c_head is None:
            c_mean = h.new_zeros(h.shape[0], 0)
        else:
            c_mean = self.c_head(h)
        return d_logits, c_mean

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters S owns beyond a shared trunk (all of them when it has its own)."""
        if not self.shares_trunk:
            return list(self.parameters())
        heads = list(self.d_head.parameters())
        if self.c_head is not None:
            heads += list(self.c_head.parameters())
        return heads


def build_networks(cfg: ModelConfig) -> tuple[Generator, Critic, Encoder]:
    """Build G, D, S for a model config (S on D's trunk when `encoder_shares_critic`)."""
    cfg.validate()
    G = Generator(cfg)
    D = Critic(cfg)
    S = Encoder(cfg, trunk=D.trunk if cfg.encoder_shares_critic else None)
    return G, D, S


def parameter_groups(G: Generator, D: Critic, S: Encoder) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """What each optimizer trains, as (prefixed name, parameter) in the optimizer's order.

    With S on the critic's trunk its heads learn with the critic (InfoGAN's scheme); a
    separate S learns with G, both maximising L_MI. The names let a checkpoint's optimizer
    state be matched to parameters by name (legacy.py).
    """
    heads = [(f"S.{n}", p) for n, p in S.named_parameters() if n.startswith(("d_head.", "c_head."))]
    named = lambda key, module: [(f"{key}.{n}", p) for n, p in module.named_parameters()]
    if S.shares_trunk:
        return {"opt_d": named("D", D) + heads, "opt_g": named("G", G)}
    return {"opt_d": named("D", D), "opt_g": named("G", G) + named("S", S)}


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` in eval mode with no parameter requiring gradients (EMA G, replay snapshots)."""
    module = copy.deepcopy(module).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, rate: Union[float, torch.Tensor]) -> None:
    """ema ← (1 − rate)·ema + rate·model for parameters (rate = 1 − the decay); buffers (BN stats) copied.

    Multi-tensor (foreach) ops: one kernel per group on CUDA instead of one per tensor;
    on CPU the same per-element arithmetic as a loop of lerp_.

    Args:
        rate: a float, or a 0-dim device tensor (a CUDA graph's static buffer, which the host fills
            before each replay; on the CPU the same values as the float).
    """
    params = list(model.parameters())
    # A tensor rate goes in as one weight per tensor: the single-weight overload would read a 0-dim
    # tensor back to the host as a Scalar (a sync, which a CUDA graph cannot capture).
    torch._foreach_lerp_(list(ema.parameters()), params, [rate] * len(params) if isinstance(rate, torch.Tensor) else rate)
    torch._foreach_copy_(list(ema.buffers()), list(model.buffers()))


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Parameters of `module` need no gradient inside the block (the critic in the generator update)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)
