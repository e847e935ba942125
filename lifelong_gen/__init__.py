"""lifelong-gen: lifelong learning of interpretable image generators (Ye & Bors).

This package root must stay importable without torch: the ONNX runtime and the
sampling CLI live beside it and run where torch is not installed. Torch-side
modules (networks, trainer, checkpoint) are imported by name where used.
"""

__version__ = "0.1.0"
