"""Torch side: the networks, the losses, replay, the lifelong trainer and its checkpoints.

Everything under `lifelong_gen.train` may import torch. Nothing in the torch-free core
(`lifelong_gen.*` outside `train/` and `eval/`, `lifelong_gen.export` except the exporter)
may import from here: `tests/test_layout.py` checks the contract declared in pyproject.toml.
"""
