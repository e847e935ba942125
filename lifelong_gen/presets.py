"""The named presets of `lgen train --preset NAME`: data only, read by config.py.

Each preset maps setting names (the fields of config.ModelConfig and TrainConfig, declared
there with their defaults and help) to values. Its dict-valued entries are variants, read by
config.preset_settings: `quick` overrides the settings for `--quick`, a small demo-sized run;
`joint_run` for `--joint`, the preset's joint upper bound. A comment beside a value says where
it was measured.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "mnist-fashion": {
        # The reference model; every choice measured in experiments/mnist-fashion.md.
        "domains": ["mnist", "fashion-mnist"],
        # 10 categories per domain, so S can tell all 20 classes apart (joint clustering).
        "d_per_domain": 10,
        "steps_per_domain": 8000,
        "batch_size": 64,
        # Narrow InfoGAN nets, n_critic 2 and lr 5e-4: the paper's widths, n_critic 5 and lr
        # 1e-4 learn far less in the 40 CPU minutes this model is allowed.
        "g_width": 32, "d_width": 32, "fc_width": 256,
        "n_critic": 2, "lr_g": 5e-4, "lr_d": 5e-4,
        # G sees z and c at a tenth of their scale, so d is what separates the classes:
        # S's real-digit clustering 0.28 -> 0.39 (1,500 steps) and rising with training.
        "z_scale": 0.1, "c_scale": 0.1,
        # The interpretability levers (experiments/interpretability.md): d conditions every G layer, S must
        # read d from augmented G images, and S clusters the critic's real batch (IMSAT).
        "g_conditioning": "cbn", "info_augment_weight": 1.0, "s_real_weight": 1.0,
        # The faster step, 1.6x the images/s: S clusters the critic's batch, one critic forward of
        # real and fake, the penalty on every other interpolate, bf16 where the CPU has bf16
        # instructions. Over 3 seeds (experiments/throughput.md) S accuracy and d-purity rose on
        # MNIST and Fashion-MNIST alike; MNIST's FID got 5 points worse (--gp-subsample 1 avoids that).
        "s_real_reuse": True, "gp_subsample": 2, "precision": "auto",
        # S clusters the new data over the new domain's d's and the replay over the old
        # ones. Lifelong protocol, 3 seeds (experiments/fashion.md): Fashion d-purity 0.701 -> 0.801
        # and MNIST S 0.640 -> 0.673 on every seed; the 8,000-step reference: S 0.540 -> 0.577
        # (Fashion), 0.815 -> 0.853 (MNIST).
        "s_real_by_domain": True,
        # SCAN's neighbour term at SCAN's 1:5 ratio to the balance term. Lifelong
        # protocol, 3 seeds: S +0.028 (Fashion) and +0.035 (MNIST) on every seed; the 8,000-step
        # reference: S 0.578 -> 0.717 (Fashion), 0.856 -> 0.954 (MNIST) (experiments/fashion.md).
        "s_neighbour_weight": 0.2,
        "checkpoint_every": 500,
        # The embedded reference model was trained so, and this preset reproduces it; the growth study
        # (experiments/growth.md) measured adapters on continuations, not at this boundary.
        "growth": "replay",
        # Quick: a demo-sized run of the same model (a few minutes on 2 CPU cores).
        "quick": {"steps_per_domain": 1000, "batch_size": 32, "checkpoint_every": 250},
        # --joint: per-domain clustering needs a lifelong batch's layout (new rows, then replay),
        # which a joint run has not, so the upper bound runs without it (given as a flag, it is refused).
        "joint_run": {"s_real_by_domain": False},
    },
    "celeba-chairs": {
        "domains": ["folder:data/celeba", "folder:data/chairs"],
        "c_dim": 3,
        "d_dim": 4,
        "steps_per_domain": 5000,
        "quick": {"steps_per_domain": 50, "batch_size": 16, "g_width": 16, "d_width": 16, "checkpoint_every": 25},
    },
}
