"""Metrics that fit models without labels: agreement with the fp32 model, task metrics.

``agreement`` compares a model's outputs with a reference's (the fp32 model on the same real
inputs); ``ocr`` holds task metrics for text recognisers (CTC strings), direction classifiers
and detectors (``ocr.task_score``: one function per OCR task against ground truth), with the
DB boxes and detection hmean in ``textdet``. No paddle import: plain numpy (and scipy).
"""
