"""Strict loading: YAML (``yaml.safe_load`` only) and ``key=value`` overrides into a validated :class:`Config`.

An unknown or misspelt key, or a value of the wrong type, is a :class:`ConfigError` naming the key and
the file (nanoGPT's configurator rejects unknown keys).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from ..errors import ConfigError
from .training import Config


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it (ints accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"key '{key}' must be a mapping, got {type(value).__name__}", source)
        return _build(tp, value, key, source)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"key '{key}' must be a list, got {type(value).__name__} {value!r}", source)
        return [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        k_tp, v_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"key '{key}' must be a mapping, got {type(value).__name__}", source)
        return {_coerce(k, k_tp, key, source): _coerce(v, v_tp, f"{key}.{k}", source) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"key '{key}' must be a number, got {type(value).__name__} {value!r}", source)
        if not math.isfinite(value):
            raise ConfigError(f"key '{key}' must be a finite number, got {value!r}", source)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"key '{key}' must be an integer, got {type(value).__name__} {value!r}", source)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"key '{key}' must be true or false, got {type(value).__name__} {value!r}", source)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"key '{key}' must be a string, got {type(value).__name__} {value!r}", source)
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config annotation {tp!r} for {key}")


def _build(cls: type, values: dict, prefix: str, source: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for k, v in values.items():
        full = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            close = difflib.get_close_matches(str(k), sorted(names), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown key '{full}'{hint}", source)
        kwargs[k] = _coerce(v, hints[k], full, source)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if exc.path is not None:
            raise
        raise ConfigError(str(exc), source) from None


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config ({exc})", path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML{where}: {problem}", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"top level must be a mapping of sections, got {type(data).__name__}", path)
    return data


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{p}' is not a section")
    node[parts[-1]] = value


def parse_overrides(overrides: list[str] | None) -> list[tuple[str, Any]]:
    """Parse ``key=value`` strings; values are YAML scalars or flow collections."""
    parsed = []
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: cannot parse the value") from None
        parsed.append((key, value))
    return parsed


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config strictly, apply ``key=value`` overrides, return a validated :class:`Config`.

    ``path=None`` gives the built-in full-size defaults. Relative ``data.bids_root`` and
    ``data.cache_dir`` stay as written (resolved against the working directory by the user's shell).
    """
    source = str(path) if path is not None else "<defaults>"
    tree = _read_yaml(Path(path)) if path is not None else {}
    tree = copy.deepcopy(tree)
    for key, value in parse_overrides(overrides):
        _set_dotted(tree, key, value)
    return _build(Config, tree, "", source)


def config_from_dict(values: dict, source: str = "<dict>") -> Config:
    """Build a :class:`Config` from a plain mapping (e.g. the JSON saved beside a model)."""
    return _build(Config, copy.deepcopy(values), "", source)


def section_from_dict(cls: type, values: dict, key: str, source: str = "<dict>"):
    """One section (e.g. :class:`DataConfig` under ``key="data"``) from a plain mapping, as strictly as a YAML
    file: unknown keys, wrong types and bad values are a :class:`ConfigError` naming ``key.field`` and ``source``."""
    if not isinstance(values, dict):
        raise ConfigError(f"key '{key}' must be a mapping, got {type(values).__name__}", source)
    return _build(cls, copy.deepcopy(values), key, source)


def field_help(cls: type = Config, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, help) for every leaf field, for ``brain2text config --help-keys``."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(field_help(hints[f.name], key))
        else:
            out.append((key, f.metadata.get("help", "")))
    return out
