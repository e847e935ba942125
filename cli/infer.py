"""`lgen export | sample | encode | interpolate`: ONNX export and torch-free inference.

Registers its commands on the `app` of cli/app.py (cli/__init__.py imports this module).
`export` is torch-side and imports the exporter inside its body; the other three use only
lifelong_gen/runtime/ (numpy, onnxruntime, Pillow) and lifelong_gen/bundle/ (the model
`--model` names, `--class` and the class beside each d), so importing this module never
imports torch.

`--model` takes what `load_model` takes (lifelong_gen/bundle/resolve.py): an exported directory,
an embedded model's name, a Hub repo `ORG/NAME[@REV]` or nothing (the default embedded model).
`encode` cuts a PNG grid that lgen wrote (its layout is in a text chunk) into its images and
warns about an image far from the model's shape; `interpolate --from-image/--to-image` refuse a grid.

Every command validates all of its input (flags, model directory, ONNX files, images) before
it writes anything: bad input ends as one line `lgen: error: ...` (an LgenError; main()
prints it), exit code 2, and no output file.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from lifelong_gen.cli.app import app, renamed_option
from lifelong_gen.errors import LgenError


def _note(message: str) -> None:
    """A message on stderr (stdout stays clean for --json)."""
    print(f"lgen: {message}", file=sys.stderr)


def _check_png_path(path: Path, flag: str) -> None:
    if path.suffix.lower() != ".png":
        raise LgenError(f"{flag} must name a .png file, got {path}")
    if path.exists() and path.is_dir():
        raise LgenError(f"{flag} {path} is a directory")


CLASS_HELP = ("Draw from the d that the model's d -> class table (d_classes.json, written by `lgen evaluate`) "
              "names NAME, e.g. 7 or 'ankle boot' (DOMAIN:NAME where two domains share a name); the purest "
              "such d")
MODEL_HELP = ("Exported run or bundle directory, an embedded model's name (mnist-fashion), or a Hub repo "
              "ORG/NAME[@REV] (fetches config.json + onnx/ into the HF cache); default: the embedded "
              "MNIST -> Fashion-MNIST reference model")


def _open(model_ref: Optional[str], provider: Optional[str]):
    """Resolve --model (local directory, embedded model name, Hub repo, or the embedded default) and open it."""
    from lifelong_gen.runtime import load_model

    model = load_model(model_ref, provider=provider)
    warning = model.stale_warning()
    if warning:
        _note(f"warning: {warning}")
    return model


def _d_table(model):
    """The bundle's d -> class table (d_classes.py), checked, with a warning when it is stale; None without one."""
    from lifelong_gen.bundle import d_classes

    table = d_classes.load(model.bundle)
    warning = table.stale_warning(model.bundle) if table is not None else None
    if warning:
        _note(f"warning: {warning}")
    return table


def _class_to_d(model, class_name: Optional[str], d: Optional[int]) -> tuple[Optional[int], Optional[dict]]:
    """--class NAME as the purest d of that class (and what to report of it); --d as given otherwise."""
    from lifelong_gen.bundle import d_classes

    if class_name is None:
        return d, None
    if d is not None:
        raise LgenError("--class picks the d: give --class or --d, not both")
    return d_classes.choose(_d_table(model), model.bundle, class_name, model.d_dim)


def _class_note(chosen: Optional[dict]) -> None:
    """What --class chose, said after the work (so that an error in another flag stays one line)."""
    if chosen:
        from lifelong_gen.bundle.d_classes import chosen_note

        _note(chosen_note(chosen))


def _model_label(model_ref: Optional[str], model) -> str:
    """What --json reports as "model": the --model value, or the embedded model's directory."""
    return model_ref if model_ref is not None else str(model.bundle)


def _report_provider(model, verbose: bool, which: tuple[str, ...], model_ref: Optional[str]) -> dict[str, str]:
    from lifelong_gen.bundle import embedded
    from lifelong_gen.runtime.sessions import usable_cores

    used = {w: model.provider(w) for w in which}
    if model_ref is None:  # said after the work, so that an error in another flag stays one line
        _note(f"no --model given: used the embedded default model {embedded.DEFAULT_MODEL} "
              f"({embedded.DEFAULT_MODEL_NOTE})")
    if verbose:
        for w, p in used.items():
            threads = f", {model.threads or usable_cores()} intra-op threads" if p == "CPUExecutionProvider" else ""
            _note(f"{w} ran on onnxruntime {p}{threads}")
    return used


# ---------------------------------------------------------------- export


@app.command(short_help="Export G and S to ONNX, checked against PyTorch.")
def export(
    bundle: str = typer.Argument(..., help="Run directory or bundle directory (config.json + *.safetensors)"),
    generator: str = typer.Option("ema", "--generator", help="Generator weights to export: ema (default) or raw"),
    opset: Optional[int] = typer.Option(None, "--opset", help="ai.onnx opset (default 18)"),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary"),
) -> None:
    """Export G and S to BUNDLE/onnx/{generator,encoder}.onnx, checked against PyTorch."""
    from lifelong_gen.cli.app import _setup_logging

    _setup_logging(verbose=not as_json)
    from lifelong_gen.cli.guards import require_torch_side

    require_torch_side("export")
    from lifelong_gen.bundle.resolve import resolve_bundle
    from lifelong_gen.export import onnx_export, spec

    result = onnx_export.export_bundle(resolve_bundle(bundle, ()).path, generator=generator,
                                       opset=spec.DEFAULT_OPSET if opset is None else opset)
    summary = onnx_export.describe(result)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for name, path in result.files.items():
        typer.echo(f"{path}  ({result.sizes[name] / 1e6:.2f} MB, max |onnxruntime - torch| "
                   f"{result.max_abs_diff[name]:.1e})")


# ---------------------------------------------------------------- sample


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             short_help="Sample a PNG grid from the generator (torch-free).")
def sample(
    ctx: typer.Context,
    model_ref: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    n: int = typer.Option(64, "--n", help="Number of images"),
    d: Optional[int] = typer.Option(None, "--d", help="Fix the discrete code to category D (0-based); "
                                                      "default: uniform over all categories"),
    class_name: Optional[str] = typer.Option(None, "--class", help=CLASS_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed of the random codes (numpy)"),
    out: Path = typer.Option(Path("samples.png"), "--out", help="PNG grid to write"),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Also write each image as DIR/sample-NNNN.png"),
    as_json: bool = typer.Option(False, "--json", help="Print the codes used as JSON"),
    provider: Optional[str] = typer.Option(None, "--provider", help="cpu or cuda (default: cuda when available)"),
    verbose: bool = typer.Option(False, "--verbose", help="Say which onnxruntime provider ran"),
) -> None:
    """Sample a PNG grid from the generator. Fix continuous codes with --c1 VALUE, --c2 VALUE, ...

    Codes not fixed are random: z, c ~ N(0, I) and d uniform over the model's categories.
    """
    import numpy as np

    from lifelong_gen.images import save_grid, save_png, to_pil, to_uint8
    from lifelong_gen.runtime.codes import check_category, parse_code_flags, random_codes

    if n < 1:
        raise LgenError(f"--n must be >= 1, got {n}")
    _check_png_path(out, "--out")
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise LgenError(f"--out-dir {out_dir} exists and is not a directory")
    model = _open(model_ref, provider)
    fixed_c = parse_code_flags(list(ctx.args), model.c_dim)
    check_category(d, model)
    d, chosen = _class_to_d(model, class_name, d)

    codes = random_codes(model, n, np.random.default_rng(seed), d=d, fixed_c=fixed_c)
    images = model.sample(codes.z, codes.c, codes.d)  # [n, C, H, W]
    used = _report_provider(model, verbose, ("generator",), model_ref)
    _class_note(chosen)
    save_grid(images, out, columns=math.ceil(math.sqrt(n)))
    files: list[str] = []
    if out_dir is not None:
        for i, tile in enumerate(to_uint8(images)):
            files.append(str(save_png(to_pil(tile), out_dir / f"sample-{i:04d}.png")))
    if as_json:
        records = codes.as_records()
        for rec, f in zip(records, files):
            rec["file"] = f
        typer.echo(json.dumps({"model": _model_label(model_ref, model), "provider": used["generator"], "seed": seed,
                               "n": n, "out": str(out), **({"class": chosen} if chosen else {}), "samples": records}))
    else:
        typer.echo(str(out) + (f"  (+ {len(files)} images in {out_dir})" if files else ""))


# ---------------------------------------------------------------- encode


@app.command(short_help="Infer the codes u = (d, c) of images with S (torch-free).")
def encode(
    images: list[Path] = typer.Argument(..., help="Image files (any size, grey/RGB/RGBA: converted to the model's)"),
    model_ref: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table"),
    provider: Optional[str] = typer.Option(None, "--provider", help="cpu or cuda (default: cuda when available)"),
    verbose: bool = typer.Option(False, "--verbose", help="Say which onnxruntime provider ran"),
) -> None:
    """Infer u = (d, c) of images with S: the most likely d (and the class the bundle's d -> class
    table names it), p(d), the d distribution and c.

    A PNG grid written by `lgen sample` or `interpolate` (it records its layout) is cut into
    its images, reported as FILE[row,column] (--json: "cell": [row, column]).
    """
    from lifelong_gen.runtime import read_encoder_inputs
    from lifelong_gen.runtime.codes import softmax

    model = _open(model_ref, provider)
    C, R, _ = model.image_shape
    batch, inputs, warnings = read_encoder_inputs(images, C, R)  # [N, C, R, R]
    for warning in warnings:
        _note(f"warning: {warning}")
    grids: dict[str, int] = {}
    for item in inputs:
        if item.cell is not None:
            grids[item.file] = grids.get(item.file, 0) + 1
    for file, count in grids.items():
        _note(f"{file} is a grid written by lgen: encoding each of its {count} images as {file}[row,column]")
    d_logits, c_mean = model.encode(batch)
    used = _report_provider(model, verbose, ("encoder",), model_ref)
    probs = softmax(d_logits.astype("float64"))
    table = _d_table(model)
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    for item, p, c in zip(inputs, probs, c_mean):
        k = int(p.argmax())
        row = {"file": item.file, "d": k, "class": table.label(k) if table else None, "p": round(float(p[k]), 6),
               "d_probs": [round(float(v), 6) for v in p], "c": [round(float(v), 6) for v in c],
               "converted": item.converted}
        if item.cell is not None:
            row["cell"] = list(item.cell)
        rows.append(row)
        labels.append(item.label)
    if as_json:
        typer.echo(json.dumps({"model": _model_label(model_ref, model), "provider": used["encoder"], "images": rows}))
        return
    if table is None:
        _note(f"{model.bundle} has no d -> class table: `lgen evaluate` writes one, to name each d's class here")
    width = max(len("file"), *(len(label) for label in labels))
    names = [r["class"] or "?" for r in rows]
    name_width = max(len("class"), *(len(name) for name in names)) if table else 0
    name_head = f"  {'class':<{name_width}}" if table else ""
    c_head = "  ".join(f"{'c' + str(i + 1):>7}" for i in range(model.c_dim))
    typer.echo(f"{'file':<{width}}  {'d':>3}{name_head}  {'p(d)':>6}  {c_head}  {'top-3 of p(d)':<26}  converted")
    for label, name, r in zip(labels, names, rows):
        top = sorted(range(len(r["d_probs"])), key=lambda i: -r["d_probs"][i])[:3]
        dist = " ".join(f"{i}:{r['d_probs'][i]:.2f}" for i in top)
        cs = "  ".join(f"{v:>7.3f}" for v in r["c"])
        shown = f"  {name:<{name_width}}" if table else ""
        typer.echo(f"{label:<{width}}  {r['d']:>3}{shown}  {r['p']:>6.3f}  {cs}  {dist:<26}  {r['converted'] or '-'}")


# ---------------------------------------------------------------- interpolate


@app.command(short_help="Latent traversals: a c code, the d x c grid, or image to image.")
def interpolate(
    model_ref: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    vary: Optional[str] = typer.Option(None, "--vary", help="c1, c2, ...: traverse one continuous code from -1 to 1 "
                                                             "(rows = categories); d: the d x c grid"),
    from_image: Optional[Path] = typer.Option(None, "--from-image", help="Start image (encoded with S)"),
    to_image: Optional[Path] = typer.Option(None, "--to-image", help="End image (encoded with S)"),
    # The old spellings, hidden for one release: --from names a model in `lgen train`.
    from_old: Optional[Path] = typer.Option(None, "--from", hidden=True),
    to_old: Optional[Path] = typer.Option(None, "--to", hidden=True),
    steps: int = typer.Option(8, "--steps", help="Columns of a c traversal, rows of the d grid, images of "
                                                 "--from-image/--to-image"),
    rows: Optional[int] = typer.Option(None, "--rows", help="--vary cK: rows (the first N categories, or N z's with "
                                                            "--d); default every active category, or 4 with --d"),
    d: Optional[int] = typer.Option(None, "--d", help="--vary cK: one category, rows = different z"),
    class_name: Optional[str] = typer.Option(None, "--class", help="--vary cK: the d of this class (as "
                                                                    "`lgen sample --class`), rows = different z"),
    seed: int = typer.Option(0, "--seed", help="Seed of z (numpy)"),
    out: Path = typer.Option(Path("interpolation.png"), "--out", help="PNG to write"),
    as_json: bool = typer.Option(False, "--json", help="Print the codes of each cell as JSON"),
    provider: Optional[str] = typer.Option(None, "--provider", help="cpu or cuda (default: cuda when available)"),
    verbose: bool = typer.Option(False, "--verbose", help="Say which onnxruntime provider ran"),
) -> None:
    """Latent traversals: --vary cK (paper fig. 4), --vary d (fig. 3), or --from-image A.png --to-image B.png."""
    import numpy as np

    from lifelong_gen.images import save_grid
    from lifelong_gen.runtime import codes as rc

    from_image = renamed_option("--from", "--from-image", from_old, from_image)
    to_image = renamed_option("--to", "--to-image", to_old, to_image)
    by_images = _check_interpolate_flags(vary, from_image, to_image, steps, rows, out)
    model = _open(model_ref, provider)
    rc.check_category(d, model)
    d, chosen = _class_to_d(model, class_name, d)
    d_flag = "--class" if class_name is not None else "--d"
    rng = np.random.default_rng(seed)
    info: dict[str, Any] = {"class": chosen} if chosen else {}
    if by_images:
        if d is not None or rows is not None:
            raise LgenError(f"{d_flag if d is not None else '--rows'} applies to --vary, not to --from-image/--to-image")
        codes, ends = _path_between(model, from_image, to_image, steps, rng)
        columns, mode, which = steps, "images", ("encoder", "generator")
        info.update(ends)
    else:
        codes, columns, mode = _vary_codes(model, vary, steps, rows, d, d_flag, rng)
        which = ("generator",)
    images = model.sample(codes.z, codes.c, codes.d)  # [rows * columns, C, H, W]
    used = _report_provider(model, verbose, which, model_ref)
    _class_note(chosen)
    save_grid(images, out, columns=columns)
    if as_json:
        typer.echo(json.dumps({"model": _model_label(model_ref, model), "provider": used, "mode": mode, "seed": seed,
                               "out": str(out), "rows": len(codes) // columns, "columns": columns, **info,
                               "cells": codes.as_records(include_z=False)}))
    else:
        typer.echo(str(out))


def _vary_codes(model, vary: Optional[str], steps: int, rows: Optional[int], d: Optional[int], d_flag: str, rng):
    """The codes of `--vary d` (the d x c grid) or `--vary cK` (a traversal), with the grid's columns and mode."""
    from lifelong_gen.runtime import codes as rc

    if vary == "d":
        if d is not None:
            raise LgenError(f"{d_flag} fixes the category; --vary d shows all of them")
        return rc.category_grid_codes(model, rows if rows is not None else steps, rng), model.d_dim, "d"
    return _traversal(model, vary, steps, rows, d, rng), steps, vary


def _check_interpolate_flags(vary: Optional[str], from_image: Optional[Path], to_image: Optional[Path], steps: int,
                             rows: Optional[int], out: Path) -> bool:
    """The flag combinations interpolate accepts (one-line errors); True for --from-image/--to-image."""
    by_images = from_image is not None or to_image is not None
    if (vary is None) == (not by_images):
        raise LgenError("give either --vary c1|c2|...|d or --from-image A.png --to-image B.png")
    if by_images and (from_image is None or to_image is None):
        raise LgenError("--from-image and --to-image go together")
    if steps < 2:
        raise LgenError(f"--steps must be >= 2, got {steps}")
    if rows is not None and rows < 1:
        raise LgenError(f"--rows must be >= 1, got {rows}")
    _check_png_path(out, "--out")
    return by_images


def _path_between(model, from_image: Path, to_image: Path, steps: int, rng) -> tuple[Any, dict[str, Any]]:
    """--from-image/--to-image: the codes of the path between the two encoded images, and what to report of each end."""
    import numpy as np

    from lifelong_gen.runtime import read_encoder_inputs
    from lifelong_gen.runtime.codes import lerp_codes, softmax

    C, R, _ = model.image_shape
    pieces, notes, warnings = [], [], []
    for flag, path in (("--from-image", from_image), ("--to-image", to_image)):  # one image each: a grid is refused
        pixels, (end,), warned = read_encoder_inputs([path], C, R, split_grids=False, flag=flag)
        pieces.append(pixels)
        notes.append(end.converted)
        warnings += warned
    for warning in warnings:
        _note(f"warning: {warning}")
    d_logits, c_mean = model.encode(np.concatenate(pieces))  # [2, C, R, R] in
    probs = softmax(d_logits.astype(np.float64)).astype(np.float32)
    ends = {key: {"file": str(path), "d": int(p.argmax()), "p": round(float(p.max()), 6),
                  "c": [round(float(v), 6) for v in c], "converted": note}
            for key, path, p, c, note in zip(("from", "to"), (from_image, to_image), probs, c_mean, notes)}
    return lerp_codes(model, probs, c_mean, steps, rng), ends


def _traversal(model, vary: str, steps: int, rows: Optional[int], d: Optional[int], rng):
    """--vary cK: c_K from -1 to 1 along each row; rows are categories, or with --d one category, new z per row."""
    from lifelong_gen.runtime.codes import traversal_codes

    match = re.fullmatch(r"c(\d+)", vary)
    if match is None:
        choices = ", ".join([f"c{i + 1}" for i in range(model.c_dim)] + ["d"])
        raise LgenError(f"--vary must be one of {choices}, got {vary!r}")
    k = int(match[1])
    if not 1 <= k <= model.c_dim:
        have = ", ".join(f"c{i + 1}" for i in range(model.c_dim)) if model.c_dim else "none"
        raise LgenError(f"--vary {vary}: the model has {model.c_dim} continuous code(s) ({have})")
    if d is not None:
        categories = [d] * (rows if rows is not None else 4)
    else:
        n_rows = rows if rows is not None else model.d_dim  # every category: both domains' rows
        if n_rows > model.d_dim:
            raise LgenError(f"--rows {n_rows}: the model has {model.d_dim} categories")
        categories = list(range(n_rows))
    return traversal_codes(model, k - 1, steps, categories, rng, z_per_row=d is not None)
