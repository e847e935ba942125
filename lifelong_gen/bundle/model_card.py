"""Model cards: render a bundle's README.md (Hub YAML metadata + description) from its files.

Owns `render_card` / `write_card`: the Jinja2 template `model_cards/bundle_card.md.j2`
(installed as `lifelong_gen.model_cards`) filled from the bundle's `config.json` (domains,
every model and training setting), `metrics.json` when `lgen evaluate` wrote one (its
headline figures, metrics_summary.py; the full file stays beside the card), the preview PNGs present (`samples/`, `figures/`),
the ONNX files (size, and the opset and parity the export recorded in their metadata,
read with onnxruntime), the ONNX contract of export/spec.py and the lineage record of a
continued run (`lineage_chain`: its ancestors, read back from config.json). Torch-free:
`lgen card` and `lgen push` run where PyTorch is not installed.

The YAML front matter is what the Hub reads (`hub_metadata`): license, library, tags, the
Hub datasets, `base_model` for a model continued from a Hub repo, and `model-index` with the
headline figures of metrics.json, written by huggingface_hub's own `ModelCardData`.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Sequence

from lifelong_gen.atomic import atomic_write_text
from lifelong_gen.bundle import CARD_NAME, METRICS_NAME, NETWORK_FILES, ONNX_FILES, bundle_images, d_classes
from lifelong_gen.config import RunConfig, domain_slots, read_run_config
from lifelong_gen.domain_names import split_selection
from lifelong_gen.errors import LgenError, one_line
from lifelong_gen.export import spec
from lifelong_gen.metrics_summary import fmt, summary_rows

TEMPLATE = "bundle_card.md.j2"
LIBRARY_NAME = "lifelong-gen"
PIPELINE_TAG = "unconditional-image-generation"
TAGS = ("lifelong-learning", "gan", "infogan", "wgan-gp", "generative-replay", "onnx")
# Domain spec -> Hub dataset id, for the card's `datasets:` and `model-index` metadata. The Hub
# refuses a push whose `datasets` holds anything but a dataset id (a local path, say), so other
# domains (folders, synthetic ones) appear in the card's text only.
HUB_DATASETS = {"mnist": "mnist", "fashion-mnist": "fashion_mnist"}
TASK_NAME = "Unconditional image generation"
# The settings the card shows up front; the rest are folded away (and all are in config.json).
KEY_MODEL_SETTINGS = ("z_dim", "c_dim", "d_dim", "img_channels", "img_resolution")
KEY_TRAIN_SETTINGS = ("domains", "d_per_domain", "steps_per_domain", "batch_size", "replay", "precision", "seed")


# ---------------------------------------------------------------- inputs


def _format_value(value: Any) -> str:
    """A setting as it appears in config.json, safe inside a Markdown table cell."""
    return "`" + json.dumps(value).replace("|", "\\|") + "`"


def read_metrics(bundle: Path) -> tuple[list[tuple[str, str]], str]:
    """(the headline rows of BUNDLE/metrics.json, formatted; the text shown when there are none).

    The card shows what metrics_summary.summary_rows picks (as `lgen evaluate`'s report does):
    per domain the sample share, classes present, FID, KID, confidence and S's clustering, then
    the joint figures, d-purity and traversals, and the forgetting summary. The rest (every
    per-d and per-class value, the classifier, versions) stays in metrics.json.
    """
    path = Path(bundle) / METRICS_NAME
    if not path.is_file():
        return [], "Not evaluated: this bundle has no `metrics.json` (`lgen evaluate` writes one)."
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return [], f"Not evaluated: `metrics.json` is unreadable ({one_line(e)})."
    try:
        rows = summary_rows(data)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        return [], f"`metrics.json` is not in the layout `lgen evaluate` writes (no {one_line(e)}); see the file itself."
    # Not measured (None) and undefined (NaN: e.g. a backward transfer with one domain) are left out.
    rows = [(name.replace("|", "\\|"), fmt(value)) for name, value in rows
            if value is not None and not (isinstance(value, float) and not math.isfinite(value))]
    if not rows:
        return [], "Not evaluated: `metrics.json` holds no headline figures."
    return rows, ""


def _d_classes_section(bundle: Path) -> tuple[str, str, str, str]:
    """(the d -> class table as Markdown, how it was measured, the text shown without one, a --class example)."""
    import shlex

    try:
        table = d_classes.read(bundle)
    except LgenError as e:
        return "", "", f"The bundle's `d_classes.json` is unreadable ({e}).", ""
    if table is None:
        return "", "", "Not measured: this bundle has no `d_classes.json` (`lgen evaluate` writes one).", ""
    purest = max(table.rows, key=lambda r: (r.share, -r.d), default=None)
    return (d_classes.markdown(table), d_classes.measured_line(table), "",
            shlex.quote(table.flag_name(purest)) if purest else "")


def _caption(rel: Path, run: RunConfig) -> str:
    """A caption from the file names the trainer (samples/) and `lgen evaluate` (figures/) write."""
    stem = rel.stem

    def domain(k: int) -> str:
        return run.train.domains[k - 1] if 0 < k <= len(run.train.domains) else "?"

    if match := re.fullmatch(r"domain-(\d+)", stem):
        k = int(match[1])
        return f"EMA generator after domain {k} ({domain(k)}): one row per active category d, shared (z, c) per column"
    if match := re.fullmatch(r"samples_domain-(\d+)", stem):
        return f"Samples of the categories of domain {match[1]} ({domain(int(match[1]))})"
    if match := re.fullmatch(r"traversal_c(\d+)", stem):
        return f"Traversal of c{match[1]} from -1 to 1, one row per category (paper fig. 4)"
    if stem == "dc_grid":
        return "d x c grid: one column per category, one row per c (paper fig. 3)"
    words = stem.replace("_", " ").replace("-", " ")
    return words[:1].upper() + words[1:]


# ---------------------------------------------------------------- ONNX metadata


def onnx_metadata(path: Path) -> dict[str, Any]:
    """The opset and metadata_props the exporter recorded in an .onnx file, {} when unknown.

    Read through onnxruntime (any inference install has it; the onnx package is torch-side,
    [train]). Returns {} when onnxruntime is not installed or the file does not load: the
    card then lists the ONNX files without their opset, weights and parity.
    """
    try:
        import onnxruntime
    except ImportError:
        return {}
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # only the metadata is read
    options.log_severity_level = 3  # errors only: `lgen card` prints one line
    try:
        session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        meta = dict(session.get_modelmeta().custom_metadata_map)
    except Exception:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
        return {}
    opset = meta.get(spec.META_OPSET, "")
    return {"opset": int(opset) if opset.isdigit() else None, "metadata": meta}


# ---------------------------------------------------------------- Hub metadata


def _finite(value: Any) -> Optional[float]:
    """A metric as the Hub's model-index takes it: a finite number, rounded; None when not measured."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return round(float(value), 4)


def read_metrics_json(bundle: Path) -> Optional[dict]:
    """BUNDLE/metrics.json as a dictionary, or None when it is absent or unreadable."""
    try:
        data = json.loads((Path(bundle) / METRICS_NAME).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def model_index_results(metrics: Optional[dict], domains: Sequence[str]) -> list:
    """huggingface_hub EvalResults of the headline figures: per domain with a Hub dataset id, its FID
    (on the evaluation classifier's features), S's clustering accuracy on its real test images and
    the d-purity of the d's it added (of every d, for a one-domain model). [] without metrics."""
    from huggingface_hub import EvalResult

    if not metrics:
        return []
    try:
        from lifelong_gen.metrics_summary import domain_purities

        per_domain = metrics.get("per_domain") or {}
        purities = domain_purities(metrics)
        if not purities and len(domains) == 1:
            purities = {domains[0]: metrics["interpretability"]["d_purity"]["mean"]}
    except (KeyError, TypeError, AttributeError):
        return []
    results = []
    for domain in domains:
        hub_id, figures = HUB_DATASETS.get(split_selection(domain)[0]), per_domain.get(domain)
        if hub_id is None or not isinstance(figures, dict):
            continue
        clustering = figures.get("clustering") if isinstance(figures.get("clustering"), dict) else {}
        for metric_type, name, value in [
                ("fid", f"FID on {domain} (evaluation-classifier features, not Inception)", figures.get("fid")),
                ("accuracy", f"S clustering accuracy on real {domain} test images", clustering.get("accuracy")),
                ("d-purity", f"d-purity of {domain}'s d",
                 purities.get(domain))]:
            if (value := _finite(value)) is not None:
                results.append(EvalResult(task_type=PIPELINE_TAG, task_name=TASK_NAME, dataset_type=hub_id,
                                          dataset_name=domain, metric_type=metric_type, metric_name=name,
                                          metric_value=value))
    return results


def base_model(run: RunConfig) -> Optional[str]:
    """The parent's Hub repo id when this model was continued from one (`lgen train --from ORG/NAME`).

    The Hub takes only a model id there; an embedded or local parent has none, so it is named in
    the card's lineage section instead."""
    parent = run.parent or {}
    return parent.get("repo_id") if parent.get("source") == "hub" and parent.get("repo_id") else None


def hub_metadata(run: RunConfig, metrics: Optional[dict], *, model_name: str, license: str = "mit") -> str:
    """The card's YAML front matter (without the --- lines), as the Hub reads it."""
    from huggingface_hub import ModelCardData

    datasets = []
    for name in run.train.domains:
        hub_name = HUB_DATASETS.get(split_selection(name)[0])  # mnist:0-4 is drawn from mnist
        if hub_name and hub_name not in datasets:
            datasets.append(hub_name)
    results = model_index_results(metrics, run.train.domains)
    data = ModelCardData(license=license, library_name=LIBRARY_NAME, pipeline_tag=PIPELINE_TAG, tags=list(TAGS),
                         datasets=datasets or None, base_model=base_model(run),
                         model_name=model_name if results else None, eval_results=results or None)
    return data.to_yaml().strip()


# ---------------------------------------------------------------- rendering


def _template():
    import jinja2

    text = resources.files("lifelong_gen.model_cards").joinpath(TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=False, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.from_string(text)


def _domain_rows(run: RunConfig) -> list[dict[str, Any]]:
    """One row per domain: its spec, d range, who learned it, data source and image counts."""
    model, train = run.model, run.train
    domains = []
    sources = {s.get("domain"): s for s in run.data_sources if isinstance(s, dict)}
    for k, name in enumerate(train.domains):
        src = sources.get(name, {})
        if train.d_per_domain is not None and not train.joint:
            first = domain_slots(train, model, k - 1) if k else 0
            d_range = f"{first}–{domain_slots(train, model, k) - 1}"
        else:
            d_range = f"0–{model.d_dim - 1} (shared)"
        counts = (f"{src['train_images']:,} / {src['test_images']:,}"
                  if isinstance(src.get("train_images"), int) and isinstance(src.get("test_images"), int) else "—")
        domains.append({"index": k + 1, "spec": name, "d_range": d_range, "learned_by": _learned_by(run, k),
                        "source": str(src.get("source", "—")).replace("|", "\\|"), "images": counts})
    return domains


def _onnx_rows(bundle: Path) -> tuple[list[dict[str, str]], Optional[int]]:
    """The ONNX files present (size, weights, parity at export) and the opset their metadata records."""
    onnx_files, opset = [], None
    for rel in ONNX_FILES:
        path = bundle / rel
        if not path.is_file():
            continue
        header = onnx_metadata(path)
        meta = header.get("metadata", {})
        opset = opset or header.get("opset")
        weights = meta.get(spec.META_WEIGHTS, "")
        onnx_files.append({"path": rel, "size": f"{path.stat().st_size / 1e6:.2f} MB",
                           "weights": {"ema": "EMA generator", "raw": "raw generator"}.get(weights, ""),
                           "parity": meta.get(spec.META_PARITY, "")})
    return onnx_files, opset


def render_card(bundle: Path, *, repo_id: Optional[str] = None, notes: Sequence[str] = (),
                title: Optional[str] = None, license: str = "mit", embedded: bool = False,
                with_critic: bool = False, sections: Sequence[tuple[str, str]] = (),
                opset: Optional[int] = None) -> str:
    """The model card (README.md text) of a bundle.

    Args:
        bundle: a run or bundle directory with config.json.
        repo_id: the Hub repo the card is for ("org/name"); used in the usage examples.
        notes: sentences shown as notes under the title (e.g. "a demo model, not the reference").
        title: the heading; default: the domain sequence.
        license: the Hub license id of the weights.
        embedded: the card of the model shipped inside the package (usage without --model).
        with_critic: list critic.safetensors among the weights (`lgen push --with-critic` uploads it).
        sections: (title, Markdown body) pairs shown after the evaluation, e.g. a comparison
            with baseline runs (`lgen evaluate --compare` output).
        opset: the graphs' opset where their metadata lacks it (graphs exported before it was
            recorded there; scripts/build_pretrained.py reads it with the onnx package).
    """
    bundle = Path(bundle)
    run = read_run_config(bundle)
    model, train = run.model, run.train

    domains = _domain_rows(run)
    title = title or " → ".join(train.domains) + " lifelong generator"
    metadata = hub_metadata(run, read_metrics_json(bundle), model_name=repo_id or title, license=license)

    metrics_rows, metrics_status = read_metrics(bundle)
    d_table, d_table_measured, d_table_status, class_example = _d_classes_section(bundle)
    images = [{"path": rel.as_posix(), "caption": _caption(rel, run)} for rel in bundle_images(bundle)]

    onnx_files, graph_opset = _onnx_rows(bundle)
    opset = opset or graph_opset
    if embedded:
        model_flag, python_ref, python_comment = "", "", "the default model shipped in the package"
    elif repo_id:
        model_flag, python_ref = f" --model {repo_id}", json.dumps(repo_id)
        python_comment = "fetches config.json + onnx/*.onnx into the HF cache"
    else:
        model_flag, python_ref, python_comment = " --model BUNDLE", '"BUNDLE"', "a local bundle directory"

    settings = run.to_dict()
    key_settings = ([(k, _format_value(settings["model"][k])) for k in KEY_MODEL_SETTINGS if k in settings["model"]]
                    + [(k, _format_value(settings["train"][k])) for k in KEY_TRAIN_SETTINGS if k in settings["train"]])
    return _template().render(
        metadata=metadata, title=title, base_model=base_model(run),
        notes=list(notes), domains=domains, model=model, format_version=run.format_version,
        package_version=run.package_version, key_settings=key_settings,
        model_settings=[(k, _format_value(v)) for k, v in settings["model"].items()],
        train_settings=[(k, _format_value(v)) for k, v in settings["train"].items()],
        metrics_rows=metrics_rows, metrics_status=metrics_status,
        d_table=d_table, d_table_measured=d_table_measured, d_table_status=d_table_status, class_example=class_example,
        images=images, onnx={"files": onnx_files, "opset": opset},
        weights=[w for key, w in NETWORK_FILES.items() if (bundle / w).is_file() and (with_critic or key != "D")],
        repo_id=repo_id, model_flag=model_flag, python_ref=python_ref, python_comment=python_comment,
        sections=[{"title": t, "body": b.strip()} for t, b in sections],
        lineage=_lineage_rows(run),
    )


def lineage_chain(run: RunConfig) -> list[dict[str, Any]]:
    """The run's ancestors, nearest first (each a lineage record of lineage.py, without its nested parent)."""
    chain, node = [], run.parent
    while node:
        chain.append({k: v for k, v in node.items() if k != "parent"})
        node = node.get("parent")
    return chain


def _ancestor_name(record: dict[str, Any]) -> str:
    """How a card names an ancestor: the Hub id and commit, the embedded name, or the path given."""
    if record.get("source") == "hub":
        commit = record.get("commit") or record.get("revision") or ""
        return f"{record.get('repo_id')}@{commit[:12]}" if commit else str(record.get("repo_id"))
    if record.get("source") == "embedded":
        return f"{record.get('name')} (embedded in lifelong-gen {record.get('package_version', '?')})"
    return str(record.get("model"))


def _learned_by(run: RunConfig, k: int) -> str:
    """Which model of the lineage learned domain k: this run, or the ancestor whose run added it."""
    chain = lineage_chain(run)  # nearest first
    if k >= run.train.inherited_domains:
        return "this model"
    owner = chain[0]
    for record in chain:  # the oldest ancestor that already had domain k learned it
        if len(record.get("domains", [])) > k:
            owner = record
    return "`" + _ancestor_name(owner) + "`"


def _lineage_rows(run: RunConfig) -> list[dict[str, str]]:
    """One row per ancestor, nearest first: its name, domains, d size, critic use and weight sha256s."""
    rows = []
    for i, record in enumerate(lineage_chain(run)):
        weights = record.get("weights") or {}
        rows.append({"name": _ancestor_name(record), "domains": " → ".join(record.get("domains", [])),
                     "d_dim": str(record.get("d_dim", "—")),
                     "critic": str(record.get("critic", "—")) if i == 0 else "—",
                     "weights": ", ".join(f"`{rel}` {sha[:12]}" for rel, sha in sorted(weights.items())) or "—"})
    return rows


def write_card(bundle: Path, **kwargs: Any) -> Path:
    """Render the card and write BUNDLE/README.md atomically (temp file + rename). Returns its path."""
    text = render_card(bundle, **kwargs)
    target = Path(bundle) / CARD_NAME
    atomic_write_text(target, text)
    return target
