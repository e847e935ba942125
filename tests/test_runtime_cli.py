"""`lgen sample | encode | interpolate` in an interpreter where torch cannot be imported.

Every command runs in a fresh subprocess whose sitecustomize makes torch, onnx,
safetensors and the torch-side lifelong_gen modules unimportable, so a stray import
anywhere on these paths fails the test. Also the runtime's library helpers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import lgen
from lifelong_gen import images, runtime
from lifelong_gen.bundle import ENCODER_ONNX, GENERATOR_ONNX
from lifelong_gen.errors import LgenError
from lifelong_gen.runtime import sessions
from tiny_onnx import torch_free_env

Z_DIM, C_DIM, D_DIM = 8, 2, 10  # the TINY model of tiny_onnx.py



def run(env, *args):
    return lgen(*map(str, args), env=env, timeout=120)


def png(path):
    with Image.open(path) as im:
        return im.size, im.mode


def test_environment_really_blocks_torch(no_torch):
    # Guards the other tests: in this environment importing torch must fail, the runtime must not.
    code = ("import importlib\n"
            "for m in ('torch', 'onnx', 'safetensors', 'lifelong_gen.train.networks'):\n"
            "    try:\n        importlib.import_module(m)\n        print('imported', m)\n"
            "    except ImportError:\n        pass\n"
            "import lifelong_gen.cli, lifelong_gen.runtime\nprint('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **no_torch})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


@pytest.mark.parametrize("command", ["sample", "encode", "interpolate", "export"])
def test_help(no_torch, command):
    r = run(no_torch, command, "--help")
    assert r.returncode == 0, r.stderr
    assert ("BUNDLE" if command == "export" else "--model") in r.stdout


def test_sample_grid_singles_and_json(bundle, no_torch, tmp_path):
    out, singles = tmp_path / "grid.png", tmp_path / "singles"
    r = run(no_torch, "sample", "--model", bundle, "--n", 10, "--d", 3, "--c1", 0.5, "--seed", 1, "--out", out,
            "--out-dir", singles, "--json", "--verbose")
    assert r.returncode == 0, r.stderr
    assert "CPUExecutionProvider" in r.stderr  # --verbose names the provider (on stderr)
    data = json.loads(r.stdout)
    assert set(data) == {"model", "provider", "seed", "n", "out", "samples"}
    assert data["provider"] == "CPUExecutionProvider" and data["n"] == 10 and len(data["samples"]) == 10
    for i, s in enumerate(data["samples"]):
        assert set(s) == {"d", "c", "z", "file"}
        assert s["d"] == 3 and s["c"][0] == 0.5 and len(s["c"]) == C_DIM and len(s["z"]) == Z_DIM
        assert s["file"] == str(singles / f"sample-{i:04d}.png") and png(s["file"]) == ((28, 28), "L")
    assert len({s["c"][1] for s in data["samples"]}) == 10  # c2 random per sample
    # 10 images -> 4 columns x 3 rows of 28 px with 2 px borders.
    assert png(out) == ((4 * 30 + 2, 3 * 30 + 2), "L")
    # Same seed, same codes: z does not depend on which codes are pinned.
    again = json.loads(run(no_torch, "sample", "--model", bundle, "--n", 10, "--seed", 1, "--out", tmp_path / "b.png",
                           "--json").stdout)
    assert [s["z"] for s in again["samples"]] == [s["z"] for s in data["samples"]]
    assert {s["d"] for s in again["samples"]} != {3}  # uniform d when not fixed


def test_encode_recovers_d_of_generated_images(bundle, no_torch, tmp_path):
    singles = tmp_path / "singles"
    r = run(no_torch, "sample", "--model", bundle, "--n", 20, "--seed", 3, "--out", tmp_path / "g.png",
            "--out-dir", singles, "--json")
    truth = [s["d"] for s in json.loads(r.stdout)["samples"]]
    files = [singles / f"sample-{i:04d}.png" for i in range(20)]
    r = run(no_torch, "encode", *files, "--model", bundle, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == {"model", "provider", "images"} and len(data["images"]) == 20
    for item, f in zip(data["images"], files):
        assert set(item) == {"file", "d", "class", "p", "d_probs", "c", "converted"}
        assert item["class"] is None  # this bundle has no d -> class table (test_d_classes.py has one)
        assert item["file"] == str(f) and item["converted"] is None
        assert len(item["d_probs"]) == D_DIM and abs(sum(item["d_probs"]) - 1) < 1e-4
        assert item["d"] == int(np.argmax(item["d_probs"])) and item["p"] == max(item["d_probs"])
        assert len(item["c"]) == C_DIM
    recovered = sum(item["d"] == d for item, d in zip(data["images"], truth))
    assert recovered >= 17, (recovered, truth)  # PNG quantisation may flip a rare borderline sample

    # The table: a header and one row per image.
    table = run(no_torch, "encode", *files[:3], "--model", bundle)
    assert table.returncode == 0 and len(table.stdout.strip().splitlines()) == 4


def test_encode_converts_other_images(bundle, no_torch, tmp_path):
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90, 4), dtype=np.uint8)).save(rgba)
    jpeg = tmp_path / "rgb.jpg"
    Image.new("RGB", (28, 28), (200, 10, 10)).save(jpeg)
    r = run(no_torch, "encode", rgba, jpeg, "--model", bundle, "--json")
    assert r.returncode == 0, r.stderr
    notes = [i["converted"] for i in json.loads(r.stdout)["images"]]
    assert "alpha" in notes[0] and "centre crop 60x60" in notes[0] and "-> 28x28" in notes[0]
    assert notes[1] == "grey from RGB"


def test_interpolate_modes(bundle, no_torch, tmp_path):
    cases = {
        "c1": (["--vary", "c1", "--steps", 7], (7, 10)),  # columns = steps, rows = all 10 categories
        "c2_d": (["--vary", "c2", "--d", 4, "--rows", 3, "--steps", 5], (5, 3)),  # one category, 3 z's
        "d": (["--vary", "d", "--steps", 4], (10, 4)),  # columns = categories, rows = c values
    }
    for name, (args, (cols, rows)) in cases.items():
        out = tmp_path / f"{name}.png"
        r = run(no_torch, "interpolate", "--model", bundle, *args, "--out", out, "--json")
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        assert (data["columns"], data["rows"], len(data["cells"])) == (cols, rows, cols * rows)
        assert png(out) == ((cols * 30 + 2, rows * 30 + 2), "L")
    cells = json.loads(run(no_torch, "interpolate", "--model", bundle, "--vary", "c1", "--steps", 3, "--out",
                           tmp_path / "x.png", "--json").stdout)["cells"]
    assert [c["c"] for c in cells[:3]] == [[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]] and cells[0]["d"] == 0

    # --from-image/--to-image: encode both ends, interpolate (p(d), c) with one z.
    ends = tmp_path / "ends"
    run(no_torch, "sample", "--model", bundle, "--n", 2, "--d", 1, "--out", tmp_path / "e.png", "--out-dir", ends)
    out = tmp_path / "ab.png"
    r = run(no_torch, "interpolate", "--model", bundle, "--from-image", ends / "sample-0000.png", "--to-image",
            ends / "sample-0001.png", "--steps", 6, "--out", out, "--json", "--verbose")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["from"]["d"] == 1 and data["rows"] == 1 and len(data["cells"]) == 6
    assert data["cells"][0]["c"] == pytest.approx(data["from"]["c"], abs=1e-5)
    assert data["cells"][-1]["c"] == pytest.approx(data["to"]["c"], abs=1e-5)
    assert png(out) == ((6 * 30 + 2, 32), "L")
    assert "encoder ran on" in r.stderr and "generator ran on" in r.stderr


BAD = [
    (["sample", "--d", 10], "--d 10 is out of range"),
    (["sample", "--d", -1], "--d -1 is out of range"),
    (["sample", "--c3", 1.0], "--c3: the model has 2 continuous code(s)"),
    (["sample", "--c1", "abc"], "is not a number"),
    (["sample", "--n", 0], "--n must be >= 1"),
    (["sample", "--provider", "tpu"], "--provider must be one of"),
    (["encode", "{tmp}/missing.png"], "no such file"),
    (["encode", "{tmp}/text.png"], "is not an image"),
    (["interpolate", "--vary", "c3"], "--vary c3: the model has 2 continuous code(s)"),
    (["interpolate", "--vary", "x"], "--vary must be one of c1, c2, d"),
    (["interpolate"], "give either --vary"),
    (["interpolate", "--from-image", "{tmp}/missing.png", "--to-image", "{tmp}/text.png"], "no such file"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(map(str, a)) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(bundle, no_torch, tmp_path, args, message):
    (tmp_path / "text.png").write_text("not an image\n")
    out, out_dir = tmp_path / "out.png", tmp_path / "singles"
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    extra = {"sample": ["--out", out, "--out-dir", out_dir], "interpolate": ["--out", out], "encode": []}[args[0]]
    r = run(no_torch, *args, "--model", bundle, *extra)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lgen: error: ") and message in lines[0], r.stderr
    assert r.stdout == ""
    assert not out.exists() and not out_dir.exists()


def test_model_directory_errors(bundle, no_torch, tmp_path):
    out = tmp_path / "s.png"
    r = run(no_torch, "sample", "--model", tmp_path / "nope", "--out", out)
    assert r.returncode == 2 and r.stderr.strip() == (f"lgen: error: '{tmp_path / 'nope'}' is neither a directory nor "
                                                      f"a Hub repo id of the form ORG/NAME[@REV]")
    unexported = tmp_path / "unexported"
    unexported.mkdir()
    (unexported / "config.json").write_text((bundle / "config.json").read_text())
    r = run(no_torch, "sample", "--model", unexported, "--out", out)
    assert r.returncode == 2 and r.stderr.strip() == (f"lgen: error: {unexported} has no {GENERATOR_ONNX}, "
                                                      f"{ENCODER_ONNX}: run `lgen export {unexported}` first")
    assert not out.exists()


def test_missing_onnxruntime_names_the_extra(bundle, tmp_path_factory, tmp_path):
    env = torch_free_env(tmp_path_factory, block=("torch", "onnxruntime"))
    r = run(env, "sample", "--model", bundle, "--out", tmp_path / "s.png")
    assert r.returncode == 2 and r.stderr.strip() == (
        "lgen: error: onnxruntime is not installed: pip install 'lifelong-gen[cpu]' "
        "(or pip install 'lifelong-gen[gpu]' for CUDA)")


# ---------------------------------------------------------------- the library side (in-process)


def test_provider_choice():
    cpu, cuda = "CPUExecutionProvider", "CUDAExecutionProvider"
    assert sessions.choose_providers(None, [cpu]) == [cpu]
    assert sessions.choose_providers(None, [cuda, cpu]) == [cuda, cpu]
    assert sessions.choose_providers("cpu", [cuda, cpu]) == [cpu]
    with pytest.raises(LgenError, match="lifelong-gen\\[gpu\\]"):
        sessions.choose_providers("cuda", [cpu])


def test_sessions_cached_and_inputs_checked(bundle):
    a, b = runtime.load_model(bundle, provider="cpu"), runtime.load_model(bundle, provider="cpu")
    assert a.generator is b.generator and a.encoder is b.encoder
    with pytest.raises(LgenError, match=r"z must be \[N, 8\]"):
        a.sample(np.zeros((2, 5)), np.zeros((2, 2)), np.zeros((2, 10)))
    with pytest.raises(LgenError, match=r"images must be \[N, 1, 28, 28\]"):
        a.encode(np.zeros((2, 3, 28, 28)))


def test_preprocess_and_grid():
    grey16 = Image.fromarray((np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50))  # "I;16"
    arr, note = images.preprocess(grey16, 3, 28)
    assert arr.shape == (3, 28, 28) and arr.dtype == np.float32 and -1 <= arr.min() <= arr.max() <= 1
    assert "scaled to 8 bits" in note and "centre crop 30x30" in note
    same, note = images.preprocess(Image.new("L", (28, 28), 255), 1, 28)
    assert note is None and np.all(same == 1.0)
    tiles = np.stack([np.full((3, 4, 4), v, np.float32) for v in (-1.0, 0.0, 1.0)])
    grid = images.make_grid(tiles, columns=2, padding=1)
    assert grid.shape == (2 * 5 + 1, 2 * 5 + 1, 3)
    assert grid[1, 1, 0] == 0 and grid[1, 6, 0] == 128 and grid[6, 1, 0] == 255 and grid[0, 0, 0] == 0


# ---------------------------------------------------------------- grids, odd shapes, write errors


def test_sample_grid_records_its_layout_and_encode_cuts_it_into_its_images(bundle, no_torch, tmp_path):
    grid, singles = tmp_path / "grid.png", tmp_path / "singles"
    r = run(no_torch, "sample", "--model", bundle, "--n", 10, "--seed", 2, "--out", grid, "--out-dir", singles)
    assert r.returncode == 0, r.stderr
    with Image.open(grid) as im:
        layout = json.loads(im.info["lgen-grid"])
    assert layout == {"rows": 3, "cols": 4, "n": 10, "cell": [28, 28], "padding": 2}
    r = run(no_torch, "encode", grid, "--model", bundle, "--json")
    assert r.returncode == 0, r.stderr
    cells = json.loads(r.stdout)["images"]
    assert [c["cell"] for c in cells] == [[i // 4, i % 4] for i in range(10)]  # the 2 empty cells are skipped
    assert all(c["file"] == str(grid) and c["converted"] is None for c in cells)
    assert f"lgen: {grid} is a grid written by lgen: encoding each of its 10 images as {grid}[row,column]" \
        in r.stderr.splitlines()
    # Each cell holds exactly the pixels of the matching single image: the same codes come out.
    files = [singles / f"sample-{i:04d}.png" for i in range(10)]
    alone = json.loads(run(no_torch, "encode", *files, "--model", bundle, "--json").stdout)["images"]
    assert [(c["d"], c["c"]) for c in cells] == [(a["d"], a["c"]) for a in alone]
    table = run(no_torch, "encode", grid, "--model", bundle).stdout.splitlines()
    assert len(table) == 11 and table[1].startswith(f"{grid}[0,0] ") and table[10].startswith(f"{grid}[2,1] ")
    # --from-image/--to-image want one image each: a grid is refused in one line naming the file.
    r = run(no_torch, "interpolate", "--model", bundle, "--from-image", grid, "--to-image", files[0], "--out", tmp_path / "i.png")
    assert r.returncode == 2 and r.stderr.strip() == (
        f"lgen: error: --from-image {grid} is a grid of 10 images written by lgen (3x4): give one image "
        f"(e.g. one of `lgen sample --out-dir`'s)")
    assert not (tmp_path / "i.png").exists()


def test_encode_reads_a_grid_whose_layout_no_longer_fits_as_one_image(bundle, no_torch, tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("lgen-grid", json.dumps({"rows": 3, "cols": 4, "n": 10, "cell": [28, 28], "padding": 2}))
    edited = tmp_path / "edited.png"
    Image.new("L", (60, 60)).save(edited, pnginfo=info)  # resized by a tool that kept the chunk
    r = run(no_torch, "encode", edited, "--model", bundle, "--json")
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)["images"]
    assert "cell" not in row and row["file"] == str(edited)
    assert (f"lgen: warning: {edited} is not read as a grid: its lgen-grid chunk describes a 122x92 grid, "
            f"not 60x60") in r.stderr.splitlines()


def test_images_far_from_the_model_shape_are_warned_about(bundle, no_torch, tmp_path):
    wide, tall, big, fine = (tmp_path / n for n in ("wide.png", "tall.png", "big.png", "fine.png"))
    Image.new("L", (90, 28)).save(wide)
    Image.new("L", (28, 60)).save(tall)
    Image.new("L", (8 * 28 + 1, 8 * 28 + 1)).save(big)
    Image.new("L", (40, 28)).save(fine)  # aspect 1.43 and under 8x: no warning
    r = run(no_torch, "encode", wide, tall, big, fine, "--model", bundle, "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["images"]) == 4
    warnings = [line for line in r.stderr.splitlines() if line.startswith("lgen: warning:")]
    assert warnings == [
        f"lgen: warning: {wide} is 90x28 (aspect 3.21), far from the model's square 28x28: only its centre 28x28 "
        f"is encoded",
        f"lgen: warning: {tall} is 28x60 (aspect 0.47), far from the model's square 28x28: only its centre 28x28 "
        f"is encoded",
        f"lgen: warning: {big} is 225x225, over 8x the model's 28x28: it is shrunk whole, so several objects in it "
        f"(a grid, a page) read as one image",
    ], r.stderr
    r = run(no_torch, "interpolate", "--model", bundle, "--from-image", wide, "--to-image", fine, "--out", tmp_path / "i.png")
    assert r.returncode == 0 and f"lgen: warning: {wide} is 90x28" in r.stderr, r.stderr


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where no file can be created")
def test_a_failed_write_names_the_file_given_not_its_temp_file(bundle, no_torch):
    r = run(no_torch, "sample", "--model", bundle, "--n", 2, "--out", "/proc/lgen-test.png")
    assert r.returncode == 2 and r.stderr.strip() == (
        "lgen: error: cannot write /proc/lgen-test.png: No such file or directory"), r.stderr


def test_export_without_onnxruntime_stops_before_any_work(bundle, tmp_path_factory, tmp_path):
    from tiny_onnx import copy_bundle

    target = copy_bundle(bundle, tmp_path / "b", with_onnx=False)
    before = sorted((p.relative_to(target).as_posix(), p.read_bytes()) for p in target.rglob("*") if p.is_file())
    env = torch_free_env(tmp_path_factory, block=("onnxruntime",))  # torch and onnx stay importable
    r = run(env, "export", target)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == ("lgen: error: lgen export needs onnxruntime for its parity check, which is not "
                                "installed: pip install 'lifelong-gen[cpu]' (or pip install 'lifelong-gen[gpu]' "
                                "for CUDA; not both)"), r.stderr
    assert not (target / "onnx").exists()
    assert sorted((p.relative_to(target).as_posix(), p.read_bytes()) for p in target.rglob("*") if p.is_file()) \
        == before


def test_an_error_with_the_embedded_default_model_is_one_line(tmp_path):
    # The "no --model given" note comes after the work, so a bad flag's error stays alone.
    r = lgen("sample", "--d", "999", "--out", str(tmp_path / "s.png"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert "--d 999 is out of range" in r.stderr and not (tmp_path / "s.png").exists()
    ok = lgen("sample", "--n", "2", "--out", str(tmp_path / "ok.png"))
    assert ok.returncode == 0 and "no --model given: used the embedded default model" in ok.stderr, ok.stderr
