"""Torch -> ONNX export of a bundle's generator and encoder, checked against PyTorch.

Owns `export_bundle`: rebuild G (EMA weights by default) and S from a bundle
(checkpoint.load_bundle), export each with the torch.export-based exporter
(dynamo=True) with a dynamic batch axis, and write `onnx/generator.onnx` and
`onnx/encoder.onnx` as single self-contained files (weights inside the protobuf, no
external `.data` file). The contract (names, shapes, opset) lives in spec.py.

Before a file is renamed into place it must pass `onnx.checker.check_model(full_check=True)`
and match PyTorch within spec.PARITY_ATOL on random inputs at every spec.PARITY_BATCHES
size under onnxruntime (CPU). Both files are checked before either replaces an older
export, so a failed export leaves the bundle as it was and a generator/encoder pair
always comes from the same export; nor is an onnx/ directory it created left behind. The
bundle's manifest.json (lifelong_gen/bundle/manifest.py) is renamed into place after them, with their
sizes and sha256 (hashed from the bytes written) and the weights' entries kept as they were; the
weights exported are checked against it first (checkpoint.load_bundle).
`check_requirements` checks the modules, arguments and bundle files first, before any work.
Torch side: needs the [train] extra and onnxruntime.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from lifelong_gen import __version__
from lifelong_gen.atomic import write_synced, write_temp
from lifelong_gen.bundle import ENCODER_ONNX, GENERATOR_ONNX, NETWORK_FILES, ONNX_DIR, manifest
from lifelong_gen.bundle.resolve import installed_location
from lifelong_gen.config import ModelConfig, read_run_config
from lifelong_gen.errors import LgenError, one_line
from lifelong_gen.export import spec
from lifelong_gen.train.replay import sample_codes

log = logging.getLogger("lifelong_gen")


@dataclass
class ExportResult:
    """What `export_bundle` wrote and how closely onnxruntime matched PyTorch."""

    bundle: Path
    files: dict[str, Path]  # "generator" / "encoder" -> path of the .onnx file
    max_abs_diff: dict[str, float]  # worst |onnxruntime - torch| over all parity batches
    opset: int
    generator_weights: str
    seconds: float
    atol: float
    sizes: dict[str, int] = field(default_factory=dict)  # bytes per file


@dataclass
class _Graph:
    """One network to export: its module, how to make example inputs, its names."""

    name: str  # "generator" | "encoder"
    module: torch.nn.Module
    make_inputs: Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    target: Path
    weights: str


class _ClampedGenerator(torch.nn.Module):
    """G followed by clamp(-1, 1): onnxruntime's fast tanh can overshoot [-1, 1] by one ulp,
    and the contract promises the range exactly. A no-op on PyTorch's own output."""

    def __init__(self, G: torch.nn.Module):
        super().__init__()
        self.G = G

    def forward(self, z: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return self.G(z, c, d).clamp(-1.0, 1.0)  # [N, C, H, W]


def _generator_inputs(cfg: ModelConfig) -> Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]:
    def make(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        z, c, d, _ = sample_codes(n, cfg.z_dim, cfg.c_dim, cfg.d_dim, cfg.d_dim, g)
        # Half one-hot, half soft probability vectors: the runtime feeds both.
        soft = torch.softmax(torch.randn(n, cfg.d_dim, generator=g), dim=1)
        d[n // 2:] = soft[n // 2:]
        return z, c, d  # [n, z_dim], [n, c_dim], [n, d_dim]

    return make


def _encoder_inputs(cfg: ModelConfig) -> Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]:
    def make(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        shape = (n, cfg.img_channels, cfg.img_resolution, cfg.img_resolution)
        return (torch.rand(shape, generator=g) * 2 - 1,)  # [n, C, H, W] in [-1, 1]

    return make


def _to_proto(graph: _Graph, opset: int):
    """torch.export-based export with a dynamic batch axis -> onnx.ModelProto (weights inline)."""
    batch = torch.export.Dim(spec.BATCH_AXIS, min=1)
    # Batch 2 for tracing: sizes 0 and 1 would be specialised by torch.export.
    example = graph.make_inputs(2, torch.Generator().manual_seed(0))
    dynamic_shapes = tuple({0: batch} for _ in example)
    # The exporter reports progress on stdout and warns about internals; keep `lgen export` quiet.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                graph.module, example, None, input_names=list(graph.input_names),
                output_names=list(graph.output_names), opset_version=opset, dynamo=True,
                dynamic_shapes=dynamic_shapes, external_data=False, optimize=True, verbose=False,
            )
        except Exception as e:  # the exporter raises many types; the user needs one line
            raise LgenError(f"ONNX export of the {graph.name} failed: {type(e).__name__}: "
                            f"{one_line(e, first_line=True)}") from e
    return program.model_proto


def _check_outputs_named(proto, graph: _Graph) -> None:
    got_in = tuple(i.name for i in proto.graph.input)
    got_out = tuple(o.name for o in proto.graph.output)
    if got_in != graph.input_names or got_out != graph.output_names:
        raise LgenError(f"exported {graph.name} has inputs {got_in} and outputs {got_out}, "
                        f"expected {graph.input_names} and {graph.output_names}")


def _serialize(proto, graph: _Graph, cfg: ModelConfig, opset: int) -> bytes:
    from onnx.external_data_helper import uses_external_data

    meta = {
        spec.META_NETWORK: graph.name,
        spec.META_WEIGHTS: graph.weights,
        spec.META_SHAPE: json.dumps({k: getattr(cfg, k) for k in spec.SHAPE_KEYS}, sort_keys=True),
        spec.META_VERSION: __version__,
        spec.META_OPSET: str(opset),
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    external = [t.name for t in proto.graph.initializer if uses_external_data(t)]
    if external:  # would make the file depend on a side file
        raise LgenError(f"exported {graph.name} keeps weights outside the file ({external[:3]}); "
                        f"expected one self-contained .onnx")
    if proto.ByteSize() >= 2 ** 31:
        raise LgenError(f"{graph.name} is over 2 GB: it cannot be stored as a single ONNX file")
    # The bytes onnx.save(proto, path, save_as_external_data=False) writes.
    return proto.SerializeToString()


def _ort_session(path: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise LgenError(f"the export's parity check needs onnxruntime: {spec.INSTALL_CPU}") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as the runtime runs it
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def _parity(graph: _Graph, path: Path, atol: float, seed: int) -> float:
    """Worst |onnxruntime - torch| / max(1, |torch|) over random inputs at each parity batch size;
    raises above atol (for outputs within [-1, 1], such as images, this is the absolute difference)."""
    session = _ort_session(path)
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for n in spec.PARITY_BATCHES:
        inputs = graph.make_inputs(n, g)
        expected = _torch_outputs(graph.module, inputs)
        feeds = {name: t.numpy() for name, t in zip(graph.input_names, inputs)}
        got = session.run(list(graph.output_names), feeds)
        for name, e, o in zip(graph.output_names, expected, got):
            if o.shape != e.shape or o.dtype != np.float32:
                raise LgenError(f"{graph.name} output {name!r} at batch {n}: onnxruntime gave "
                                f"{o.dtype}{list(o.shape)}, PyTorch float32{list(e.shape)}")
            # Absolute difference where |torch| <= 1 (images, codes), relative above: logits of
            # an overconfident S reach ~1e2, where float32 rounding alone exceeds 1e-4 absolute.
            diff = float((np.abs(o - e) / np.maximum(1.0, np.abs(e))).max()) if e.size else 0.0
            if not diff <= atol:  # also catches NaN
                raise LgenError(f"{graph.name} output {name!r} at batch {n}: onnxruntime differs from PyTorch "
                                f"by {diff:.3g} (scaled by max(1, |torch|); > {atol:g}); the export is wrong, "
                                "nothing was written")
            worst = max(worst, diff)
    return worst


def _torch_outputs(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    out = module(*inputs)
    out = out if isinstance(out, tuple) else (out,)
    return [t.detach().cpu().numpy() for t in out]


def check_requirements(bundle: Path, *, generator: str = "ema", opset: int = spec.DEFAULT_OPSET) -> None:
    """Everything `export_bundle` needs, checked before any work (one-line LgenError otherwise).

    The modules (onnx, onnxscript for the torch.export-based exporter, onnxruntime for the
    parity check), the arguments, and the bundle: a directory with a readable config.json and
    the weight files exported. Without this, a missing onnxruntime surfaced ~10 s in, after
    both graphs were exported.
    """
    import importlib

    for name, install in (("onnx", "pip install 'lifelong-gen[train]'"),
                          ("onnxscript", "pip install 'lifelong-gen[train]'"),
                          ("onnxruntime", f"{spec.INSTALL_CPU} (or {spec.INSTALL_GPU} for CUDA; not both)")):
        try:
            importlib.import_module(name)
        except ImportError:
            why = " for its parity check" if name == "onnxruntime" else ""
            raise LgenError(f"lgen export needs {name}{why}, which is not installed: {install}") from None
    import onnx

    if generator not in spec.GENERATOR_WEIGHTS:
        raise LgenError(f"--generator must be one of {', '.join(spec.GENERATOR_WEIGHTS)}, got {generator!r}")
    max_opset = onnx.defs.onnx_opset_version()
    if not spec.MIN_OPSET <= opset <= max_opset:
        raise LgenError(f"--opset must be in [{spec.MIN_OPSET}, {max_opset}] (this onnx package), got {opset}")
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise LgenError(f"{bundle} is not a directory (expected a run or bundle directory)")
    where = installed_location(bundle)
    if where is not None:  # rewriting onnx/ there breaks the install's checksums or the cache's blobs
        raise LgenError(f"{bundle} is in {where}, which lgen export never writes into: copy the bundle "
                        f"elsewhere and export the copy")
    read_run_config(bundle)  # a missing, damaged or newer-format config.json ends here
    weights = (NETWORK_FILES["G_ema" if generator == "ema" else "G"], NETWORK_FILES["S"])
    missing = [rel for rel in weights if not (bundle / rel).is_file()]
    if missing:
        raise LgenError(f"bundle is missing {', '.join(missing)} ({bundle})")


def export_bundle(bundle: Path, *, generator: str = "ema", opset: int = spec.DEFAULT_OPSET,
                  atol: float = spec.PARITY_ATOL, seed: int = 0) -> ExportResult:
    """Export a bundle's G and S to `BUNDLE/onnx/{generator,encoder}.onnx`, checked and atomic.

    Args:
        bundle: a run directory or bundle directory (config.json + safetensors files).
        generator: "ema" (generator_ema.safetensors, default) or "raw" (generator.safetensors).
        opset: the ai.onnx opset to target (>= spec.MIN_OPSET).
        atol: largest |onnxruntime - torch| accepted at any parity batch size.
        seed: seed of the random parity inputs.

    Raises:
        LgenError: bad arguments, an unreadable bundle, or an export that fails the checker
            or the parity check (then no file of the bundle is changed).
    """
    t0 = time.perf_counter()
    bundle = Path(bundle)
    check_requirements(bundle, generator=generator, opset=opset)

    from lifelong_gen.train.checkpoint import load_bundle

    g_key = "G_ema" if generator == "ema" else "G"
    run, nets = load_bundle(bundle, which=(g_key, "S"))
    cfg = run.model
    graphs = [
        _Graph("generator", _ClampedGenerator(nets[g_key]).eval(), _generator_inputs(cfg), spec.GENERATOR_INPUTS,
               spec.GENERATOR_OUTPUTS, bundle / GENERATOR_ONNX, generator),
        _Graph("encoder", nets["S"].eval(), _encoder_inputs(cfg), spec.ENCODER_INPUTS,
               spec.ENCODER_OUTPUTS, bundle / ENCODER_ONNX, "encoder"),
    ]

    temps: dict[str, Path] = {}
    diffs: dict[str, float] = {}
    sizes: dict[str, int] = {}
    # write_temp creates onnx/ for the first temp file; a failed first export must not leave it behind empty.
    onnx_dir = bundle / ONNX_DIR
    made_onnx_dir, published = not onnx_dir.exists(), False
    try:
        for graph in graphs:
            temps[graph.name], sizes[graph.name], diffs[graph.name] = _export_checked(graph, cfg, opset, atol, seed)
        # Both passed: the parity figures go into the files, then both are renamed into place
        # and the manifest after them.
        entries = {_rel(bundle, g): _add_parity_metadata(temps[g.name], diffs[g.name]) for g in graphs}
        manifest.publish_files(bundle, {_rel(bundle, g): temps.pop(g.name) for g in graphs}, entries)
        published = True
    except OSError as e:  # a full disk or read-only directory: temps are removed below, older files kept
        raise LgenError(f"cannot write the ONNX export in {Path(bundle) / ONNX_DIR} ({e.strerror or e}); "
                        f"any earlier export is intact") from None
    finally:
        for tmp in temps.values():  # a failed check: the bad file never reaches its name
            tmp.unlink(missing_ok=True)
        if made_onnx_dir and not published:  # remove the onnx/ this call made (rmdir: only when empty)
            with contextlib.suppress(OSError):
                onnx_dir.rmdir()
    return ExportResult(bundle=bundle, files={g.name: g.target for g in graphs}, max_abs_diff=diffs,
                        opset=opset, generator_weights=generator, seconds=time.perf_counter() - t0, atol=atol,
                        sizes=sizes)


def _export_checked(graph: _Graph, cfg, opset: int, atol: float, seed: int) -> tuple[Path, int, float]:
    """One graph exported into a temp file beside its target, then checked (onnx.checker, full) and
    compared with torch: (the temp file, its size, the parity figure). A failed check raises LgenError
    and removes the temp file (the caller only cleans up the ones it was handed)."""
    import onnx

    proto = _to_proto(graph, opset)
    _check_outputs_named(proto, graph)
    data = _serialize(proto, graph, cfg, opset)
    tmp = write_temp(graph.target, data)
    try:
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except Exception as e:  # ValidationError, InferenceError
            raise LgenError(f"exported {graph.name} fails onnx.checker: {one_line(e, first_line=True)}") from e
        diff = _parity(graph, tmp, atol, seed)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the caller never saw this temp file: it goes here
        raise
    log.info("%s: checker ok, max |onnxruntime - torch| %.2e at batches %s", graph.name, diff,
             ",".join(map(str, spec.PARITY_BATCHES)))
    return tmp, len(data), diff


def _rel(bundle: Path, graph: _Graph) -> str:
    return graph.target.relative_to(bundle).as_posix()  # onnx/generator.onnx: its name in the manifest


def _add_parity_metadata(path: Path, diff: float) -> dict[str, Any]:
    """Record the measured parity in the (still temporary) file, rewriting it in place; returns the
    file's manifest entry, hashed from the bytes written."""
    import onnx

    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = spec.META_PARITY, f"{diff:.3e}"
    data = proto.SerializeToString()
    write_synced(path, data)
    return manifest.entry_of(data)


def describe(result: ExportResult) -> dict[str, Any]:
    """A JSON-friendly summary of an export (what `lgen export --json` prints)."""
    return {
        "bundle": str(result.bundle),
        "files": {k: str(v) for k, v in result.files.items()},
        "bytes": result.sizes,
        "max_abs_diff": result.max_abs_diff,
        "parity_batches": list(spec.PARITY_BATCHES),
        "atol": result.atol,
        "opset": result.opset,
        "generator_weights": result.generator_weights,
        "seconds": round(result.seconds, 2),
    }
