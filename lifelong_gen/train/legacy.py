"""Reading weights and checkpoints written before the layers that feed batch norm lost their bias.

Until format 2 a Linear or ConvTranspose2d directly followed by batch norm had a bias b
(networks.py says why it no longer does). Batch norm cancels it exactly in training mode,
since it subtracts the batch mean, and in eval mode it only shifts what the running mean is
compared with:

    BN_eval(Wx + b) = (Wx + b - mean) / sqrt(var + eps) * gamma + beta
                    = BN_eval(Wx) with running_mean replaced by mean - b

so folding b into the running mean keeps the network's function, in training mode and in
eval mode, up to float round-off (~1e-7). Later updates keep the running mean folded too:
it tracks the batch mean, which b shifted by exactly b. Exported ONNX graphs are not touched:
a bundle's `lgen sample` draws exactly what it drew before.

A checkpoint's optimizer state is renumbered the same way: Adam keys its state by the
parameter's position, and the position of every parameter after a dropped bias moves up.
"""

from __future__ import annotations

import logging

import torch

from lifelong_gen.train.networks import norm_fed_layers

log = logging.getLogger("lifelong_gen")


def fold_norm_biases(module: torch.nn.Module, state: dict[str, torch.Tensor]
                     ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """`state` (of `module`) with each legacy bias folded into its norm.

    Returns (the new state, the names of the layers folded). A state that
    has none of those biases comes back unchanged (the same dict), with an empty list.
    """
    fed = {layer: norm for layer, norm in norm_fed_layers(module).items() if f"{layer}.bias" in state}
    if not fed:
        return state, []
    state = dict(state)
    for layer, norm in fed.items():
        bias = state.pop(f"{layer}.bias")
        mean_key = f"{norm}.running_mean"
        state[mean_key] = state[mean_key] - bias.to(state[mean_key].dtype)
    return state, sorted(fed)


def optimizer_index_maps(groups: dict[str, list[tuple[str, torch.nn.Parameter]]],
                         folded: dict[str, list[str]]) -> dict[str, dict[int, int]]:
    """Per optimizer, {position in the checkpoint: position now}; empty when nothing was folded.

    Args:
        groups: networks.parameter_groups (each optimizer's prefixed names, in its order).
        folded: {network key ("G", "S", "D"): layers fold_norm_biases folded in it}.

    nn.Linear and the convolutions register their weight, then their bias, so each dropped
    bias sat directly after its layer's weight in the old order.
    """
    if not any(folded.values()):
        return {}
    maps = {}
    for opt, named in groups.items():
        now = [name for name, _ in named]
        before = []
        for name in now:
            before.append(name)
            key, rest = name.split(".", 1)
            if rest.endswith(".weight") and rest[: -len(".weight")] in folded.get(key, ()):
                before.append(f"{key}.{rest[: -len('.weight')]}.bias")
        position = {name: i for i, name in enumerate(now)}
        maps[opt] = {i: position[name] for i, name in enumerate(before) if name in position}
    return maps


_noticed: set[str] = set()


def notice_once(what: str, folded: list[str]) -> None:
    """One log line per file and process when weights of the older layout were converted."""
    if folded and what not in _noticed:
        _noticed.add(what)
        log.info("%s was written by an older lifelong-gen (biases before batch norm: %s): folded into the "
                 "norms' running means, same function", what, ", ".join(folded))
