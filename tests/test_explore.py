"""`lgen explore`'s server: every endpoint, every refused request, the command line, torch-free.

The server runs in this process on a free port, serving the embedded model (no training);
requests go through http.client so that a path reaches the server exactly as written
(`/../`, `%2e%2e` and `//` are not normalised away by a client). Every refusal is a 4xx whose
body is one line and no traceback.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, lgen


@pytest.fixture(scope="module")
def served():
    from lifelong_gen.explore.server import make_server
    from lifelong_gen.explore.views import Explorer
    from lifelong_gen.runtime import load_model

    explorer = Explorer(load_model("mnist-fashion", provider="cpu"), "mnist-fashion")
    server = make_server(explorer, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield explorer, server.server_address[1]
    server.shutdown()
    server.server_close()


def call(port: int, path: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one request, the path sent byte for byte."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None and "Content-Length" not in (headers or {}):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def png_of(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


# ---------------------------------------------------------------- what is served


@pytest.mark.parametrize("path,kind", [("/", "text/html"), ("/static/index.html", "text/html"),
                                       ("/static/explore.js", "text/javascript"), ("/static/explore.css", "text/css")])
def test_the_page_and_its_static_files_are_served(served, path, kind):
    status, headers, body = call(served[1], path)
    assert status == 200 and headers["Content-Type"].startswith(kind) and body
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_model_facts_name_the_classes_by_domain_and_carry_the_card(served):
    explorer, port = served
    status, _, body = call(port, "/api/model")
    facts = json.loads(body)
    assert status == 200 and (facts["d_dim"], facts["c_dim"], facts["z_dim"]) == (20, 2, 62)
    assert [g["domain"] for g in facts["classes"]] == ["mnist", "fashion-mnist"]
    names = {e["name"]: e["d"] for g in facts["classes"] for e in g["entries"]}
    assert names["Ankle boot"] == explorer.table.resolve("ankle boot").d and "7" in names
    assert sorted(e["d"] for g in facts["classes"] for e in g["entries"]) == list(range(20))
    assert [(d["name"], d["d"]) for d in facts["domains"]] == [("mnist", [0, 9]), ("fashion-mnist", [10, 19])]
    assert facts["lineage"] == [] and any("FID" in name for name, _ in facts["metrics"])


def test_an_image_is_what_lgen_sample_draws_with_the_same_codes(served):
    """z is the seed's first draw, as `lgen sample --seed S --n 1 --d D --c1 A --c2 B` draws it."""
    from lifelong_gen.images import to_uint8
    from lifelong_gen.runtime.codes import random_codes

    explorer, port = served
    status, headers, body = call(port, "/api/image?d=13&c=0.5,-1.25&seed=7")
    assert status == 200 and headers["Content-Type"] == "image/png"
    image = png_of(body)
    codes = random_codes(explorer.model, 1, np.random.default_rng(7), d=13, fixed_c={0: 0.5, 1: -1.25})
    expected = to_uint8(explorer.model.sample(codes.z, codes.c, codes.d))[0, ..., 0]  # [28, 28]
    assert image.size == (28, 28) and np.array_equal(np.asarray(image), expected)
    record = json.loads(image.info["lgen-codes"])
    assert record["cells"] == [{"d": 13, "c": [0.5, -1.25]}] and record["seed"] == 7
    assert record["z"] == [round(float(v), 6) for v in codes.z[0]]
    assert json.loads(headers["X-Lgen-Codes"])["d"] == [13]
    assert call(port, "/api/image?d=13&c=0.5,-1.25&seed=7")[2] == body  # the same codes, the same bytes
    assert call(port, "/api/image?d=13&c=0.5,1.25&seed=7")[2] != body


def test_a_class_name_picks_its_purest_d(served):
    explorer, port = served
    status, headers, body = call(port, "/api/image?d_class=ankle%20boot&seed=1")
    assert status == 200 and json.loads(headers["X-Lgen-Codes"])["d"] == [explorer.table.resolve("ankle boot").d]


def test_the_grid_is_d_by_c_and_lgen_encode_can_cut_it(served):
    from lifelong_gen.images import grid_layout

    _, port = served
    status, headers, body = call(port, "/api/grid?vary=2&steps=5&c=1,0&seed=3")
    image = png_of(body)
    layout = grid_layout(image)
    assert status == 200 and (layout["rows"], layout["cols"], layout["n"]) == (5, 20, 100)
    cells = json.loads(image.info["lgen-codes"])["cells"]
    assert [cell["d"] for cell in cells[:20]] == list(range(20))
    assert [cell["c"] for cell in cells[::20]] == [[1.0, v] for v in (-3.0, -1.5, 0.0, 1.5, 3.0)]


def test_a_strip_crosses_domains_between_two_classes(served):
    _, port = served
    status, headers, body = call(port, "/api/strip?from_class=3&to_class=bag&steps=6&seed=2")
    codes = json.loads(headers["X-Lgen-Codes"])
    cells = json.loads(png_of(body).info["lgen-codes"])["cells"]
    assert status == 200 and codes["columns"] == 6 and codes["d"][0] < 10 <= codes["d"][-1]
    assert "d_probs" in cells[2]  # inside the strip d is a mixture of the two classes


def test_a_strip_between_two_uploaded_images_encodes_both(served):
    _, port = served
    a = call(port, "/api/image?d=1&seed=4")[2]
    b = call(port, "/api/image?d=15&seed=5")[2]
    status, headers, body = call(port, f"/api/upload-strip?split={len(a)}&steps=4", "POST", a + b)
    codes = json.loads(headers["X-Lgen-Codes"])
    assert status == 200 and png_of(body).size == (4 * 30 + 2, 32) and len(codes["ends"]) == 2
    assert codes["d"][0] < 10 <= codes["d"][-1]  # S reads a digit, then a garment


# ---------------------------------------------------------------- what is refused


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb's header): its data is empty."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


REFUSED = [
    # path traversal and files outside static/: never served
    ("/../pyproject.toml", 404), ("/static/../views.py", 404), ("/static/%2e%2e/views.py", 404),
    ("/static/%2E%2E%2Fserver.py", 404), ("/%2e%2e/%2e%2e/etc/passwd", 404), ("//etc/passwd", 404),
    ("/etc/passwd", 404), ("/static//etc/passwd", 404), ("/static/", 404), ("/static/params.py", 404),
    ("/static/../../../../../../etc/passwd", 404), ("/api/nothing", 404),
    # continuous codes: finite, in range, one per c
    ("/api/image?d=0&c=5,0", 400), ("/api/image?d=0&c=-3.01,0", 400), ("/api/image?d=0&c=nan,0", 400),
    ("/api/image?d=0&c=inf,0", 400), ("/api/image?d=0&c=0,-Infinity", 400), ("/api/image?d=0&c=1e999,0", 400),
    ("/api/image?d=0&c=1", 400), ("/api/image?d=0&c=1,2,3", 400), ("/api/image?d=0&c=a,b", 400),
    # categories: an existing d, or a class the table names
    ("/api/image?d=20", 400), ("/api/image?d=-1", 400), ("/api/image?d=x", 400), ("/api/image?d=1.5", 400),
    ("/api/image", 400), ("/api/image?d=1&d=2", 400), ("/api/image?d=1&d_class=7", 400),
    ("/api/image?d_class=zebra", 400), ("/api/strip?from_class=7&to_class=unicorn", 400),
    ("/api/strip?from=0", 400), ("/api/image?d=" + "1" * 500, 400),
    # seeds, steps, which c
    ("/api/image?d=0&seed=-1", 400), ("/api/image?d=0&seed=4294967296", 400), ("/api/image?d=0&seed=1.5", 400),
    ("/api/image?d=0&seed=abc", 400), ("/api/grid?steps=1", 400), ("/api/grid?steps=17", 400),
    ("/api/grid?vary=0", 400), ("/api/grid?vary=3", 400), ("/api/strip?from=0&to=1&steps=99", 400),
    ("/api/image?" + "&".join(f"x{i}=1" for i in range(30)), 400),
    ("/api/image?d=0&seeed=3", 400), ("/api/grid?d=0", 400),
]


@pytest.mark.parametrize("path,status", REFUSED)
def test_a_bad_request_is_a_4xx_with_one_line(served, path, status):
    got, headers, body = call(served[1], path)
    text = body.decode()
    assert got == status, text
    assert headers["Content-Type"].startswith("text/plain") and text.count("\n") == 1 and "Traceback" not in text


UPLOADS = [
    ("not an image", lambda png: (b"hello, not an image" * 10, 50), 400, "not an image"),
    ("a text file as the second", lambda png: (png + b"plain text", len(png)), 400, "second upload"),
    ("a bomb's header", lambda png: (png + png_header_only(10_000, 10_000), len(png)), 400, "over the limit"),
    ("a truncated PNG", lambda png: (png + png[: len(png) // 2], len(png)), 400, "second upload"),
    ("no split", lambda png: (png + png, None), 400, "split is required"),
    ("split out of range", lambda png: (png + png, 0), 400, "out of range"),
]


@pytest.mark.parametrize("case,make,status,message", UPLOADS, ids=[u[0] for u in UPLOADS])
def test_a_bad_upload_is_a_4xx_with_one_line(served, case, make, status, message):
    png = call(served[1], "/api/image?d=0")[2]
    body, split = make(png)
    query = "" if split is None else f"?split={split}"
    got, _, text = call(served[1], f"/api/upload-strip{query}", "POST", body)
    assert got == status and message in text.decode() and text.decode().count("\n") == 1, text


def test_an_oversize_upload_is_refused_before_it_is_read(served):
    from lifelong_gen.explore.views import MAX_UPLOAD_BYTES

    got, _, text = call(served[1], "/api/upload-strip?split=1", "POST", b"",
                        headers={"Content-Length": str(MAX_UPLOAD_BYTES + 1)})
    assert got == 413 and b"over the limit" in text


def test_post_elsewhere_is_refused(served):
    assert call(served[1], "/api/image?d=0", "POST", b"x")[0] == 405
    assert call(served[1], "/", "POST", b"x")[0] == 405


# ---------------------------------------------------------------- the command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args: str, env: dict | None = None, preexec_fn=None) -> tuple[subprocess.Popen, int]:
    """`lgen explore ARGS` in a fresh interpreter; its port, read from the address it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "lifelong_gen.cli", "explore", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            preexec_fn=preexec_fn)
    line = proc.stdout.readline()
    assert line.startswith("http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, int(line.strip().rstrip("/").rpartition(":")[2])


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    finally:
        proc.kill()
    return proc.returncode, proc.stderr.read()


def test_explore_serves_torch_free_and_ctrl_c_stops_it_cleanly(no_torch):
    proc, port = start("--port", "0", env=no_torch)
    status, _, body = call(port, "/api/image?d_class=sneaker&c=1,1&seed=3")
    assert status == 200 and png_of(body).size == (28, 28)
    code, err = stop(proc)
    assert code == 0 and "lgen: stopped" in err and "Traceback" not in err, err


def test_ctrl_c_stops_it_even_when_started_with_sigint_ignored():
    """A shell's background job (`lgen explore &`, nohup) starts with SIGINT ignored; Ctrl-C or
    kill -INT must still stop the server."""
    proc, _ = start("--port", "0", preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    code, err = stop(proc)
    assert code == 0 and "lgen: stopped" in err, err


def test_explore_says_when_it_is_open_beyond_this_machine():
    proc, port = start("--host", "0.0.0.0", "--port", "0")
    assert call(port, "/api/model")[0] == 200
    code, err = stop(proc)
    assert code == 0 and "--host 0.0.0.0: the page is open to every machine" in err, err


def test_explore_imports_no_torch_side_module():
    """Where torch is installed (this venv), the command's modules still leave it unimported."""
    script = ("import sys; import lifelong_gen.cli, lifelong_gen.explore.server, lifelong_gen.explore.views; "
              "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'safetensors') "
              "or m.startswith(('lifelong_gen.train', 'lifelong_gen.eval'))]; print(bad)")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


@pytest.mark.parametrize("args,message", [
    (["--model", "/nonexistent/model"], "/nonexistent/model"),
    (["--port", "70000"], "--port must be in 0..65535"),
    (["--host", "no-such-host.invalid", "--port", "0"], "cannot serve on no-such-host.invalid"),
])
def test_bad_command_lines_are_one_line_and_exit_2(args, message):
    r = lgen("explore", *args, timeout=60)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1 and not r.stdout, r.stderr


def test_a_port_in_use_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = lgen("explore", "--port", str(port), timeout=60)
    assert r.returncode == 2 and f"127.0.0.1:{port}: in use" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_the_wheel_ships_the_page():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    static = ROOT / "lifelong_gen" / "explore" / "static"
    shipped = {p.name for pattern in data["lifelong_gen.explore"] for p in static.glob(pattern.split("/", 1)[1])}
    assert shipped == {p.name for p in static.iterdir()} == {"index.html", "explore.js", "explore.css"}


def test_help_lists_the_options():
    r = lgen("explore", "--help", timeout=60)
    assert r.returncode == 0 and all(flag in r.stdout for flag in ("--model", "--port", "--host"))


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_continued_three_domain_model_is_explored_torch_free(no_torch, grown_embedded):
    """The embedded model taught a third domain (one step: the cheapest continued model), exported, served."""
    child = grown_embedded
    proc, port = start("--model", str(child), "--port", "0", env=no_torch)
    try:
        facts = json.loads(call(port, "/api/model")[2])
        assert facts["d_dim"] == 30 and [d["d"] for d in facts["domains"]] == [[0, 9], [10, 19], [20, 29]]
        assert [d["learned_by"] for d in facts["domains"]] == ["mnist-fashion", "mnist-fashion", "this model"]
        assert facts["lineage"][0]["model"] == "mnist-fashion"
        assert sorted(e["d"] for g in facts["classes"] for e in g["entries"]) == list(range(30))
        status, headers, _ = call(port, "/api/strip?from=3&to=29&steps=4")  # from the first domain to the third
        assert status == 200 and json.loads(headers["X-Lgen-Codes"])["d"][-1] == 29
        assert call(port, "/api/image?d=30")[0] == 400
    finally:
        code, err = stop(proc)
    assert code == 0, err
