"""Compression library: pure functions over live ``paddle.nn.Layer`` objects and model folders.

Modules (import them directly; nothing heavy is imported here):

- ``prune``: structured filter pruning (l1 / l2 / fpgm) that really shrinks tensors.
- ``sparsity``: unstructured magnitude sparsity during fine-tuning (constant or GMP schedule).
- ``distill``: knowledge-distillation losses (soft KL, hard CE mix, feature MSE with adapters).
- ``ptq``: post-training static quantization of any Paddle inference model folder.
- ``qat``: quantization-aware training and the INT8 inference export.
- ``int8_check``: evidence that an INT8 model really runs INT8 kernels under oneDNN.

The pipeline stages (``paddleopt.stages``) wrap these; users can call them from their own
Paddle training code as well.
"""
