"""ONNX export (torch side) and the torch-free ONNX runtime, installed as `lifelong_gen.export`."""
