"""The lifelong training loop: domains in order, each step a critic update then a generator update.

Owns `Trainer`: the method (the two updates of a step, replay, the continued run's start)
and the loop over phases (phase.py: a domain, or all of them in a joint run). What the
loop shows and writes along the way are callbacks (callbacks.py; the training log is
metrics_log.py); checkpoint state is training_state.py; process-wide settings (kernels,
signals) are process.py; which callable each forward goes through (DDP, torch.compile)
is forwards.py; the networks and optimisers are assembled by assembly.py, and what a run
starts from (precision, the parent, the data) is loaded by inputs.py. One generator step is:

1. the critic update, `n_critic` times: a "real" batch = the current domain's images mixed
   with samples of the frozen snapshot G_{k-1} (eq. (7), replay.mixed_real_batch); fakes
   from G; WGAN critic loss + gradient penalty (eq. (2); `gp_subsample` > 1: on every k-th
   interpolate); Adam step on D.
2. the generator update, D frozen: −E[D(G(z, u))] + λ_MI·(−L_MI) (eq. (10)) [+ replay
   alignment, + the interpretability levers, which may cluster the last critic update's real
   batch]; Adam step on G ∪ S; EMA update of G.

The step stays on the training device: domain images live there as uint8, every random
draw (codes, data indices, interpolation weights, replay codes) comes from one
`torch.Generator` on that device whose state is checkpointed, and the losses stay there
as tensors until the metrics log reads them. On CPU a resumed run ends with weights
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
import logging
import signal
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from lifelong_gen import cpu_sharing
from lifelong_gen.config import RunConfig
from lifelong_gen.errors import TrainingInterrupted
from lifelong_gen.train import checkpoint as ckpt
from lifelong_gen.train import distributed, training_state
from lifelong_gen.train.assembly import build_training_networks
from lifelong_gen.train.bn_recalibration import recalibrate_s
from lifelong_gen.train.callbacks import Callback, DomainSnapshots, SampleGrids, closing_all, progress_display
from lifelong_gen.train.cast_once import CastOnce
from lifelong_gen.train.cuda_graph import GraphedStep, check_cuda_graph
from lifelong_gen.train.domain_groups import GroupIsolation
from lifelong_gen.train.domains import DomainData
from lifelong_gen.train.growth import begin_group, isolation_for, start_from_parent
from lifelong_gen.train.inputs import load_run_inputs
from lifelong_gen.train.levers import lever_terms
from lifelong_gen.train.losses import alignment_loss, critic_loss, generator_loss, gradient_penalty, info_loss, scaled
from lifelong_gen.train.metrics_log import MetricsLog
from lifelong_gen.train.neighbours import NeighbourTables
from lifelong_gen.train.networks import frozen, update_ema
from lifelong_gen.train.phase import Losses, Phase, make_phases
from lifelong_gen.train.process import StopFlag, choose_kernels, stop_on_signals
from lifelong_gen.train.replay import RealBatch, ReplaySnapshot, mixed_real_batch, sample_codes

log = logging.getLogger("lifelong_gen")


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
        self.callbacks = list(callbacks)
        self.dist = distributed.current()
        self.device = distributed.pick_device(device, self.dist)
        self.progress = progress and self.dist.is_main
        self.parent = Path(parent) if parent is not None else None
        inputs = load_run_inputs(run, self.device, data, self.parent)
        self.run, self.data = inputs.run, inputs.data
        self.cfg, self.tc, self.run_dir = self.run.model, self.run.train, Path(run_dir)
        # bf16: autocast around forwards only; parameters, optimizer state and losses stay fp32.
        self.amp_dtype: Optional[torch.dtype] = torch.bfloat16 if self.tc.precision == "bf16" else None
        choose_kernels(self.device, self.tc.cuda_deterministic, compiled=self.tc.compile != "off")
        self.phases = make_phases(self.tc, self.cfg, self.data, self.device)
        nets = build_training_networks(self.cfg, self.tc, self.device, self.dist)
        self.G, self.D, self.S, self.G_ema = nets.G, nets.D, nets.S, nets.G_ema
        self.opt_d, self.opt_g, self.fw = nets.opt_d, nets.opt_g, nets.fw
        if self.amp_dtype is not None and not self.fw.compiled:  # the critic's fakes: G's casts once per G update
            self.fw.G_fakes = CastOnce(self.G, self.opt_g, self.amp_dtype)
        self.rng = self.make_rng()
        self.zero = torch.zeros((), device=self.device)  # a constant, made once (never written to)
        # --cuda-graph: the EMA's rate as a static buffer, which GraphedStep fills before each step.
        self.ema_weight: Optional[torch.Tensor] = None
        if self.tc.cuda_graph:
            check_cuda_graph(self.device, self.tc.compile, self.dist.enabled)
            self.ema_weight = torch.zeros((), device=self.device)

        self.phase_position = 0  # position in self.phases (a phase's `index` is its domain's place in the lineage)
        self.step = 0  # generator steps done in the current phase
        self.global_step = 0
        self.snapshot: Optional[ReplaySnapshot] = None
        self.isolation: Optional[GroupIsolation] = None  # set per phase (enter_phase)
        self.neighbours = NeighbourTables(self.tc.s_neighbours)  # --s-neighbour-weight's, mined on first use
        if inputs.parent_nets is not None:
            self.snapshot = start_from_parent(self, inputs.parent_nets)
        self.metrics_log = MetricsLog(self.run_dir, self.tc.log_every, self.dist)

    @property
    def lineage_length(self) -> int:
        """Domains of the lineage: the inherited ones and this run's (a joint run's union counts once)."""
        return self.tc.inherited_domains + len(self.phases)

    @property
    def networks(self) -> dict[str, torch.nn.Module]:
        """The trained networks by their bundle keys (bundle.NETWORK_FILES)."""
        return {"G": self.G, "G_ema": self.G_ema, "S": self.S, "D": self.D}

    # ------------------------------------------------------------ setup

    def make_rng(self, restart_at: int = 0) -> torch.Generator:
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

    def autocast(self):
        """Autocast context for network forwards (a no-op in fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _codes(self, n: int, d_slots: int, d_prior: Optional[torch.Tensor] = None):
        cfg = self.cfg
        return sample_codes(n, cfg.z_dim, cfg.c_dim, cfg.d_dim, d_slots, self.rng, self.device, d_prior)

    def real_batch(self, phase: Phase, batch: int, generator: Optional[torch.Generator] = None,
                   replay: bool = True) -> RealBatch:
        """The real batch of eq. (7) (replay.mixed_real_batch), drawn on the run's stream unless another
        `generator` is given; `replay` False: the domain's images only."""
        return mixed_real_batch(phase, batch, self.snapshot if replay else None,
                                self.rng if generator is None else generator)

    @property
    def isolated(self) -> bool:
        """The current phase learns a group of its own on a frozen G (--growth adapters): the critic
        sees only the new data and S meets the old domains in exact samples of the snapshot."""
        return self.isolation is not None

    def train_step(self, phase: Phase) -> Losses:
        """`n_critic` critic updates, then one G + S update; the losses as 0-dim device tensors."""
        self.G.train()
        self.S.train()
        for _ in range(self.tc.n_critic):
            critic, real = self.critic_step(phase)
        return {**critic, **self.generator_step(phase, real)}

    def critic_step(self, phase: Phase) -> tuple[Losses, RealBatch]:
        """The critic update, eq. (2): WGAN loss on real (with replay) vs G's fakes + gradient penalty.
        Returns its losses and the real batch it scored (`s_real_reuse` clusters it)."""
        tc, fw, B = self.tc, self.fw, self.tc.batch_size
        fw.step_begins()
        batch = self.real_batch(phase, B, replay=not self.isolated)
        real = batch.images
        z, c, d, d_idx = self._codes(B, phase.d_slots, phase.d_prior)
        with torch.no_grad(), self.autocast():
            fake = fw.G_fakes(z, c, d).float()
        with self.autocast():  # one forward (and CUDA graph) for both: the critic has no batch norm
            real_scores, fake_scores = fw.D(torch.cat([real, fake])).float().split(B)
        k = tc.gp_subsample  # every k-th interpolate (1: all): new data and replay in proportion
        picked_real, picked_fake = (real, fake) if k == 1 else (real[::k], fake[::k])
        eps = torch.rand(picked_real.shape[0], generator=self.rng, device=self.rng.device)
        gp = gradient_penalty(fw.D_penalty, picked_real, picked_fake, eps, tc.gp_lambda,
                              autocast_dtype=self.amp_dtype if self.gp_autocast else None)
        loss_c = critic_loss(real_scores, fake_scores)
        loss_d = loss_c + gp
        if self.cfg.encoder_shares_critic:  # S's heads learn with the critic (InfoGAN)
            with self.autocast():
                d_logits, c_mean = fw.D(fake, codes=True)
            loss_d = loss_d + info_loss(d_logits.float(), c_mean.float(), d_idx, c, tc.info_weight_discrete,
                                        tc.info_weight_continuous)[0]
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()  # under torchrun DDP averages the critic's gradients here
        self.opt_d.step()
        return {"loss_d": loss_d.detach(), "wasserstein": -loss_c.detach(), "gp": gp.detach()}, batch

    def generator_step(self, phase: Phase, last_real: Optional[RealBatch] = None) -> Losses:
        """The generator update: G + S with the critic frozen, eq. (10) [+ replay alignment, + levers]; then G's EMA.

        Args:
            last_real: the last critic update's real batch, which `s_real_reuse` clusters.
        """
        tc, fw, B = self.tc, self.fw, self.tc.batch_size
        fw.step_begins()
        with frozen(self.D):  # no gradient wasted on the critic
            z, c, d, d_idx = self._codes(B, phase.d_slots, phase.d_prior)
            old = self.old_codes_for_s(phase)
            with self.autocast():
                fake = fw.G(z, c, d)
                scores = fw.D_frozen(fake)
                # unwrapped S when it shares the (frozen) trunk; with an isolated G also on the old samples
                s_images, s_d, s_c, n_new = self.s_batch(fake, d_idx, c, old)
                d_logits, c_mean = fw.S(s_images)
            loss_adv = generator_loss(scores.float())
            loss_info, ce, nll = info_loss(d_logits.float(), c_mean.float(), s_d, s_c, tc.info_weight_discrete,
                                           tc.info_weight_continuous)
            loss_g = loss_adv + loss_info
            align = self.zero  # logged as 0 without replay alignment
            if self.snapshot is not None and tc.replay_alignment > 0:
                n_old = max(1, round(B * phase.replay_ratio))
                za, ca, da, _ = self._codes(n_old, self.snapshot.d_slots)
                with self.autocast():
                    current, target = fw.G(za, ca, da), self.snapshot.render(za, ca, da)
                align = alignment_loss(current.float(), target.float())
                loss_g = loss_g + tc.replay_alignment * align
            reuse = tc.s_real_reuse and last_real is not None
            if reuse and old is not None:  # the critic saw the new data only: S's mix adds the old samples
                last_real = RealBatch(torch.cat([last_real.images[:n_new], old[0]]), last_real.idx[:n_new], old[2])
            extra, logged = lever_terms(
                tc, phase, fw.S, s_images, s_d, rng=self.rng, autocast=self.autocast, neighbours=self.neighbours,
                real_batch=(lambda: last_real) if reuse else (lambda: self.real_batch(phase, B)))
            for weight, term in extra.values():
                loss_g = loss_g + scaled(term, weight)
            self.opt_g.zero_grad(set_to_none=True)
            if self.cfg.encoder_shares_critic:
                self.opt_d.zero_grad(set_to_none=True)
            loss_g.backward()  # under torchrun DDP averages G's (and a separate S's) gradients here
        if self.isolation is not None:
            self.isolation.mask_grads()  # only the new domain's own parameters move (domain_groups.py)
        self.opt_g.step()
        # Per-rank batches moved each rank's BatchNorm running statistics differently
        # (DDP wraps with broadcast_buffers=False: see distributed.py).
        self.dist.average_buffers((self.G, self.S))
        update_ema(self.G_ema, self.G, self.ema_rate(self.global_step) if self.ema_weight is None else self.ema_weight)
        values = {"loss_g": loss_adv, "info": loss_info, "info_ce": ce, "info_nll": nll, "align": align}
        values.update({name: term for name, (_, term) in extra.items()}, **logged)
        # (`.float()` of a float32 tensor is still an operator call: only bf16 diagnostics are cast.)
        return {k: v.detach() if v.dtype == torch.float32 else v.detach().float() for k, v in values.items()}

    def ema_rate(self, global_step: int) -> float:
        """1 − the EMA's decay at a step: with a warm-up, so early in a short run the average is not
        dominated by the initial weights."""
        return 1.0 - min(self.tc.ema_decay, (1 + global_step) / (10 + global_step))

    def old_codes_for_s(self, phase: Phase) -> Optional[tuple[torch.Tensor, ...]]:
        """With an isolated G: round(B · replay ratio) exact samples of the old domains' frozen codes
        (images, c, d index), for S's L_MI and its real mix; None otherwise."""
        if not self.isolated or self.snapshot is None:
            return None
        B = self.tc.batch_size
        n_old = min(B - 1, max(1, round(B * phase.replay_ratio)))
        images, (_, c, _, d_idx) = self.snapshot.sample(n_old, self.rng)
        return images, c, d_idx

    @staticmethod
    def s_batch(fake: torch.Tensor, d_idx: torch.Tensor, c: torch.Tensor, old: Optional[tuple[torch.Tensor, ...]]):
        """What S's L_MI and levers see: G's fakes, or with an isolated G replay's mix of B images, the
        first B − R new fakes and R exact old samples, so S meets old and new domains in the shares it
        meets them under replay (measured: with all B fakes beside the old samples, S's clustering of
        real digits fell to 0.297 against 0.469 this way, seed 0; experiments/growth.md). Returns
        (images, d index, c, B − R)."""
        if old is None:
            return fake, d_idx, c, fake.shape[0]
        n_new = fake.shape[0] - old[0].shape[0]
        return (torch.cat([fake[:n_new], old[0].to(fake.dtype)]), torch.cat([d_idx[:n_new], old[2]]),
                torch.cat([c[:n_new], old[1]]), n_new)

    # ------------------------------------------------------------ between domains

    def enter_phase(self, phase: Phase) -> None:
        """Set up what a phase trains, whenever it starts or resumes in this process: with --growth
        adapters, a later domain learns only its own group (domain_groups.GroupIsolation)."""
        self.isolation = isolation_for(self.G, self.tc, phase)

    def _announce(self, phase: Phase) -> None:
        log.info("domain %d/%d %s: %d steps, d slots %d, replay ratio %.3f", phase.index + 1, self.lineage_length,
                 phase.name, phase.steps, phase.d_slots, phase.replay_ratio if self.snapshot else 0.0)

    def advance_domain(self, phase: Phase) -> None:
        """Freeze the EMA generator as the replay snapshot G_{k} of the next domain, and move to it.
        (Benchmarks call it to time a step of a later domain, with replay, without training the first.)"""
        if self.tc.replay and not self.tc.joint:  # on every rank: replay is per rank
            self.snapshot = ReplaySnapshot(self.G_ema, phase.d_slots)
        self.phase_position += 1
        self.step = 0
        if self.phase_position < len(self.phases):
            begin_group(self, self.phases[self.phase_position])

    # ------------------------------------------------------------ persistence

    def write_bundle(self) -> None:
        """The bundle files at the run directory's top level (rank 0)."""
        if self.dist.is_main:
            ckpt.save_bundle(self.run_dir, self.run, self.networks)

    def checkpoint(self) -> None:
        """Full training state (atomic), then the bundle files; collective under torchrun (training_state.py)."""
        training_state.save(self)

    def restore(self) -> bool:
        """Load the newest checkpoint of run_dir; False when there is none (start fresh)."""
        return training_state.restore(self)

    # ------------------------------------------------------------ the loop

    def _all_callbacks(self) -> list[Callback]:
        # The metrics log first: its window holds a step's losses before anything can checkpoint.
        built_in = [self.metrics_log, progress_display(self.progress), SampleGrids(), DomainSnapshots()]
        return [cb for cb in built_in if cb is not None] + self.callbacks

    def train(self, stop: Optional[StopFlag] = None) -> None:
        """Run (or continue) every remaining phase; the run dir ends as a complete bundle.

        Callbacks: `before_domain` whenever a domain starts or resumes in this process,
        `after_step` after each generator step, `after_domain` after its replay snapshot.

        Args:
            stop: a flag that another thread sets to stop this run as a signal would (checkpoint,
                then TrainingInterrupted); train/seeds.py shares one among its seeds, since only
                the main thread can catch signals. None: SIGINT / SIGTERM set the run's own.
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
        signals = stop_on_signals(self.dist.world_size == 1) if stop is None else contextlib.nullcontext(stop)
        with closing_all(self._all_callbacks()) as callbacks, signals as stop:
            while self.phase_position < len(self.phases):
                phase = self.phases[self.phase_position]
                if self.step == 0:
                    self._announce(phase)
                self.enter_phase(phase)
                graphed = GraphedStep(self, phase) if self.tc.cuda_graph else None
                for cb in callbacks:
                    cb.before_domain(self, phase)
                while self.step < phase.steps:
                    losses = graphed() if graphed is not None else self.train_step(phase)
                    self.step += 1
                    self.global_step += 1
                    for cb in callbacks:
                        cb.after_step(self, phase, losses)
                    if stop.signum is not None and self.step < phase.steps:
                        self.checkpoint()
                        raise TrainingInterrupted(stop.signum, (
                            f"stopped by {signal.Signals(stop.signum).name} at domain {phase.index + 1} step "
                            f"{self.step}: checkpoint written; continue with `lgen train --resume {self.run_dir}`"))
                    if self.step % self.tc.checkpoint_every == 0 and self.step < phase.steps:
                        self.checkpoint()
                recalibrate_s(self, phase)  # S's eval-mode statistics, for its snapshot, bundle and export
                self.advance_domain(phase)
                for cb in callbacks:
                    cb.after_domain(self, phase)
                self.checkpoint()
        self.write_bundle()
