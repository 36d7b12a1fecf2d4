"""Run one pipeline stage under ``python -m paddle.distributed.launch``.

The pipeline itself stays single-process: planning, fingerprints, the temporary stage folder,
lineage and the atomic rename all happen in the parent. When a stage's ``fleet`` config asks
for more than one process, its ``run`` calls ``launch_stage``, which starts the launcher with
``paddleopt/distributed/worker.py`` as the training script. Every rank builds the stage from
its planned, typed config (no re-planning), runs only it into the same temporary folder (rank 0
writes files, the others compute), rank 0 hands its manifest back through ``result.json`` and
every rank leaves ``rank<N>.json`` (throughput, peak RSS) next to Paddle's ``workerlog.<N>``.
The parent gathers them into ``manifest.metrics["distributed"]`` and the pipeline continues
(export etc. run once, in the parent).

On CPU the collective backend is gloo (``PADDLE_DISTRI_BACKEND=gloo``), on GPU NCCL.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paddleopt.distributed.config import FleetConfig
from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact, Manifest
    from paddleopt.stages.base import Stage, StageContext
    from paddleopt.stages.pipeline import Plan

WORKER_ENV = "PADDLEOPT_DIST_WORKER"  # set in every launched rank: do not launch again
WORKER_SCRIPT = Path(__file__).with_name("worker.py")
# Files of a previous launch in the same log folder (removed before a new one).
_LOG_PATTERNS = ("workerlog.*", "envlog.*", "backup_env.*", "endpoints.log", "default.*.log",
                 "rank*.json", "result.json", "error.rank*.json", "launcher.log", "launch.json")


class WorkerNodeFinished(BaseException):
    """This node ran its ranks of a multi-node job; rank 0 (on the first node) writes the
    artifact, so the pipeline cannot continue here. The CLI reports it and exits 0.

    A BaseException (like SystemExit) so that the pipeline's "stage crashed" wrapper lets it
    through: it ends the run on this node, it is not a failure."""


def in_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def needs_launch(cfg: FleetConfig) -> bool:
    """True in the pipeline process when the stage must run under the launcher."""
    return cfg.distributed and not in_worker()


def check_not_externally_launched() -> None:
    """``paddleopt`` started by ``paddle.distributed.launch`` would run the whole pipeline in
    every rank, all writing the same work dir. The launcher is started by paddleopt instead."""
    if in_worker():
        return
    if int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1) > 1:
        raise UserError(
            "paddleopt is running inside paddle.distributed.launch: every rank would run the "
            "whole pipeline and write the same work dir.",
            "start it normally and pass --nproc N (or fleet.nproc: N in the stage config); "
            "paddleopt launches only the training stage itself.")


def default_threads(nproc: int) -> int:
    """CPU threads per rank: the cores available, shared out between the ranks of a node."""
    from paddleopt.utils.machine import available_cores

    return max(1, available_cores() // max(1, nproc))


def launch_command(cfg: FleetConfig, log_dir: str | Path, script_args: list[str],
                   device: str = "cpu", script: str | Path = WORKER_SCRIPT,
                   python: str = sys.executable) -> tuple[list[str], dict[str, str]]:
    """The launcher command line and the environment additions for its ranks.

    ``--ips`` (with ``--start_port``) makes the launcher number ranks node by node in that
    order; the same command runs on every node.
    """
    cmd = [python, "-m", "paddle.distributed.launch", "--nproc_per_node", str(cfg.nproc),
           "--log_dir", str(log_dir)]
    if cfg.ips:
        cmd += ["--ips", ",".join(cfg.ips), "--start_port", str(cfg.start_port)]
    if cfg.devices:
        cmd += ["--devices", cfg.devices]
    cmd += [str(script), *script_args]
    backend = cfg.backend if cfg.backend != "auto" else ("nccl" if device == "gpu" else "gloo")
    repo_root = str(Path(__file__).resolve().parents[2])
    env = {
        "PADDLE_DISTRI_BACKEND": backend,
        WORKER_ENV: "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")])),
    }
    if "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(default_threads(cfg.nproc))
    if cfg.fleet_runtime:
        from paddleopt.distributed.compat import PROTOBUF_ENV

        env[PROTOBUF_ENV] = "python"  # see paddleopt.distributed.compat
    return cmd, env


def log_dir_for(cfg: FleetConfig, work_dir: Path, stage_id: str) -> Path:
    return Path(cfg.log_dir) if cfg.log_dir else Path(work_dir) / "logs" / stage_id


def launch_stage(stage: Stage, src: Artifact | None, out_dir: Path, ctx: StageContext,
                 fleet: FleetConfig | None = None) -> Manifest:
    """Run ``stage`` in ``fleet.world_size`` processes and return rank 0's manifest.

    Call it at the top of a stage's ``run`` (``if needs_launch(cfg.fleet): return
    launch_stage(self, src, out_dir, ctx)``); the code after that line is what every rank runs.
    """
    from paddleopt.artifact import Manifest
    from paddleopt.config.schema import to_dict

    fleet = fleet or stage.config.fleet
    log_dir = log_dir_for(fleet, ctx.work_dir, ctx.stage_id).resolve()
    clean_log_dir(log_dir)
    config = to_dict(ctx.pipeline)
    config["work_dir"] = str(Path(ctx.work_dir).resolve())
    spec = {
        "config": config, "stage_id": ctx.stage_id, "out_dir": str(Path(out_dir).resolve()),
        # the stage as planned (typed config, defaults filled in): ranks do not re-plan
        "stage": {"type": stage.name, "config": to_dict(stage.config)},
        "src": str(Path(src.path).resolve()) if src is not None else None,
        "artifacts": {k: str(Path(a.path).resolve()) for k, a in ctx.artifacts.items()},
        "resume": ctx.resume, "log_dir": str(log_dir),
        "verbose": ctx.log.isEnabledFor(10),
    }
    spec_file = log_dir / "launch.json"
    spec_file.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    cmd, env_add = launch_command(fleet, log_dir, [str(spec_file)], device=ctx.pipeline.device)
    ctx.log.info("[%s] launching %d process(es) on %d node(s) (%s backend), logs in %s",
                 ctx.stage_id, fleet.world_size, fleet.nodes, env_add["PADDLE_DISTRI_BACKEND"],
                 log_dir)
    ctx.log.debug("launch: %s", " ".join(cmd))
    started = time.perf_counter()
    code = _run_launcher(cmd, {**os.environ, **env_add}, log_dir / "launcher.log")
    wall = time.perf_counter() - started
    if code != 0:
        raise_launch_failure(log_dir, code)
    result = log_dir / "result.json"
    if not result.is_file():
        if fleet.nodes > 1:
            raise WorkerNodeFinished(
                f"this node finished its ranks of stage '{ctx.stage_id}'; rank 0 on "
                f"{fleet.ips[0]} writes the artifact and continues the pipeline there. "
                f"Logs: {log_dir}")
        raise RuntimeError(f"the launched stage '{ctx.stage_id}' exited cleanly but rank 0 "
                           f"left no result in {log_dir}; see workerlog.0 there.")
    manifest = Manifest.from_dict(json.loads(result.read_text(encoding="utf-8"))["manifest"])
    manifest.metrics["distributed"] = gather_rank_stats(log_dir, fleet, wall,
                                                        env_add["PADDLE_DISTRI_BACKEND"])
    return manifest


def clean_log_dir(log_dir: Path) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    for pattern in _LOG_PATTERNS:
        for old in log_dir.glob(pattern):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def _run_launcher(cmd: list[str], env: dict[str, str], log_file: Path) -> int:
    """Run the launcher, keep its whole output in launcher.log and pass on rank 0's lines
    (the launcher's own banner and glog chatter only go to the file)."""
    with open(log_file, "w", encoding="utf-8") as log, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
            bufsize=1, errors="replace") as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                if not _noise(line):
                    sys.stderr.write(line)
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        return proc.wait()


def _noise(line: str) -> bool:
    text = line.lstrip()
    if text.startswith(("LAUNCH INFO", "LAUNCH WARNING", "I1", "I0", "W1", "W0", "[20")):
        return not ("ERROR" in text or "Error" in text)
    return False


def raise_launch_failure(log_dir: Path, code: int) -> None:
    """Turn a failed launch into the first rank's error (UserError stays a UserError)."""
    errors = sorted(log_dir.glob("error.rank*.json"))
    if errors:
        info = json.loads(errors[0].read_text(encoding="utf-8"))
        where = f"(rank {info.get('rank')}; per-rank logs in {log_dir})"
        if info.get("user_error"):
            raise UserError(f"{info['message']} {where}", info.get("fix", ""))
        raise RuntimeError(f"rank {info.get('rank')} failed: {info['type']}: {info['message']}"
                           f"\n{info.get('traceback', '')}\nper-rank logs: {log_dir}")
    tails = []
    for log in sorted(log_dir.glob("workerlog.*")):
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        tails.append(f"--- {log.name} (last lines) ---\n" + "\n".join(lines[-25:]))
    launcher = log_dir / "launcher.log"
    if not tails and launcher.is_file():
        lines = launcher.read_text(encoding="utf-8", errors="replace").splitlines()
        tails.append("--- launcher.log (last lines) ---\n" + "\n".join(lines[-25:]))
    raise RuntimeError(f"paddle.distributed.launch exited with code {code} and no rank "
                       f"reported an error (killed or crashed?).\n" + "\n".join(tails) +
                       f"\nper-rank logs: {log_dir}")


def gather_rank_stats(log_dir: Path, fleet: FleetConfig, wall_seconds: float,
                      backend: str) -> dict[str, Any]:
    """Per-rank numbers written by the workers of this node, plus job totals."""
    ranks = [json.loads(p.read_text(encoding="utf-8"))
             for p in sorted(log_dir.glob("rank*.json"), key=lambda p: int(p.stem[4:]))]
    samples = sum(r.get("train_samples", 0) for r in ranks)
    slowest = max((r.get("train_seconds", 0.0) for r in ranks), default=0.0)
    return {
        "world_size": fleet.world_size, "nproc_per_node": fleet.nproc, "nodes": fleet.nodes,
        "backend": backend, "runtime": "fleet" if fleet.fleet_runtime else "data_parallel",
        "accumulate_steps": fleet.accumulate_steps, "log_dir": str(log_dir),
        "launch_seconds": round(wall_seconds, 2),
        "train_samples": samples,
        "train_samples_per_s": round(samples / slowest, 1) if slowest else None,
        "ranks": ranks,
    }


def distribute(the_plan: Plan, nproc: int | None, ips: list[str] | None,
               stage_types: tuple[str, ...] | None = None) -> Plan:
    """Set ``fleet.nproc`` / ``fleet.ips`` on the planned stages that train (in place).

    ``stage_types`` limits them to those stage types (``paddleopt train`` -> train). Stages
    with a ``fleet`` section (train) get ``fleet.*``; compression stages that fine-tune
    (prune, sparsify, distill, qat with a ``finetune`` recipe) get ``finetune.fleet.*``;
    the others (export, ptq...) never run distributed. The typed config, the resolved dict
    (fingerprint, lineage) and the raw config (config.resolved.yaml, what the ranks receive)
    all say the same, exactly as if the values had been written in the YAML.
    """
    from paddleopt.config.schema import parse, to_dict

    if nproc is None and not ips:
        return the_plan
    settings: dict[str, Any] = {}
    if nproc is not None:
        settings["nproc"] = int(nproc)
    if ips:
        settings["ips"] = list(ips)
    targets = []
    for step in the_plan.steps:
        if stage_types is not None and step.type not in stage_types:
            continue
        cfg = step.stage.config
        if hasattr(cfg, "fleet"):
            targets.append((step, cfg, ("fleet",)))
        elif getattr(cfg, "finetune", None) is not None and hasattr(cfg.finetune, "fleet"):
            targets.append((step, cfg.finetune, ("finetune", "fleet")))
    if not targets:
        kinds = "/".join(stage_types) if stage_types else "training"
        raise UserError(f"--nproc/--ips: the pipeline has no {kinds} stage that can run "
                        f"distributed (train, and compression stages that fine-tune).",
                        "drop --nproc/--ips, or add a train stage (or give the compression "
                        "stage a finetune recipe).")
    for step, owner, path in targets:
        fleet = parse(FleetConfig, {**to_dict(owner.fleet), **settings},
                      path=f"stages.{step.stage_id}.{'.'.join(path)}", source=the_plan.source)
        owner.fleet = fleet
        step.stage.check(the_plan.config, step.stage_id)
        step.config_dict = to_dict(step.stage.config)
        for stages in (the_plan.raw["stages"], the_plan.config.stages):
            node = stages.get(step.stage_id)
            if not isinstance(node, dict):
                node = stages[step.stage_id] = {}
            for key in path:
                if not isinstance(node.get(key), dict):
                    node[key] = {}
                node = node[key]
            node.update(settings)
    return the_plan


def parse_ips(text: str | None) -> list[str]:
    return [ip.strip() for ip in (text or "").split(",") if ip.strip()]
