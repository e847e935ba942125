"""The `lgen` command line, installed as `lifelong_gen.cli` (torch-free at import)."""

from lifelong_gen.cli.app import app, main

__all__ = ["app", "main"]
