"""The `lgen` command line, installed as `lifelong_gen.cli` (torch-free at import)."""

from lifelong_gen.cli.app import app, main

# Each module registers its commands on `app` when imported, in the order `lgen --help` lists them.
# isort: off
from lifelong_gen.cli import infer  # noqa: F401  (export, sample, encode, interpolate)
from lifelong_gen.cli import hub  # noqa: F401  (push, pull, card)
from lifelong_gen.cli import evaluate  # noqa: F401  (evaluate)
from lifelong_gen.cli import explore  # noqa: F401  (explore)
# isort: on

__all__ = ["app", "main"]
