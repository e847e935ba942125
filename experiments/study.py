"""The interpretability study protocol (issue 11): settings x seeds on a fixed budget.

`python experiments/study.py --settings base,aug,... --seeds 0,1,2 --steps 2000 --root exp/study`
trains, per setting, the MNIST-only runs of every seed in one `lgen train --seeds` process (the
reference preset's networks and optimiser, `--domains mnist`, a fixed number of generator
steps; ROOT/SETTING-seeds-0_1_2/seed-K), evaluates each seed with `lgen evaluate` and appends one
JSON line per (setting, seed) to ROOT/results.jsonl. Runs already in results.jsonl are skipped,
and a setting's seeds directory is resumed (`lgen train --resume`), so the script resumes after
an interruption.

`--domain fashion-mnist` is the same protocol on Fashion-MNIST alone (issue 20), into its own root.
`--domain mnist,fashion-mnist` is the lifelong protocol: the reference preset itself
(`--preset mnist-fashion`, both domains, replay) with STEPS generator steps per domain; its row
has each domain's figures after both were learned (S acc, d-purity of the domain's own d's, FID),
S's joint clustering of all 20 classes, MNIST's share of the samples, and MNIST's S acc at the
end of domain 1 (the forgetting matrix's first row).

`python experiments/study.py --table --root exp/study` prints the settings -> mean ± sd table
(S's clustering accuracy and NMI on real test digits, d-purity, FID on the classifier's
features, c1 class change, minutes) that goes into experiments/interpretability.md.

Runs one training process at a time: two processes on 2 cores slow each other far more than 2x,
while `--seeds` shares the cores out, one seed per core at one intra-op thread each (1.35x the
images/s of the seeds one after the other: docs/performance.md). A seed trained so equals, bit for
bit, `lgen train --seed K --threads 1`, not a run at torch's default threads: rows written before
the study used `--seeds` (ROOT/SETTING-sK directories) came from runs at the default threads.
A row's `minutes` is its seed's own training time, beside the other seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from lifelong_gen.seed_list import SEEDS_NAME, parse_seeds, read_seeds

# The reference preset's networks and optimiser on MNIST alone (what the levers change).
BASE = ["--batch-size", "64", "--g-width", "32", "--d-width", "32", "--fc-width", "256",
        "--n-critic", "2", "--lr-g", "5e-4", "--lr-d", "5e-4", "--z-scale", "0.1", "--c-scale", "0.1",
        "--d-dim", "10", "--checkpoint-every", "500", "--no-progress"]

# The preset's objective (issue 11's levers) and issue 23's step changes, which settings combine.
OBJECTIVE = ["--g-conditioning", "cbn", "--info-augment-weight", "1", "--s-real-weight", "1"]
FAST_STEP = ["--s-real-reuse"]  # and one critic forward of real and fake, now the only one
# The preset's step as issue 23 chose it (setting "fast-sub2"), which issue 20's settings extend.
FAST_SUB2 = [*OBJECTIVE, *FAST_STEP, "--gp-subsample", "2", "--precision", "bf16"]

# Each setting: extra flags on top of BASE. "base" is the shipped preset's objective. Settings of
# options since retired are gone from this table; their rows stay in the results files, and their
# verdicts in experiments/README.md.
SETTINGS: dict[str, list[str]] = {
    "base": [],
    "aug": ["--info-augment-weight", "1"],
    "real": ["--s-real-weight", "1"],
    "aug+real": ["--info-augment-weight", "1", "--s-real-weight", "1"],
    "cbn": ["--g-conditioning", "cbn"],
    "cbn+aug+real": OBJECTIVE,
    "cbn+aug": ["--g-conditioning", "cbn", "--info-augment-weight", "1"],
    "fast-nolazy": [*OBJECTIVE, *FAST_STEP, "--precision", "bf16"],
    "fast-sub2": FAST_SUB2,
    # Issue 20's screening: ClusterGAN trains Fashion-MNIST with beta_n = 0 (no weight on
    # recovering the continuous part of the latent); here the c term of L_MI.
    "fast-sub2-c0": [*FAST_SUB2, "--info-weight-continuous", "0"],
    # Issue 20: twice the weight of S's clustering of real images (IMSAT's term) against L_MI.
    "fast-sub2-sreal2": [*OBJECTIVE[:-1], "2", *FAST_STEP, "--gp-subsample", "2", "--precision", "bf16"],
    # Issue 20: S's clustering of real images per domain (new data over the new d's, replay over
    # the old ones, each image's d kept in its domain); acts from the second domain on.
    "fast-sub2-bydomain": [*FAST_SUB2, "--s-real-by-domain"],
    # Issue 20: the preset with MeRGAN's replay alignment (Wu et al. 2018, WuChenshen/MeRGAN
    # mergan.py: RA_factor 1e-3 on tf.nn.l2_loss summed over a 64-image batch, i.e. about 0.03 per
    # image's summed squared error at the second task); acts from domain 2 on. Session 5 tried
    # 0.1 on one seed of an older preset (experiments/mnist-fashion.md §5).
    "fast-sub2-bydomain-ra03": [*FAST_SUB2, "--s-real-by-domain", "--replay-alignment", "0.03"],
    # Issue 20 (session 15): SCAN's neighbour term (Van Gansbeke et al. 2020): each new real image and
    # one of its 20 nearest images (pooled pixels, mined per domain) get the same d, weight 1 as the
    # IMSAT objective it adds to. S's trunk separates Fashion linearly (0.87) where its clustering
    # finds another partition (0.58): experiments/fashion.md.
    "fast-sub2-bydomain-nb1": [*FAST_SUB2, "--s-real-by-domain", "--s-neighbour-weight", "1"],
    # The same at SCAN's own balance: SCAN weights the entropy of the mean prediction 5x its
    # neighbour term (configs/scan/scan_cifar10.yml: entropy_weight 5.0); here the IMSAT balance term has weight 1, so
    # the neighbour term 0.2. Weight 1 (above) collapsed Fashion's clusters on seed 0 (session 15).
    "fast-sub2-bydomain-nb02": [*FAST_SUB2, "--s-real-by-domain", "--s-neighbour-weight", "0.2"],
    # Session 19: replay a smaller share of the critic's real batch (0.3 instead of 1/2), with G's
    # d prior following it (train/phase.py, matched_d_prior). The Fashion FID ratio to the joint
    # run stayed 1.5x when Fashion had more steps (session 18): Fashion's share of the real images
    # seen, not its step count, set it.
    "fast-sub2-bydomain-nb02-rr03": [*FAST_SUB2, "--s-real-by-domain", "--s-neighbour-weight", "0.2",
                                     "--replay-ratio", "0.3"],
    # The preset's step where `--precision auto` is fp32 (no bf16 instructions); not run yet.
    "fast-sub2-fp32": [*OBJECTIVE, *FAST_STEP, "--gp-subsample", "2"],
}
# The protocols: one domain learned alone (issue 11's MNIST one; issue 20's Fashion-MNIST one),
# and the two domains in sequence with the preset's own settings (issue 20's lifelong one).
LIFELONG = "mnist,fashion-mnist"
DOMAINS = ("mnist", "fashion-mnist", LIFELONG)

COLUMNS = [("S acc", "acc"), ("S NMI", "nmi"), ("d-purity", "purity"), ("FID (classifier)", "fid"),
           ("c1 class change", "c1_change"), ("minutes", "minutes")]


def lgen() -> list[str]:
    return [sys.executable, "-m", "lifelong_gen.cli"]


def seeds_dir(root: Path, setting: str, pending: list[int]) -> Path:
    """The setting's seeds directory: an earlier one holding every pending seed (resumed), else a new one."""
    for d in sorted(root.glob(f"{setting}-seeds-*")):
        meta = read_seeds(d)
        if meta is not None and set(pending) <= set(meta["seeds"]):
            return d
    return root / f"{setting}-seeds-{'_'.join(map(str, pending))}"


def run_setting(root: Path, setting: str, seeds: list[int], steps: int, domain: str = "mnist"):
    """Train the `seeds` of `setting` in one `lgen train --seeds` process, then yield each seed's row."""
    run_dir = seeds_dir(root, setting, seeds)
    # The lifelong protocol starts from the preset (whose values BASE and the preset's objective
    # repeat), so a setting's flags change it the same way as on one domain.
    start = ["--preset", "mnist-fashion", "--no-progress"] if domain == LIFELONG else ["--domains", domain, *BASE]
    if domain == LIFELONG and "--s-real-by-domain" not in SETTINGS[setting]:
        # The preset as session 11 studied it: its by-domain clustering came in after that study.
        start.append("--no-s-real-by-domain")
    if domain == LIFELONG and "--s-neighbour-weight" not in SETTINGS[setting]:
        # Likewise SCAN's neighbour term, in the preset since session 16.
        start += ["--s-neighbour-weight", "0"]
    cmd = lgen() + ["train", *start, *SETTINGS[setting], "--steps-per-domain", str(steps),
                    "--seeds", ",".join(map(str, seeds))]
    if (run_dir / SEEDS_NAME).exists():
        subprocess.run(lgen() + ["train", "--resume", str(run_dir), "--no-progress"], check=True)
    else:
        subprocess.run(cmd + ["--out", str(run_dir)], check=True)
    sessions = read_seeds(run_dir)["sessions"]
    for seed in seeds:
        seconds = sum(s["seeds"].get(str(seed), {}).get("wall_s", 0.0) for s in sessions)
        yield evaluated_row(run_dir / f"seed-{seed}", setting, seed, steps, domain, seconds / 60, SETTINGS[setting])


def evaluated_row(run_dir: Path, setting: str, seed: int, steps: int, domain: str, minutes: float,
                  flags: list[str]) -> dict:
    """`lgen evaluate` of a study run and its results.jsonl row (also experiments/self_label_posthoc.py's)."""
    subprocess.run(lgen() + ["evaluate", str(run_dir), "--num-samples", "2000"], check=True,
                   stdout=subprocess.DEVNULL)
    m = json.loads((run_dir / "metrics.json").read_text())
    if domain == LIFELONG:
        return {"setting": setting, "seed": seed, "steps": steps, "minutes": minutes, "domain": domain,
                **lifelong_figures(m), "flags": flags}
    learned = m["per_domain"][domain]
    return {"setting": setting, "seed": seed, "steps": steps, "minutes": minutes, "domain": domain,
            "acc": learned["clustering"]["accuracy"], "nmi": learned["clustering"]["nmi"],
            "purity": m["interpretability"]["d_purity"]["mean"], "fid": learned["fid"],
            "c1_change": m["interpretability"]["traversal"]["c1"]["class_change"],
            "flags": flags}


def lifelong_figures(m: dict) -> dict:
    """A two-domain run's figures from its metrics.json: per domain (`mnist_`, `fashion_`) S acc,
    NMI, the purity of that domain's own d's and FID; joint S acc; MNIST's sample share; and
    MNIST's S acc when domain 1 had just been learned (so a change during domain 2 shows)."""
    out: dict = {}
    per_d = m["interpretability"]["d_purity"]["per_d"]
    slots = len(per_d) // len(m["per_domain"])
    for k, (spec, tag) in enumerate([("mnist", "mnist"), ("fashion-mnist", "fashion")]):
        learned = m["per_domain"][spec]
        out[f"{tag}_acc"] = learned["clustering"]["accuracy"]
        out[f"{tag}_nmi"] = learned["clustering"]["nmi"]
        out[f"{tag}_purity"] = statistics.mean(r["purity"] for r in per_d[k * slots:(k + 1) * slots])
        out[f"{tag}_fid"] = learned["fid"]
    out["joint_acc"] = m["overall"]["joint_clustering"]["accuracy"]
    out["mnist_share"] = m["per_domain"]["mnist"]["sample_share"]
    out["mnist_acc_after_1"] = m["forgetting"]["cluster_accuracy"][0][0]
    out["c1_change"] = m["interpretability"]["traversal"]["c1"]["class_change"]
    return out


LIFELONG_COLUMNS = [("Fashion S acc", "fashion_acc"), ("MNIST S acc", "mnist_acc"),
                    ("MNIST S acc after domain 1", "mnist_acc_after_1"), ("joint S acc (20)", "joint_acc"),
                    ("Fashion d-purity", "fashion_purity"), ("MNIST d-purity", "mnist_purity"),
                    ("FID Fashion", "fashion_fid"), ("FID MNIST", "mnist_fid"), ("MNIST share", "mnist_share"),
                    ("minutes", "minutes")]


def table(root: Path) -> str:
    rows = [json.loads(x) for x in (root / "results.jsonl").read_text().splitlines() if x.strip()]
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["setting"], []).append(r)
    columns = LIFELONG_COLUMNS if rows and rows[0]["domain"] == LIFELONG else COLUMNS
    head = "| setting | flags | seeds | " + " | ".join(c for c, _ in columns) + " |"
    out = [head, "|" + "---|" * (3 + len(columns))]
    for setting, rs in by.items():
        cells = []
        for _, key in columns:
            vals = [r[key] for r in rs if r[key] is not None]
            if len(vals) > 1:
                cells.append(f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f}")
            else:
                cells.append(f"{vals[0]:.3f}" if vals else "–")
        flags = " ".join(rs[0]["flags"]) or "(preset)"
        out.append(f"| {setting} | `{flags}` | {','.join(str(r['seed']) for r in rs)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def paired_table(root: Path, base: str) -> str:
    """The lifelong protocol's settings seed by seed against `base` on the same seeds (the pairs
    share MNIST's phase where a setting acts only from domain 2), then each mean difference."""
    rows = [json.loads(x) for x in (root / "results.jsonl").read_text().splitlines() if x.strip()]
    by_seed = {r["seed"]: r for r in rows if r["setting"] == base}
    keys = ["fashion_acc", "mnist_acc", "mnist_acc_after_1", "fashion_purity", "mnist_purity"]
    out, diffs = [], {}
    for r in sorted(rows, key=lambda r: (r["setting"] != base, r["setting"], r["seed"])):
        cells = [f"{r[k]:.3f}" for k in keys] + [f"{r['fashion_fid']:.1f} / {r['mnist_fid']:.1f}"]
        out.append(f"| {r['setting']} | {r['seed']} | " + " | ".join(cells) + " |")
        if r["setting"] != base and r["seed"] in by_seed:
            diffs.setdefault(r["setting"], []).append([r[k] - by_seed[r["seed"]][k] for k in keys])
    for setting, d in diffs.items():
        means = [statistics.mean(col) for col in zip(*d)]
        wins = [sum(x > 0 for x in col) for col in zip(*d)]
        out.append(f"| {setting} − {base}, mean (gains) | {len(d)} seeds | "
                   + " | ".join(f"{m:+.3f} ({w}/{len(d)})" for m, w in zip(means, wins)) + " | |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="base")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--root", type=Path, default=Path("exp/study"))
    ap.add_argument("--domain", default="mnist", choices=DOMAINS, help="the protocol: the domain learned alone")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--paired", metavar="BASE", help="print the settings seed by seed against BASE, and the mean gains")
    args = ap.parse_args()
    if args.table:
        print(table(args.root))
        return
    if args.paired:
        print(paired_table(args.root, args.paired))
        return
    args.root.mkdir(parents=True, exist_ok=True)
    results = args.root / "results.jsonl"
    done = set()
    if results.exists():
        done = {(r["setting"], r["seed"]) for r in map(json.loads, results.read_text().splitlines()) if r}
    for setting in args.settings.split(","):
        if setting not in SETTINGS:
            sys.exit(f"unknown setting {setting!r}: choose from {', '.join(SETTINGS)}")
        pending = [seed for seed in parse_seeds(args.seeds) if (setting, seed) not in done]
        if not pending:
            continue
        for row in run_setting(args.root, setting, pending, args.steps, args.domain):
            with open(results, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
