"""The HTTP side of `lgen explore`: routes, static files, one-line errors, start and stop.

Owns `Handler` (a standard-library BaseHTTPRequestHandler: GET of the page, its static files
and the JSON/PNG endpoints of views.py; POST of two uploaded images), `make_server` and
`serve_forever`. The standard library is enough: the page needs a handful of small
responses, each a few milliseconds of onnxruntime (see lifelong_gen/explore/__init__.py), so a
web framework would add an install and nothing measurable.

Safety, in one place:
- static files are looked up by name in a table built once from the package's own static/
  folder at start-up; a request path is never joined to a directory, so `/../`, `%2e%2e`,
  absolute paths or symlinks cannot reach another file;
- every parameter goes through params.py; a refused request is HTTP 4xx with one line of
  text, and an unexpected failure is a 500 with one line (the traceback stays in the log, not
  in the response);
- request bodies are read only up to views.MAX_UPLOAD_BYTES (413 beyond), and only on the
  upload endpoint.
"""

from __future__ import annotations

import json
import logging
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from lifelong_gen.explore.params import BadRequest
from lifelong_gen.explore.views import MAX_UPLOAD_BYTES, Explorer

log = logging.getLogger("lifelong_gen")

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
# The page's only addresses besides static/NAME: each maps to an Explorer method.
PNG_ROUTES = {"/api/image": "image", "/api/grid": "grid", "/api/strip": "strip"}
UPLOAD_ROUTE = "/api/upload-strip"
MAX_FIELDS = 20  # an endpoint reads at most 6 parameters


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of the package's static/ folder by URL path, read once: the only files ever served."""
    folder = resources.files("lifelong_gen.explore") / "static"
    table = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in CONTENT_TYPES:
            table[f"/static/{entry.name}"] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    table["/"] = table["/static/index.html"]
    return table


class Handler(BaseHTTPRequestHandler):
    """One request: route it, answer bytes, or a 4xx/5xx with a one-line text body."""

    explorer: Explorer  # set on the subclass make_server builds
    static: dict[str, tuple[bytes, str]]
    server_version = "lgen-explore"
    protocol_version = "HTTP/1.1"  # keep-alive: a slider drag reuses one connection
    # Headers and body leave in two writes: with Nagle's algorithm the body waited for the
    # browser's delayed ACK, about 40 ms a response (a 52 ms median slider move in chromium; 8-14 ms without).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args) -> None:
        log.debug("explore: " + format, *args)  # quiet by default: the terminal shows the address only

    def send_bytes(self, status: int, body: bytes, content_type: str, headers: Optional[dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error_line(self, status: int, message: str) -> None:
        self.send_bytes(status, (" ".join(message.split()) + "\n").encode(), "text/plain; charset=utf-8")

    def _answer(self, route) -> None:
        """Run `route()` -> (status, body, type, headers); its BadRequest is a 4xx, anything else a 500."""
        try:
            self.send_bytes(*route())
        except BadRequest as e:
            self.send_error_line(e.status, str(e))
        except Exception as e:  # a server answers every request; the log keeps the traceback
            log.debug("explore: %s", traceback.format_exc())
            self.send_error_line(500, f"internal error: {type(e).__name__}")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path in self.static:
            body, content_type = self.static[url.path]
            self.send_bytes(200, body, content_type)
        elif url.path == "/api/model":
            self._answer(lambda: (200, json.dumps(self.explorer.facts).encode(), "application/json", None))
        elif url.path in PNG_ROUTES:
            method = getattr(self.explorer, PNG_ROUTES[url.path])
            self._answer(lambda: png_answer(*method(parse_query(url.query))))
        else:
            self.send_error_line(404, f"not found: {url.path[:80]}")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != UPLOAD_ROUTE:
            self.send_error_line(405 if url.path in self.static or url.path.startswith("/api/") else 404,
                                 f"POST is accepted only at {UPLOAD_ROUTE}")
            return
        self._answer(lambda: png_answer(*self.explorer.upload_strip(parse_query(url.query), self.read_body())))

    def read_body(self) -> bytes:
        """The request body, refused before it is read when over MAX_UPLOAD_BYTES or of unknown length."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise BadRequest("the upload needs a Content-Length", status=HTTPStatus.LENGTH_REQUIRED)
        if int(length) > MAX_UPLOAD_BYTES:
            self.close_connection = True  # the unread body must not be taken for the next request
            raise BadRequest(f"upload of {int(length):,} bytes is over the limit of {MAX_UPLOAD_BYTES:,}",
                             status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return self.rfile.read(int(length))


def parse_query(text: str) -> dict[str, list[str]]:
    """The query string as parse_qs reads it; more fields than any endpoint takes is a 400."""
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise BadRequest(f"more than {MAX_FIELDS} query parameters") from None


def png_answer(png: bytes, record: dict) -> tuple[int, bytes, str, dict[str, str]]:
    """A PNG response; its codes' summary (mode, seed, each cell's d) also in a header the page reads."""
    summary = {"mode": record["mode"], "seed": record["seed"], "columns": record["columns"],
               "d": [cell["d"] for cell in record["cells"]], "c": record["cells"][0]["c"]}
    if "ends" in record:
        summary["ends"] = record["ends"]
    return 200, png, "image/png", {"X-Lgen-Codes": json.dumps(summary, separators=(",", ":"))}


def make_server(explorer: Explorer, host: str, port: int, handler: type[Handler] = Handler) -> ThreadingHTTPServer:
    """A bound server (not yet serving) for `explorer`; OSError when the address cannot be bound.

    Args:
        handler: the request handler class; tests pass a subclass that adds their own routes.
    """
    bound = type("BoundHandler", (handler,), {"explorer": explorer, "static": static_files()})
    server = ThreadingHTTPServer((host, port), bound)
    server.daemon_threads = True  # Ctrl-C does not wait for a browser's idle keep-alive connection
    return server
