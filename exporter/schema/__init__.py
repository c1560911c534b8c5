"""What a feature is: the schema of one model, its YAML form, and inference from rows.

`definition` holds the frozen schema and its canonical form, `parse` validates a
document, `files` reads and writes YAML, `inference` proposes a schema from rows. The
names below are the public face; modules of this package import each other directly.
"""

from exporter.schema.definition import (
    ARRAY_DERIVES,
    FEATURE_TYPES,
    MAX_NAME_LENGTH,
    TASKS,
    TEXT_DERIVES,
    Feature,
    FeatureType,
    LogMode,
    OutputColumn,
    OutputKind,
    PredictionSpec,
    Schema,
    SchemaError,
    Source,
    Task,
    scalar_text,
    schema_hash,
    schema_to_dict,
)
from exporter.schema.files import load_schema, schema_to_yaml
from exporter.schema.parse import parse_schema

__all__ = [
    "ARRAY_DERIVES",
    "FEATURE_TYPES",
    "MAX_NAME_LENGTH",
    "TASKS",
    "TEXT_DERIVES",
    "Feature",
    "FeatureType",
    "LogMode",
    "OutputColumn",
    "OutputKind",
    "PredictionSpec",
    "Schema",
    "SchemaError",
    "Source",
    "Task",
    "load_schema",
    "parse_schema",
    "scalar_text",
    "schema_hash",
    "schema_to_dict",
    "schema_to_yaml",
]
