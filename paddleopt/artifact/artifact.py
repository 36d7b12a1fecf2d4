"""An artifact: a folder plus its manifest. Also wraps bare Paddle inference model folders."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from paddleopt.artifact.manifest import MANIFEST_NAME, Manifest, sha256_file
from paddleopt.config.schema import ConfigError
from paddleopt.utils.errors import UserError


class Artifact:
    """A folder with a ``manifest.json``. Files are found by role, never by guessing names."""

    def __init__(self, path: str | Path, manifest: Manifest, has_digests: bool = True) -> None:
        self.path = Path(path)
        self.manifest = manifest
        # False when manifest.json lacks the 'file_digests' key: every manifest paddleopt
        # writes has it, so a missing key means the manifest was edited or made elsewhere.
        self.has_digests = has_digests

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
                return cls(path, Manifest.from_dict(data),
                           has_digests=isinstance(data, dict) and "file_digests" in data)
            except (json.JSONDecodeError, UnicodeDecodeError, ConfigError) as exc:
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
        full = self._inside(role, rel)
        if not full.exists():
            raise UserError(f"artifact '{self.path}' is missing its {role} file '{rel}'.",
                            "re-run the stage that produced it; the folder is incomplete.")
        if not full.is_file():
            raise UserError(f"artifact '{self.path}': its {role} file '{rel}' is a directory, "
                            f"not a file.", "re-run the stage that produced it.")
        return full

    @property
    def foreign(self) -> bool:
        """True for a model folder paddleopt did not make (no manifest.json): nothing to
        verify its files against."""
        return self.manifest.model.get("source") == "foreign" and \
            not (self.path / MANIFEST_NAME).is_file()

    def _inside(self, role: str, rel: str) -> Path:
        """``self.path / rel``, refusing paths that leave the folder (an edited manifest
        pointing at ../../x or /etc/x would read, and vouch for, someone else's file)."""
        full = self.path / rel
        base = self.path.resolve()
        if Path(rel).is_absolute() or base not in (full.resolve(), *full.resolve().parents):
            raise UserError(f"artifact '{self.path}': its {role} file '{rel}' lies outside the "
                            f"artifact folder.", "file paths in manifest.json are relative to "
                            "the folder and stay inside it; re-run the stage that produced it.")
        return full

    def verify(self) -> Artifact:
        """Check every file against the sha256 recorded at save time (catches corruption,
        truncation, edits). Raises a UserError naming the file and the fix.

        A manifest without 'file_digests' is refused (paddleopt always writes the key; without
        it a corrupted file would pass). A foreign folder (no manifest) has nothing to check:
        a warning says so once.
        """
        if not (self.path / MANIFEST_NAME).is_file():
            # A foreign folder, or an artifact a stage is still writing (its manifest is
            # saved last): no digests to check yet, only the program's structure.
            if self.foreign:
                _warn_foreign(self.path)
            self._validate_program()
            return self
        fix = ("re-run the stage that produced it (paddleopt run ... without --resume), or "
               "re-export / re-copy the whole folder.")
        if not self.has_digests:
            raise UserError(
                f"artifact '{self.path}': its {MANIFEST_NAME} has no 'file_digests', so its "
                f"files cannot be checked for corruption (paddleopt writes them for every "
                f"artifact; the manifest was edited or made by something else).", fix)
        stamp = self._stamp()
        if stamp is not None and _verified.get(str(self.path.resolve())) == stamp:
            return self  # unchanged since it was last verified in this process
        digests = self.manifest.file_digests
        for role, rel in self.manifest.files.items():
            full = self._inside(role, rel)
            if not full.exists():
                raise UserError(f"artifact '{self.path}' is missing its {role} file '{rel}'.",
                                fix)
            if not full.is_file():
                raise UserError(f"artifact '{self.path}': its {role} file '{rel}' is a "
                                f"directory, not a file.", fix)
            if role not in digests:
                raise UserError(f"artifact '{self.path}': its {role} file '{rel}' has no "
                                f"sha256 in {MANIFEST_NAME} (the manifest was edited).", fix)
            if sha256_file(full) != digests[role]:
                raise UserError(
                    f"'{full}' ({role} file of artifact '{self.path}') does not match the "
                    f"sha256 in its manifest; it is corrupt, truncated or was modified.", fix)
        self._validate_program()
        if stamp is not None:
            _verified[str(self.path.resolve())] = stamp
        return self

    def _validate_program(self) -> None:
        """Inference programs: Paddle segfaults on some malformed ProgramDescs, so check
        their structure before Paddle sees them (even when the digests match)."""
        if self.kind == "inference" and "model" in self.manifest.files:
            from paddleopt.artifact.program import validate_program

            validate_program(self.file("model"))

    def _stamp(self) -> tuple | None:
        """(size, mtime, inode) of the manifest and every file: any write changes it."""
        try:
            paths = [self.path / MANIFEST_NAME,
                     *(self.path / rel for rel in self.manifest.files.values())]
            return tuple((st.st_size, st.st_mtime_ns, st.st_ino)
                         for st in (p.stat() for p in paths))
        except OSError:
            return None

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


_warned_foreign: set[str] = set()
_verified: dict[str, tuple] = {}  # resolved folder -> stamp at its last successful verify


def _warn_foreign(path: Path) -> None:
    key = str(path.resolve())
    if key not in _warned_foreign:
        _warned_foreign.add(key)
        logging.getLogger("paddleopt").warning(
            "'%s' has no manifest.json: a model paddleopt did not make; its files cannot be "
            "checked for corruption.", path)


def verify_artifact(path: str | Path) -> Artifact:
    """Open the artifact at ``path`` and check its files against their recorded sha256.

    Raises ``UserError`` (message names the file; fix: re-run the stage that made it) for a
    missing, truncated or modified file, a directory where a file belongs, or a manifest
    without ``file_digests``. Returns the verified artifact. Foreign model folders (no
    manifest) pass with a warning.
    """
    return Artifact.open(path).verify()
