"""Markdown for evaluation results: one run's report, and the comparison table of several.

Torch-free: works from metrics.json dictionaries alone, so `lgen evaluate --compare` can
tabulate runs evaluated earlier. The headline figures themselves (`summary_rows`) are
metrics_summary.py's, which the model card shares.
"""

from __future__ import annotations

from typing import Optional

from lifelong_gen.metrics_summary import fmt, summary_rows, table


def steps_text(t: dict) -> str:
    """The step schedule in words (a metrics.json of a run made with the retired --later-domain-steps
    names that run's later domains' steps)."""
    later = t.get("later_domain_steps") or 0
    if later and len(t["domains"]) > 1:
        return f"{t['steps_per_domain']} steps for the first domain, {later} for each later one"
    return f"{t['steps_per_domain']} steps per domain"


def mode_text(t: dict) -> str:
    """How the run learned its domains, in words: joint, lifelong with replay (and a replay ratio
    given instead of the default k/(k+1)), or without it."""
    if t["joint"]:
        return "joint (upper bound)"
    if not t["replay"]:
        return "lifelong, no replay"
    ratio = t.get("replay_ratio")  # metrics.json from before the field lacks it: the default
    return "lifelong, replay" if ratio is None else f"lifelong, replay ratio {ratio:g}"


def run_report(m: dict, figures: list[str]) -> str:
    t = m["training"]
    mode = mode_text(t)
    out = [f"# Evaluation of `{m['bundle']}`", "",
           f"Domains {' → '.join(t['domains'])}; {mode}; {steps_text(t)}; "
           f"{m['num_samples']} samples, seed {m['seed']}; lifelong-gen {m['versions']['lifelong_gen']}, "
           f"torch {m['versions']['torch']}, torch-fidelity {m['versions']['torch_fidelity']}.", "",
           "Data: " + "; ".join(f"{d['domain']}: {d['source']}" for d in m["data_sources"]), "",
           "Classifier (features for FID/KID, sample attribution): test accuracy "
           + ", ".join(f"{k} {v:.3f}" for k, v in m["classifier"]["test_accuracy"].items()), "",
           "## Summary", "", table(["metric", "value"], [list(r) for r in summary_rows(m)]), ""]
    purity = m["interpretability"]["d_purity"]["per_d"]
    out += ["## Discrete code d on generated samples", "",
            "The evaluation classifier's most common class among each d's samples (written to the bundle's "
            "`d_classes.json`, which `lgen sample --class NAME` reads); training used no labels.", "",
            table(["d", "most common class", "purity", "runner-up"],
                  [[r["d"], r["class"], r["purity"], _runner_up(r.get("runner_up"))] for r in purity]), ""]
    out += _continuation_section(m, figures)
    f = m.get("forgetting")
    if f:
        out += ["## Forgetting matrix", "", "Rows: snapshot after each domain; columns: domain evaluated.", ""]
        for key, title in (("fid", "FID (classifier features)"), ("relative_share", "Share of samples relative to a fair split"),
                           ("cluster_accuracy", "S clustering accuracy"), ("d_purity", "d-purity of each domain's d's"),
                           ("fid_own_d", "FID of each domain's own d's (the same codes in every row)")):
            if key not in f or not any(v is not None for row in f[key] for v in row):
                continue  # older metrics.json, or domains sharing one Cat (no d belongs to a domain)
            out += [f"**{title}** (BWT {fmt(f['bwt'].get(key))})", "",
                    table(["trained through"] + f["domains"], [[r] + row for r, row in zip(f["rows"], f[key])]), ""]
    if figures:
        out += ["## Figures", ""] + [f"![{p}]({p})" for p in figures] + [""]
    return "\n".join(out)


def _runner_up(runner: Optional[dict]) -> str:
    """`class (domain, share)` of a d's second most common class; – for none (or a metrics.json before it)."""
    if not runner:
        return "–"
    return f"{runner['class']} ({runner['domain']}, {runner['share']:.2f})".replace("|", "\\|")


def _continuation_section(m: dict, figures: list[str]) -> list[str]:
    """For a continued run (`lgen train --from`): each domain's share, and each old domain's FID
    before (the parent, the forgetting matrix's row of its last domain) and after; the grid."""
    t = m["training"]
    inherited = t.get("inherited_domains") or 0
    if not inherited:
        return []
    f = m.get("forgetting") or {}
    fid = f.get("fid") or []
    before = fid[inherited - 1] if len(fid) >= inherited else None
    after = fid[-1] if fid else None
    rows = []
    for k, spec in enumerate(t["domains"]):
        entry = m["per_domain"].get(spec, {})
        rows.append([spec, "parent" if k < inherited else "this run", entry.get("sample_share"),
                     before[k] if before and k < inherited else None, after[k] if after else None,
                     (entry.get("clustering") or {}).get("accuracy")])
    grid = f"samples/domain-{len(t['domains'])}.png"
    growth = {"adapters": f"growth: adapters of rank {t.get('adapter_rank')}, the old domains' parameters frozen",
              "replay": "growth: generative replay"}.get(t.get("growth"), "")
    side = (["The old domains, the parent (left) and this model (right), same codes:", "",
             "![before | after](figures/before_after.png)", ""] if "figures/before_after.png" in figures else [])
    return ["## Continuation", "",
            f"Continued from `{t.get('parent')}` (critic: {t.get('critic')}; {growth}); it learned "
            f"{', '.join(t['domains'][inherited:])} without the data of {', '.join(t['domains'][:inherited])}.", "",
            *side,
            table(["domain", "learned by", "sample share", "FID before (parent)", "FID after", "S clustering accuracy"],
                  rows), "",
            f"One row per d, shared (z, c) per column (the run's `{grid}`):", "", f"![grid]({grid})", ""]


def compare_table(named: list[tuple[str, dict]]) -> str:
    """One Markdown table: a row per metric, a column per run."""
    columns = [name for name, _ in named]
    rows_by_run = [dict(summary_rows(m)) for _, m in named]
    order: list[str] = []
    for rows in rows_by_run:
        order += [k for k in rows if k not in order]
    return table(["metric"] + columns, [[k] + [r.get(k) for r in rows_by_run] for k in order])
