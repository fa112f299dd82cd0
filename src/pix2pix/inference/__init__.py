"""Inference: the paper's test mode, its engines (PyTorch, ONNX Runtime), export and published models."""
