"""`lgen explore`: serve a local page to explore a model's codes (torch-free).

Registers the command on the `app` of cli/app.py. It opens the model through the runtime
(as `lgen sample` does), binds the server of lifelong_gen/explore/server.py, prints the
address and serves until Ctrl-C. A bad --model, a port in use or a host that cannot be bound
ends as one line and exit 2 (main() in cli/app.py), before anything is served.
"""

from __future__ import annotations

import signal
import sys
from typing import Optional

import typer

from lifelong_gen.cli.app import app
from lifelong_gen.cli.infer import MODEL_HELP
from lifelong_gen.errors import LgenError

DEFAULT_PORT = 8765
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


@app.command(short_help="Serve a local page to move the codes and watch the image (torch-free).")
def explore(
    model_ref: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port (0: any free one)"),
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1: this machine "
                                                           "only); e.g. 0.0.0.0 to let other machines in"),
    provider: Optional[str] = typer.Option(None, "--provider", help="cpu or cuda (default: cuda when available)"),
) -> None:
    """Serve a page with a class picker, a slider per c, a seed, the d x c grid, strips between
    classes or uploaded images, and the model's card facts. Ctrl-C stops it."""
    from lifelong_gen.bundle import embedded
    from lifelong_gen.cli.infer import _open
    from lifelong_gen.explore.server import make_server
    from lifelong_gen.explore.views import Explorer

    if not 0 <= port <= 65535:
        raise LgenError(f"--port must be in 0..65535, got {port}")
    model = _open(model_ref, provider)
    model.generator  # open (and check) the session now: a broken model fails here, not at the first request
    explorer = Explorer(model, model_ref if model_ref is not None else embedded.DEFAULT_MODEL)
    stale = explorer.table.stale_warning(model.bundle) if explorer.table is not None else None
    if stale:  # the picker's names may be another generator's: said once, as `lgen sample --class` says it
        print(f"lgen: warning: {stale}", file=sys.stderr)
    bind = host if host is not None else "127.0.0.1"
    try:
        server = make_server(explorer, bind, port)
    except OSError as e:
        reason = "in use" if getattr(e, "errno", None) == 98 else (e.strerror or str(e))
        raise LgenError(f"cannot serve on {bind}:{port}: {reason} (choose another with --port, or --host)") from None
    real_host, real_port = server.server_address[:2]
    if host is not None and host not in LOOPBACK:
        print(f"lgen: --host {host}: the page is open to every machine that can reach this address "
              f"(no login, no encryption)", file=sys.stderr)
    shown = "127.0.0.1" if real_host == "0.0.0.0" else real_host
    typer.echo(f"http://{shown}:{real_port}/")
    print(f"lgen: exploring {explorer.label} ({model.d_dim} d, {model.c_dim} c); Ctrl-C stops", file=sys.stderr)
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, _stop)  # `kill PID` stops as cleanly as Ctrl-C
    # A process started in the background by a non-interactive shell (`cmd &`, nohup) inherits an
    # ignored SIGINT; Ctrl-C (or kill -INT) is how this server is stopped, so it is always honoured.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("lgen: stopped", file=sys.stderr)
    finally:
        server.server_close()
