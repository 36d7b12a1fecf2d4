"""Paddle Lite backend: runs x86 .nb files with ``paddlelite.lite`` (MobileConfig).

In-process or not? Paddle Lite reports errors with glog ``LOG(FATAL)`` (abort): a file that
is not a naive buffer kills the interpreter. We load a .nb in this process only when all hold:

1. its manifest says to_lite made it for x86 (an ARM/OpenCL .nb *loads* on x86 and returns
   garbage: its kernels are missing, nothing says so);
2. its sha256 matches the manifest (a truncated or replaced file never reaches Lite);
3. its header is a naive buffer written by opt 2.x;
4. it is not int8 (int8 x86 .nb files return NaN/garbage with paddlelite 2.13rc0).

to_lite's first contact with a freshly converted .nb is ``run_isolated`` (a child process);
the file is recorded only after that run matched Paddle Inference. After that, running it in
process is as safe as any native library: on the test MobileNetV2, 1500 runs at batch sizes
1-16 alternating with Paddle Inference in one process stayed within 2.1e-7 of it, and both
import orders (paddle first or paddlelite first) gave the same results.
``Options.isolate`` keeps every run in a child for anyone who wants the guarantee anyway.

Facts about the 2.13rc0 Python binding: ``MobileConfig`` has no set_threads/set_power_mode
(only ``CxxConfig`` has them, and it cannot load .nb files), and ``Tensor.numpy()`` returns a
view into the predictor's memory, so outputs are copied before the next run.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from paddleopt.deploy.predictor import Predictor, Variant
from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact, Manifest, TensorSpec

RUNNABLE_TARGETS = ("x86",)  # what this machine kind (x86-64) can execute
PowerMode = Literal["default", "high", "low", "full", "no_bind", "rand_high", "rand_low"]


@dataclass
class Options:
    """Paddle Lite runtime knobs.

    Attributes:
        threads: worker threads; 0 = the runtime's default. The 2.13rc0 Python MobileConfig
            cannot set it, so any other value is refused rather than ignored; it applies in
            the on-device C++ runtime (deploy_lite).
        power_mode: ARM big.LITTLE core binding (high/low/full/no_bind/rand_*); same binding
            limitation as threads, and meaningless on x86.
        isolate: run every call in a child process (slow: ~0.3 s per call) so that nothing
            Lite does can take this interpreter down.
        timeout: seconds per isolated call.
    """

    threads: int = 0
    power_mode: PowerMode = "default"
    isolate: bool = False
    timeout: float = 120.0

    def validate(self) -> tuple[str, str] | None:
        if self.threads < 0:
            return "threads must be >= 0", "use 0 for the runtime default."
        if self.timeout <= 0:
            return "timeout must be > 0", "use e.g. timeout: 120."
        return None


def is_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("paddlelite") is not None


def version() -> str | None:
    from paddleopt.utils.versions import package_version

    return package_version("paddlelite")


def lite_info(manifest: Manifest) -> dict[str, Any]:
    """What to_lite recorded about the .nb (target, opt version, ...); {} if nothing."""
    info = manifest.checks.get("lite")
    return info if isinstance(info, dict) else {}


def matrix_variants(artifact: Artifact, threads: int | None, with_native: bool
                    ) -> tuple[list[Variant], str | None]:
    """``bench --matrix`` row: x86 fp32 .nb files only (the Python binding cannot set
    threads); other targets run on the device, int8 x86 returns garbage in 2.13rc0."""
    precision = artifact.manifest.precision
    target = lite_info(artifact.manifest).get("target")
    if target not in RUNNABLE_TARGETS:
        return [], (f"Lite {target or 'unknown-target'} .nb ({precision}): runs on the "
                    f"device only (deploy_lite/), not on this x86 machine")
    if precision != "fp32":
        return [], f"Lite x86 {precision} .nb: paddlelite 2.13rc0 returns garbage for it"
    return [Variant("lite-x86", {})], None


def load(artifact: Artifact, options: Options) -> LitePredictor:
    target = lite_info(artifact.manifest).get("target")
    if target is None:
        raise UserError(f"'{artifact.path}' does not record which Lite target its .nb was made "
                        f"for, so it cannot be run safely here.",
                        "convert the model with the to_lite stage (it records the target).")
    if target not in RUNNABLE_TARGETS:
        raise UserError(
            f"'{artifact.path}' is a Paddle Lite model for target '{target}'; this machine can "
            f"only run x86 .nb files (an ARM/OpenCL .nb loads here but returns garbage).",
            "run it on the device (see deploy_lite/), or convert for x86 (to_lite target: x86) "
            "to test on this machine.")
    if artifact.manifest.precision == "int8":
        raise UserError(f"'{artifact.path}' is an int8 x86 .nb; paddlelite 2.13rc0 returns "
                        f"NaN/garbage for these.", "convert the fp32 model for x86.")
    nb_file = artifact.file("model")
    artifact.verify()
    from paddleopt.export.lite_opt import read_nb_header

    read_nb_header(nb_file)
    return LitePredictor(nb_file, artifact.manifest.io.inputs, options,
                         artifact.manifest.precision)


def _check_runtime_options(options: Options) -> None:
    from paddlelite.lite import MobileConfig

    wanted = {"threads": options.threads != 0, "power_mode": options.power_mode != "default"}
    setters = {"threads": "set_threads", "power_mode": "set_power_mode"}
    for name, asked in wanted.items():
        if asked and not hasattr(MobileConfig, setters[name]):
            raise UserError(
                f"lite option '{name}' cannot be applied: paddlelite {version()}'s Python "
                f"MobileConfig has no {setters[name]}().",
                f"remove '{name}' (it applies in the C++ runtime on the device, deploy_lite/).")


class LitePredictor(Predictor):
    """A ``paddlelite.lite`` LightPredictor on one .nb file."""

    backend = "lite"

    def __init__(self, nb_file: str | Path, inputs: list[TensorSpec], options: Options,
                 precision: str = "fp32") -> None:
        self.nb_file = Path(nb_file)
        self.options = options
        self.precision = precision
        self._inputs = list(inputs)
        self._predictor = None
        if not options.isolate:
            _check_runtime_options(options)
            self._predictor = _create(self.nb_file, options)

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        if self._inputs and len(feeds) != len(self._inputs):
            raise UserError(f"the model takes {len(self._inputs)} input(s), got {len(feeds)}.",
                            "pass one array per input, in manifest order.")
        feeds = [np.ascontiguousarray(f, dtype=s.dtype) if s.dtype != "unknown" else f
                 for f, s in zip(feeds, self._inputs)] if self._inputs else feeds
        if self._predictor is None:
            return run_isolated(self.nb_file, feeds, self.options.timeout)
        return _run(self._predictor, feeds)

    def clone(self) -> LitePredictor:
        """A second predictor on the same file (the binding has no weight-sharing clone)."""
        return LitePredictor(self.nb_file, self._inputs, self.options, self.precision)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "target": "x86",
                "threads": self.options.threads or "runtime default",
                "power_mode": self.options.power_mode, "isolate": self.options.isolate,
                "paddlelite_version": version(), "model_file": str(self.nb_file)}


# -- running -----------------------------------------------------------------------------------

def _create(nb_file: Path, options: Options | None = None) -> Any:
    from paddlelite.lite import MobileConfig, create_paddle_predictor

    config = MobileConfig()
    config.set_model_from_file(str(nb_file))
    if options is not None and options.threads and hasattr(config, "set_threads"):
        config.set_threads(options.threads)
    return create_paddle_predictor(config)


def _run(predictor: Any, feeds: list[np.ndarray]) -> list[np.ndarray]:
    for i, feed in enumerate(feeds):
        predictor.get_input(i).from_numpy(np.ascontiguousarray(feed))
    predictor.run()
    # numpy() is a view into the predictor's buffers: copy before the next run reuses them.
    return [np.array(predictor.get_output(i).numpy(), copy=True)
            for i in range(len(predictor.get_output_names()))]


def run_isolated(nb_file: str | Path, feeds: list[np.ndarray],
                 timeout: float = 120.0) -> list[np.ndarray]:
    """Run ``nb_file`` once in a child Python; a crash there becomes a UserError here."""
    with tempfile.TemporaryDirectory(prefix="paddleopt_lite_") as tmp:
        feeds_file, outs_file = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(feeds_file, *feeds)
        cmd = [sys.executable, "-m", "paddleopt.deploy.backends.lite", str(nb_file),
               str(feeds_file), str(outs_file)]
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"Paddle Lite did not finish running '{nb_file}' within "
                            f"{timeout:g} s.", "raise the timeout.") from None
        output = proc.stdout.decode("utf-8", errors="replace").strip()
        if proc.returncode != 0 or not outs_file.is_file():
            from paddleopt.export.lite_opt import ToolRun

            run = ToolRun(cmd, proc.returncode, output, 0.0)
            raise UserError(f"Paddle Lite failed running '{nb_file}' ({run.how}); its output:\n"
                            f"{run.tail()}",
                            "the .nb is broken or was made for another target; convert again "
                            "with to_lite.")
        with np.load(outs_file) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]


def _child_main(argv: list[str]) -> int:
    """``python -m paddleopt.deploy.backends.lite NB IN.npz OUT.npz``: one isolated run."""
    nb_file, feeds_file, outs_file = argv
    with np.load(feeds_file) as data:
        feeds = [data[f"arr_{i}"] for i in range(len(data.files))]
    outs = _run(_create(Path(nb_file)), feeds)
    np.savez(outs_file, *outs)
    print(json.dumps({"outputs": [list(o.shape) for o in outs]}))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
