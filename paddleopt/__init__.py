"""paddleopt: train, compress, export and deploy PaddlePaddle models from one pipeline.

Importing this package imports no paddle, paddleslim, paddlenlp, onnx or paddlelite: the heavy
imports happen inside the functions that need them. The Python API lives in ``paddleopt.api``.
"""
__version__ = "0.1.0"
