"""Run Paddle Lite's ``opt`` (paddle_lite_opt) in a subprocess and turn failures into UserErrors.

Why a subprocess: opt reports most problems with glog ``LOG(FATAL)`` (SIGABRT) or simply
segfaults (e.g. a missing XShape output), which would take the Python interpreter with it.
Why the ``paddle_lite_opt`` command rather than ``paddlelite.lite.Opt`` in a child: the error
can then quote a command line the user can rerun as is.

Facts about paddlelite 2.13rc0 this module relies on (checked on its x86-64 cp310 wheel):

* ``paddle_lite_opt`` exits 0 even when it printed its usage and did nothing, so success is
  "exit code 0 AND the .nb exists" (a stale .nb is deleted first).
* ``--valid_targets=opencl`` means OpenCL with ARM fallback (the ops table shows kARM+kOpenCL).
* A bad ``--valid_targets`` value aborts ("Wrong target 'x' found").
* ``--print_supported_ops=true --valid_targets=T`` prints a table: a header
  ``OP_name kARM kHost ...`` and one row per op with ``Y`` under each place that has a kernel.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from paddleopt.utils.errors import UserError

TARGETS: tuple[str, ...] = ("arm", "x86", "opencl")
DEFAULT_TIMEOUT = 600.0
TAIL_LINES = 25

_UNSUPPORTED_RE = re.compile(r"These unsupported ops are: (.+?)\.?\s*$", re.MULTILINE)
_MISSING_ATTR_RE = re.compile(r"No attributes called (\S+) found for (\S+)")


@dataclass
class ToolRun:
    """One finished (or killed) run of the opt command."""

    command: list[str]
    returncode: int | None  # None: killed after the timeout
    output: str  # stdout and stderr, interleaved as opt wrote them
    seconds: float

    @property
    def how(self) -> str:
        """'exit code 1' / 'killed by SIGSEGV' / 'timed out after 600 s' (for messages)."""
        if self.returncode is None:
            return f"timed out after {self.seconds:.0f} s"
        if self.returncode < 0:
            try:
                return f"killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                return f"killed by signal {-self.returncode}"
        return f"exit code {self.returncode}"

    def tail(self, lines: int = TAIL_LINES) -> str:
        text = self.output.rstrip().splitlines()
        return "\n".join(text[-lines:]) if text else "(no output)"

    def command_line(self) -> str:
        import shlex

        return " ".join(shlex.quote(part) for part in self.command)


@dataclass
class OptResult:
    nb_file: Path
    target: str
    run: ToolRun
    size_bytes: int


class OptError(UserError):
    """opt failed; carries what it said and what we could diagnose from it."""

    def __init__(self, message: str, fix: str, run: ToolRun,
                 unsupported_ops: list[str] | None = None,
                 missing_attrs: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message, fix)
        self.run = run
        self.unsupported_ops = unsupported_ops or []
        self.missing_attrs = missing_attrs or []  # [(op, attr)]


# -- locating and running the tool -----------------------------------------------------------

def opt_command() -> list[str]:
    """The opt command of the paddlelite wheel installed next to this interpreter."""
    candidates = [Path(sys.executable).parent / "paddle_lite_opt"]
    found = shutil.which("paddle_lite_opt")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file():
            # The wheel's paddle_lite_opt is a Python script; run it with this interpreter so
            # that the same paddlelite is used even when the venv is not activated.
            head = path.read_bytes()[:128]
            return [sys.executable, str(path)] if head.startswith(b"#!") and b"python" in head \
                else [str(path)]
    raise UserError("paddle_lite_opt (Paddle Lite's model optimizer) was not found.",
                    'run: pip install -c constraints.txt -e ".[lite]" (paddlelite==2.13rc0, '
                    "Python 3.10, x86-64 Linux).")


def run_tool(args: list[str], timeout: float = DEFAULT_TIMEOUT,
             command: list[str] | None = None) -> ToolRun:
    """Run opt with ``args`` in a child process; never raises for the child's failures."""
    cmd = [*(command or opt_command()), *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=env, timeout=timeout)
        code: int | None = proc.returncode
        raw = proc.stdout
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed the child
        code, raw = None, exc.stdout or b""
    return ToolRun(cmd, code, raw.decode("utf-8", errors="replace"),
                   time.perf_counter() - started)


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise UserError(f"unknown Lite target '{target}'.", f"use one of: {', '.join(TARGETS)}.")


# -- converting --------------------------------------------------------------------------------

def optimize(model_file: str | Path, params_file: str | Path, out_file: str | Path,
             target: str, *, enable_fp16: bool = False, timeout: float = DEFAULT_TIMEOUT,
             extra_args: list[str] | None = None, command: list[str] | None = None,
             known_unsupported: list[str] | None = None) -> OptResult:
    """Convert a Paddle inference model into ``out_file`` (must end in .nb) for ``target``.

    Args:
        known_unsupported: ops the pre-check already found unsupported; named in the error
            when opt fails without saying why.
        command: override the opt command (tests use it to simulate crashes).

    Raises:
        OptError: opt exited non-zero, was killed by a signal, timed out, or wrote no .nb.
    """
    check_target(target)
    out_file = Path(out_file)
    if out_file.suffix != ".nb":
        raise ValueError(f"out_file must end in .nb, got {out_file}")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.unlink(missing_ok=True)  # opt appends .nb itself; a stale file would look like success
    args = [f"--model_file={model_file}", f"--param_file={params_file}",
            f"--optimize_out={out_file.with_suffix('')}", "--optimize_out_type=naive_buffer",
            f"--valid_targets={target}"]
    if enable_fp16:
        args.append("--enable_fp16=true")
    args += extra_args or []
    run = run_tool(args, timeout=timeout, command=command)
    if run.returncode == 0 and out_file.is_file() and out_file.stat().st_size > 0:
        return OptResult(out_file, target, run, out_file.stat().st_size)
    raise opt_error(run, target, out_file, known_unsupported or [])


def opt_error(run: ToolRun, target: str, out_file: Path,
              known_unsupported: list[str]) -> OptError:
    """Build the UserError for a failed run: opt's own words first, then our diagnosis."""
    unsupported = parse_unsupported_ops(run.output) or list(known_unsupported)
    missing = _MISSING_ATTR_RE.findall(run.output)
    missing_attrs = [(op, attr) for attr, op in missing]
    if run.returncode == 0:
        what = f"exited 0 but wrote no {out_file.name}"
    else:
        what = run.how
    message = (f"Paddle Lite opt failed for target '{target}' ({what}).\n"
               f"command: {run.command_line()}\n"
               f"opt output (last {TAIL_LINES} lines):\n{run.tail()}")
    if unsupported:
        message += f"\nunsupported ops on '{target}': {', '.join(unsupported)}"
        fix = (f"replace these ops in the model (see `paddleopt check ARTIFACT --target "
               f"{target}`), or deploy with another backend (paddle_inference, onnxruntime).")
    elif missing_attrs:
        from paddleopt.export.lite_compat import ATTR_DEFAULTS

        listed = ", ".join(f"{op}.{attr}" for op, attr in missing_attrs)
        message += f"\nattributes opt needs but the model lacks: {listed}"
        if all(attr in ATTR_DEFAULTS.get(op, {}) for op, attr in missing_attrs):
            fix = ("apply the compat rewrite (to_lite's compat_rewrite: true, the default; "
                   "paddleopt.export.lite_compat.rewrite_model_file), or export with "
                   "clip_extra: false.")
        else:
            fix = ("export with clip_extra: false (stages.export.clip_extra) so paddle.jit.save "
                   "keeps them, and report the op so paddleopt's compat rewrite can restore it.")
    elif run.returncode is None:
        fix = "raise stages.<id>.timeout, or check the machine is not swapping."
    elif run.returncode is not None and run.returncode < 0:
        fix = ("opt crashed without a diagnosis. Known causes with Paddle 2.6 exports: an output "
               "or attribute dropped by clip_extra (re-export with clip_extra: false), "
               "layer_norm without scale/bias. Run `paddleopt check ARTIFACT --target "
               f"{target}` and see docs/EXPORT.md.")
    else:
        fix = "read opt's output above; rerun the printed command to reproduce."
    return OptError(message, fix, run, unsupported, missing_attrs)


def parse_unsupported_ops(output: str) -> list[str]:
    """Ops from opt's "These unsupported ops are: 'a', 'b'." line (empty if none)."""
    found: list[str] = []
    for match in _UNSUPPORTED_RE.finditer(output):
        for name in re.findall(r"'([^']+)'", match.group(1)) or match.group(1).split(","):
            name = name.strip()
            if name and name not in found:
                found.append(name)
    return found


# -- op tables -----------------------------------------------------------------------------

@dataclass
class OpTable:
    """Parsed ``--print_supported_ops`` output: op -> places with a kernel (kARM, kHost...)."""

    target: str
    places: list[str] = field(default_factory=list)
    ops: dict[str, list[str]] = field(default_factory=dict)


def parse_op_table(output: str, target: str) -> OpTable:
    """Parse the fixed-width table opt prints. Y marks are aligned under the place columns."""
    lines = output.splitlines()
    header_idx = next((i for i, line in enumerate(lines) if line.strip().startswith("OP_name")),
                      None)
    if header_idx is None:
        raise UserError(f"could not read Paddle Lite's supported-op table for '{target}'; "
                        f"opt printed:\n{chr(10).join(lines[-10:])}",
                        "check the paddlelite install (pip install paddlelite==2.13rc0).")
    header = lines[header_idx]
    places = header.split()[1:]
    # Each place name ends at a fixed column; the row's Y sits at that name's last character.
    ends = [m.end() - 1 for m in re.finditer(r"\S+", header)][1:]
    table = OpTable(target, places)
    for line in lines[header_idx + 1:]:
        parts = line.split()
        if not parts or not all(p == "Y" for p in parts[1:]):
            continue
        marks = [place for place, end in zip(places, ends)
                 if end < len(line) and line[end] == "Y"]
        table.ops[parts[0]] = marks or ["?"]
    return table


@functools.cache
def supported_ops(target: str, timeout: float = 120.0) -> OpTable:
    """The ops Paddle Lite can run on ``target`` (cached per process: ~0.2 s per call)."""
    check_target(target)
    run = run_tool(["--print_supported_ops=true", f"--valid_targets={target}"], timeout=timeout)
    if run.returncode != 0:
        raise UserError(f"paddle_lite_opt --print_supported_ops failed for '{target}' "
                        f"({run.how}):\n{run.tail()}",
                        "check the paddlelite install (pip install paddlelite==2.13rc0).")
    return parse_op_table(run.output, target)


def opt_version() -> str | None:
    from paddleopt.utils.versions import package_version

    return package_version("paddlelite")


# -- reading a .nb ---------------------------------------------------------------------------

def read_nb_header(path: str | Path) -> dict[str, object]:
    """Check the naive-buffer header without Lite (Lite aborts on a file it cannot parse).

    Layout written by opt 2.13: uint16 meta version (2), then a 16-byte NUL-padded opt
    version string ("v2.13-rc"), then the topology size.
    """
    path = Path(path)
    head = path.read_bytes()[:18] if path.is_file() else b""
    if len(head) < 18 or head[:2] != b"\x02\x00" or not head[2:5].startswith(b"v"):
        raise UserError(f"'{path}' is not a Paddle Lite naive-buffer model (.nb written by opt "
                        f"2.x).", "convert the model again with the to_lite stage.")
    return {"meta_version": 2, "opt_version": head[2:18].split(b"\x00", 1)[0].decode(
        "ascii", errors="replace")}


_NB_OPS_CHILD = r"""
import sys
import paddlelite.lite as lite
print("BLOCKS", lite.Opt().visualize_optimized_nb_model(sys.argv[1], sys.argv[2]))
"""


def nb_ops(nb_file: str | Path, work_dir: str | Path, timeout: float = 60.0) -> dict[str, int]:
    """Parse the .nb as a naive buffer (in a child: Lite aborts on bad files) and count the ops
    of its optimized program, e.g. {"conv2d": 7, "calib": 4, "fc": 1}. "calib" ops convert
    tensors between precisions (int8/fp16 <-> fp32)."""
    read_nb_header(nb_file)
    out = Path(work_dir)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", _NB_OPS_CHILD]
    run = run_tool([str(nb_file), f"{out}{os.sep}"], timeout=timeout, command=cmd)
    if run.returncode != 0:
        raise UserError(f"Paddle Lite cannot load '{nb_file}' as a naive buffer ({run.how}):\n"
                        f"{run.tail()}", "convert the model again with the to_lite stage.")
    counts: dict[str, int] = {}
    for dot in sorted(out.glob("*.dot")):
        for label, style in re.findall(r'label="([^"]+)"[^\]]*fillcolor="(\w+)"',
                                       dot.read_text(errors="replace")):
            if style == "yellow":  # ops are yellow, tensors gray
                counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))
