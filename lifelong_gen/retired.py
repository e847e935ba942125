"""Settings that were studied, measured "off" and removed: how a config.json that names them is read.

Owns `RETIRED`, the table of retired settings (the value that matches what this version does,
the flag a user knew, and whether the networks' shapes depend on it), `split_retired`, which
takes them out of a config section before the dataclasses see it, and `retired_flag_note`, the
words `lgen` adds when one of their flags is given. The studies and the last
version that had each option are indexed in experiments/README.md.

A bundle written before a setting was retired still loads for sampling, export and evaluation
when the setting did not shape a network, and for `--from` (a continuation trains with today's
settings). What cannot be honoured is refused with one line (`RunConfig.require_current`):
rebuilding networks whose shape a retired setting changed, and `--resume` of a run whose
training a retired setting changed (the resumed steps would not be the run's own), except where
only float rounding differs: that resume goes on with a notice.

Torch-free (config.py imports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Retired:
    """One retired setting.

    Args:
        now: the value whose behaviour this version has.
        flag: the command-line flag it had, for the error message.
        shapes_networks: whether a value other than `now` changed a network's parameters.
        rounding_only: whether this version computes what a value other than `now` computed up
            to float rounding (a resume goes on, and says that it is not bit-identical).
        qualifies: it only qualified another retired setting, so no value of it changes anything
            on its own (`now` is then its old default).
    """

    now: Any
    flag: str
    shapes_networks: bool = False
    rounding_only: bool = False
    qualifies: bool = False


RETIRED: dict[str, dict[str, Retired]] = {
    "model": {
        "s_width": Retired(None, "--s-width", shapes_networks=True),
        "s_fc_width": Retired(None, "--s-fc-width", shapes_networks=True),
        "s_overcluster_dim": Retired(0, "--s-overcluster-dim", shapes_networks=True),
    },
    "train": {
        "later_domain_steps": Retired(0, "--later-domain-steps"),
        "gp_every": Retired(1, "--gp-every"),
        # One critic forward of [real; fake] scores each image as two forwards did (the critic has
        # no batch norm), up to float summation order.
        "fused_critic_forward": Retired(True, "--no-fused-critic-forward", rounding_only=True),
        "s_replay_label_weight": Retired(0.0, "--s-replay-label-weight"),
        "s_replay_target": Retired("generator", "--s-replay-target", qualifies=True),
        "consistency_augment": Retired("affine", "--consistency-augment"),
        "self_label_steps": Retired(0, "--self-label-steps"),
        "self_label_threshold": Retired(0.99, "--self-label-threshold", qualifies=True),
        "self_label_lr": Retired(1e-4, "--self-label-lr", qualifies=True),
        "critic_warmup": Retired(0, "--critic-warmup"),
        # Frozen S under --growth adapters: its new d rows took real old-domain images from the old ones.
        "s_frozen_trunk": Retired(False, "--s-frozen-trunk"),
    },
}


def split_retired(section: str, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Retired]]:
    """(raw without the retired keys, {name: Retired} of those whose value differs from `now`).

    Args:
        section: "model" or "train", the config.json section `raw` is.
    """
    table = RETIRED[section]
    kept = {k: v for k, v in raw.items() if k not in table}
    differing: dict[str, Retired] = {}
    for name, value in raw.items():
        entry: Optional[Retired] = table.get(name)
        if entry is not None and not entry.qualifies and value != entry.now:
            differing[name] = entry
    return kept, differing


def retired_flag_note(option: str) -> Optional[str]:
    """What to tell a user who gave `option` (e.g. "--gp-every"), if it is a retired setting's flag."""
    for table in RETIRED.values():
        for name, entry in table.items():
            flags = {entry.flag, "--" + name.replace("_", "-"), "--no-" + name.replace("_", "-")}
            if option in flags:
                return (f"{option} was retired after its study measured it no better than what "
                        f"lifelong-gen does without it (experiments/README.md)")
    return None
