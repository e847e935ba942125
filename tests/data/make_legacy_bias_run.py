"""Writes tests/data/legacy-bias-run/: a tiny run made by lifelong-gen before bias-free layers.

Run once, by the code of commit eca2c00 (whose Linear/Conv layers before batch norm still had
a bias), so the tests can check that such runs and bundles keep loading and resuming:

    python tests/data/make_legacy_bias_run.py

Besides the run (config, weights, one mid-domain checkpoint and the finished one), it stores
`expected.safetensors`: G_ema's and S's eval-mode outputs on fixed codes and images, from
the bundle's weights and from the checkpoint's, computed by that old code.
"""

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from conftest import lgen  # noqa: E402

out = HERE / "legacy-bias-run"
shutil.rmtree(out, ignore_errors=True)
r = lgen("train", "--domains", "synthetic:bars", "--steps-per-domain", "6", "--checkpoint-every", "4",
         "--seed", "5", "--g-width", "4", "--d-width", "4", "--fc-width", "16", "--z-dim", "4",
         "--batch-size", "8", "--n-critic", "1", "--log-every", "2", "--no-download", "--no-progress",
         "--out", str(out))
assert r.returncode == 0, r.stderr
shutil.rmtree(out / "samples", ignore_errors=True)
ckpts = sorted((out / "checkpoints").glob("step-*"))
for old in ckpts[1:]:  # keep the mid-domain checkpoint only: resuming it trains steps 5-6 again
    shutil.rmtree(old)
(out / "checkpoints" / "latest").write_text(ckpts[0].name + "\n")

from lifelong_gen.train.checkpoint import load_bundle, load_checkpoint  # noqa: E402
from lifelong_gen.train.networks import build_networks  # noqa: E402

run, nets = load_bundle(out, which=("G_ema", "S"))
cfg = run.model
g = torch.Generator().manual_seed(0)
z = torch.randn(16, cfg.z_dim, generator=g)
c = torch.randn(16, cfg.c_dim, generator=g)
d = torch.nn.functional.one_hot(torch.arange(16) % cfg.d_dim, cfg.d_dim).float()
images = torch.rand(16, cfg.img_channels, cfg.img_resolution, cfg.img_resolution, generator=g) * 2 - 1
expected = {"z": z, "c": c, "d": d, "images": images}
with torch.no_grad():
    expected["bundle.G_ema"] = nets["G_ema"](z, c, d)
    expected["bundle.S.d_logits"], expected["bundle.S.c_mean"] = nets["S"](images)
    state, tensors = load_checkpoint(out)
    G, _, S = build_networks(cfg)
    G.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("G_ema.")})
    S.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("S.")})
    expected["checkpoint.G_ema"] = G.eval()(z, c, d)
    expected["checkpoint.S.d_logits"], expected["checkpoint.S.c_mean"] = S.eval()(images)
save_file({k: v.contiguous() for k, v in expected.items()}, str(HERE / "legacy-bias-run-expected.safetensors"))
print("written", out, "checkpoint", ckpts[0].name)
