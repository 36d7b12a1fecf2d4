"""Conversion helpers shared by the to_onnx / to_lite stages (no heavy imports here)."""
