"""Dockerfiles and Kubernetes manifests, validated offline: the Dockerfiles parse with
BuildKit's parser (the `dockerfile` package) and keep their promises (pinned base, the
constraints, non-root, a HEALTHCHECK on a route the server has, a CMD the CLI accepts); the
generated manifests pass Kubernetes' JSON schemas (kubernetes-validate, strict) and the
PaddleJob CRD structure. No image is built and no cluster is contacted here."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if importlib.util.find_spec("dockerfile") is None:
    pytest.skip("dockerfile (BuildKit's parser) not installed", allow_module_level=True)
pytest.importorskip("kubernetes_validate")

# The `dockerfile` package is BuildKit's Go parser built as a cgo shared library. Loaded into
# the suite's process, after Paddle, OpenVINO and friends have installed their own signal
# handlers and threads, its first call took the whole pytest process down with SIGSEGV (clean
# clone of main, full `make test`; not reproduced with this file alone). So the Dockerfiles are
# parsed in a child Python and only plain data comes back.
_PARSE = ("import json, sys, dockerfile; print(json.dumps([[c.cmd, list(c.value)] "
          "for c in dockerfile.parse_file(sys.argv[1])]))")


@dataclass(frozen=True)
class Instruction:
    cmd: str
    value: tuple[str, ...]


def parsed(name: str) -> list[Instruction]:
    out = subprocess.run([sys.executable, "-c", _PARSE, str(REPO / "docker" / name)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [Instruction(cmd, tuple(value)) for cmd, value in json.loads(out.stdout)]


def cli_accepts(args: list[str]) -> None:
    from paddleopt.cli.main import build_parser

    build_parser().parse_args(args)  # exits (SystemExit) on an unknown flag


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfiles_keep_their_promises(name):
    cmds = parsed(name)
    kinds = [c.cmd for c in cmds]
    base = next(c for c in cmds if c.cmd == "FROM")
    args = {c.value[0].split("=")[0]: c.value[0].split("=", 1)[1] for c in cmds
            if c.cmd == "ARG" and "=" in c.value[0]}
    image = base.value[0]
    if image.startswith("${"):
        image = args[image.strip("${}")]
    repo, tag = image.rsplit(":", 1)
    assert tag != "latest" and any(ch.isdigit() for ch in tag), image
    assert "2.6.2" in tag or repo == "python" and tag.startswith("3.10"), image
    runs = " ".join(" ".join(c.value) for c in cmds if c.cmd == "RUN")
    assert "-c constraints.txt" in runs
    user = [c for c in cmds if c.cmd == "USER"]
    assert user and user[-1].value[0].split(":")[0] not in ("0", "root")
    assert kinds.index("USER") < kinds.index("CMD")
    health = next(c for c in cmds if c.cmd == "HEALTHCHECK")
    assert "/v2/health/ready" in " ".join(health.value)  # test_v2.py: the route answers
    for copy in (c for c in cmds if c.cmd == "COPY"):
        for src in copy.value[:-1]:
            src = args.get(src.strip("${}"), src) if src.startswith("${") else src
            assert (REPO / src).exists(), f"COPY {src}: not in the build context"
    entry = next(c for c in cmds if c.cmd == "ENTRYPOINT").value
    cmd = next(c for c in cmds if c.cmd == "CMD").value
    assert list(entry) == ["paddleopt"]
    cli_accepts(list(cmd))


def generate(*args: str) -> list[dict]:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "paddleopt", "k8s", *args],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_serving_manifests_pass_the_kubernetes_schemas():
    from paddleopt.serve.k8s import validate

    docs = generate("serve", "--name", "digits", "--image", "registry.example/paddleopt:0.1.0",
                    "--pvc", "models", "--model", "/models/digits/v3", "--cpu", "1500m",
                    "--max-replicas", "5")
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    for doc in docs:
        validate(doc)
    pod = docs[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"]["requests"] == {"cpu": "1500m", "memory": "2Gi"}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["env"] == [{"name": "OMP_NUM_THREADS", "value": "1"}]
    cli_accepts(container["args"])  # the container runs `paddleopt <args>`
    assert container["args"][1] == "/models/digits/v3"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "models"
    assert docs[1]["spec"]["selector"] == docs[0]["spec"]["selector"]["matchLabels"]
    assert docs[2]["spec"]["scaleTargetRef"]["name"] == "digits"
    assert docs[2]["spec"]["maxReplicas"] == 5


def test_paddle_job_passes_the_crd_structure_and_pod_schema(tmp_path):
    from paddleopt.serve.k8s import validate

    docs = generate("train", "--name", "digits-train", "--image", "reg/paddleopt:0.1.0",
                    "-c", "configs/quickstart.yaml", "--nodes", "3", "--nproc", "2",
                    "--pvc", "work")
    (job,) = docs
    validate(job)
    worker = job["spec"]["paddleReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 3
    container = worker["template"]["spec"]["containers"][0]
    assert container["name"] == "paddle"
    assert container["command"][:4] == ["paddleopt", "run", "-c", "configs/quickstart.yaml"]
    cli_accepts(container["command"][1:])


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(ports=[{"containerPort":
                                                                         "eighty"}]),
     "eighty"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(bogus=1), "bogus"),
    (lambda d: d["spec"].pop("selector"), "selector"),
])
def test_the_validation_catches_broken_manifests(mutate, words):
    from paddleopt.serve.k8s import ServingSpec, serving_manifests, validate
    from paddleopt.utils.errors import UserError

    deployment = serving_manifests(ServingSpec(name="d", image="i:1", model="/m"))[0]
    mutate(deployment)
    with pytest.raises(UserError, match=words):
        validate(deployment)


def test_broken_paddle_job_is_refused():
    from paddleopt.serve.k8s import TrainingSpec, paddle_job, validate
    from paddleopt.utils.errors import UserError

    job = paddle_job(TrainingSpec(name="t", image="i:1", config="c.yaml"))
    job["spec"]["paddleReplicaSpecs"]["Worker"]["restartPolicy"] = "Sometimes"
    with pytest.raises(UserError, match="Sometimes"):
        validate(job)


def test_bad_flags_exit_2_with_a_message():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "paddleopt", "k8s", "serve", "--name",
                          "Bad_Name", "--image", "i:1"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 2 and "not a Kubernetes name" in out.stderr
    assert "Traceback" not in out.stderr
