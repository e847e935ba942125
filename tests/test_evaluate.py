"""`lgen evaluate` on tiny synthetic domains: metric ranges, forgetting vs replay, the
torch-fidelity extractor, the CLI outputs."""

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, lgen
from lifelong_gen.config import resolve_run_config
from lifelong_gen.train.trainer import Trainer

# Heavy: trainings in subprocesses / under torchrun; a longer timeout than the default 120 s.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SETTINGS = {**TINY, "domains": ["synthetic:bars", "synthetic:rings"], "steps_per_domain": 150, "n_critic": 2,
            "lr_g": 2e-3, "lr_d": 2e-3, "batch_size": 32, "d_per_domain": 5}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic28):
    """Two tiny lifelong runs, with and without replay, evaluated in-process."""
    from lifelong_gen.eval.metrics import evaluate

    out = {}
    for name, replay in (("replay", True), ("no-replay", False)):
        run_dir = tmp_path_factory.mktemp(name) / "run"
        Trainer(resolve_run_config({**SETTINGS, "replay": replay}), run_dir, data=synthetic28, progress=False).train()
        out[name] = (run_dir, evaluate(run_dir, num_samples=600, data=synthetic28, progress=False))
    return out


def test_metric_ranges(runs):
    _, m = runs["replay"]
    assert m["schema_version"] == 1 and m["seed"] == 0 and m["versions"]["torch_fidelity"]
    shares = [e["sample_share"] for e in m["per_domain"].values()]
    assert all(0 <= s <= 1 for s in shares) and sum(shares) == pytest.approx(1.0, abs=1e-6)
    for e in m["per_domain"].values():
        assert 0 <= e["covered_classes"] <= 10 and len(e["class_shares"]) == 10
        if e["fid"] is not None:
            assert e["fid"] >= 0 and np.isfinite(e["kid_mean"])
        for key in ("accuracy", "nmi", "ari"):
            assert -1 <= e["clustering"][key] <= 1
        assert 0.1 <= e["clustering"]["accuracy"] <= 1  # Hungarian accuracy is at least chance
    assert 0 < m["interpretability"]["d_purity"]["mean"] <= 1
    assert set(m["interpretability"]["traversal"]) == {"c1", "c2"}
    f = m["forgetting"]
    assert f["rows"] == ["domain-1", "domain-2"]
    assert f["fid"][0][1] is None and f["relative_share"][0][0] is not None  # upper triangle empty
    assert m["classifier"]["test_accuracy"]["synthetic:bars"] > 0.9  # the judge itself is good


def test_no_replay_forgets_the_first_domain(runs):
    first = "synthetic:bars"
    with_replay = runs["replay"][1]
    without = runs["no-replay"][1]
    assert without["per_domain"][first]["sample_share"] < 0.1
    assert with_replay["per_domain"][first]["sample_share"] > without["per_domain"][first]["sample_share"] + 0.05
    assert with_replay["forgetting"]["bwt"]["relative_share"] > without["forgetting"]["bwt"]["relative_share"]


def test_fidelity_uses_our_extractor_offline(runs, synthetic28, monkeypatch):
    """torch-fidelity computes FID/KID with the registered classifier, and nothing is downloaded."""
    import torch_fidelity

    from lifelong_gen.eval.classifier import classifier_path, register_with_fidelity
    from lifelong_gen.eval.metrics import _Images

    def no_network(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    name = register_with_fidelity()
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    assert name in FEATURE_EXTRACTORS_REGISTRY
    bars, rings = synthetic28[0].test_images, synthetic28[1].test_images

    def fid(a, b):
        m = torch_fidelity.calculate_metrics(input1=_Images(a), input2=_Images(b), fid=True, cuda=False,
                                             verbose=False, feature_extractor=name, save_cpu_ram=True,
                                             feature_extractor_weights_path=str(classifier_path(synthetic28)))
        return m["frechet_inception_distance"]

    same = fid(bars[:250], bars[250:])
    different = fid(bars[:250], rings[:250])
    assert 0 <= same < different / 5, (same, different)


def test_cli_writes_report_and_compares(runs, tmp_path):
    run_dir, _ = runs["replay"]
    out = tmp_path / "eval"
    r = lgen("evaluate", str(run_dir), "--out", str(out), "--num-samples", "300", "--no-progress")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert {"per_domain", "overall", "interpretability", "forgetting", "versions", "figures"} <= set(m)
    for fig in ["samples_domain-1.png", "dc_grid.png", "traversal_c1.png", "traversal_c2.png", "forgetting_fid.png"]:
        assert f"figures/{fig}" in m["figures"] and (out / "figures" / fig).is_file()
    report = (out / "report.md").read_text()
    assert "## Forgetting matrix" in report and "synthetic:bars" in report
    # Where the time went: every metric, the data, the classifier and the figures, and the log's sum of them.
    timings = m["timings_s"]
    assert {"data", "classifier", "figures"} | {f"metric:{k}" for k in ("quality", "clustering", "forgetting")} \
        <= set(timings) and all(v >= 0 for v in timings.values())
    assert f"evaluated in {sum(timings.values()):.0f} s: " in r.stderr
    # The d -> class table: into the run itself (listed in its manifest), whatever --out says, and beside metrics.json.
    from lifelong_gen.bundle import d_classes, manifest

    table = d_classes.load(run_dir)
    assert table is not None and (out / "d_classes.json").read_bytes() == (run_dir / "d_classes.json").read_bytes()
    assert manifest.read_manifest(run_dir)["d_classes.json"] == manifest.file_entry(run_dir / "d_classes.json")
    assert table.stale_warning(run_dir) is None and table.weights_sha256 == manifest.file_entry(
        run_dir / "generator_ema.safetensors")["sha256"]
    per_d = m["interpretability"]["d_purity"]["per_d"]
    assert [(r.d, r.domain, r.name, r.share) for r in table.rows] == [
        (p["d"], p["domain"], p["name"], round(p["purity"], 4)) for p in per_d]
    assert all(p["class"] == f"{p['domain']}:{p['name']}" for p in per_d)
    assert all(p["runner_up"] is None or p["runner_up"]["share"] <= p["purity"] for p in per_d)
    assert table.classes == {"synthetic:bars": tuple("0123456789"), "synthetic:rings": tuple("0123456789")}
    assert "| d | most common class | purity | runner-up |" in report
    (run_dir / "metrics.json").write_text(json.dumps(m))  # --compare reuses stored metrics
    other, _ = runs["no-replay"]
    (other / "metrics.json").write_text(json.dumps(runs["no-replay"][1]))
    r = lgen("evaluate", "--compare", str(run_dir), str(other), "--no-progress")
    assert r.returncode == 0, r.stderr
    header = r.stdout.splitlines()[0]
    assert str(run_dir) in header and str(other) in header and "synthetic:bars: sample share" in r.stdout


@pytest.mark.parametrize("args,fragment", [
    (["/nonexistent/run"], "'/nonexistent/run' is neither a directory nor a Hub repo id"),
    (["--compare", "."], "at least two runs"),
])
def test_cli_errors(args, fragment):
    r = lgen("evaluate", *args)
    assert r.returncode == 2 and fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_inception_weights_are_checked_before_torch_fidelity_unpickles_them(tmp_path):
    import collections
    import pickle

    from lifelong_gen.errors import LgenError
    from lifelong_gen.eval.metrics import _check_plain_weights

    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps({"w": collections.OrderedDict}))  # a global reference, not a tensor
    with pytest.raises(LgenError, match="refusing to unpickle"):
        _check_plain_weights(bad)
    with pytest.raises(LgenError, match="not found"):
        _check_plain_weights(tmp_path / "missing.pth")
    good = tmp_path / "pt_inception.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, good)
    _check_plain_weights(good)  # a plain state dict passes


def test_cli_never_writes_into_an_installed_bundle(tmp_path):
    """A bundle under site-packages (as the embedded model is after a pip install) stays byte-identical;
    the evaluation goes to ./lgen-evaluate/<name>, and one log line says so."""
    from lifelong_gen.train.checkpoint import save_bundle
    from lifelong_gen.train.networks import build_networks

    run = resolve_run_config({**TINY, "domains": ["synthetic:bars"]})
    installed = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "somepkg" / "tiny-bundle"
    G, _, S = build_networks(run.model)
    save_bundle(installed, run, {"G": G, "G_ema": G, "S": S})  # untrained: the metrics' values do not matter
    (installed / "metrics.json").write_text("{}\n")  # what a shipped bundle carries, and evaluate would rewrite
    (installed / "figures").mkdir()
    (installed / "figures" / "dc_grid.png").write_bytes(b"shipped figure")

    def tree():
        return {p.relative_to(installed).as_posix(): p.read_bytes() for p in installed.rglob("*") if p.is_file()}

    before = tree()
    work = tmp_path / "work"
    work.mkdir()
    r = lgen("evaluate", str(installed), "--num-samples", "100", "--no-progress", cwd=work)
    assert r.returncode == 0, r.stderr
    assert tree() == before  # not one file written, changed or added
    out = work / "lgen-evaluate" / "tiny-bundle"
    assert (out / "metrics.json").is_file() and (out / "report.md").is_file()
    assert (out / "figures" / "dc_grid.png").is_file() and (out / "d_classes.json").is_file()
    assert (f"lgen: {installed} is in an installed package (site-packages), which lgen evaluate never writes "
            f"into: writing metrics.json, report.md and figures/ to lgen-evaluate/tiny-bundle (--out DIR to "
            f"choose)") in r.stderr.splitlines()
    assert r.stdout.strip().endswith("wrote lgen-evaluate/tiny-bundle/metrics.json and report.md")


def test_a_shipped_classifier_is_used_before_the_cache(tmp_path, monkeypatch, synthetic28):
    """The package ships the classifier of the embedded lineage; other domain lists train and cache their own."""
    from lifelong_gen.eval import classifier as clf

    monkeypatch.setattr(clf, "PACKAGED_CLASSIFIERS", tmp_path / "shipped")
    cached = clf.classifier_path(synthetic28)
    assert cached.parent.name == "classifiers" and tmp_path not in cached.parents
    shipped = tmp_path / "shipped" / cached.name
    shipped.parent.mkdir()
    shipped.write_bytes(b"")
    assert clf.classifier_path(synthetic28) == cached  # weights without their JSON: not a usable entry
    shipped.with_suffix(".json").write_text("{}")
    assert clf.classifier_path(synthetic28) == shipped
    # The package ships one: the embedded lineage's (mnist, fashion-mnist, animal-mnist), weights and JSON.
    package = Path(clf.__file__).resolve().parents[1] / "pretrained" / "classifiers"
    assert sorted(p.suffix for p in package.iterdir()) == [".json", ".safetensors"]
