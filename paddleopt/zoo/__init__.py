"""Real pretrained third-party Paddle models that pip packages ship, with real inputs.

Used by the tests, the benchmarks and the docs to exercise paddleopt on models it did not
make (dynamic shapes, non-classification outputs, no labels). See ``rapidocr``.
"""
