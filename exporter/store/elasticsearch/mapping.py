"""The index template of a model's input-log index, generated from its feature columns.

Field types (ARCHITECTURE.md "The logged record"):

- `@timestamp`: `date`, format `epoch_millis` (integer milliseconds; see `epoch_millis`).
- `request_id`, `model`, `model_version`, `protocol`, `issues`, `prediction.label`, `role`,
  `candidate`: `keyword` (`role`: primary, shadow, canary or fallback; older records have
  none and count as primary).
- `row`, `status`: `integer`; `latency_ms`, `prediction.value`, `prediction.score`: `double`.
- `prediction.probabilities.<class>`: `double`, an object with a field per class (not
  `flattened`, which OpenSearch lacks, nor `nested`, which windows do not need).
- `features.<numeric>`: `double`; `features.<categorical>`: `keyword`.
- `label` (ground truth: a class name, a number or a boolean): `keyword`, holding the JSON
  text ("cat", "3", "2.5", "true"), with a `label.num` `double` sub-field that indexes the
  labels that are numbers (others are ignored there, not rejected), for regression metrics.
- `label_timestamp`: when the ground truth arrived, `date` in epoch milliseconds (a
  record logged with its label: the record's `@timestamp`).
- `sample_key`: `double` in [0, 1), a hash of the record id: window readers take the rows
  with the smallest keys as a uniform random sample (see `elasticsearch.read`).

Anything else, in particular the features of a model without a schema, is mapped
dynamically, but by templates: strings become `keyword` (never analysed `text`), and every
number becomes `double` (Elasticsearch would map a first integer as `long` and then
truncate later fractions, and a first fraction as `float`).
"""

from __future__ import annotations

from typing import Any

from exporter.records import StoreColumns
from exporter.store.elasticsearch.config import ElasticsearchConfig

# Readers see new records after at most this long; never a refresh per write.
REFRESH_INTERVAL = "5s"
# Above the built-in templates (priority 100, e.g. `logs-*-*`), so ours always wins.
TEMPLATE_PRIORITY = 200

_KEYWORD = {"type": "keyword"}
_DOUBLE = {"type": "double"}
_INTEGER = {"type": "integer"}
_MILLIS = {"type": "date", "format": "epoch_millis"}

DYNAMIC_TEMPLATES: list[dict[str, Any]] = [
    {"strings_as_keywords": {"match_mapping_type": "string", "mapping": _KEYWORD}},
    {"integers_as_doubles": {"match_mapping_type": "long", "mapping": _DOUBLE}},
    {"fractions_as_doubles": {"match_mapping_type": "double", "mapping": _DOUBLE}},
]


def mappings(columns: StoreColumns) -> dict[str, Any]:
    features: dict[str, Any] = {name: _DOUBLE for name in columns.numeric}
    features.update({name: _KEYWORD for name in columns.categorical})
    return {
        "dynamic": True,
        "dynamic_templates": DYNAMIC_TEMPLATES,
        "properties": {
            "@timestamp": _MILLIS,
            "request_id": _KEYWORD,
            "row": _INTEGER,
            "model": _KEYWORD,
            "model_version": _KEYWORD,
            "protocol": _KEYWORD,
            "role": _KEYWORD,
            "candidate": _KEYWORD,
            "status": _INTEGER,
            "latency_ms": _DOUBLE,
            "features": {"type": "object", "dynamic": True, "properties": features},
            "issues": _KEYWORD,
            "prediction": {
                "properties": {
                    "value": _DOUBLE,
                    "label": _KEYWORD,
                    "score": _DOUBLE,
                    # One field per class, mapped as `double` by DYNAMIC_TEMPLATES; the
                    # sidecar keeps at most the schema's classes, or 50 (`protocols.base`).
                    "probabilities": {"type": "object", "dynamic": True},
                },
            },
            "label": {
                "type": "keyword",
                "fields": {"num": {"type": "double", "ignore_malformed": True}},
            },
            "label_timestamp": _MILLIS,
            "sample_key": _DOUBLE,
        },
    }


def settings(config: ElasticsearchConfig) -> dict[str, Any]:
    return {
        "index": {
            "number_of_shards": config.shards,
            "number_of_replicas": config.replicas,
            "refresh_interval": REFRESH_INTERVAL,
        }
    }


def index_template(
    index: str, columns: StoreColumns, config: ElasticsearchConfig
) -> dict[str, Any]:
    """Keyword arguments for `indices.put_index_template`: one composable template per
    model, matching exactly its index, so re-creating a deleted index gets the mapping."""
    return {
        "name": index,
        "index_patterns": [index],
        "priority": TEMPLATE_PRIORITY,
        "template": {"settings": settings(config), "mappings": mappings(columns)},
        "meta": {"managed_by": "mlmon", "model": columns.model},
    }
