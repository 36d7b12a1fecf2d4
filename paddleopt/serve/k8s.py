"""Kubernetes manifests for serving and for fleet training (``paddleopt k8s serve|train``).

* ``serving_manifests``: a Deployment running ``paddleopt serve`` from the container image
  (docker/Dockerfile), readiness/liveness/startup probes on the KServe v2 health routes,
  resource requests and limits, Prometheus scrape annotations, a ClusterIP Service and an
  autoscaling/v2 HorizontalPodAutoscaler on CPU.
* ``paddle_job``: a Kubeflow training-operator ``PaddleJob`` (kubeflow.org/v1) whose workers
  run ``paddleopt run -c CONFIG --nproc N``; the operator gives each pod ``PADDLE_MASTER`` and
  ``PADDLE_NNODES``, which ``paddle.distributed.launch`` reads for its rendezvous.

``validate`` checks them offline: core kinds against Kubernetes' own JSON schemas
(``kubernetes-validate``, strict: unknown fields are errors), the PaddleJob against the
operator CRD's required structure below with its pod template checked as a core v1
PodTemplate. Nothing here talks to a cluster.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from paddleopt.utils.errors import UserError

K8S_VERSION = "1.30.0"  # schema version the manifests are validated against
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
METRICS_PORT_NAME = "http"


@dataclass
class ServingSpec:
    """What ``paddleopt k8s serve`` asks for (the CLI flags carry the same names)."""

    name: str
    image: str
    model: str  # the artifact folder inside the container (baked in, or on the volume)
    port: int = 8000
    replicas: int = 2
    cpu: str = "2"
    memory: str = "2Gi"
    cpu_limit: str | None = None  # default: cpu (a guaranteed slice; Paddle's threads = cpu)
    memory_limit: str | None = None
    min_replicas: int = 2
    max_replicas: int = 8
    target_cpu_percent: int = 70
    workers: int = 2
    max_batch_size: int = 32
    pvc: str | None = None  # a PersistentVolumeClaim holding the models, mounted at /models
    gpu: int = 0  # nvidia.com/gpu per pod (the GPU image)

    def check(self) -> None:
        if not _NAME.match(self.name) or len(self.name) > 53:
            raise UserError(f"--name {self.name!r} is not a Kubernetes name.",
                            "use lowercase letters, digits and '-', e.g. digits-serve.")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise UserError("--min-replicas must be between 1 and --max-replicas.",
                            "e.g. --min-replicas 2 --max-replicas 8")
        if not 1 <= self.target_cpu_percent <= 100 or self.replicas < 1:
            raise UserError("--target-cpu must be 1-100 and --replicas >= 1.", "fix the value.")


def serving_manifests(spec: ServingSpec) -> list[dict[str, Any]]:
    spec.check()
    labels = {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/component": "serve",
              "app.kubernetes.io/part-of": "paddleopt"}
    probe = {"httpGet": {"path": "/v2/health/ready", "port": METRICS_PORT_NAME},
             "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3}
    resources: dict[str, Any] = {
        "requests": {"cpu": spec.cpu, "memory": spec.memory},
        "limits": {"cpu": spec.cpu_limit or spec.cpu, "memory": spec.memory_limit or spec.memory}}
    if spec.gpu:
        resources["limits"]["nvidia.com/gpu"] = spec.gpu
    args = ["serve", spec.model, "--host", "0.0.0.0", "--port", str(spec.port),
            "--model-name", spec.name, "--workers", str(spec.workers),
            "--max-batch-size", str(spec.max_batch_size),
            # the pod serves what its image/volume holds: a new model is a new rollout
            "--no-reload-api"] + (["--option", "device=gpu"] if spec.gpu else [])
    container: dict[str, Any] = {
        "name": "serve", "image": spec.image, "args": args,
        "ports": [{"name": METRICS_PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "env": [{"name": "OMP_NUM_THREADS", "value": _whole_cpus(spec.cpu)}],
        "resources": resources,
        # the port opens once the model is loaded: startup covers slow loads, then liveness
        "startupProbe": {"httpGet": {"path": "/v2/health/live", "port": METRICS_PORT_NAME},
                         "periodSeconds": 5, "failureThreshold": 60},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": METRICS_PORT_NAME},
                          "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3},
        "readinessProbe": probe,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }
    pod: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 30}
    if spec.pvc:
        container["volumeMounts"] = [{"name": "models", "mountPath": "/models",
                                      "readOnly": True}]
        pod["volumes"] = [{"name": "models", "persistentVolumeClaim": {
            "claimName": spec.pvc, "readOnly": True}}]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"replicas": spec.replicas, "selector": {"matchLabels": labels},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "template": {"metadata": {"labels": labels, "annotations": {
                     "prometheus.io/scrape": "true", "prometheus.io/port": str(spec.port),
                     "prometheus.io/path": "/metrics"}}, "spec": pod}}}
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"type": "ClusterIP", "selector": labels,
                 "ports": [{"name": METRICS_PORT_NAME, "port": spec.port,
                            "targetPort": METRICS_PORT_NAME, "protocol": "TCP"}]}}
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": spec.name},
                 "minReplicas": spec.min_replicas, "maxReplicas": spec.max_replicas,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization",
                                               "averageUtilization": spec.target_cpu_percent}}}]}}
    return [deployment, service, hpa]


def _whole_cpus(cpu: str) -> str:
    """OMP threads for a CPU request ("2", "1500m" -> "1")."""
    try:
        value = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    except ValueError:
        raise UserError(f"--cpu {cpu!r} is not a Kubernetes CPU quantity.",
                        "use e.g. 2 or 1500m.") from None
    return str(max(1, int(value)))


@dataclass
class TrainingSpec:
    name: str
    image: str
    config: str  # the pipeline config inside the container
    nodes: int = 2
    nproc: int = 1  # processes per node (GPUs per node on GPU images)
    cpu: str = "4"
    memory: str = "8Gi"
    gpu: int = 0
    pvc: str | None = None  # work_dirs volume, mounted at /work (outputs survive the pods)

    def check(self) -> None:
        if not _NAME.match(self.name) or len(self.name) > 40:
            raise UserError(f"--name {self.name!r} is not a Kubernetes name.",
                            "use lowercase letters, digits and '-', e.g. digits-train.")
        if self.nodes < 1 or self.nproc < 1:
            raise UserError("--nodes and --nproc must be >= 1.", "fix the value.")


def paddle_job(spec: TrainingSpec) -> dict[str, Any]:
    spec.check()
    resources: dict[str, Any] = {"requests": {"cpu": spec.cpu, "memory": spec.memory},
                                 "limits": {"cpu": spec.cpu, "memory": spec.memory}}
    if spec.gpu:
        resources["limits"]["nvidia.com/gpu"] = spec.gpu
    command = ["paddleopt", "run", "-c", spec.config, "--nproc", str(spec.nproc)]
    container: dict[str, Any] = {
        # "paddle" and the "master" port are the training operator's defaults for PaddleJob
        "name": "paddle", "image": spec.image, "command": command,
        "ports": [{"name": "master", "containerPort": 37777}],
        "resources": resources, "workingDir": "/work",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                            "allowPrivilegeEscalation": False}}
    pod: dict[str, Any] = {"containers": [container]}
    if spec.pvc:
        container["volumeMounts"] = [{"name": "work", "mountPath": "/work"}]
        pod["volumes"] = [{"name": "work", "persistentVolumeClaim": {"claimName": spec.pvc}}]
    return {
        "apiVersion": "kubeflow.org/v1", "kind": "PaddleJob",
        "metadata": {"name": spec.name, "labels": {"app.kubernetes.io/part-of": "paddleopt"}},
        "spec": {"runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3},
                 "paddleReplicaSpecs": {"Worker": {
                     "replicas": spec.nodes, "restartPolicy": "OnFailure",
                     "template": {"metadata": {"labels": {"app.kubernetes.io/name": spec.name}},
                                  "spec": pod}}}}}


# The PaddleJob CRD's structure (training-operator v1, kubeflow.org_paddlejobs.yaml): the
# fields this generator writes, with the CRD's required keys and enums; the pod template is
# checked against the core v1 schema separately.
PADDLEJOB_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "kubeflow.org/v1"}, "kind": {"const": "PaddleJob"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {"type": "object", "required": ["paddleReplicaSpecs"],
                 "additionalProperties": False,
                 "properties": {
                     "runPolicy": {"type": "object", "additionalProperties": False,
                                   "properties": {
                                       "cleanPodPolicy": {"enum": ["All", "Running", "None"]},
                                       "backoffLimit": {"type": "integer", "minimum": 0},
                                       "activeDeadlineSeconds": {"type": "integer"},
                                       "ttlSecondsAfterFinished": {"type": "integer"}}},
                     "elasticPolicy": {"type": "object"},
                     "paddleReplicaSpecs": {
                         "type": "object", "minProperties": 1, "additionalProperties": False,
                         "properties": {r: {"$ref": "#/$defs/replica"}
                                        for r in ("Master", "Worker")}}}}},
    "$defs": {"replica": {
        "type": "object", "required": ["template"], "additionalProperties": False,
        "properties": {"replicas": {"type": "integer", "minimum": 1},
                       "restartPolicy": {"enum": ["Always", "OnFailure", "Never",
                                                  "ExitCode"]},
                       "template": {"type": "object"}}}},
}


def validate(doc: dict[str, Any], version: str = K8S_VERSION) -> None:
    """Raise ``UserError`` naming the first schema violation of ``doc``."""
    import jsonschema
    import kubernetes_validate

    def core(resource: dict[str, Any]) -> None:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise UserError(f"{resource['kind']} {resource['metadata'].get('name')}: "
                            f"{'.'.join(str(p) for p in exc.path)}: {exc.message}",
                            "fix the generator or the flags") from None

    if doc.get("kind") != "PaddleJob":
        core(doc)
        return
    try:
        jsonschema.validate(doc, PADDLEJOB_SCHEMA)
    except jsonschema.ValidationError as exc:
        raise UserError(f"PaddleJob: {'.'.join(str(p) for p in exc.path)}: {exc.message}",
                        "fix the generator or the flags") from None
    for role, replica in doc["spec"]["paddleReplicaSpecs"].items():
        core({"apiVersion": "v1", "kind": "PodTemplate",
              "metadata": {"name": f"{doc['metadata']['name']}-{role.lower()}"},
              "template": replica["template"]})


def to_yaml(docs: list[dict[str, Any]]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # no &id001 anchors: plain manifests
            return True

    return "---\n".join(yaml.dump(d, Dumper=Dumper, sort_keys=False) for d in docs)
