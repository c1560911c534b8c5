"""Schema YAML files: safe loading (duplicate keys refused, one-line errors) and writing.

Kept apart so that only loading a schema file needs PyYAML; feature code does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from exporter.schema.definition import Schema, SchemaError, schema_to_dict
from exporter.schema.parse import parse_schema


def schema_to_yaml(schema: Schema, header: str = "") -> str:
    """The schema as the YAML a user would write, after `header` (comment lines)."""
    return header + yaml.safe_dump(
        schema_to_dict(schema), sort_keys=False, allow_unicode=True, default_flow_style=None
    )


def read_yaml_mapping(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read the schema: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: cannot read the schema: not UTF-8 text") from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise SchemaError(f"{path}: invalid YAML: {_yaml_problem(exc)}") from exc


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML would silently keep the last one."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc).replace("\n", " ")


def load_schema(path: str | Path) -> Schema:
    """Read and validate a schema file; errors name the file, the key and the problem."""
    return parse_schema(read_yaml_mapping(Path(path)), str(path))
