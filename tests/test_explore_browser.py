"""`lgen explore` in a real browser: Debian's chromium, headless, drives the page.

No DevTools client library is needed: chromium takes a screenshot of the page
(`--headless --screenshot`), and a small in-page harness (tests/explore_harness.js, added to
the page by this test's handler only) does what a user does (picks a class by name, moves
the c1 slider 20 times) and posts what it saw back to the server. An image the harness adds,
answered only once the report is in, holds the page's load event, so the screenshot is taken
after the last move. Skipped where no chromium is installed (scripts/setup.sh installs it).
`LGEN_UPDATE_SCREENSHOT=1` copies the screenshot to docs/explore.png, which the docs show.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import threading

import pytest

from conftest import ROOT

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
HARNESS = ROOT / "tests" / "explore_harness.js"
SCREENSHOT = ROOT / "docs" / "explore.png"
MOVES_BUDGET_MS = 100  # a slider move, input event to the new image shown: median of 20

pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium installed (apt-get install chromium)")


def test_page_picks_a_class_by_name_and_a_slider_move_redraws_within_100_ms(tmp_path):
    from lifelong_gen.explore.server import Handler, make_server
    from lifelong_gen.explore.views import Explorer
    from lifelong_gen.runtime import load_model

    report: dict = {}
    arrived = threading.Event()

    class TestHandler(Handler):
        """The page with the harness added, the harness itself, the load-holding image, the report."""

        def do_GET(self):
            if self.path.startswith("/?"):
                page = self.static["/"][0].replace(b"</body>", b'<script src="/__test/harness.js"></script></body>')
                self.send_bytes(200, page, "text/html; charset=utf-8")
            elif self.path == "/__test/harness.js":
                self.send_bytes(200, HARNESS.read_bytes(), "text/javascript")
            elif self.path == "/__test/hold":
                arrived.wait(90)
                self.send_bytes(200, self.static["/"][0][:0], "image/png")
            else:
                super().do_GET()

        def do_POST(self):
            if self.path == "/__test/report":
                report.update(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                arrived.set()
                self.send_bytes(204, b"", "text/plain")
            else:
                super().do_POST()

    explorer = Explorer(load_model("mnist-fashion", provider="cpu"), "mnist-fashion")
    server = make_server(explorer, "127.0.0.1", 0, handler=TestHandler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    shot = tmp_path / "explore.png"
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/?class=Ankle%20boot"
        r = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,640",
                            f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    assert arrived.is_set(), f"the page never reported: {r.stderr[-2000:]}"
    assert report["errors"] == [] and report["status"] == "", report
    expected_d = explorer.table.resolve("ankle boot").d
    assert report["picked"] == {**report["picked"], "d": expected_d, "generated": expected_d}
    moves = report["moves"]
    assert len(moves) == 20 and all(m["d"] == expected_d for m in moves)
    assert [m["c1"] for m in moves] == [round(-2 + 4 * i / 19, 2) for i in range(20)]
    assert moves[-1]["hash"] != report["picked"]["hash"] and len({m["hash"] for m in moves}) > 10  # the image changed
    median = statistics.median(m["ms"] for m in moves)
    print(f"slider move round trip in chromium: median {median:.1f} ms of 20, max {max(m['ms'] for m in moves):.1f} ms")
    assert median <= MOVES_BUDGET_MS, moves
    assert shot.is_file() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    if os.environ.get("LGEN_UPDATE_SCREENSHOT") == "1":  # the docs' picture, renewed on request only
        shutil.copyfile(shot, SCREENSHOT)
