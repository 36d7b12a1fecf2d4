"""The training script every rank runs under ``paddle.distributed.launch`` (see launch.py).

    python -m paddle.distributed.launch ... paddleopt/distributed/worker.py <log_dir>/launch.json

It builds the one stage named in the spec from its planned config (the parent planned and
checked the whole pipeline; ranks do not plan again), runs it into the stage's temporary folder
and reports back through files in the log folder: ``result.json`` (rank 0: the manifest),
``rank<N>.json`` (every rank: throughput, peak RSS) and ``error.rank<N>.json`` when the stage
fails. It is run as a file (the launcher needs a .py path), so it fixes ``sys.path`` before
importing paddleopt.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    sys.path.pop(0)  # the script's folder would shadow top-level modules with ours
sys.path.insert(0, str(_HERE.parents[1]))


def main(spec_file: str) -> int:
    import json

    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    log_dir = Path(spec["log_dir"])
    os.environ["PADDLEOPT_DIST_WORKER"] = "1"
    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0") or 0)

    from paddleopt.distributed.compat import PROTOBUF_ENV

    if os.environ.get(PROTOBUF_ENV) == "python":  # fleet runtime: make DistributedStrategy work
        from paddleopt.distributed.compat import patch_field_label

        patch_field_label()
    from paddleopt.utils.logging import setup_logging

    log = setup_logging(bool(spec.get("verbose")))
    try:
        manifest = _run(spec)
    except BaseException as exc:  # every failure is reported to the parent through a file
        _write_error(log_dir, rank, exc)
        if isinstance(exc, KeyboardInterrupt):
            return 130
        from paddleopt.utils.errors import UserError

        if isinstance(exc, UserError):
            log.error("rank %d: %s", rank, exc.message)
            return 2
        raise
    _write_json(log_dir / f"rank{rank}.json", _rank_stats(rank, manifest))
    if rank == 0:
        _write_json(log_dir / "result.json", {"manifest": manifest.to_dict()})
    return 0


def _run(spec: dict) -> object:
    from paddleopt.artifact import Artifact
    from paddleopt.config.schema import parse
    from paddleopt.config.sections import PipelineConfig
    from paddleopt.stages.base import StageContext
    from paddleopt.stages.catalog import stage_class

    source = f"{spec['log_dir']}/launch.json"
    pipeline = parse(PipelineConfig, spec["config"], source=source)
    cls = stage_class(spec["stage"]["type"])
    stage = cls(parse(cls.Config, spec["stage"]["config"], path=f"stages.{spec['stage_id']}",
                      source=source))
    src = Artifact.open(spec["src"]) if spec.get("src") else None
    ctx = StageContext(pipeline=pipeline, stage_id=spec["stage_id"],
                       work_dir=Path(spec["config"]["work_dir"]),
                       artifacts={k: Artifact.open(p) for k, p in spec["artifacts"].items()},
                       resume=bool(spec.get("resume")))
    return stage.run(src, Path(spec["out_dir"]), ctx)


def _rank_stats(rank: int, manifest: object) -> dict:
    import resource

    metrics = getattr(manifest, "metrics", {}) or {}
    history = metrics.get("history") or []
    samples = sum(int(h.get("train_samples", 0)) for h in history)
    seconds = sum(float(h.get("train_seconds", 0.0)) for h in history)
    last = history[-1] if history else {}
    return {
        "rank": rank,
        "world_size": int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1),
        "host": os.environ.get("PADDLE_CURRENT_ENDPOINT", ""),
        "train_samples": samples,
        "train_seconds": round(seconds, 3),
        "train_samples_per_s": round(samples / seconds, 1) if seconds else None,
        "step_ms": last.get("step_ms"),
        "final_train_loss": last.get("train_loss"),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or None,
    }


def _write_error(log_dir: Path, rank: int, exc: BaseException) -> None:
    import traceback

    from paddleopt.utils.errors import UserError

    user = isinstance(exc, UserError)
    info = {"rank": rank, "type": type(exc).__name__, "user_error": user,
            "message": exc.message if user else str(exc),
            "fix": exc.fix if user else "",
            "traceback": "" if user else traceback.format_exc()}
    try:
        _write_json(log_dir / f"error.rank{rank}.json", info)
    except OSError:
        pass


def _write_json(path: Path, data: dict) -> None:
    import json

    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: worker.py LAUNCH_JSON (started by paddleopt.distributed.launch)")
    sys.exit(main(sys.argv[1]))
