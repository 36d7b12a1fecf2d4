"""Load YAML configs with `base:` inheritance and `-o dotted.key=value` overrides."""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from paddleopt.utils.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """safe_load plus YAML 1.2 floats: PyYAML (YAML 1.1) reads `1e-3` as a string, which
    surprises everyone who writes a learning rate that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def deep_merge(base: dict, override: dict) -> dict:
    """Merge ``override`` into a copy of ``base``; mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist.",
                          "check the path given to -c (configs live in configs/*.yaml).")
    try:
        return safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {exc}",
                          "fix the YAML syntax at the line shown.") from None


def load_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read ``path`` and resolve its ``base:`` chain (a path or list, relative to the file)."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"config 'base:' chain loops: {chain}.", "remove the cycle.")
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a YAML mapping at the top level.",
                          "write it as 'key: value' lines.")
    bases = data.pop("base", None) or []
    if isinstance(bases, str):
        bases = [bases]
    merged: dict = {}
    for base in bases:
        merged = deep_merge(merged, load_file(path.parent / base, (*_seen, path)))
    return deep_merge(merged, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b.c=value' -> (['a','b','c'], safe_load(value)). Never eval."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' has no '='.", "write overrides as -o key.path=value.")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ConfigError(f"override '{text}' has an empty key.", "write -o key.path=value.")
    try:
        value = safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(config: dict, overrides: list[str], shorthand_roots: dict[str, list[str]]
                    | None = None) -> dict:
    """Apply ``-o`` overrides. ``shorthand_roots`` maps a first key to a real prefix, so that
    ``train.epochs=1`` can mean ``stages.train.epochs=1`` when ``train`` is a stage id."""
    out = copy.deepcopy(config)
    for text in overrides:
        parts, value = parse_override(text)
        if shorthand_roots and parts[0] not in out and parts[0] in shorthand_roots:
            parts = shorthand_roots[parts[0]] + parts
        node = out
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                try:
                    node = node[int(part)]
                    continue
                except (ValueError, IndexError):
                    raise ConfigError(f"override '{text}': '{'.'.join(parts[:i + 1])}' is a list.",
                                      "index it with a number, e.g. key.0.field=value.") from None
            if node.get(part) is None:
                node[part] = {}
            elif not isinstance(node[part], (dict, list)):
                raise ConfigError(
                    f"override '{text}': '{'.'.join(parts[:i + 1])}' is a value, not a mapping.",
                    "override the value itself, or fix the key path.")
            node = node[part]
        if isinstance(node, list):
            node[int(parts[-1])] = value
        else:
            node[parts[-1]] = value
    return out


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict:
    """Raw config dict: the file with its bases merged and overrides applied."""
    config = load_file(path)
    stages = config.get("stages") or {}
    roots = {sid: ["stages"] for sid in stages} if isinstance(stages, dict) else {}
    return apply_overrides(config, overrides or [], roots)


def dump_yaml(data: Any, path: Path) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
