"""An artifact: a folder plus its manifest. Also wraps bare Paddle inference model folders."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from paddleopt.artifact.manifest import MANIFEST_NAME, Manifest, sha256_file
from paddleopt.config.schema import ConfigError
from paddleopt.utils.errors import UserError


class Artifact:
    """A folder with a ``manifest.json``. Files are found by role, never by guessing names."""

    def __init__(self, path: str | Path, manifest: Manifest) -> None:
        self.path = Path(path)
        self.manifest = manifest

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> Artifact:
        """Open a paddleopt artifact, or wrap a plain Paddle inference model folder/file."""
        path = Path(path)
        if not path.exists():
            raise UserError(f"artifact '{path}' does not exist.",
                            "pass a folder written by a paddleopt stage (it holds manifest.json)"
                            " or a Paddle inference model folder (.pdmodel + .pdiparams).")
        if path.is_file() and path.suffix == ".pdmodel":
            path = path.parent
        manifest_path = path / MANIFEST_NAME
        if manifest_path.is_file():
            try:
                data = json.loads(manifest_path.read_text(encoding="utf-8"))
                return cls(path, Manifest.from_dict(data))
            except (json.JSONDecodeError, ConfigError) as exc:
                raise UserError(f"'{manifest_path}' is not a valid paddleopt manifest: {exc}",
                                "re-run the stage that produced this folder.") from None
        from paddleopt.artifact.foreign import wrap_inference_dir

        return cls(path, wrap_inference_dir(path))

    # -- files -----------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.manifest.kind

    def file(self, role: str) -> Path:
        rel = self.manifest.files.get(role)
        if rel is None:
            raise UserError(
                f"artifact '{self.path}' ({self.kind}) has no '{role}' file in its manifest "
                f"(it has: {', '.join(self.manifest.files) or 'none'}).",
                "use an artifact of the kind this command expects.")
        full = self.path / rel
        if not full.exists():
            raise UserError(f"artifact '{self.path}' is missing its {role} file '{rel}'.",
                            "re-run the stage that produced it; the folder is incomplete.")
        return full

    def verify(self) -> None:
        """Check every file against the sha256 recorded at save time (catches corruption)."""
        for role, expected in self.manifest.file_digests.items():
            actual = sha256_file(self.file(role))
            if actual != expected:
                raise UserError(
                    f"artifact '{self.path}': file '{self.manifest.files[role]}' ({role}) does "
                    f"not match the sha256 in its manifest; it is corrupt or was modified.",
                    "re-run the stage that produced it (paddleopt run ... without --resume).")

    def digest(self) -> str:
        """Content digest: the manifest bytes (which hold the sha256 of every file)."""
        manifest_path = self.path / MANIFEST_NAME
        if manifest_path.is_file():
            return hashlib.sha256(manifest_path.read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps(self.manifest.to_dict(), sort_keys=True).encode()
                              ).hexdigest()

    def size_bytes(self) -> int:
        return sum(self.file(role).stat().st_size for role in self.manifest.files
                   if (self.path / self.manifest.files[role]).is_file())

    def __repr__(self) -> str:
        return (f"Artifact({str(self.path)!r}, kind={self.kind!r}, "
                f"precision={self.manifest.precision!r})")
