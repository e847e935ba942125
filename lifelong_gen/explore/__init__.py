"""`lgen explore`: a local page to move a model's codes and watch the image change. Torch-free.

The package holds the explorer's three parts: params.py (each request parameter, checked),
views.py (the model's facts and the PNGs the page shows, through lifelong_gen.runtime) and
server.py (the standard library's HTTP server, the page's static files from static/).

Why a server on the standard library with onnxruntime generating on it, and not the
generator running in the browser (onnxruntime-web), measured on 2 CPU cores with the embedded
model (benchmarks/explore.py, recorded in benchmarks/explore.json):
- speed: one 28x28 image costs about MEASURED_MS ms on the server (G plus the PNG); a slider
  move's whole round trip in headless chromium is about MEASURED_RT ms (median of 20 moves,
  tests/test_explore_browser.py), well inside the 100 ms a slider needs;
- size: the page is three small text files (about PAGE_KB kB); onnxruntime-web's WebAssembly
  runtime alone is over 10 MB, beyond the 2 MB the wheel may grow, and the page would also
  need the ONNX files served to it;
- one runtime: images, grids and encodings come from the same onnxruntime sessions, checks
  and d -> class table as `lgen sample | encode | interpolate`, so the page shows what the
  commands write. The cost: the page needs the server; a static export (e.g. for a Hugging
  Face Space) is not offered.
"""
