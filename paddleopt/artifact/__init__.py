from paddleopt.artifact.artifact import Artifact
from paddleopt.artifact.manifest import IOSpec, LineageEntry, Manifest, TensorSpec

__all__ = ["Artifact", "IOSpec", "LineageEntry", "Manifest", "TensorSpec"]
