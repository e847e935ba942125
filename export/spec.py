"""The ONNX contract shared by the exporter (torch side) and the runtime (torch-free).

Owns the graphs' input/output names, metadata keys, the opset and the parity tolerance;
the files' names inside a bundle are lifelong_gen/bundle/'s. Nothing here imports
torch, onnx or numpy.

The contract (u = (d, c) the interpretable codes, o an image, as in networks.py):

    onnx/generator.onnx   inputs  z float32 [N, z_dim]   noise, N(0, I) in training
                                  c float32 [N, c_dim]   continuous codes, N(0, I) in training
                                  d float32 [N, d_dim]   one-hot, or any probability vector
                          output  image float32 [N, C, H, W] in [-1, 1]
    onnx/encoder.onnx     input   image float32 [N, C, H, W] in [-1, 1]
                          outputs d_logits float32 [N, d_dim]  (softmax gives p(d | o))
                                  c_mean float32 [N, c_dim]    (mean of q(c | o))

N is dynamic (axis name "batch"); with c_dim = 0 the c tensors have shape [N, 0].
The graphs hold no randomness: the caller draws z, c, d. Networks are exported in
eval mode (batch norm uses its running statistics, folded into the convolutions), the
image is clamped to [-1, 1] (onnxruntime's tanh can overshoot by one ulp),
the generator from its EMA weights unless `lgen export --generator raw`. Each file
is one self-contained ONNX model (weights inside, no external `.data` file), and the
exporter has checked it against PyTorch to PARITY_ATOL at every PARITY_BATCHES size.
"""

from __future__ import annotations

GENERATOR_INPUTS = ("z", "c", "d")
GENERATOR_OUTPUTS = ("image",)
ENCODER_INPUTS = ("image",)
ENCODER_OUTPUTS = ("d_logits", "c_mean")
BATCH_AXIS = "batch"

# Opset 18 runs on every onnxruntime >= 1.14 and has every op these nets need.
DEFAULT_OPSET = 18
MIN_OPSET = 17

# The exporter's own check: onnxruntime vs PyTorch (CPU, float32) on random inputs,
# |ort - torch| / max(1, |torch|) <= PARITY_ATOL: absolute for images and codes, relative for large logits.
PARITY_ATOL = 1e-4
PARITY_BATCHES = (1, 7, 64)

# Generator weights that may be exported: "ema" (generator_ema.safetensors, the default:
# what sampling grids use) or "raw" (generator.safetensors).
GENERATOR_WEIGHTS = ("ema", "raw")

# metadata_props keys written into each .onnx file (strings), read by the runtime.
META_NETWORK = "lifelong_gen.network"  # "generator" | "encoder"
META_WEIGHTS = "lifelong_gen.weights"  # "ema" | "raw" (generator), "encoder"
META_SHAPE = "lifelong_gen.model"  # JSON: z_dim, c_dim, d_dim, img_channels, img_resolution
META_PARITY = "lifelong_gen.parity_max_abs_diff"
META_VERSION = "lifelong_gen.version"
META_OPSET = "lifelong_gen.opset"  # the ai.onnx opset, for readers without the onnx package (model cards)

# The ModelConfig fields an exported graph's shapes depend on.
SHAPE_KEYS = ("z_dim", "c_dim", "d_dim", "img_channels", "img_resolution")

# onnxruntime is an extra: these are the install hints the runtime prints when it is missing.
INSTALL_CPU = "pip install 'lifelong-gen[cpu]'"
INSTALL_GPU = "pip install 'lifelong-gen[gpu]'"
