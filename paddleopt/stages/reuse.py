"""Why a finished stage folder cannot be reused: what differs between how it was made (its
manifest's last lineage entry and versions, the previous run's config.resolved.yaml) and
what the plan asks now. The fingerprint says *that* something changed; this says *what*."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paddleopt.artifact import Artifact

SHOWN = 4  # changed keys named in one message; the rest are counted


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    if not isinstance(value, dict):
        return {prefix.rstrip("."): value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(flatten(item, f"{prefix}{key}."))
    return out


def changed(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """'key: old -> new' for every flattened key whose value differs."""
    a, b = flatten(old, prefix), flatten(new, prefix)
    return [f"{k}: {_short(a.get(k, '(unset)'))} -> {_short(b.get(k, '(unset)'))}"
            for k in sorted(set(a) | set(b)) if a.get(k, "(unset)") != b.get(k, "(unset)")]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_previous_config(work_dir: Path) -> dict[str, Any] | None:
    """The resolved config the last run of this work dir wrote (None when unreadable)."""
    from paddleopt.config.loader import load_config

    path = work_dir / "config.resolved.yaml"
    try:
        return load_config(path) if path.is_file() else None
    except Exception:  # a hand-edited or truncated file only costs the explanation
        return None


def what_changed(folder: Path, stage_id: str, stage_type: str, config: dict[str, Any],
                 parent_digest: str | None, versions: dict[str, str],
                 previous: dict[str, Any] | None, raw: dict[str, Any]) -> str:
    """One line naming what differs from when ``folder`` was made."""
    try:
        art = Artifact.open(folder)
    except Exception:
        return "its manifest cannot be read"
    if not art.manifest.lineage:
        return "it records no lineage"
    entry = art.manifest.lineage[-1]
    reasons = []
    if entry.type != stage_type:
        reasons.append(f"stage type {entry.type} -> {stage_type}")
    reasons += changed(entry.config, config, f"stages.{stage_id}.")
    if previous is not None:
        for section in ("model", "data", "seed"):
            reasons += changed({section: previous.get(section)}, {section: raw.get(section)})
    if entry.parent_digest != parent_digest:
        reasons.append("its input artifact differs (the stage before it was re-made or "
                       "its files changed)")
    reasons += [f"package {c}" for c in changed(art.manifest.versions, versions)]
    if not reasons:
        return "its settings differ (model, data or seed outside the stage's config)"
    more = f" and {len(reasons) - SHOWN} more" if len(reasons) > SHOWN else ""
    return "; ".join(reasons[:SHOWN]) + more
