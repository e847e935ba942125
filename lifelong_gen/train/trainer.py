"""The lifelong training loop: domains in order, a critic phase then a generator phase.

Owns `Trainer`: the loop over domains with its `begin_domain` / `end_domain` hooks,
the two phases of a step, checkpointing and resume. Side work (progress, sample grids,
per-domain snapshots) is done by callbacks (callbacks.py); which callable each forward
goes through (DDP, torch.compile) is decided in forwards.py. One generator step is:

1. critic phase, `n_critic` times: a "real" batch = the current domain's images mixed
   with samples of the frozen snapshot G_{k-1} (eq. (7), replay.py); fakes from G; WGAN
   critic loss + gradient penalty (eq. (2)); Adam step on D.
2. generator phase, D frozen: −E[D(G(z, u))] + λ_MI·(−L_MI) (eq. (10)) [+ replay
   alignment, + the interpretability levers]; Adam step on G ∪ S; EMA update of G.

The step stays on the training device: domain images live there as uint8, every random
draw (codes, data indices, interpolation weights, replay codes) comes from one
`torch.Generator` on that device whose state is checkpointed, and the losses stay there
as tensors until a metrics line is written every `log_every` steps (one device-to-host
copy per line, not one per loss per step). On CPU a resumed run ends with weights
bit-identical to an uninterrupted one (same thread count); what CUDA does and does not
make deterministic is in the README's GPU section.

Under torchrun (distributed.py) every rank builds the same networks from the same
seed but draws its own data, codes and replay samples from a generator seeded per
rank; gradients are averaged across ranks before each optimizer step, so the weights
stay identical on every rank. Rank 0 alone writes files; checkpoints hold every
rank's RNG states. `precision="bf16"` runs the forwards under autocast.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from lifelong_gen import bundle as bundle_files
from lifelong_gen import cpu_sharing
from lifelong_gen.config import RunConfig, domain_slots
from lifelong_gen.errors import LgenError, TrainingInterrupted
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train import distributed, legacy
from lifelong_gen.train.callbacks import (
    Callback,
    DomainSnapshots,
    SampleGrids,
    closing_all,
    progress_display,
)
from lifelong_gen.train.domains import DomainData, load_domain, to_float
from lifelong_gen.train.forwards import training_forwards
from lifelong_gen.train.growth import grow_into
from lifelong_gen.train.losses import (
    alignment_loss,
    augmented_info_loss,
    clustering_loss,
    critic_loss,
    generator_loss,
    gradient_penalty,
    info_loss,
    random_affine,
)
from lifelong_gen.train.networks import build_networks, parameter_groups
from lifelong_gen.train.replay import ReplaySnapshot, sample_codes

log = logging.getLogger("lifelong_gen")

Losses = dict[str, torch.Tensor]


@dataclass
class Phase:
    """One stage of training: a domain (lifelong) or the union of all domains (joint)."""

    index: int
    name: str
    images: torch.Tensor  # uint8 [N, C, H, W], on the training device
    steps: int
    d_slots: int
    replay_ratio: float
    # Joint training: per-image sampling weights giving each domain an equal share of every
    # batch (Fashion-MNIST has 15x the images of the MNIST subset). None: uniform.
    sample_weights: Optional[torch.Tensor] = None


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model for parameters; buffers (BN stats) copied.

    Multi-tensor (foreach) ops: one kernel per group on CUDA instead of one per tensor;
    on CPU the same per-element arithmetic as a loop of lerp_.
    """
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
    torch._foreach_copy_(list(ema.buffers()), list(model.buffers()))


@contextlib.contextmanager
def frozen(module: torch.nn.Module):
    """Parameters of `module` need no gradient inside the block (the critic in the generator phase)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)


class LossWindow:
    """Per-step losses since the last metrics line, kept as device tensors until read.

    `floats()` turns them into Python floats with one stacked device-to-host copy; the
    values are exactly those `.item()` per step would give. Windows restored from a
    checkpoint are already floats.
    """

    def __init__(self, steps: Sequence[dict] = ()):
        self.steps: list[dict[str, Union[float, torch.Tensor]]] = list(steps)

    def append(self, losses: Losses) -> None:
        self.steps.append(losses)

    def __len__(self) -> int:
        return len(self.steps)

    def floats(self) -> list[dict[str, float]]:
        pending = [i for i, s in enumerate(self.steps) if any(isinstance(v, torch.Tensor) for v in s.values())]
        if pending:
            keys = list(self.steps[pending[0]])
            values = torch.stack([torch.stack([self.steps[i][k] for k in keys]) for i in pending]).cpu().tolist()
            for i, row in zip(pending, values):
                self.steps[i] = dict(zip(keys, row))
        return self.steps  # type: ignore[return-value]

    def mean(self) -> dict[str, float]:
        steps = self.floats()
        return {k: sum(s[k] for s in steps) / len(steps) for k in steps[0]}


class Trainer:
    """Lifelong WGAN-GP + InfoGAN training with generative replay over a list of domains."""

    # bf16: the gradient penalty's critic forward (and its double backward) runs under autocast
    # too, with the gradient and its norm in fp32 (losses.gradient_penalty). Measured on an
    # idle 2-core AVX-512-BF16 CPU, 28x28 InfoGAN nets: step 1.66x fp32 with it, 1.34x with the
    # penalty left in fp32 (benchmarks/training.py, which sets False on one instance to time that).
    gp_autocast = True

    def __init__(self, run: RunConfig, run_dir: Path, *, data: Optional[list[DomainData]] = None,
                 progress: bool = True,
                 device: str = "cpu", callbacks: Sequence[Callback] = (), parent: Optional[Path] = None):
        """
        Args:
            run: the resolved configuration (config.resolve_run_config or read from config.json).
            run_dir: where config, weights, metrics, samples and checkpoints go.
            data: already loaded domains (tests); loaded from the domain specs otherwise.
            progress: show progress on stderr (a rich bar on a terminal, log lines otherwise).
            device: "cpu", "cuda" or "auto" (CUDA when available); under torchrun each
                rank takes its LOCAL_RANK's GPU (distributed.pick_device).
            callbacks: extra `Callback`s, called after the built-in ones.
            parent: for a continued run (`run.train.inherited_domains` > 0, lineage.py) starting
                fresh, the parent's bundle directory: its EMA G (grown) starts G and becomes the
                replay snapshot, its S (grown) starts S, its critic starts D when `run.parent`
                says so. None when resuming: the checkpoint holds all of it.
        """
        self.run, self.cfg, self.tc, self.run_dir = run, run.model, run.train, Path(run_dir)
        self.callbacks = list(callbacks)
        self.dist = distributed.current()
        self.device = distributed.pick_device(device, self.dist)
        self.progress = progress and self.dist.is_main
        # bf16: autocast around forwards only; parameters, optimizer state and losses stay fp32.
        self.amp_dtype: Optional[torch.dtype] = torch.bfloat16 if self.tc.precision == "bf16" else None
        _choose_kernels(self.device, self.tc.cuda_deterministic, compiled=self.tc.compile != "off")

        self.parent = Path(parent) if parent is not None else None
        inherited = self.tc.inherited_domains
        if self.parent is not None and not inherited:
            raise LgenError("a parent model was given, but the config continues none (use lineage.continue_config)")
        # The parent first: a damaged or mismatched parent ends in one line before any data work.
        parent_nets = self._load_parent() if self.parent is not None else None
        # Only the domains this run learns are loaded: the inherited ones live on in the replay snapshot.
        self.data = data if data is not None else [
            load_domain(spec, self.cfg.img_channels, self.cfg.img_resolution, self.tc.data_root, self.tc.download)
            for spec in self.tc.domains[inherited:]]
        # The caller's config is left as it was given; this run's copy names where its data came from.
        self.run = run = dataclasses.replace(
            run, data_sources=list(run.data_sources)[:inherited] + [d.describe() for d in self.data])
        self.phases = self._make_phases(self.data)
        self._build_networks()
        self.rng = self._make_rng()

        self.phase_index = 0  # position in self.phases (a phase's `index` is its domain's place in the lineage)
        self.step = 0  # generator steps done in the current phase
        self.global_step = 0
        self.snapshot: Optional[ReplaySnapshot] = None
        if parent_nets is not None:
            self._start_from_parent(parent_nets)
        self.metrics_offset = 0
        self._window = LossWindow()

    @property
    def lineage_length(self) -> int:
        """Domains of the lineage: the inherited ones and this run's (a joint run's union counts once)."""
        return self.tc.inherited_domains + len(self.phases)

    # ------------------------------------------------------------ setup

    def _make_phases(self, data: list[DomainData]) -> list[Phase]:
        if self.tc.joint:
            images = torch.cat([d.train_images for d in data])
            weights = torch.cat([torch.full((d.train_images.shape[0],), 1.0 / d.train_images.shape[0]) for d in data])
            return [Phase(0, "joint:" + "+".join(d.spec for d in data), images.to(self.device),
                          self.tc.steps_per_domain * len(data), self.cfg.d_dim, 0.0, weights.to(self.device))]
        return [Phase(k, d.spec, d.train_images.to(self.device), self.tc.steps_per_domain,
                      domain_slots(self.tc, self.cfg, k), self.tc.replay_ratio_for(k))
                for k, d in enumerate(data, start=self.tc.inherited_domains)]

    def _load_parent(self) -> dict[str, torch.nn.Module]:
        """The parent's networks at its own size (strict key and shape checks, one-line errors)."""
        which = ("G_ema", "S") + (("D",) if (self.run.parent or {}).get("critic") == "parent" else ())
        parent_run, nets = ckpt.load_bundle(self.parent, which=which)
        grown = self.cfg.d_dim - parent_run.model.d_dim
        expected = dataclasses.replace(parent_run.model, d_dim=self.cfg.d_dim)
        if expected != self.cfg or grown < 0:
            raise LgenError(f"{self.parent} is not the parent this config continues (its model config differs)")
        return nets

    def _start_from_parent(self, nets: dict[str, torch.nn.Module]) -> None:
        """G, G_ema and S from the parent's EMA G and S (grown along d); D from its critic or fresh;
        the parent's EMA G as the replay snapshot of the domains it learned."""
        growth = self.cfg.d_dim - nets["G_ema"].cfg.d_dim
        grow_into(self.G, nets["G_ema"].state_dict(), growth, "generator")
        self.G_ema.load_state_dict(self.G.state_dict())
        grow_into(self.S, nets["S"].state_dict(), growth, "encoder")
        if "D" in nets:
            self.D.load_state_dict(nets["D"].state_dict(), strict=True)
        if self.tc.replay:
            parent_slots = domain_slots(self.tc, self.cfg, self.tc.inherited_domains - 1)
            self.snapshot = ReplaySnapshot(self.G_ema, parent_slots)

    def _build_networks(self) -> None:
        """G, D, S and the EMA copy of G on the device; their optimizers; the step's forwards."""
        # Networks initialised from the run's seed, without reseeding the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.tc.seed)
            self.G, self.D, self.S = build_networks(self.cfg)
        for module in (self.G, self.D, self.S):
            module.to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()
        for p in self.G_ema.parameters():
            p.requires_grad_(False)
        shared = self.cfg.encoder_shares_critic
        if shared and self.tc.s_real_weight > 0:
            raise LgenError("s_real_weight trains S on real images and needs a separate S (drop --shared-encoder)")
        groups = parameter_groups(self.G, self.D, self.S)
        d_params, g_params = ([p for _, p in groups[k]] for k in ("opt_d", "opt_g"))
        # CUDA: the fused Adam kernel (one launch per step instead of several per tensor).
        # CPU keeps the reference implementation, so its runs stay bit-identical to earlier ones.
        fused = True if self.device.type == "cuda" else None
        self.opt_d = torch.optim.Adam(d_params, lr=self.tc.lr_d, betas=self.tc.betas, fused=fused)
        self.opt_g = torch.optim.Adam(g_params, lr=self.tc.lr_g, betas=self.tc.betas, fused=fused)
        self.fw = training_forwards(self.G, self.D, self.S, self.dist, self.tc.compile)

    def _make_rng(self, restart_at: int = 0) -> torch.Generator:
        """The run's one random stream, on the training device.

        Rank 0 keeps the single-process seed; other ranks draw different data and codes.
        `restart_at` > 0: a fresh stream for a resume that cannot restore the saved one.
        (Mixed through SeedSequence: torch's CPU generator keeps only a seed's low 32 bits.)
        """
        seed = self.tc.seed + 1
        if self.dist.rank or restart_at:
            entropy = [self.tc.seed, self.dist.rank] + ([restart_at] if restart_at else [])
            seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        return torch.Generator(device=self.device).manual_seed(seed)

    # ------------------------------------------------------------ one generator step

    def _amp(self):
        """Autocast context for network forwards (a no-op in fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _codes(self, n: int, d_slots: int):
        cfg = self.cfg
        return sample_codes(n, cfg.z_dim, cfg.c_dim, cfg.d_dim, d_slots, self.rng, self.device)

    def _real_batch(self, phase: Phase, batch: int) -> torch.Tensor:
        n_replay = round(batch * phase.replay_ratio) if self.snapshot is not None else 0
        if phase.sample_weights is not None:
            idx = torch.multinomial(phase.sample_weights, batch - n_replay, replacement=True, generator=self.rng)
        else:
            idx = torch.randint(0, phase.images.shape[0], (batch - n_replay,), generator=self.rng,
                                device=self.rng.device)
        real = to_float(phase.images[idx])
        if n_replay:
            replayed, _ = self.snapshot.sample(n_replay, self.rng)
            real = torch.cat([real, replayed])
        return real  # [B, C, H, W]

    def train_step(self, phase: Phase) -> Losses:
        """`n_critic` critic updates, then one G + S update; the losses as 0-dim device tensors."""
        self.G.train()
        self.S.train()
        for _ in range(self.tc.n_critic):
            critic = self.critic_step(phase)
        return {**critic, **self.generator_step(phase)}

    def critic_step(self, phase: Phase) -> Losses:
        """One critic update, eq. (2): WGAN loss on real (with replay) vs G's fakes + gradient penalty."""
        tc, fw, B = self.tc, self.fw, self.tc.batch_size
        fw.step_begins()
        real = self._real_batch(phase, B)
        z, c, d, d_idx = self._codes(B, phase.d_slots)
        with torch.no_grad(), self._amp():
            fake = fw.G_fakes(z, c, d).float()
        with self._amp():
            if fw.compiled:  # one compiled call (and CUDA graph) for both halves: D has no batch norm
                real_scores, fake_scores = fw.D(torch.cat([real, fake])).float().split(B)
            else:  # two calls, as runs made before --compile existed (bit-identical on CPU)
                real_scores = fw.D(real).float()
                fake_scores = fw.D(fake).float()
        eps = torch.rand(B, generator=self.rng, device=self.rng.device)
        gp = gradient_penalty(fw.D_penalty, real, fake, eps, tc.gp_lambda,
                              autocast_dtype=self.amp_dtype if self.gp_autocast else None)
        loss_c = critic_loss(real_scores, fake_scores)
        loss_d = loss_c + gp
        if self.cfg.encoder_shares_critic:  # S's heads learn with the critic (InfoGAN)
            with self._amp():
                d_logits, c_mean = fw.D(fake, codes=True)
            loss_d = loss_d + info_loss(d_logits.float(), c_mean.float(), d_idx, c, tc.info_weight_discrete,
                                        tc.info_weight_continuous)[0]
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()  # under torchrun DDP averages the critic's gradients here
        self.opt_d.step()
        return {"loss_d": loss_d.detach(), "wasserstein": -loss_c.detach(), "gp": gp.detach()}

    def generator_step(self, phase: Phase) -> Losses:
        """One G + S update with the critic frozen, eq. (10) [+ replay alignment, + levers]; then G's EMA."""
        tc, fw, B = self.tc, self.fw, self.tc.batch_size
        fw.step_begins()
        with frozen(self.D):  # no gradient wasted on the critic
            z, c, d, d_idx = self._codes(B, phase.d_slots)
            with self._amp():
                fake = fw.G(z, c, d)
                scores = fw.D_frozen(fake)
                d_logits, c_mean = fw.S(fake)  # unwrapped S when it shares the (frozen) trunk
            loss_adv = generator_loss(scores.float())
            loss_info, ce, nll = info_loss(d_logits.float(), c_mean.float(), d_idx, c, tc.info_weight_discrete,
                                           tc.info_weight_continuous)
            loss_g = loss_adv + loss_info
            align = torch.zeros((), device=self.device)
            if self.snapshot is not None and tc.replay_alignment > 0:
                n_old = max(1, round(B * phase.replay_ratio))
                za, ca, da, _ = self._codes(n_old, self.snapshot.d_slots)
                with self._amp():
                    current, target = fw.G(za, ca, da), self.snapshot.render(za, ca, da)
                align = alignment_loss(current.float(), target.float())
                loss_g = loss_g + tc.replay_alignment * align
            extra, logged = self._interpretability_terms(phase, fake, d_idx)
            for weight, term in extra.values():
                loss_g = loss_g + weight * term
            self.opt_g.zero_grad(set_to_none=True)
            if self.cfg.encoder_shares_critic:
                self.opt_d.zero_grad(set_to_none=True)
            loss_g.backward()  # under torchrun DDP averages G's (and a separate S's) gradients here
        self.opt_g.step()
        # Per-rank batches moved each rank's BatchNorm running statistics differently
        # (DDP wraps with broadcast_buffers=False: see distributed.py).
        self.dist.average_buffers((self.G, self.S))
        # EMA with a warm-up so early in a short run the average is not dominated by init.
        decay = min(tc.ema_decay, (1 + self.global_step) / (10 + self.global_step))
        update_ema(self.G_ema, self.G, decay)
        values = {"loss_g": loss_adv, "info": loss_info, "info_ce": ce, "info_nll": nll, "align": align}
        values.update({name: term for name, (_, term) in extra.items()}, **logged)
        return {k: v.detach().float() for k, v in values.items()}

    def _interpretability_terms(self, phase: Phase, fake: torch.Tensor, d_idx: torch.Tensor
                                ) -> tuple[dict[str, tuple[float, torch.Tensor]], Losses]:
        """The opt-in levers of the generator phase: ({name: (weight, term)} for the loss, {name:
        diagnostic} logged only, so a NaN in a diagnostic cannot reach the loss); empty when all are off.

        Off (weight 0) they draw nothing from the RNG, so a run without them is bit-identical
        to one made before they existed.
        """
        tc, fw = self.tc, self.fw
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        logged: Losses = {}
        if tc.info_augment_weight > 0:
            # Through G: S must read d from a transformed copy of G's image.
            augmented = random_affine(fake.float(), self.rng)
            with self._amp():
                d_logits_aug, _ = fw.S(augmented)
            terms["info_aug"] = (tc.info_augment_weight, augmented_info_loss(d_logits_aug.float(), d_idx))
        if tc.s_real_weight > 0:
            # S alone: real images (with replay, as the critic sees them) clustered over the
            # categories active in this phase.
            with torch.no_grad():
                real = self._real_batch(phase, tc.batch_size)
                augmented = random_affine(real, self.rng)
            with self._amp():
                logits = fw.S(torch.cat([real, augmented]))[0].float()[:, :phase.d_slots]
            loss, consistency, balance = clustering_loss(*logits.chunk(2), balance_weight=tc.s_balance_weight)
            terms["s_real"] = (tc.s_real_weight, loss)
            logged.update(s_consistency=consistency, s_marginal_entropy=balance)
        return terms, logged

    # ------------------------------------------------------------ domain hooks

    def begin_domain(self, phase: Phase) -> None:
        log.info("domain %d/%d %s: %d steps, d slots %d, replay ratio %.3f", phase.index + 1, self.lineage_length,
                 phase.name, phase.steps, phase.d_slots, phase.replay_ratio if self.snapshot else 0.0)

    def warm_up_critic(self, phase: Phase) -> None:
        """`critic_warmup` critic-only updates before a continued run's first generator step: a fresh
        critic first learns to score the replay + new-data mix against G, so its first gradients
        to G point somewhere (lineage.FRESH_CRITIC_WARMUP; experiments/continuation.md)."""
        log.info("critic warm-up: %d critic updates before G moves", self.tc.critic_warmup)
        self.G.train()
        for _ in range(self.tc.critic_warmup):
            self.critic_step(phase)

    def end_domain(self, phase: Phase) -> None:
        """Freeze the EMA generator as the replay snapshot G_{k} for the next domain."""
        if self.tc.replay and not self.tc.joint:
            self.snapshot = ReplaySnapshot(self.G_ema, phase.d_slots)  # on every rank: replay is per rank
        self.phase_index += 1
        self.step = 0

    # ------------------------------------------------------------ checkpoints

    def _write_bundle(self) -> None:
        if not self.dist.is_main:
            return
        ckpt.save_bundle(self.run_dir, self.run, {"G": self.G, "G_ema": self.G_ema, "S": self.S, "D": self.D})

    def checkpoint(self) -> None:
        """Full training state (atomic), then the bundle files at the run dir's top level.

        Collective under torchrun: every rank's RNG states are gathered, rank 0 writes,
        the others wait at a barrier so no rank runs ahead of a checkpoint being written.
        """
        rng_train = self.dist.gather_states(self.rng.get_state())
        rng_torch = self.dist.gather_states(torch.get_rng_state())
        if not self.dist.is_main:
            self.dist.barrier()
            return
        tensors: dict[str, torch.Tensor] = {}
        for key, module in (("G", self.G), ("G_ema", self.G_ema), ("S", self.S), ("D", self.D)):
            for name, value in module.state_dict().items():
                tensors[f"{key}.{name}"] = value
        if self.snapshot is not None:
            for name, value in self.snapshot.state_dict().items():
                tensors[f"snapshot.{name}"] = value
        opt_meta = {}
        for key, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            t, meta = ckpt.optimizer_to_tensors(opt, key)
            tensors.update(t)
            opt_meta[key] = meta
        for rank, (train_state, torch_state) in enumerate(zip(rng_train, rng_torch)):
            suffix = "" if rank == 0 else f".rank{rank}"  # rank 0 keeps the single-process names
            tensors["rng.train" + suffix] = train_state
            tensors["rng.torch" + suffix] = torch_state
        state = {
            "world_size": self.dist.world_size,  # a resume must use as many processes
            "phase_index": self.phase_index, "step": self.step, "global_step": self.global_step,
            "snapshot_d_slots": self.snapshot.d_slots if self.snapshot else None,
            "metrics_offset": self.metrics_offset, "optimizers": opt_meta,
            # Losses of the steps since the last metrics line: a resume then logs the same averages.
            "window": self._window.floats(),
            "rng_device": self.rng.device.type,
            "numerics": ckpt.numerics(self.device),  # what bit-identity on resume depends on
        }
        try:
            ckpt.save_checkpoint(self.run_dir, self.global_step, state, tensors)
            self._write_bundle()
        except OSError as e:  # a full disk, a read-only mount: the newest complete checkpoint is untouched
            raise LgenError(f"cannot write the checkpoint of step {self.global_step} in {self.run_dir} "
                            f"({e.strerror or e}); the previous checkpoint is intact: fix that, then "
                            f"`lgen train --resume {self.run_dir}`") from None
        self.dist.barrier()

    def restore(self) -> bool:
        """Load the newest checkpoint of run_dir; False when there is none (start fresh)."""
        found = ckpt.load_checkpoint(self.run_dir)
        metrics = self.run_dir / bundle_files.TRAINING_LOG_NAME
        if found is None:
            if self.dist.is_main:
                metrics.unlink(missing_ok=True)  # lines of a run killed before its first checkpoint
            return False
        state, tensors = found
        saved_world = state["world_size"]
        if saved_world != self.dist.world_size:
            raise LgenError(f"{self.run_dir} was checkpointed by {saved_world} process(es); resume it with the same "
                            f"number (torchrun --nproc_per_node {saved_world}), not {self.dist.world_size}")

        def sub(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}

        folded = {}  # a checkpoint of an older version: biases before batch norm folded (legacy.py)
        for key, module in (("G", self.G), ("G_ema", self.G_ema), ("S", self.S), ("D", self.D)):
            weights, folded[key] = legacy.fold_norm_biases(module, sub(key))
            module.load_state_dict(weights, strict=True)
        if state["snapshot_d_slots"] is not None:
            G_old, _, _ = build_networks(self.cfg)
            G_old.load_state_dict(legacy.fold_norm_biases(G_old, sub("snapshot"))[0], strict=True)
            G_old.to(self.device)
            self.snapshot = ReplaySnapshot(G_old, state["snapshot_d_slots"])
        ckpt.warn_if_numerics_differ(state.get("numerics"), self.device)  # absent before 3ac49f4
        maps = legacy.optimizer_index_maps(parameter_groups(self.G, self.D, self.S), folded)
        for key, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            ckpt.optimizer_from_tensors(opt, key, tensors, state["optimizers"][key], maps.get(key))
        legacy.notice_once(str(self.run_dir / "checkpoints"), sorted(f"{k}.{n}" for k, v in folded.items() for n in v))
        self.phase_index, self.step, self.global_step = state["phase_index"], state["step"], state["global_step"]
        suffix = "" if self.dist.rank == 0 else f".rank{self.dist.rank}"
        saved_device = state["rng_device"]
        if saved_device == self.rng.device.type:
            self.rng.set_state(tensors["rng.train" + suffix])
        else:  # a CPU generator's state means nothing to a CUDA one (and back)
            log.warning("the checkpoint's random stream was on %s, this run trains on %s: continuing with a fresh "
                        "stream (not bit-identical to an uninterrupted run)", saved_device, self.rng.device.type)
            self.rng = self._make_rng(restart_at=self.global_step)
        torch.set_rng_state(tensors["rng.torch" + suffix])
        self.metrics_offset = state["metrics_offset"]
        self._window = LossWindow(state["window"])
        # Metrics logged after this checkpoint belong to steps that will be re-run.
        if metrics.exists() and self.dist.is_main:
            with open(metrics, "r+b") as f:
                f.truncate(self.metrics_offset)
        log.info("resumed %s at domain %d, step %d (global %d)", self.run_dir, self.phase_index + 1,
                 self.step, self.global_step)
        return True

    # ------------------------------------------------------------ the loop

    def _log_metrics(self, phase: Phase, t0: float) -> None:
        """Average the window (one device read), average over ranks, append a line to metrics.jsonl."""
        mean = self.dist.average_scalars(self._window.mean())
        seconds = time.perf_counter() - t0  # after the read: includes the device work still queued
        n = len(self._window)
        self._window = LossWindow()
        if not self.dist.is_main:
            return
        record = {"domain": phase.name, "domain_index": phase.index, "step": self.step,
                  "global_step": self.global_step, "sec_per_step": seconds / n, **mean}
        path = self.run_dir / bundle_files.TRAINING_LOG_NAME
        with open(path, "a") as f:  # append-only; a resume truncates it to metrics_offset
            f.write(json.dumps(record) + "\n")
        self.metrics_offset = path.stat().st_size

    def _all_callbacks(self) -> list[Callback]:
        built_in = [progress_display(self.progress), SampleGrids(), DomainSnapshots()]
        return [cb for cb in built_in if cb is not None] + self.callbacks

    def train(self) -> None:
        """Run (or continue) every remaining phase; the run dir ends as a complete bundle.

        Callbacks: `before_domain` whenever a domain starts or resumes in this process,
        `after_step` after each generator step, `after_domain` after its replay snapshot.
        """
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.write_config(self.run_dir, self.run)
            if (line := cpu_sharing.notice()) is not None:
                log.info(line)
        if self.parent is not None and self.global_step == 0:
            # A continued run holds what it needs from its parent from its first moment: the parent's
            # snapshots (the forgetting matrix's first rows) and a checkpoint of the grown start,
            # so a resume never needs the parent again.
            if self.dist.is_main:
                ckpt.copy_parent_snapshots(self.parent, self.run_dir, self.tc.inherited_domains)
            self.checkpoint()
        with closing_all(self._all_callbacks()) as callbacks, \
                _stop_on_signals(self.dist.world_size == 1) as stop:
            while self.phase_index < len(self.phases):
                phase = self.phases[self.phase_index]
                if self.step == 0:
                    self.begin_domain(phase)
                    if phase.index == self.tc.inherited_domains > 0 and self.tc.critic_warmup:
                        self.warm_up_critic(phase)
                for cb in callbacks:
                    cb.before_domain(self, phase)
                t0 = time.perf_counter()
                while self.step < phase.steps:
                    losses = self.train_step(phase)
                    self.step += 1
                    self.global_step += 1
                    self._window.append(losses)
                    if self.step % self.tc.log_every == 0 or self.step == phase.steps:
                        self._log_metrics(phase, t0)
                        t0 = time.perf_counter()
                    for cb in callbacks:
                        cb.after_step(self, phase, losses)
                    if stop.signum is not None and self.step < phase.steps:
                        self.checkpoint()
                        raise TrainingInterrupted(stop.signum, (
                            f"stopped by {signal.Signals(stop.signum).name} at domain {phase.index + 1} step "
                            f"{self.step}: checkpoint written; continue with `lgen train --resume {self.run_dir}`"))
                    if self.step % self.tc.checkpoint_every == 0 and self.step < phase.steps:
                        self.checkpoint()
                self._window = LossWindow()
                self.end_domain(phase)
                for cb in callbacks:
                    cb.after_domain(self, phase)
                self.checkpoint()
        self._write_bundle()


def _choose_kernels(device: torch.device, cuda_deterministic: bool, compiled: bool) -> None:
    """Deterministic algorithms on the CPU always; on CUDA unless the run asks for the fastest.

    CUDA has ops without a deterministic kernel (e.g. grid_sample's backward): there it
    warns instead of failing. Without determinism cuDNN benchmarks its algorithms per shape
    (the step's shapes are static, so that is paid once). Called before the first forward:
    benchmarks/device_step.py times train_step without train().
    """
    deterministic = device.type != "cuda" or cuda_deterministic
    if compiled:  # the public switch, which also sets inductor's
        torch.use_deterministic_algorithms(deterministic, warn_only=device.type == "cuda")
    else:  # the same switch without importing inductor, which cost every `lgen train` 1-3 s
        torch._C._set_deterministic_algorithms(deterministic, warn_only=device.type == "cuda")
    torch.backends.cudnn.benchmark = not deterministic


class _StopFlag:
    signum: Optional[int] = None


@contextlib.contextmanager
def _stop_on_signals(enabled: bool):
    """SIGINT / SIGTERM set a flag instead of killing the process: the loop finishes its step,
    writes a checkpoint and stops (TrainingInterrupted). Only in a single process's main
    thread (under torchrun the launcher owns the signals); the old handlers come back after.
    """
    import threading

    flag = _StopFlag()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.signum = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
