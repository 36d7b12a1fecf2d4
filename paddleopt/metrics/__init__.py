"""Metrics that fit models without labels: agreement with the fp32 model, task metrics.

``agreement`` compares a model's outputs with a reference's (the fp32 model on the same real
inputs); ``ocr`` holds task metrics for text recognisers (CTC strings) and detectors
(probability-map IoU). No paddle import: plain numpy.
"""
