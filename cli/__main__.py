"""`python -m lifelong_gen.cli` (also what torchrun launches)."""

from lifelong_gen.cli.app import main

main()
