"""The ``fleet:`` section of every training recipe (train and the stages that fine-tune).

It says how many processes run the stage (``nproc`` per node, ``ips`` for several nodes), how
gradients are accumulated, which sublayers are recomputed, and, for GPU clusters, the hybrid
parallel degrees passed to ``fleet.DistributedStrategy``. Plain dataclasses: importing this
module imports no paddle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class RecomputeConfig:
    """Activation recomputation (``paddle.distributed.fleet.utils.recompute``).

    Attributes:
        enabled: recompute the listed sublayers in backward instead of keeping activations.
        layers: structured names of sublayers to wrap (``model.named_sublayers()`` names, e.g.
            ``features`` or ``stages.2``); their forward is re-run during backward.
    """

    enabled: bool = False
    layers: list[str] = field(default_factory=list)

    def validate(self) -> tuple[str, str] | None:
        if self.enabled and not self.layers:
            return ("fleet.recompute.enabled needs the sublayers to recompute",
                    "list them, e.g. layers: [features] (names from model.named_sublayers()).")
        return None


@dataclass
class HybridConfig:
    """Hybrid parallel degrees for ``DistributedStrategy.hybrid_configs`` (GPU clusters only).

    ``dp_degree * mp_degree * pp_degree * sharding_degree`` must equal the number of processes
    (dp_degree -1: inferred). mp/pp need a model built from fleet's meta-parallel layers
    (``ColumnParallelLinear``..., ``PipelineLayer``); none of the built-in architectures is, so
    those degrees are for user models passed through the Python API.
    """

    dp_degree: int = -1
    mp_degree: int = 1
    pp_degree: int = 1
    sharding_degree: int = 1

    def validate(self) -> tuple[str, str] | None:
        if self.dp_degree == 0 or self.dp_degree < -1:
            return "fleet.hybrid.dp_degree must be >= 1 or -1 (inferred)", "use dp_degree: -1"
        for name in ("mp_degree", "pp_degree", "sharding_degree"):
            if getattr(self, name) < 1:
                return f"fleet.hybrid.{name} must be >= 1", f"use {name}: 1"
        return None

    @property
    def model_parallel(self) -> bool:
        """Anything beyond data parallelism (needs GPUs and the fleet runtime)."""
        return self.mp_degree > 1 or self.pp_degree > 1 or self.sharding_degree > 1


@dataclass
class FleetConfig:
    """How a training stage runs in parallel. Defaults: one process, no accumulation.

    Attributes:
        nproc: processes per node (``--nproc``). More than one launches the stage through
            ``python -m paddle.distributed.launch``; each rank reads its own shard.
        ips: node IPs for multi-node training (``--ips``); the same command runs on every
            node, ranks are numbered in this order and the first node writes the artifact.
        start_port: first port of the trainer endpoints with ``ips`` (one per process).
        devices: GPU ids to use on each node, e.g. "0,1" (GPU only).
        backend: collective backend: auto = gloo on CPU, nccl on GPU.
        log_dir: per-rank logs (workerlog.N); default ``<work_dir>/logs/<stage id>``.
        accumulate_steps: micro-batches whose gradients are summed before one optimizer step
            (global batch = data.batch_size * processes * accumulate_steps). Works with one
            process too.
        use_fleet: run through ``fleet.init`` + ``fleet.distributed_model/optimizer`` with the
            strategy below instead of plain ``paddle.DataParallel``. Forced on by hybrid degrees.
        find_unused_parameters: DataParallel option for models with unused branches.
        recompute: activation recomputation, see ``RecomputeConfig``.
        hybrid: data/model/pipeline/sharding degrees, see ``HybridConfig`` (GPU only).
    """

    nproc: int = 1
    ips: list[str] = field(default_factory=list)
    start_port: int = 6070
    devices: str | None = None
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    log_dir: str | None = None
    accumulate_steps: int = 1
    use_fleet: bool = False
    find_unused_parameters: bool = False
    recompute: RecomputeConfig = field(default_factory=RecomputeConfig)
    hybrid: HybridConfig = field(default_factory=HybridConfig)

    def validate(self) -> tuple[str, str] | None:
        if self.nproc < 1:
            return "fleet.nproc must be >= 1", "use e.g. nproc: 2 (processes per node)"
        if self.accumulate_steps < 1:
            return "fleet.accumulate_steps must be >= 1", "use 1 (no accumulation) or more"
        if any(not ip or "," in ip or " " in ip for ip in self.ips):
            return (f"fleet.ips must be a list of node addresses, got {self.ips}",
                    "write e.g. ips: [10.0.0.1, 10.0.0.2] (or --ips 10.0.0.1,10.0.0.2)")
        if len(set(self.ips)) != len(self.ips):
            return f"fleet.ips lists a node twice: {self.ips}", "list every node once."
        if len(self.ips) > 1 and "127.0.0.1" in self.ips:
            return ("fleet.ips: 127.0.0.1 cannot be one of several nodes (the other nodes "
                    "could not reach it)", "use the node's network address.")
        if not 1 <= self.start_port <= 65535 - self.nproc:
            return "fleet.start_port is not a valid port", "use e.g. start_port: 6070"
        if self.hybrid.dp_degree > 0:
            product = (self.hybrid.dp_degree * self.hybrid.mp_degree * self.hybrid.pp_degree
                       * self.hybrid.sharding_degree)
            if product != self.world_size:
                return (f"fleet.hybrid degrees multiply to {product}, but the job has "
                        f"{self.world_size} process(es) (nproc {self.nproc} x "
                        f"{max(1, len(self.ips))} node(s))",
                        "make dp*mp*pp*sharding equal nproc x nodes, or set dp_degree: -1.")
        elif self.world_size % (self.hybrid.mp_degree * self.hybrid.pp_degree
                                * self.hybrid.sharding_degree):
            return (f"{self.world_size} process(es) cannot be split into mp*pp*sharding = "
                    f"{self.hybrid.mp_degree * self.hybrid.pp_degree * self.hybrid.sharding_degree}"
                    " groups", "make nproc x nodes a multiple of mp*pp*sharding.")
        return None

    @property
    def nodes(self) -> int:
        return max(1, len(self.ips))

    @property
    def world_size(self) -> int:
        return self.nproc * self.nodes

    @property
    def distributed(self) -> bool:
        """True when the stage runs in more than one process (needs the launcher)."""
        return self.world_size > 1

    @property
    def fleet_runtime(self) -> bool:
        """True when ``fleet.init`` with a DistributedStrategy is used (not plain DataParallel)."""
        return self.use_fleet or self.hybrid.model_parallel
