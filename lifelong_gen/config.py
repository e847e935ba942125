"""Configuration: the model's dimensions, every training setting, and how they are resolved.

Owns `ModelConfig` (what is needed to rebuild G, D and S from a bundle alone) and
`TrainConfig` (the lifelong loop, replay, optimisers), each setting declared once with its
default, help and kind (settings.py; `lgen train`'s options are generated from them), their
JSON form, and `resolve_run_config`: preset (presets.py, data only) + flags + domain list -> one validated RunConfig.
Torch-free, so the ONNX runtime can read a bundle's config.json and
`lgen train --dry-run` can print a resolved config where torch is not installed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lifelong_gen import __version__
from lifelong_gen.domain_names import check_domains, model_shape, parse_domains
from lifelong_gen.errors import LgenError
from lifelong_gen.presets import PRESETS
from lifelong_gen.retired import Retired, split_retired
from lifelong_gen.settings import RESUMABLE_KINDS, check_declared, setting

CONFIG_NAME = "config.json"  # a run's or bundle's RunConfig (the file table, lifelong_gen/bundle/, lists it)
# Bumped when config.json changes incompatibly; readers refuse newer versions.
# 2: TrainConfig's inherited_domains and RunConfig's parent (lineage.py).
FORMAT_VERSION = 2

SUPPORTED_RESOLUTIONS = (28, 64)
PRECISIONS = ("fp32", "bf16", "auto")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
G_CONDITIONINGS = ("input", "cbn")
GROWTHS = ("auto", "replay", "adapters")
# The growth study's pick (experiments/growth.md).
ADAPTER_RANK = 48


@dataclass
class ModelConfig:
    """Dimensions of G(z, c, d), the critic D and the inference network S(u|o).

    u = (d, c) are the interpretable codes; o is an image. `d_dim` is the total
    number of discrete categories G knows (with `d_per_domain`, the categories of
    domains not yet learned exist but are never sampled).
    """

    z_dim: int = setting(62, help="Noise dimensions of z", kind="method", bounds=">= 1")
    c_dim: int = setting(2, help="Continuous codes c (c1, c2, ...)", kind="method", bounds=">= 0")
    d_dim: int = setting(10, help="Discrete categories d (with --d-per-domain: N x the domains)", kind="method", bounds=">= 1")
    img_channels: int = setting(1, help="1 or 3 (default: from the domains)", kind="method", choices=(1, 3), show_default=False)
    img_resolution: int = setting(28, help="28 or 64 (default: from the domains)",
                                  kind="method", choices=SUPPORTED_RESOLUTIONS, show_default=False)
    g_width: int = setting(64, help="Channels of G's last conv block (the others scale from it)", kind="method", bounds=">= 1")
    d_width: int = setting(64, help="Channels of the critic's (and S's) first conv block", kind="method", bounds=">= 1")
    fc_width: int = setting(1024, help="Hidden width of the fully connected layers (28x28 nets)", kind="method", bounds=">= 1")
    # See networks.py for the measurement behind a separate S by default.
    encoder_shares_critic: bool = setting(False, help="S as heads on the critic's trunk (InfoGAN) or separate",
                                          kind="method", flags=("--shared-encoder/--separate-encoder",))
    # G multiplies z by this before its first layer, i.e. it sees z ~ N(0, z_scale^2 I) while every
    # caller (training, replay, ONNX) still draws z ~ N(0, I). Below 1 the discrete code dominates
    # G's first layer, so G must put distinct modes (classes) on distinct d (ClusterGAN's sigma = 0.1).
    z_scale: float = setting(1.0, help="G sees z * z_scale (1: z ~ N(0, I)); < 1 ties classes to d", kind="method", bounds="> 0")
    # With z_scale < 1 alone, the measured G moved between classes along c (experiments/mnist-fashion.md).
    c_scale: float = setting(1.0, help="G sees c * c_scale; S still recovers c itself", kind="method", bounds="> 0")
    # "cbn": class-conditional batch norm at every G layer (de Vries et al. 2017, Miyato & Koyama
    # 2018), so d shapes every layer instead of competing with z for the first one.
    g_conditioning: str = setting("input", help="How d enters G: input (the paper: concatenated at the input) or cbn "
                                               "(also conditional batch norm at every layer)",
                                  kind="method", choices=G_CONDITIONINGS)
    # --growth adapters (train/domain_groups.py): the first d slot of each later domain's group of
    # per-domain parameters; empty: one shared generator. Set by resolution, never by hand.
    domain_groups: list[int] = setting(default_factory=list, help="First d slot of each later domain's group",
                                       kind="method", cli=False)
    adapter_rank: int = setting(ADAPTER_RANK, help="--growth adapters: rank of each later domain's low-rank "
                                                   "update of every G layer (0: only its d columns and "
                                                   "batch-norm statistics)", kind="method", bounds=">= 0")

    def validate(self) -> None:
        """The values each setting admits (declared with it), then the rules that tie settings together."""
        _check_declared(self)
        if self.domain_groups and (sorted(set(self.domain_groups)) != list(self.domain_groups)
                                   or not 0 < self.domain_groups[0] or self.domain_groups[-1] >= self.d_dim):
            raise LgenError(f"domain_groups {self.domain_groups} must rise within (0, d_dim {self.d_dim})")


# Batches of S's recalibration at each domain's end (train/bn_recalibration.py): 25, 100 and 400
# gave the same real-digit clustering (0.856-0.857, experiments/fashion.md).
S_BN_RECALIBRATION = 100


@dataclass
class TrainConfig:
    """Every setting of a lifelong run. Defaults follow the paper (Adam, lr 1e-4, λ = 10)."""

    domains: list[str] = setting(default_factory=list, kind="method", help="Domains in order, e.g. mnist,fashion-mnist "
                                 "or folder:/data/celeba,folder:/data/chairs; NAME:SEL learns only some classes "
                                 "of a labelled domain (mnist:0-4,mnist:5-9; ids joined by +, or ranges)")
    steps_per_domain: int = setting(2000, help="Generator steps per domain", kind="method", bounds=">= 1")
    batch_size: int = setting(64, help="Images per batch (critic and generator updates)", kind="method", bounds=">= 1")
    n_critic: int = setting(5, help="Critic updates per generator step", kind="method", bounds=">= 1")
    lr_g: float = setting(1e-4, help="Adam lr of G and S (one optimiser: they maximise L_MI together)",
                          kind="method", bounds="> 0")
    lr_d: float = setting(1e-4, help="Adam lr of the critic", kind="method", bounds="> 0")
    betas: tuple[float, float] = setting((0.5, 0.9), help="Adam betas", kind="method", cli=False)  # --beta1, --beta2
    gp_lambda: float = setting(10.0, help="Gradient penalty weight λ", kind="method", bounds=">= 0")
    # The same saving without skipping an update: the mean over every k-th interpolate is an
    # unbiased estimate of the mean over all of them. Every k-th, not the first B/k: the real
    # batch is [domain images; replay], so a stride keeps both in proportion.
    gp_subsample: int = setting(1, help="Penalise every k-th interpolate of the critic's batch only (B/k of "
                                        "them; 1: all, the paper)", kind="method", bounds=">= 1")
    info_weight_discrete: float = setting(1.0, help="Weight of the d cross-entropy in L_MI", kind="method", bounds=">= 0")
    info_weight_continuous: float = setting(0.1, help="Weight of the c Gaussian NLL in L_MI", kind="method", bounds=">= 0")
    replay: bool = setting(True, help="Generative replay (off: the paper's forgetting baseline, fig. 2b)", kind="method")
    # How a later domain is added (experiments/growth.md). replay: the paper, eq. (7), every weight
    # trains and the critic's real batch mixes replay. adapters: the old domains' parameters are
    # frozen and the new domain learns its own (train/domain_groups.py); the critic sees only the
    # new data, S learns the old domains from exact samples of their frozen codes.
    # auto: adapters where each domain has d's of its own (--d-per-domain), replay where the domains
    # share one Cat (no d belongs to a domain, so no parameter does); config.json records the choice.
    growth: str = setting("auto", help="How each later domain is learned: adapters (old domains frozen exactly, "
                                       "per-domain parameters for the new one), replay (the paper: all "
                                       "weights, replay in the critic's batch) or auto (adapters with "
                                       "--d-per-domain, else replay)",
                          kind="method", choices=GROWTHS)
    # None: k / (k + 1) while learning domain k (0-based), so every domain seen keeps equal weight.
    # With d_per_domain, G's d prior follows a given ratio (train/phase.py, matched_d_prior).
    replay_ratio: Optional[float] = setting(None, help="Share of replayed images in the critic's real batch, and with "
                                                       "--d-per-domain of old d's in G's draws (default k/(k+1) in "
                                                       "domain k)", kind="method", bounds="[0, 1)")
    # Interpretability levers beyond the paper (experiments/interpretability.md; 0 = off, the paper's
    # objective). Elastic-InfoGAN: d may only encode what survives a random rotation/scale/shift of G's image.
    info_augment_weight: float = setting(0.0, help="Weight of S's d cross-entropy on augmented G images "
                                                   "(Elastic-InfoGAN; 0: off)", kind="lever", bounds=">= 0")
    # IMSAT: S's d kept under augmentation, confident per image, balanced over the active categories.
    s_real_weight: float = setting(0.0, help="Weight of S's clustering objective on real images (IMSAT; 0: off)",
                                   kind="lever", bounds=">= 0")
    # The critic's last real batch is a fresh draw of the same mix (domain images + replay) made in
    # the same generator step, so S can cluster it instead of paying another replay render.
    s_real_reuse: bool = setting(False, help="--s-real-weight clusters the last critic update's real batch "
                                             "(replay included) instead of drawing one of its own", kind="lever")
    # At 2,000 steps per domain S sent 55-95% of real sandals to MNIST's d's (experiments/fashion.md).
    # The learner knows which images of the mix are new and which replayed (no class label is used).
    s_real_by_domain: bool = setting(False, help="--s-real-weight clusters per domain: the new data over the new "
                                                 "domain's d's, replay over the old ones, each image's d kept in "
                                                 "its domain (needs --d-per-domain)", kind="lever")
    # S's trunk separates Fashion-MNIST's classes linearly (0.87 with labels) while its clustering
    # finds another partition (0.58; experiments/fashion.md); SCAN's neighbour term pulls each real image's
    # d towards that of an image next to it (train/neighbours.py, losses.neighbour_consistency_loss).
    s_neighbour_weight: float = setting(0.0, help="Weight of SCAN's neighbour consistency: S gives each new real "
                                                  "image and one of its mined nearest images the same d "
                                                  "(needs --s-real-weight; 0: off)", kind="lever", bounds=">= 0")
    s_neighbours: int = setting(20, help="--s-neighbour-weight: nearest images mined per image (SCAN: 20)",
                                kind="lever", bounds=">= 1")
    s_balance_weight: float = setting(1.0, help="Weight of the category-balance term inside --s-real-weight's "
                                                "objective", kind="lever", bounds=">= 0")
    # S's eval-mode statistics (train/bn_recalibration.py): at each domain's end, PreciseBN over N
    # batches of the real mix S clusters. Only S's buffers change, never a weight or the run's
    # random stream. A config written before this field existed reads as 0 (RunConfig.from_dict).
    s_bn_recalibration: int = setting(S_BN_RECALIBRATION,
                                      help="At each domain's end, recompute S's batch-norm statistics over N real "
                                           "batches, as S's clustering sees them (PreciseBN; 0: keep the running "
                                           "statistics training left, mostly of G's batches)",
                                      kind="method", bounds=">= 0")
    replay_alignment: float = setting(0.0, help="Weight of MeRGAN replay alignment ||G_k - G_k-1||^2 on old codes "
                                                "(0: off)", kind="lever", bounds=">= 0")
    d_per_domain: Optional[int] = setting(None, help="Each domain adds N discrete categories (default: one Cat(d_dim) "
                                                     "shared by all, the paper)", kind="method", bounds=">= 1")
    joint: bool = setting(False, help="Train on all domains at once (upper bound; a preset's "
                          "--s-real-by-domain is left out)", kind="method",
                          flags=("--joint/--lifelong",))
    # A continued run (`lgen train --from PARENT`, lineage.py): `domains` is the whole lineage, the
    # parent's first; the first `inherited_domains` were learned by the parent and are only replayed.
    inherited_domains: int = setting(0, help="Domains learned by the parent (set by --from)", kind="method", cli=False)
    ema_decay: float = setting(0.999, help="Decay of the EMA copy of G that sampling and export use",
                               kind="method", bounds="[0, 1)")
    seed: int = setting(0, help="Seed of the networks' initialisation and of the run's random stream", kind="method")
    checkpoint_every: int = setting(500, help="Checkpoint every N generator steps", kind="cadence", bounds=">= 1")
    log_every: int = setting(50, help="Write averaged losses to metrics.jsonl every N steps", kind="cadence", bounds=">= 1")
    data_root: Optional[str] = setting(None, help="Root with torchvision's MNIST/ FashionMNIST/ layout", kind="data")
    download: bool = setting(True, help="Allow torchvision downloads when files are missing", kind="data")
    # auto: bf16 only where it was measured faster at the preset's quality (experiments/throughput.md);
    # a run's config.json records what auto chose (Trainer), so a resume elsewhere keeps it.
    precision: str = setting("fp32", help="fp32; bf16 (CPU autocast, fp32 master weights, losses and "
                                          "gradient-penalty norm); or auto: bf16 where the CPU has bf16 "
                                          "instructions (avx512_bf16, AMX), fp32 elsewhere", kind="execution", choices=PRECISIONS)
    compile: str = setting("off", help="torch.compile the step's forwards (train/forwards.py): off, default, "
                                       "reduce-overhead (+ CUDA graphs on a GPU) or max-autotune",
                           kind="execution", choices=COMPILE_MODES)
    # Deterministic CUDA kernels are ~10% slower per step (measured on an H200); the CPU is always deterministic.
    cuda_deterministic: bool = setting(True, help="CUDA: deterministic kernels where they exist, or the fastest "
                                                  "cuDNN picks; the CPU is always deterministic", kind="execution",
                                       flags=("--cuda-deterministic/--cuda-fastest",))
    # The step launches about a thousand small kernels (benchmarks/step_ops.py); one graph launch instead.
    cuda_graph: bool = setting(False, help="CUDA: capture the whole training step (critic updates, gradient "
                                           "penalty, G and S update, Adam, EMA) in one CUDA graph and replay "
                                           "it per step (train/cuda_graph.py)", kind="execution")
    # A CPU kernel splits its sums over the threads, so the rounding, and after a few steps the
    # weights, depend on their number: config.json keeps it, so a resume computes what the run
    # would have (train/cpu_threads.py). --seeds records each seed's share of the cores here.
    threads: Optional[int] = setting(None, help="CPU threads of the run's kernels (default: torch's, one per core; "
                                                "with --seeds: each seed's share of them). Runs are bit-identical "
                                                "only at the same count", kind="execution", bounds=">= 1")

    @property
    def joint_steps(self) -> int:
        """A joint run's steps: the lifelong run's over the same domains, so both spend the same compute."""
        return self.steps_per_domain * (len(self.domains) - self.inherited_domains)

    def replay_ratio_for(self, domain_index: int) -> float:
        """Share of replayed images in the critic's real batch while learning `domain_index`."""
        if domain_index == 0 or not self.replay or self.joint:
            return 0.0
        if self.replay_ratio is not None:
            return self.replay_ratio
        return domain_index / (domain_index + 1)

    def validate(self) -> None:
        """The values each setting admits (declared with it), then the rules that tie settings together."""
        if not self.domains:
            raise LgenError("no domains given: pass --domains A,B,... or --preset")
        _check_declared(self)
        if not 0 <= self.inherited_domains < len(self.domains):
            raise LgenError(f"inherited_domains must be in [0, {len(self.domains)}), got {self.inherited_domains}")
        if self.gp_subsample > self.batch_size:
            raise LgenError(f"--gp-subsample must be <= --batch-size ({self.batch_size}), got {self.gp_subsample}")
        if self.s_neighbour_weight > 0 and not self.s_real_weight > 0:
            raise LgenError("--s-neighbour-weight adds to --s-real-weight's clustering of real images: "
                            "give --s-real-weight > 0")
        if self.growth == "adapters" and not self.joint and len(self.domains) > 1:
            if self.d_per_domain is None:
                raise LgenError("--growth adapters needs --d-per-domain: a domain's parameters are selected by its own d's")
            if not self.replay:
                raise LgenError("--growth adapters keeps the old domains exactly; --no-replay goes with --growth replay")
            if self.replay_alignment > 0:
                raise LgenError("--replay-alignment matches G to its frozen copy on old codes, which --growth "
                                "adapters keeps exact: use it with --growth replay")
        if self.s_real_by_domain and (self.d_per_domain is None or self.joint or not self.s_real_weight > 0):
            raise LgenError("--s-real-by-domain needs --d-per-domain (each domain's own d's), --s-real-weight > 0 "
                            "and a lifelong run (a joint batch does not say which domain each image is from)")


@dataclass
class RunConfig:
    """What config.json holds: the model, the training settings, the data sources used."""

    model: ModelConfig
    train: TrainConfig
    data_sources: list[dict[str, Any]] = field(default_factory=list)
    format_version: int = FORMAT_VERSION
    package_version: str = ""
    # The model this run continued (lineage.py: name or path, revision, weight checksums, its
    # domains, and its own parent); None for a run from scratch.
    parent: Optional[dict[str, Any]] = None
    # Execution settings changed by `lgen train --resume` (at which step, old -> new): the run's log of them.
    execution_changes: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Retired settings read from an older config.json whose value this version cannot honour
        # (retired.py): not a field, so never written back.
        self.retired: dict[str, Retired] = {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        version = raw.get("format_version", 0)
        if version > FORMAT_VERSION:
            raise LgenError(
                f"config format_version {version} is newer than this lifelong-gen reads ({FORMAT_VERSION}); upgrade the package"
            )
        try:
            model_raw, retired = split_retired("model", dict(raw["model"]))
            train_raw, retired_train = split_retired("train", dict(raw["train"]))
            model = ModelConfig(**model_raw)
            # Runs made before S's statistics were recalibrated kept training's: say so, not the new default.
            train_raw.setdefault("s_bn_recalibration", 0)
            train_raw.setdefault("growth", "replay")  # runs made before the choice existed replayed
            if "betas" in train_raw:
                train_raw["betas"] = tuple(train_raw["betas"])
            train = TrainConfig(**train_raw)
        except (KeyError, TypeError) as e:
            raise LgenError(f"config.json is not a lifelong-gen config: {e}") from None
        run = cls(
            model=model,
            train=train,
            data_sources=list(raw.get("data_sources", [])),
            format_version=version,
            package_version=raw.get("package_version", ""),
            parent=raw.get("parent"),
            execution_changes=list(raw.get("execution_changes", [])),
        )
        run.retired = {**retired, **retired_train}
        return run

    def record_execution_changes(self, global_step: int, changed: dict[str, list[Any]]) -> None:
        """Log execution settings a resume changed ({name: [old, new]}) and the step it did so at."""
        import datetime

        self.execution_changes.append({
            "global_step": global_step, "changed": changed,
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})

    def require_current(self, action: str) -> None:
        """Refuse `action` ("rebuild its networks", "resume it") where a retired setting this run used
        stands in the way: one line naming the setting (retired.py; experiments/README.md).

        Rebuilding is refused only for settings that shaped a network; resuming for any retired
        setting whose value changed what a step computes beyond float rounding.
        """
        blocking = {name: r for name, r in self.retired.items()
                    if r.shapes_networks or (action == "resume it" and not r.rounding_only)}
        if blocking:
            flags = ", ".join(r.flag for r in blocking.values())
            raise LgenError(f"this run used {flags}, retired after its study (experiments/README.md): lifelong-gen "
                            f"{__version__} cannot {action}; its exported ONNX files still sample")


def read_run_config(bundle: Path) -> RunConfig:
    """config.json of a run or bundle directory, with one-line errors (LgenError)."""
    path = Path(bundle) / CONFIG_NAME
    if not path.is_file():
        raise LgenError(f"no {CONFIG_NAME} in {bundle}: not a lifelong-gen run or bundle directory")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LgenError(f"{path} is not readable JSON: {e}") from None
    if not isinstance(raw, dict):
        raise LgenError(f"{path} is not a lifelong-gen config")
    return RunConfig.from_dict(raw)


def apply_execution_settings(run: RunConfig, execution: dict[str, Any]) -> dict[str, list[Any]]:
    """Set `lgen train --resume`'s execution settings (EXECUTION_SETTINGS) on `run.train`, validated;
    returns those that change, {name: [old, new]} (RunConfig.record_execution_changes logs them)."""
    changed = {k: [getattr(run.train, k), v] for k, v in execution.items() if getattr(run.train, k) != v}
    if changed:
        run.train = dataclasses.replace(run.train, **{k: new for k, (_, new) in changed.items()})
        run.train.validate()
    return changed


def resolved_growth(train: TrainConfig) -> str:
    """`auto` made concrete: adapters where each domain has d's of its own, replay otherwise (domains
    sharing one Cat, a joint run, and the settings that only mean something with replay: --no-replay,
    the paper's forgetting baseline, and --replay-alignment)."""
    if train.growth != "auto":
        return train.growth
    own_d = train.d_per_domain is not None and not train.joint
    return "adapters" if own_d and train.replay and not train.replay_alignment > 0 else "replay"


def domain_slots(train: TrainConfig, model: ModelConfig, domain_index: int) -> int:
    """Number of discrete categories active (sampled) while learning `domain_index`."""
    if train.d_per_domain is None or train.joint:
        return model.d_dim
    return train.d_per_domain * (domain_index + 1)


MODEL_KEYS = {f.name for f in dataclasses.fields(ModelConfig)}
TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}
# What `lgen train --resume` may change (settings.RESUMABLE_KINDS): how a run executes, not what it learns.
EXECUTION_SETTINGS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["kind"] in RESUMABLE_KINDS)


def _check_declared(config: Any) -> None:
    try:
        check_declared(config)
    except ValueError as e:
        raise LgenError(str(e)) from None


# ------------------------------------------------------------ resolution

def preset_settings(preset: Optional[str], quick: bool = False, joint: bool = False) -> dict[str, Any]:
    """The settings a named preset gives, with its `quick` and `joint_run` variants' overrides
    where asked for (presets.py); {} without a preset."""
    if preset is None:
        if quick:
            raise LgenError("--quick needs --preset")
        return {}
    if preset not in PRESETS:
        raise LgenError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    # The dict-valued entries are variants, not settings (no setting takes a dict).
    settings = {k: v for k, v in PRESETS[preset].items() if not isinstance(v, dict)}
    if quick:
        settings.update(PRESETS[preset].get("quick", {}))
    if joint:
        settings.update(PRESETS[preset].get("joint_run", {}))
    return settings


def resolve_run_config(settings: dict[str, Any], *, preset: Optional[str] = None, quick: bool = False) -> RunConfig:
    """Turn flat settings (CLI flags over a preset) into a validated RunConfig.

    `settings` override the preset's; `domains` may be a list or the CLI's comma-separated
    text. The model's channels and resolution follow the domains (model_shape) unless
    given; with `d_per_domain` N, d_dim becomes N x number of domains.
    """
    preset_values = preset_settings(preset, quick, joint=bool(settings.get("joint")))
    settings = {**preset_values, **settings}
    if isinstance(settings.get("domains"), str):
        settings["domains"] = parse_domains(settings["domains"])
    unknown = set(settings) - MODEL_KEYS - TRAIN_KEYS
    if unknown:
        raise LgenError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    model_kwargs = {k: v for k, v in settings.items() if k in MODEL_KEYS and v is not None}
    train_kwargs = {k: v for k, v in settings.items() if k in TRAIN_KEYS and (v is not None or k == "replay_ratio")}
    train = TrainConfig(**train_kwargs)
    train.growth = resolved_growth(train)
    train.validate()
    # A preset's list is not parsed: checked here too, so no run of it starts with a bad or overlapping spec.
    check_domains(train.domains)
    channels, resolution = model_shape(train.domains)
    model_kwargs.setdefault("img_channels", channels)
    model_kwargs.setdefault("img_resolution", resolution)
    if train.d_per_domain is not None:
        total = train.d_per_domain * len(train.domains)
        if "d_dim" in model_kwargs and model_kwargs["d_dim"] != total:
            raise LgenError(f"d_dim {model_kwargs['d_dim']} contradicts d_per_domain {train.d_per_domain} "
                            f"x {len(train.domains)} domains = {total}; give one of them")
        model_kwargs["d_dim"] = total
        if train.growth == "adapters" and not train.joint:
            model_kwargs["domain_groups"] = [train.d_per_domain * k for k in range(1, len(train.domains))]
    model = ModelConfig(**model_kwargs)
    model.validate()
    return RunConfig(model=model, train=train, package_version=__version__)
