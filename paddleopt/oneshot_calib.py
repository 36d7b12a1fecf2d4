"""The --calib argument of the one-shot commands (quantize, optimize): how many samples calibrate
and how many are held out to check INT8 against fp32. Its own module because both oneshot.py and
oneshot_server.py need it, and oneshot.py calls into oneshot_server.py (an import cycle otherwise).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from paddleopt.utils.errors import UserError


def calibration_spec(calib: str | Path, count: int | None = None) -> tuple[dict[str, Any], int]:
    """(ptq calibration section, samples held out for the agreement) for a folder/.npz."""
    import numpy as np

    path = Path(calib)
    if path.is_dir():
        from paddleopt.compress.ptq import IMAGE_SUFFIXES

        total = sum(1 for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        source = "image_folder"
    elif path.suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as data:
            total = len(data[data.files[0]]) if data.files else 0
        source = "npz"
    else:
        raise UserError(f"--calib '{calib}' is neither an image folder nor an .npz file.",
                        "pass a folder of images (the model's preprocessing file or -o "
                        "ptq.calibration.preprocess=... turns them into tensors) or an .npz "
                        "with one array per model input.")
    if total < 2:
        raise UserError(f"--calib '{calib}' holds {total} sample(s).",
                        "give at least 2: some calibrate, the rest check the INT8 model "
                        "against fp32 (more is better: e.g. 64+).")
    count = count or min(256, total // 2)
    if count >= total:
        raise UserError(f"--calib-count {count} leaves no held-out samples of {total}.",
                        "use a smaller --calib-count: the rest check INT8 against fp32.")
    # A batch size that divides count: calibration then uses exactly `count` samples and
    # the held-out ones start right after them.
    batch = max(b for b in range(1, min(16, count) + 1) if count % b == 0)
    return ({"source": source, "path": str(path), "count": count, "batch_size": batch},
            min(total - count, 2000))
