"""The lifelong training loop: domains in order, n_critic critic steps then G + S.

Owns `Trainer` (the loop, its `begin_domain` / `end_domain` hooks, checkpointing
and resume) and `resolve_run_config` (domains -> model shape and d_dim). One
generator step is:

1. `n_critic` times: a "real" batch = the current domain's images mixed with samples
   of the frozen snapshot G_{k-1} (eq. (7), replay.py); fakes from G; WGAN critic
   loss + gradient penalty (eq. (2)); Adam step on D.
2. G and S together: −E[D(G(z, u))] + λ_MI·(−L_MI) (eq. (10)) [+ replay alignment];
   Adam step on G ∪ S; EMA update of G.

Every random draw (codes, data indices, interpolation weights, replay codes) comes
from one `torch.Generator` whose state is checkpointed, so a resumed run ends with
weights bit-identical to an uninterrupted one (CPU, same thread count).

Under torchrun (distributed.py) every rank builds the same networks from the same
seed but draws its own data, codes and replay samples from a generator seeded per
rank; gradients are averaged across ranks before each optimizer step, so the weights
stay identical on every rank. Rank 0 alone writes files; checkpoints hold every
rank's RNG states. `precision="bf16"` runs the forwards under CPU autocast.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from lifelong_gen import __version__
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train import distributed
from lifelong_gen.config import (
    MODEL_KEYS, TRAIN_KEYS, ModelConfig, RunConfig, TrainConfig, domain_slots,
)
from lifelong_gen.train.domains import DomainData, load_domain, model_shape, to_float
from lifelong_gen.errors import LgenError, TrainingInterrupted
from lifelong_gen.train.losses import (
    alignment_loss, augmented_info_loss, clustering_loss, critic_loss, generator_loss, gradient_penalty, info_loss,
    random_affine,
)
from lifelong_gen.train.networks import build_networks
from lifelong_gen.train.replay import ReplaySnapshot, sample_codes

log = logging.getLogger("lifelong_gen")


def resolve_run_config(settings: dict[str, Any]) -> RunConfig:
    """Turn flat settings (CLI flags, presets) into a validated RunConfig.

    The model's channels and resolution follow the domains (domains.model_shape) unless
    given; with `d_per_domain` N, d_dim becomes N x number of domains.
    """
    unknown = set(settings) - MODEL_KEYS - TRAIN_KEYS
    if unknown:
        raise LgenError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    model_kwargs = {k: v for k, v in settings.items() if k in MODEL_KEYS and v is not None}
    train_kwargs = {k: v for k, v in settings.items() if k in TRAIN_KEYS and (v is not None or k == "replay_ratio")}
    train = TrainConfig(**train_kwargs)
    train.validate()
    channels, resolution = model_shape(train.domains)
    model_kwargs.setdefault("img_channels", channels)
    model_kwargs.setdefault("img_resolution", resolution)
    if train.d_per_domain is not None:
        total = train.d_per_domain * len(train.domains)
        if "d_dim" in model_kwargs and model_kwargs["d_dim"] != total:
            raise LgenError(f"d_dim {model_kwargs['d_dim']} contradicts d_per_domain {train.d_per_domain} "
                            f"x {len(train.domains)} domains = {total}; give one of them")
        model_kwargs["d_dim"] = total
    model = ModelConfig(**model_kwargs)
    model.validate()
    return RunConfig(model=model, train=train, package_version=__version__)


@dataclass
class Phase:
    """One stage of training: a domain (lifelong) or the union of all domains (joint)."""

    index: int
    name: str
    images: torch.Tensor  # uint8 [N, C, H, W]
    steps: int
    d_slots: int
    replay_ratio: float
    # Joint training: per-image sampling weights giving each domain an equal share of every
    # batch (Fashion-MNIST has 15x the images of the MNIST subset). None: uniform.
    sample_weights: Optional[torch.Tensor] = None


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model for parameters; buffers (BN stats) copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


class Trainer:
    """Lifelong WGAN-GP + InfoGAN training with generative replay over a list of domains."""

    def __init__(
        self,
        run: RunConfig,
        run_dir: Path,
        *,
        data: Optional[list[DomainData]] = None,
        on_step: Optional[Callable[["Trainer", dict[str, float]], None]] = None,
        progress: bool = True,
        device: str = "cpu",
    ):
        """
        Args:
            run: the resolved configuration (resolve_run_config or read from config.json).
            run_dir: where config, weights, metrics, samples and checkpoints go.
            data: already loaded domains (tests); loaded from the domain specs otherwise.
            on_step: called after every generator step with the step's losses.
            progress: show a rich progress bar on stderr.
            device: "cpu", "cuda" or "auto" (CUDA when available); under torchrun each
                rank takes its LOCAL_RANK's GPU (distributed.pick_device).
        """
        self.run = run
        self.cfg = run.model
        self.tc = run.train
        self.run_dir = Path(run_dir)
        self.on_step = on_step
        self.dist = distributed.current()
        self.device = distributed.pick_device(device, self.dist)
        self.progress = progress and self.dist.is_main
        # bf16: autocast around forwards only; parameters, optimizer state and losses stay fp32.
        self.amp_dtype: Optional[torch.dtype] = torch.bfloat16 if self.tc.precision == "bf16" else None
        # bf16: the gradient penalty's critic forward (and its double backward) runs under autocast
        # too, with the gradient and its norm in fp32 (losses.gradient_penalty). Measured on an
        # idle 2-core AVX-512-BF16 CPU, 28x28 InfoGAN nets: step 1.66x fp32 with it, 1.34x with the
        # penalty left in fp32 (benchmarks/training.py); False gives the latter.
        self.gp_autocast = True
        # CUDA has ops without a deterministic kernel: there it warns instead of failing.
        torch.use_deterministic_algorithms(True, warn_only=self.device.type == "cuda")

        if data is None:
            data = [load_domain(spec, self.cfg.img_channels, self.cfg.img_resolution,
                                self.tc.data_root, self.tc.download) for spec in self.tc.domains]
        self.data = data
        run.data_sources = [d.describe() for d in data]
        self.phases = self._make_phases(data)

        torch.manual_seed(self.tc.seed)  # network initialisation
        self.G, self.D, self.S = build_networks(self.cfg)
        for module in (self.G, self.D, self.S):
            module.to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()
        for p in self.G_ema.parameters():
            p.requires_grad_(False)
        shared = self.cfg.encoder_shares_critic
        if shared and self.tc.s_real_weight > 0:
            raise LgenError("s_real_weight trains S on real images and needs a separate S (drop --shared-encoder)")
        # With S on the critic's trunk, its heads learn with the critic (InfoGAN's scheme);
        # a separate S learns with G, both maximising L_MI.
        d_params = list(self.D.parameters()) + (self.S.head_parameters() if shared else [])
        g_params = list(self.G.parameters()) + ([] if shared else list(self.S.parameters()))
        self.opt_d = torch.optim.Adam(d_params, lr=self.tc.lr_d, betas=self.tc.betas)
        self.opt_g = torch.optim.Adam(g_params, lr=self.tc.lr_g, betas=self.tc.betas)
        # Forwards whose gradient the optimizers use go through these: the networks themselves
        # in one process, DistributedDataParallel wrappers under torchrun (distributed.py).
        self.G_train, self.D_train, self.S_train = distributed.wrap_for_training(self.G, self.D, self.S, self.dist)
        # Rank 0 keeps the single-process seed; other ranks draw different data and codes.
        # (Mixed through SeedSequence: torch's CPU generator keeps only a seed's low 32 bits.)
        seed = self.tc.seed + 1
        if self.dist.rank:
            seed = int(np.random.SeedSequence([self.tc.seed, self.dist.rank]).generate_state(1)[0])
        self.rng = torch.Generator().manual_seed(seed)

        self.phase_index = 0
        self.step = 0  # generator steps done in the current phase
        self.global_step = 0
        self.snapshot: Optional[ReplaySnapshot] = None
        self.metrics_offset = 0
        self._window: list[dict[str, float]] = []

    # ------------------------------------------------------------ setup

    def _make_phases(self, data: list[DomainData]) -> list[Phase]:
        if self.tc.joint:
            images = torch.cat([d.train_images for d in data])
            weights = torch.cat([torch.full((d.train_images.shape[0],), 1.0 / d.train_images.shape[0]) for d in data])
            return [Phase(0, "joint:" + "+".join(d.spec for d in data), images,
                          self.tc.steps_per_domain * len(data), self.cfg.d_dim, 0.0, weights)]
        return [Phase(k, d.spec, d.train_images, self.tc.steps_per_domain,
                      domain_slots(self.tc, self.cfg, k), self.tc.replay_ratio_for(k))
                for k, d in enumerate(data)]

    # ------------------------------------------------------------ one generator step

    def _amp(self):
        """Autocast context for network forwards (a no-op in fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _real_batch(self, phase: Phase, batch: int) -> torch.Tensor:
        n_replay = round(batch * phase.replay_ratio) if self.snapshot is not None else 0
        if phase.sample_weights is not None:
            idx = torch.multinomial(phase.sample_weights, batch - n_replay, replacement=True, generator=self.rng)
        else:
            idx = torch.randint(0, phase.images.shape[0], (batch - n_replay,), generator=self.rng)
        real = to_float(phase.images[idx]).to(self.device)
        if n_replay:
            replayed, _ = self.snapshot.sample(n_replay, self.rng)
            real = torch.cat([real, replayed])
        return real  # [B, C, H, W]

    def train_step(self, phase: Phase) -> dict[str, float]:
        cfg, tc = self.cfg, self.tc
        B = tc.batch_size
        shared = cfg.encoder_shares_critic
        self.G.train()
        self.S.train()

        for p in self.D.parameters():
            p.requires_grad_(True)
        for _ in range(tc.n_critic):
            real = self._real_batch(phase, B)
            z, c, d, d_idx = sample_codes(B, cfg.z_dim, cfg.c_dim, cfg.d_dim, phase.d_slots, self.rng, self.device)
            with torch.no_grad(), self._amp():
                fake = self.G(z, c, d).float()
            with self._amp():
                real_scores = self.D_train(real).float()
                fake_scores = self.D_train(fake).float()
            eps = torch.rand(B, generator=self.rng).to(self.device)
            gp = gradient_penalty(self.D_train, real, fake, eps, tc.gp_lambda,
                                  autocast_dtype=self.amp_dtype if self.gp_autocast else None)
            loss_c = critic_loss(real_scores, fake_scores)
            loss_d = loss_c + gp
            if shared:
                with self._amp():
                    d_logits, c_mean = self.D_train(fake, codes=True)
                loss_d = loss_d + info_loss(d_logits.float(), c_mean.float(), d_idx, c, tc.info_weight_discrete,
                                            tc.info_weight_continuous)[0]
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()  # under torchrun DDP averages the critic's gradients here
            self.opt_d.step()

        # G + S step. D is frozen here so no gradient is wasted on it.
        for p in self.D.parameters():
            p.requires_grad_(False)
        z, c, d, d_idx = sample_codes(B, cfg.z_dim, cfg.c_dim, cfg.d_dim, phase.d_slots, self.rng, self.device)
        with self._amp():
            fake = self.G_train(z, c, d)
            scores = self.D(fake)  # frozen: never through DDP, whose reducer would wait for its gradients
            d_logits, c_mean = self.S_train(fake)  # unwrapped S when it shares the (frozen) trunk
        loss_adv = generator_loss(scores.float())
        loss_info, ce, nll = info_loss(d_logits.float(), c_mean.float(), d_idx, c, tc.info_weight_discrete,
                                       tc.info_weight_continuous)
        loss_g = loss_adv + loss_info
        align = torch.zeros(())
        if self.snapshot is not None and tc.replay_alignment > 0:
            n_old = max(1, round(B * phase.replay_ratio))
            za, ca, da, _ = sample_codes(n_old, cfg.z_dim, cfg.c_dim, cfg.d_dim, self.snapshot.d_slots, self.rng,
                                         self.device)
            with self._amp():
                current, target = self.G_train(za, ca, da), self.snapshot.render(za, ca, da)
            align = alignment_loss(current.float(), target.float())
            loss_g = loss_g + tc.replay_alignment * align
        extra = self._interpretability_terms(phase, fake, d_idx)
        for weight, term in extra.values():
            loss_g = loss_g + weight * term
        self.opt_g.zero_grad(set_to_none=True)
        if shared:
            self.opt_d.zero_grad(set_to_none=True)
        loss_g.backward()  # under torchrun DDP averages G's (and a separate S's) gradients here
        self.opt_g.step()
        # Per-rank batches moved each rank's BatchNorm running statistics differently
        # (DDP wraps with broadcast_buffers=False: see distributed.py).
        self.dist.average_buffers((self.G, self.S))

        # EMA with a warm-up so early in a short run the average is not dominated by init.
        decay = min(tc.ema_decay, (1 + self.global_step) / (10 + self.global_step))
        update_ema(self.G_ema, self.G, decay)
        values = {"loss_d": loss_d, "wasserstein": -loss_c, "gp": gp, "loss_g": loss_adv, "info": loss_info,
                  "info_ce": ce, "info_nll": nll, "align": align}
        values.update({name: term for name, (_, term) in extra.items()})
        return self.dist.average_scalars({k: v.detach().item() for k, v in values.items()})

    def _interpretability_terms(self, phase: Phase, fake: torch.Tensor,
                                d_idx: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """The opt-in levers of the G + S step, as {name: (weight, term)}; empty when all are off.

        Off (weight 0) they draw nothing from the RNG, so a run without them is bit-identical
        to one made before they existed.
        """
        tc = self.tc
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        if tc.info_augment_weight > 0:
            # Through G: S must read d from a transformed copy of G's image.
            augmented = random_affine(fake.float(), self.rng)
            with self._amp():
                d_logits_aug, _ = self.S_train(augmented)
            terms["info_aug"] = (tc.info_augment_weight, augmented_info_loss(d_logits_aug.float(), d_idx))
        if tc.s_real_weight > 0:
            # S alone: real images (with replay, as the critic sees them) clustered over the
            # categories active in this phase.
            with torch.no_grad():
                real = self._real_batch(phase, tc.batch_size)
                augmented = random_affine(real, self.rng)
            with self._amp():
                logits = self.S_train(torch.cat([real, augmented]))[0].float()[:, :phase.d_slots]
            loss, consistency, balance = clustering_loss(*logits.chunk(2), balance_weight=tc.s_balance_weight)
            terms["s_real"] = (tc.s_real_weight, loss)
            terms["s_consistency"] = (0.0, consistency)  # logged only
            terms["s_marginal_entropy"] = (0.0, balance)
        return terms

    # ------------------------------------------------------------ domain hooks

    def begin_domain(self, phase: Phase) -> None:
        log.info("domain %d/%d %s: %d steps, d slots %d, replay ratio %.3f", phase.index + 1, len(self.phases),
                 phase.name, phase.steps, phase.d_slots, phase.replay_ratio if self.snapshot else 0.0)

    def end_domain(self, phase: Phase) -> None:
        """Freeze the EMA generator for replay, write the grid and a bundle snapshot."""
        if self.tc.replay and not self.tc.joint:
            self.snapshot = ReplaySnapshot(self.G_ema, phase.d_slots)  # on every rank: replay is per rank
        tag = f"domain-{phase.index + 1}"
        if self.dist.is_main:
            self.write_grid(self.run_dir / "samples" / f"{tag}.png", phase.d_slots)
            ckpt.save_bundle(self.run_dir / "snapshots" / tag, self.run, {"G_ema": self.G_ema, "S": self.S})
        self.phase_index += 1
        self.step = 0

    @torch.no_grad()
    def write_grid(self, path: Path, d_slots: int, columns: int = 8) -> None:
        """PNG grid from the EMA generator: one row per active d, shared (z, c) per column."""
        from torchvision.utils import save_image

        cfg = self.cfg
        g = torch.Generator().manual_seed(1234)  # fixed codes: grids comparable across domains
        z = torch.randn(columns, cfg.z_dim, generator=g).repeat(d_slots, 1)
        c = torch.randn(columns, cfg.c_dim, generator=g).repeat(d_slots, 1)
        d = torch.nn.functional.one_hot(torch.arange(d_slots).repeat_interleave(columns), cfg.d_dim).float()
        images = self.G_ema(z.to(self.device), c.to(self.device), d.to(self.device)).cpu()
        buf = io.BytesIO()
        save_image(images, buf, nrow=columns, normalize=True, value_range=(-1, 1), format="png")
        ckpt.atomic_write_bytes(path, buf.getvalue())

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
            "window": self._window,
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
        metrics = self.run_dir / "metrics.jsonl"
        if found is None:
            if self.dist.is_main:
                metrics.unlink(missing_ok=True)  # lines of a run killed before its first checkpoint
            return False
        state, tensors = found
        saved_world = state.get("world_size", 1)
        if saved_world != self.dist.world_size:
            raise LgenError(f"{self.run_dir} was checkpointed by {saved_world} process(es); resume it with the same "
                            f"number (torchrun --nproc_per_node {saved_world}), not {self.dist.world_size}")

        def sub(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}

        for key, module in (("G", self.G), ("G_ema", self.G_ema), ("S", self.S), ("D", self.D)):
            module.load_state_dict(sub(key), strict=True)
        if state["snapshot_d_slots"] is not None:
            G_old, _, _ = build_networks(self.cfg)
            G_old.load_state_dict(sub("snapshot"), strict=True)
            G_old.to(self.device)
            self.snapshot = ReplaySnapshot(G_old, state["snapshot_d_slots"])
        for key, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            ckpt.optimizer_from_tensors(opt, key, tensors, state["optimizers"][key])
        suffix = "" if self.dist.rank == 0 else f".rank{self.dist.rank}"
        self.rng.set_state(tensors["rng.train" + suffix])
        torch.set_rng_state(tensors["rng.torch" + suffix])
        self.phase_index, self.step, self.global_step = state["phase_index"], state["step"], state["global_step"]
        self.metrics_offset = state["metrics_offset"]
        self._window = list(state.get("window", []))
        # Metrics logged after this checkpoint belong to steps that will be re-run.
        if metrics.exists() and self.dist.is_main:
            with open(metrics, "r+b") as f:
                f.truncate(self.metrics_offset)
        log.info("resumed %s at domain %d, step %d (global %d)", self.run_dir, self.phase_index + 1,
                 self.step, self.global_step)
        return True

    # ------------------------------------------------------------ the loop

    def _log_metrics(self, phase: Phase, seconds: float) -> None:
        keys = self._window[0].keys()
        mean = {k: sum(w[k] for w in self._window) / len(self._window) for k in keys}
        if not self.dist.is_main:
            self._window = []
            return
        record = {"domain": phase.name, "domain_index": phase.index, "step": self.step,
                  "global_step": self.global_step, "sec_per_step": seconds / len(self._window), **mean}
        path = self.run_dir / "metrics.jsonl"
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.metrics_offset = path.stat().st_size
        self._window = []

    def train(self) -> None:
        """Run (or continue) every remaining phase; the run dir ends as a complete bundle."""
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.write_config(self.run_dir, self.run)
        with _progress_reporter(self.progress, len(self.phases)) as progress, \
                _stop_on_signals(self.dist.world_size == 1) as stop:
            while self.phase_index < len(self.phases):
                phase = self.phases[self.phase_index]
                if self.step == 0:
                    self.begin_domain(phase)
                progress.begin(phase, self.step)
                t0 = time.perf_counter()
                while self.step < phase.steps:
                    losses = self.train_step(phase)
                    self.step += 1
                    self.global_step += 1
                    self._window.append(losses)
                    if self.on_step:
                        self.on_step(self, losses)
                    if self.step % self.tc.log_every == 0 or self.step == phase.steps:
                        self._log_metrics(phase, time.perf_counter() - t0)
                        t0 = time.perf_counter()
                    progress.update(self.step, losses)
                    if stop.signum is not None and self.step < phase.steps:
                        self.checkpoint()
                        raise TrainingInterrupted(stop.signum, (
                            f"stopped by {signal.Signals(stop.signum).name} at domain {phase.index + 1} step "
                            f"{self.step}: checkpoint written; continue with `lgen train --resume {self.run_dir}`"))
                    if self.step % self.tc.checkpoint_every == 0 and self.step < phase.steps:
                        self.checkpoint()
                self._window = []
                self.end_domain(phase)
                self.checkpoint()
        self._write_bundle()


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


def _loss_text(losses: dict[str, float]) -> str:
    return (f"W {losses['wasserstein']:.3f} gp {losses['gp']:.3f} G {losses['loss_g']:.3f} "
            f"MI {losses['info']:.3f}")


class _RichProgress:
    """A rich progress bar per phase, for a terminal."""

    def __init__(self, progress, n_phases: int):
        self.progress, self.n_phases, self.task = progress, n_phases, None

    def begin(self, phase: Phase, step: int) -> None:
        self.task = self.progress.add_task(f"{phase.index + 1}/{self.n_phases} {phase.name}", total=phase.steps,
                                           completed=step, losses="")

    def update(self, step: int, losses: dict[str, float]) -> None:
        self.progress.update(self.task, completed=step, losses=_loss_text(losses))


class PlainProgress:
    """One plain log line at most every `every_seconds` (and at each phase's end), for logs.

    When stderr is not a terminal (nohup, a batch scheduler, `2> log`), a progress bar
    prints nothing useful until it is finished; this writes step, domain, s/step, ETA and
    the last losses instead.
    """

    every_seconds = 10.0

    def __init__(self, n_phases: int, emit: Callable[[str], None]):
        self.n_phases, self.emit = n_phases, emit
        self.phase: Optional[Phase] = None

    def begin(self, phase: Phase, step: int) -> None:
        self.phase, self.start_step = phase, step
        self.start = self.last = time.perf_counter()

    def update(self, step: int, losses: dict[str, float]) -> None:
        now = time.perf_counter()
        phase = self.phase
        if now - self.last < self.every_seconds and step != phase.steps:
            return
        self.last = now
        per_step = (now - self.start) / max(1, step - self.start_step)
        eta = int(per_step * (phase.steps - step))
        self.emit(f"domain {phase.index + 1}/{self.n_phases} {phase.name}: step {step}/{phase.steps} "
                  f"({100 * step // phase.steps}%), {per_step:.3f} s/step, ETA {eta // 3600}:{eta // 60 % 60:02d}:"
                  f"{eta % 60:02d}, {_loss_text(losses)}")


@contextlib.contextmanager
def _progress_reporter(enabled: bool, n_phases: int):
    """A rich bar on a terminal, plain lines otherwise, nothing when disabled."""
    import sys

    if not enabled:
        yield PlainProgress(n_phases, lambda line: None)
        return
    if not sys.stderr.isatty():
        yield PlainProgress(n_phases, lambda line: log.info("%s", line))
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=Console(stderr=True))
    with progress:
        yield _RichProgress(progress, n_phases)
