"""Load YAML configs with `base:` inheritance and `-o dotted.key=value` overrides."""
from __future__ import annotations

import copy
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from paddleopt.utils.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """safe_load plus YAML 1.2 floats: PyYAML (YAML 1.1) reads `1e-3` as a string, which
    surprises everyone who writes a learning rate that way. Duplicate keys are refused
    (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key!r} (first at line "
                        f"{seen[key].start_mark.line + 1}); YAML would keep only the last one",
                        key_node.start_mark)
                seen[key] = key_node
            except TypeError:  # unhashable key: let PyYAML report it
                break
        return super().construct_mapping(node, deep=deep)


# A config expands to at most this many values once YAML aliases are followed: a few
# aliases nested ("billion laughs") would otherwise make later copies burn CPU for minutes.
MAX_EXPANDED_NODES = 200_000


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


# PyYAML's parser recurses once per nesting level (a few frames each). Libraries raise the
# interpreter's limit (paddleslim sets 10000 at import), and at that depth a 5000-deep `{{{`
# overflows the C stack (SIGSEGV) instead of raising RecursionError. Configs need a few levels.
YAML_RECURSION_LIMIT = 1000


@contextmanager
def bounded_recursion(limit: int = YAML_RECURSION_LIMIT) -> Iterator[None]:
    """Lower the recursion limit (never raise it) for the duration of a parse."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(min(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def safe_load(text: str) -> Any:
    with bounded_recursion():
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    _check_expanded_size(data)
    return data


def _check_expanded_size(data: Any) -> None:
    """Count values as if every alias were copied; stop as soon as the limit is passed."""
    count = 0
    stack = [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_EXPANDED_NODES:
            raise yaml.YAMLError(
                f"the document expands to more than {MAX_EXPANDED_NODES:,} values once its "
                f"aliases (*name) are followed (an alias bomb?)")
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def deep_merge(base: dict, override: dict) -> dict:
    """Merge ``override`` into a copy of ``base``; mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: Path, included_by: Path | None = None) -> Any:
    if not path.is_file():
        if included_by is not None:
            raise ConfigError(
                f"config file '{included_by}' says 'base: {path.name}', but '{path}' does not "
                f"exist (base paths are relative to the file that names them).",
                f"fix the 'base:' entry in '{included_by}' to point at an existing YAML file.")
        raise ConfigError(f"config file '{path}' does not exist.",
                          "check the path given to -c (configs live in configs/*.yaml).")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file '{path}' is not UTF-8 text (byte {exc.start} is "
                          f"{exc.object[exc.start:exc.start + 1]!r}).",
                          "save it as UTF-8 (configs are YAML text files).") from None
    except OSError as exc:
        raise ConfigError(f"config file '{path}' cannot be read: {exc.strerror}.",
                          "check the path and its permissions.") from None
    try:
        return safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {exc}",
                          "fix the YAML at the line shown.") from None
    except RecursionError:
        raise ConfigError(f"config file '{path}' nests mappings/lists too deeply to read.",
                          "flatten it: a pipeline config needs only a few levels.") from None


def load_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read ``path`` and resolve its ``base:`` chain (a path or list, relative to the file)."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"config 'base:' chain loops: {chain}.", "remove the cycle.")
    data = read_yaml(path, _seen[-1] if _seen else None)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a YAML mapping at the top level.",
                          "write it as 'key: value' lines.")
    bases = data.pop("base", None) or []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"config file '{path}': 'base' must be a file path or a list of "
                          f"them, got {bases!r}.",
                          "write e.g. 'base: quickstart.yaml' (relative to this file).")
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
    except RecursionError:
        raise ConfigError(f"override '{text[:60]}...' nests too deeply to read.",
                          "give a plain value (number, string, short list).") from None
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
                node = node[_list_index(node, part, parts[:i + 1], text)]
                if not isinstance(node, (dict, list)):
                    raise ConfigError(
                        f"override '{text}': '{'.'.join(parts[:i + 2])}' is a value, not a "
                        f"mapping.", "override the value itself, or fix the key path.")
                continue
            if node.get(part) is None:
                node[part] = {}
            elif not isinstance(node[part], (dict, list)):
                raise ConfigError(
                    f"override '{text}': '{'.'.join(parts[:i + 1])}' is a value, not a mapping.",
                    "override the value itself, or fix the key path.")
            node = node[part]
        if isinstance(node, list):
            node[_list_index(node, parts[-1], parts, text)] = value
        else:
            node[parts[-1]] = value
    return out


def _list_index(node: list, part: str, path: list[str], text: str) -> int:
    where = ".".join(path[:-1]) or path[0]
    try:
        index = int(part)
    except ValueError:
        raise ConfigError(f"override '{text}': '{where}' is a list, so '{part}' must be an "
                          f"index.", f"use a number from 0 to {len(node) - 1}, e.g. "
                          f"{where}.0=..., or replace the whole list: {where}=[...].") from None
    if not -len(node) <= index < len(node):
        raise ConfigError(f"override '{text}': '{where}' has {len(node)} items, so index "
                          f"{index} does not exist.",
                          f"use 0 to {len(node) - 1}, or replace the whole list: "
                          f"{where}=[...].")
    return index


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict:
    """Raw config dict: the file with its bases merged and overrides applied."""
    config = load_file(path)
    stages = config.get("stages") or {}
    roots = {sid: ["stages"] for sid in stages if isinstance(sid, str)} \
        if isinstance(stages, dict) else {}
    try:
        return apply_overrides(config, overrides or [], roots)
    except ConfigError as exc:  # name the file the overrides apply to
        raise ConfigError(f"{path}: {exc.message}", exc.fix) from None


def dump_yaml(data: Any, path: Path) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
