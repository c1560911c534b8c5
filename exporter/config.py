"""Typed, frozen settings from defaults < YAML file < MLMON_* environment < CLI flags.

Shared by both services: each declares a frozen dataclass (nested dataclasses become
YAML sections and `MLMON_SECTION__KEY` variables) and calls `load_settings`. A
`Mapping[str, X]` field is a YAML mapping, or `name=value,name=value` in a variable. Every
error names the key, where the value came from, and what was expected.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from exporter.errors import SettingsError

T = TypeVar("T")
Check = Callable[[Any], str | None]

ENV_PREFIX = "MLMON_"
REQUIRED: Any = ...


def setting(default: Any, *, check: Check | None = None, help: str = "") -> Any:
    """A dataclass field with a validity check that returns what was expected, or None."""
    metadata = {"check": check, "help": help}
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, list | dict | set):
        raise TypeError("use tuples, MappingProxyType or nested dataclasses as defaults")
    if isinstance(default, types.MappingProxyType):  # unhashable: dataclasses want a factory
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def positive(value: Any) -> str | None:
    return None if value > 0 else "a number > 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "a number >= 0"


def port_number(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "a port number between 0 and 65535"


def load_settings(
    cls: type[T],
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Build `cls` from its defaults, the YAML file, MLMON_* variables, then overrides.

    `overrides` keys are flat field names or dotted section paths ("generic.rows").
    """
    raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if config_file is not None:
        _merge(raw, origins, _read_yaml(Path(config_file)), f"{config_file}")
    env = os.environ if environ is None else environ
    _merge(raw, origins, _from_environ(cls, env), "environment")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted.split("."), value)
            origins[dotted] = "command line"
    return _build(cls, raw, "", origins)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read config file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SettingsError(f"{path}:{where} invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping of settings at the top level")
    return data


def _merge(
    raw: dict[str, Any],
    origins: dict[str, str],
    new: Mapping[str, Any],
    origin: str,
    prefix: str = "",
) -> None:
    for key, value in new.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(raw.setdefault(key, {}), dict):
            _merge(raw[key], origins, value, origin, f"{dotted}.")
        else:
            raw[key] = value
        origins[dotted] = origin


def _set_dotted(raw: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        raw = raw.setdefault(key, {})
    raw[path[-1]] = value


def _from_environ(
    cls: type[Any], env: Mapping[str, str], prefix: str = ENV_PREFIX
) -> dict[str, Any]:
    """MLMON_KEY for a key, MLMON_SECTION__KEY for a key of a section."""
    out: dict[str, Any] = {}
    for f, kind in _fields(cls):
        name = f"{prefix}{f.name.upper()}"
        if dataclasses.is_dataclass(kind):
            section = _from_environ(typing.cast(type, kind), env, f"{name}__")
            if section:
                out[f.name] = section
        elif name in env:
            out[f.name] = env[name]
    return out


def _fields(cls: type[Any]) -> list[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _build(cls: type[T], raw: Mapping[str, Any], prefix: str, origins: Mapping[str, str]) -> T:
    known = {f.name for f in dataclasses.fields(typing.cast(Any, cls))}
    for key in raw:
        if key not in known:
            where = origins.get(f"{prefix}{key}", "settings")
            raise SettingsError(
                f"{where}: unknown key '{prefix}{key}'; expected one of: {', '.join(sorted(known))}"
            )
    values: dict[str, Any] = {}
    for f, kind in _fields(cls):
        dotted = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(kind):
            section = raw.get(f.name, {})
            if not isinstance(section, Mapping):
                raise SettingsError(
                    f"{origins.get(dotted, 'settings')}: key '{dotted}': expected a mapping"
                )
            values[f.name] = _build(typing.cast(type, kind), section, f"{dotted}.", origins)
            continue
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SettingsError(
                    f"settings: key '{dotted}' is required (config file, or {_env_name(dotted)})"
                )
            continue
        where = origins.get(dotted, "settings")
        value = _convert(raw[f.name], kind, dotted, where)
        check = f.metadata.get("check")
        problem = check(value) if check is not None else None
        if problem is not None:
            raise SettingsError(f"{where}: key '{dotted}': expected {problem}, got {raw[f.name]!r}")
        values[f.name] = value
    return cls(**values)


def _env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.upper().replace(".", "__")


def _convert(value: Any, kind: Any, key: str, where: str) -> Any:
    def fail(expected: str) -> SettingsError:
        return SettingsError(f"{where}: key '{key}': expected {expected}, got {value!r}")

    origin = typing.get_origin(kind)
    if origin is Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise fail("one of " + ", ".join(repr(c) for c in choices))
        return value
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None or value == "":
            return None
        return _convert(value, args[0], key, where)
    if origin in (Mapping, collections.abc.Mapping):
        return _convert_mapping(value, kind, key, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list | tuple):
            raise fail("a list")
        (item_kind, _) = typing.get_args(kind)
        if dataclasses.is_dataclass(item_kind):
            return tuple(
                _list_item(item, typing.cast(type, item_kind), f"{key}[{index}]", where)
                for index, item in enumerate(value)
            )
        return tuple(_convert(item, item_kind, key, where) for item in value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
        raise fail("true or false")
    if kind is int:
        if isinstance(value, bool):
            raise fail("an integer")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise fail("an integer") from None
    if kind is float:
        if isinstance(value, bool):
            raise fail("a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise fail("a number") from None
    if kind is str:
        if isinstance(value, bool):
            raise fail("a string (YAML reads unquoted yes/no/on/off as booleans: quote it)")
        if isinstance(value, dict | list):
            raise fail("a string")
        return str(value)
    raise TypeError(f"unsupported settings type {kind!r} for {key}")


def _list_item(value: Any, kind: type[T], key: str, where: str) -> T:
    """One entry of a list of sections: a mapping, or the text its `from_text` reads (the
    short form a command-line flag or a variable gives, e.g. a URL)."""
    from_text = getattr(kind, "from_text", None)
    if isinstance(value, str) and from_text is not None:
        try:
            value = from_text(value)
        except ValueError as exc:
            raise SettingsError(f"{where}: key '{key}': expected {exc}, got {value!r}") from None
    if not isinstance(value, Mapping):
        raise SettingsError(f"{where}: key '{key}': expected a mapping, got {value!r}")
    origins = {f"{key}.{name}": where for name in value}
    return _build(kind, value, f"{key}.", origins)


def _convert_mapping(value: Any, kind: Any, key: str, where: str) -> Mapping[str, Any]:
    expected = "a mapping of names to values (name=value,name=value in a variable)"
    if isinstance(value, str):
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep or not name.strip() for name, sep, _ in pairs):
            raise SettingsError(f"{where}: key '{key}': expected {expected}, got {value!r}")
        value = {name.strip(): item.strip() for name, _, item in pairs}
    if not isinstance(value, Mapping):
        raise SettingsError(f"{where}: key '{key}': expected {expected}, got {value!r}")
    _, item_kind = typing.get_args(kind)
    return types.MappingProxyType(
        {
            str(name): _convert(item, item_kind, f"{key}.{name}", where)
            for name, item in value.items()
        }
    )
