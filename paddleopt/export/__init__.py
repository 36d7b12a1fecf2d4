"""Conversion library under the export / to_onnx / to_lite stages: paddle2onnx
(onnx_convert), Paddle Lite opt and its compat rewrite (lite_opt, lite_compat) and the parity
check every converting stage records the same way (parity). No heavy imports at module level."""
