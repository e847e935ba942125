"""Does S lose the old domain itself, or only its real images? The replay / real gap of domain 2.

`python experiments/replay_gap.py RUN [RUN ...]` compares, for a two-domain lifelong run, S at the
end of domain 1 (the run's snapshots/domain-1) and at the end of domain 2 (the bundle) on
(a) the first domain's real test images: S's Hungarian accuracy over all d (what `lgen evaluate`
reports), and (b) the replay S was trained on in domain 2: 2,000 samples of the frozen domain-1
generator, scored as the share whose argmax d is the d they were drawn with (no matching: the
d's are the generator's). It also gives how many real test images keep the d the domain-1 S gave
them. S reading the replay right while its real-image clustering falls means what domain 2 loses
is the generalisation from replayed to real images, which no term on the replay alone can see.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lifelong_gen.eval.clustering import hungarian_accuracy
from lifelong_gen.train.checkpoint import load_networks
from lifelong_gen.train.domains import load_domain, to_float
from lifelong_gen.train.replay import sample_codes


@torch.no_grad()
def _argmax(S: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([S(images[i:i + 500])[0].argmax(1) for i in range(0, images.shape[0], 500)])


@torch.no_grad()
def replay_gap(run_dir: Path, n_replay: int = 2000, seed: int = 0) -> dict:
    run, final = load_networks(run_dir, ("S",))
    first_run, first = load_networks(run_dir / "snapshots" / "domain-1", ("S", "G_ema"))
    cfg = run.model
    per = run.train.d_per_domain or cfg.d_dim
    data = load_domain(run.train.domains[0], cfg.img_channels, cfg.img_resolution, download=False)
    real, labels = to_float(data.test_images), data.test_labels.numpy()
    g = torch.Generator().manual_seed(seed)
    z, c, d, d_idx = sample_codes(n_replay, cfg.z_dim, cfg.c_dim, first_run.model.d_dim, per, g)
    replay = torch.cat([first["G_ema"](z[i:i + 500], c[i:i + 500], d[i:i + 500]) for i in range(0, n_replay, 500)])
    out = {"run": str(run_dir)}
    preds = {}
    for name, S in (("after domain 1", first["S"]), ("after domain 2", final["S"])):
        S.eval()
        preds[name] = _argmax(S, real)
        out[name] = {"real S acc": round(hungarian_accuracy(preds[name].numpy(), labels), 3),
                     "replay d read": round(float((_argmax(S, replay) == d_idx).float().mean()), 3)}
    out["real images keeping their d"] = round(float((preds["after domain 1"] == preds["after domain 2"]).float().mean()), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    for run_dir in args.runs:
        print(json.dumps(replay_gap(run_dir)))


if __name__ == "__main__":
    main()
