from paddleopt.artifact.artifact import Artifact, verify_artifact
from paddleopt.artifact.manifest import IOSpec, LineageEntry, Manifest, TensorSpec

__all__ = ["Artifact", "IOSpec", "LineageEntry", "Manifest", "TensorSpec", "verify_artifact"]
