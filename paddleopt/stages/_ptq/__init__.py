"""The ptq stage's parts: config, data, layers (quantizing and sensitivity), the candidate
search and its record. The stage itself (and the public names) is ``paddleopt.stages.ptq``."""
