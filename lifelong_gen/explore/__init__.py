"""`lgen explore`: a local page to move a model's codes and watch the image change. Torch-free.

The package holds the explorer's three parts: params.py (each request parameter, checked),
views.py (the model's facts and the PNGs the page shows, through lifelong_gen.runtime) and
server.py (the standard library's HTTP server, the page's static files from static/).

Why a server on the standard library with onnxruntime generating on it, and not the
generator running in the browser (onnxruntime-web), measured on 2 shared CPU cores (AMD EPYC,
load average 3.4) with the embedded model (benchmarks/explore.py -> benchmarks/explore.json):
- speed: one 28x28 image costs the server 0.5 ms (G 0.2 ms, then the PNG), 0.9 ms over HTTP;
  a slider move's whole round trip in headless chromium, input event to the new image shown,
  took a median of 8-14 ms over 20 moves (five runs) (tests/test_explore_browser.py): far inside the
  100 ms a slider needs. The d x c grid (140 images) takes 16 ms, a strip between two
  uploaded images 11 ms (S included);
- size: the page is three text files (11 kB); a built wheel holds 16.7 kB more with
  `lgen explore` (its entries, deflated). onnxruntime-web's WebAssembly runtime alone
  (ort-wasm-simd-threaded.wasm) is about 12.8 MB, six times the 2 MB the wheel may grow, and
  the page would also need the ONNX files sent to it;
- one runtime: images, grids and encodings come from the same onnxruntime sessions, checks
  and d -> class table as `lgen sample | encode | interpolate`, so the page shows what the
  commands write (an image is pixel for pixel the one `lgen sample` draws with the same
  seed, d and c). The cost: the page needs the server, so no static export (e.g. for a
  Hugging Face Space) is offered.
"""
