"""Evaluation: the domain classifier, FID/KID and clustering metrics, figures and the report.

May import torch and `lifelong_gen.train`; neither the torch-free core nor the trainer
imports from here (the contract in pyproject.toml, checked by `tests/test_layout.py`).
"""
