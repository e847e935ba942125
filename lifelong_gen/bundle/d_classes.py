"""The d -> class table of a bundle: which class each discrete code d draws, as `lgen evaluate` measured it.

BUNDLE/d_classes.json (bundle.D_CLASSES_NAME) answers the question users of InfoGAN-style models
ask most (which d is which class?). Training never sees a label: the table is written after
training, by `lgen evaluate`, from the evaluation classifier (eval/classifier.py, trained on the
labelled real data of the domains at evaluation time only) applied to samples of each d:

    {"schema_version": 1,
     "measured": {"by": "lgen evaluate", "lifelong_gen": "0.1.0", "seed": 0, "samples_per_d": 100,
                  "classifier_test_accuracy": {"mnist": 0.99, ...}},
     "weights_sha256": "<sha256 of generator_ema.safetensors measured>",
     "classes": {"mnist": ["0", ..., "9"], "fashion-mnist": ["T-shirt/top", ...]},
     "per_d": [{"d": 0, "domain": "mnist", "class": "7", "share": 0.93,
                "runner_up": {"domain": "mnist", "class": "1", "share": 0.04}}, ...]}

Owns building that dictionary (`build`), reading it with one-line errors (`read`; `load` checks
it against the bundle's manifest first), naming a d (`DTable.label`), resolving
`lgen sample --class NAME` to the purest d of that class (`DTable.resolve`; `choose` adds the
command's checks and `chosen_note` its report), the stale check against the bundle's current
weights (`stale_warning`) and the Markdown table of model cards and reports (`markdown`). Torch-free and numpy-free.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from lifelong_gen.bundle import D_CLASSES_NAME, NETWORK_FILES, manifest
from lifelong_gen.errors import LgenError, one_line

SCHEMA_VERSION = 1
# What the table was measured on: the EMA generator, the weights `lgen export` puts in the ONNX graph by default.
MEASURED_WEIGHTS = NETWORK_FILES["G_ema"]
# Below this share a d's majority class is named with a caveat (`lgen sample --class` says how pure it is).
MIXED_SHARE = 0.5


def _key(name: str) -> str:
    """How class names are compared: case, spaces, hyphens and underscores do not matter."""
    return re.sub(r"[\s_-]+", " ", name.strip().lower())


def _names(class_name: str, wanted: str) -> bool:
    """Whether a --class key names the class: its whole name, or one side of a name like "T-shirt/top"."""
    key = _key(class_name)
    return wanted == key or wanted in key.split("/")


@dataclass(frozen=True)
class DEntry:
    """One row of the table: d's majority class under the evaluation classifier, and its runner-up."""

    d: int
    domain: str
    name: str
    share: float
    runner_up: Optional[tuple[str, str, float]]  # (domain, class, share), or None when d draws one class only


@dataclass(frozen=True)
class DTable:
    """A read d_classes.json: the rows, the classes of each domain, and the file it came from."""

    rows: tuple[DEntry, ...]
    classes: dict[str, tuple[str, ...]]
    weights_sha256: Optional[str]
    path: Path
    measured: dict[str, Any] = field(default_factory=dict)  # how: by, version, seed, samples per d, classifier

    def entry(self, d: int) -> Optional[DEntry]:
        return next((r for r in self.rows if r.d == d), None)

    def label(self, d: int) -> Optional[str]:
        """The class d draws most, as shown beside it ("7", "Ankle boot"); None for a d the table lacks."""
        row = self.entry(d)
        return None if row is None else row.name

    def flag_name(self, row: DEntry) -> str:
        """How --class names the row's class: `domain:class` where the bare name is a class of two domains."""
        clash = sum(_key(row.name) in {_key(c) for c in names} for names in self.classes.values()) > 1
        return f"{row.domain}:{row.name}" if clash else row.name

    def _order(self, row: DEntry) -> tuple[int, int, int]:
        """Domains in training order, classes in label order (d for a class the table's lists lack)."""
        domains = list(self.classes)
        names = [_key(c) for c in self.classes.get(row.domain, ())]
        return (domains.index(row.domain) if row.domain in domains else len(domains),
                names.index(_key(row.name)) if _key(row.name) in names else len(names), row.d)

    def known(self) -> list[str]:
        """The names --class accepts: each domain's classes in label order, domains in training order."""
        seen: list[str] = []
        for row in sorted(self.rows, key=self._order):
            name = self.flag_name(row)
            if name not in seen:
                seen.append(name)
        return seen

    def resolve(self, name: str, flag: str = "--class") -> DEntry:
        """The purest d whose majority class is NAME (`7`, `ankle boot`, `fashion-mnist:bag`).

        Raises:
            LgenError: no d draws mostly that class (one line listing the names that work),
                or the bare name is a class of two domains.
        """
        domain, _, bare = name.rpartition(":") if ":" in name else ("", "", name)
        wanted = _key(bare)
        matches = [r for r in self.rows if _names(r.name, wanted) and (not domain or _key(r.domain) == _key(domain))]
        domains = {r.domain for r in matches}
        if len(domains) > 1:
            raise LgenError(f"{flag} {name!r} is a class of {' and '.join(sorted(domains))}: "
                            f"say which, e.g. {flag} '{sorted(domains)[0]}:{bare}'")
        if matches:
            return max(matches, key=lambda r: (r.share, -r.d))
        known = ", ".join(self.known())
        owners = [dom for dom, names in self.classes.items()
                  if (not domain or _key(dom) == _key(domain)) and any(_names(c, wanted) for c in names)]
        if owners:  # a class of the model's data that no d draws mostly
            second = [r for r in self.rows if r.runner_up and _names(r.runner_up[1], wanted)
                      and r.runner_up[0] in owners]
            hint = ""
            if second:
                best = max(second, key=lambda r: r.runner_up[2])
                hint = f" (it is the runner-up of d {best.d}, {best.runner_up[2]:.0%} of its samples)"
            raise LgenError(f"{flag} {name!r}: no d of this model draws mostly {bare!r}{hint}; "
                            f"the classes its d's draw: {known}")
        raise LgenError(f"{flag} {name!r} is not a class of this model's d -> class table ({self.path}); "
                        f"known: {known}")

    def stale_warning(self, bundle: Path) -> Optional[str]:
        """One line when the bundle's generator weights are not those the table was measured on."""
        current = recorded_weights_sha256(bundle)
        if current is None or self.weights_sha256 is None or current == self.weights_sha256:
            return None
        return (f"{self.path} was measured on other weights than {Path(bundle) / MEASURED_WEIGHTS}: "
                f"re-run `lgen evaluate {bundle}` to name the d's of these weights")


# ---------------------------------------------------------------- --class


def choose(table: Optional[DTable], bundle: Path, name: str, d_dim: int, flag: str = "--class") -> tuple[int, dict]:
    """The d that `--class NAME` draws from (the purest of that class) and what to report of the choice.

    Raises:
        LgenError: the bundle has no table, the name is no d's class, or the table names a d
            the model lacks (one line each).
    """
    if table is None:
        raise LgenError(f"{flag} needs the d -> class table of the model, and {bundle} has no {D_CLASSES_NAME}: "
                        f"`lgen evaluate BUNDLE` writes it (or use --d)")
    row = table.resolve(name, flag)
    if not 0 <= row.d < d_dim:
        raise LgenError(f"{table.path} names d {row.d}, but the model has {d_dim} categories: re-run `lgen evaluate` on it")
    return row.d, {"name": row.name, "domain": row.domain, "d": row.d, "share": row.share}


def chosen_note(chosen: dict) -> str:
    """The line that says which d `--class` chose and how pure it is."""
    return (f"--class {chosen['name']}: d {chosen['d']}, {chosen['share']:.0%} of whose samples the evaluation "
            f"classifier calls {chosen['name']} ({chosen['domain']})")


# ---------------------------------------------------------------- building


def build(per_d: Sequence[dict[str, Any]], classes: dict[str, Sequence[str]], *, weights_sha256: Optional[str],
          measured: dict[str, Any]) -> dict[str, Any]:
    """The d_classes.json dictionary.

    Args:
        per_d: one dict per d: d, domain, class (the majority class), share, runner_up
            ({domain, class, share} or None), as eval/metrics.py's d_purity measures them.
        classes: each domain's class names, in label order.
        weights_sha256: sha256 of the generator weights the samples came from.
        measured: how (by, lifelong_gen, seed, samples_per_d, classifier_test_accuracy).
    """
    rows = []
    for r in per_d:
        runner = r.get("runner_up")
        rows.append({"d": int(r["d"]), "domain": str(r["domain"]), "class": str(r["class"]),
                     "share": round(float(r["share"]), 4),
                     "runner_up": None if runner is None else
                     {"domain": str(runner["domain"]), "class": str(runner["class"]),
                      "share": round(float(runner["share"]), 4)}})
    return {"schema_version": SCHEMA_VERSION, "measured": dict(measured), "weights_sha256": weights_sha256,
            "classes": {k: list(v) for k, v in classes.items()}, "per_d": rows}


# ---------------------------------------------------------------- reading


def read(bundle: Path) -> Optional[DTable]:
    """BUNDLE/d_classes.json, or None when the bundle has none (an unevaluated or older bundle).

    Raises:
        LgenError: the file exists but is not a table this version reads (one line naming it).
    """
    path = Path(bundle) / D_CLASSES_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise LgenError(f"{path} is unreadable ({one_line(e, 120)}): re-run `lgen evaluate {bundle}`") from None
    try:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"schema_version {data.get('schema_version')!r}, this version reads {SCHEMA_VERSION}")
        classes = {str(k): tuple(str(c) for c in v) for k, v in data["classes"].items()}
        rows = []
        for r in data["per_d"]:
            runner = r.get("runner_up")
            rows.append(DEntry(int(r["d"]), str(r["domain"]), str(r["class"]), float(r["share"]),
                               None if runner is None else
                               (str(runner["domain"]), str(runner["class"]), float(runner["share"]))))
        sha = data.get("weights_sha256")
        if sha is not None and not isinstance(sha, str):
            raise ValueError("weights_sha256 is not a string")
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise LgenError(f"{path} is not a d -> class table this version reads ({one_line(e, 120)}): "
                        f"re-run `lgen evaluate {bundle}`") from None
    measured = data.get("measured") if isinstance(data.get("measured"), dict) else {}
    return DTable(tuple(rows), classes, sha, path, measured)


def load(bundle: Path) -> Optional[DTable]:
    """`read`, after checking the file against the bundle's manifest."""
    bundle = Path(bundle)
    manifest.verify(bundle, [D_CLASSES_NAME], notice=False)  # a file the bundle lacks is skipped
    return read(bundle)


def recorded_weights_sha256(bundle: Path) -> Optional[str]:
    """The sha256 of BUNDLE's generator_ema.safetensors as its manifest records it, else of the file
    itself; None where the bundle has neither (an ONNX-only download)."""
    bundle = Path(bundle)
    listed = manifest.read_manifest(bundle) or {}
    if MEASURED_WEIGHTS in listed:
        return listed[MEASURED_WEIGHTS]["sha256"]
    if (bundle / MEASURED_WEIGHTS).is_file():
        return manifest.file_entry(bundle / MEASURED_WEIGHTS)["sha256"]
    return None


# ---------------------------------------------------------------- Markdown


def measured_line(table: DTable) -> str:
    """One sentence on how the table was measured (samples per d, seed, the classifier's test accuracy)."""
    m = table.measured
    parts = []
    if m.get("samples_per_d"):
        parts.append(f"{m['samples_per_d']} samples per d")
    if m.get("seed") is not None:
        parts.append(f"seed {m['seed']}")
    accuracy = m.get("classifier_test_accuracy")
    if isinstance(accuracy, dict) and accuracy:
        parts.append("evaluation classifier's test accuracy " +
                     ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items() if isinstance(v, (int, float))))
    by = f"{m.get('by', 'lgen evaluate')} {m.get('lifelong_gen', '')}".strip()
    return f"Measured by `{by}`" + (f" ({'; '.join(parts)})" if parts else "") + "."


def markdown(table: DTable) -> str:
    """The table as Markdown: d, majority class and domain, its share, the runner-up."""
    lines = ["| d | draws mostly | domain | share | runner-up |", "|---|---|---|---|---|"]
    for r in table.rows:
        runner = "–" if r.runner_up is None else f"{r.runner_up[1]} ({r.runner_up[0]}, {r.runner_up[2]:.2f})"
        name = r.name + (" (mixed)" if r.share < MIXED_SHARE else "")
        lines.append(f"| {r.d} | {name.replace('|', chr(92) + '|')} | {r.domain} | {r.share:.2f} | "
                     f"{runner.replace('|', chr(92) + '|')} |")
    return "\n".join(lines)
