"""Streaming reads of whole logged rows from the Elasticsearch input log, for `export`.

Pages of at most `page_size` hits sorted by (`@timestamp`, `sample_key`), each page asked
`search_after` the last one's sort values: memory is one page, the cluster keeps no
context between requests (a scroll or point in time would, and OpenSearch spells the
latter differently), and every request has the client's timeout. Records refreshed in
while an export runs may be included when they sort after its position. Shadows are left
out, as from every window (`aggregations.window_query`). Timestamps are stored in epoch
milliseconds: an exported timestamp has millisecond precision.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
from elasticsearch import Elasticsearch, NotFoundError

from exporter.store.elasticsearch.aggregations import as_number, as_text, window_query
from exporter.store.elasticsearch.config import (
    ElasticsearchConfig,
    config_from_url,
    index_name,
    make_client,
)
from exporter.store.elasticsearch.errors import unavailable
from exporter.store.elasticsearch.read import MAX_SAMPLE_SIZE
from exporter.store.rows import LoggedColumns, RowBatch

LabelKind = Literal["number", "text"]
PAGE_SIZE = 5_000
_FIELDS = (
    "@timestamp",
    "request_id",
    "row",
    "model_version",
    "protocol",
    "role",
    "candidate",
    "features",
    "prediction",
    "label",
)


class ElasticsearchRowReader:
    def __init__(
        self,
        config: ElasticsearchConfig,
        client: Elasticsearch | None = None,
        *,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.config = config
        self.page_size = min(page_size, MAX_SAMPLE_SIZE)
        self._client = client if client is not None else make_client(config)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ElasticsearchRowReader:
        return cls(config_from_url(url, **options))

    def logged_columns(self, model: str) -> LoggedColumns | None:
        """The feature columns of the model's index mapping; None when it has no index."""
        index = index_name(self.config.index_prefix, model)
        with unavailable(f"reading the mapping of {model}"):
            try:
                response = self._client.indices.get_mapping(index=index)
            except NotFoundError:
                return None
        numeric: list[str] = []
        categorical: list[str] = []
        for body in dict(response.body).values():
            features = body["mappings"].get("properties", {}).get("features", {})
            for name, field in features.get("properties", {}).items():
                kind = categorical if field.get("type") == "keyword" else numeric
                if name not in numeric and name not in categorical:
                    kind.append(name)
        return LoggedColumns(tuple(numeric), tuple(categorical))

    def count_rows(self, model: str, start_ts: float, end_ts: float) -> int:
        return self._count(model, window_query(start_ts, end_ts))

    def label_kind(self, model: str, start_ts: float, end_ts: float) -> LabelKind | None:
        """As `sqlite.rows.label_kind`: a label that `label.num` does not index, other than
        a boolean (which reads as 1 / 0, as from SQLite), is a text."""
        window = window_query(start_ts, end_ts)
        labelled = {"bool": {"filter": [window, {"exists": {"field": "label"}}]}}
        if not self._count(model, labelled):
            return None
        text = {
            "bool": {
                "filter": [window, {"exists": {"field": "label"}}],
                "must_not": [
                    {"exists": {"field": "label.num"}},
                    {"terms": {"label": ["true", "false"]}},
                ],
            }
        }
        return "text" if self._count(model, text) else "number"

    def newest_start(self, model: str, rows: int, end_ts: float) -> float | None:
        """The timestamp of the oldest of the newest `rows` records before end_ts (None:
        fewer records); records sharing that millisecond may make the window longer."""
        search_after: list[Any] | None = None
        remaining = rows
        while remaining > 0:
            size = min(remaining, self.page_size)
            hits = self._page(model, window_query(-np.inf, end_ts), size, search_after, "desc")
            if len(hits) < size:
                return None
            remaining -= size
            search_after = hits[-1]["sort"]
        assert search_after is not None
        return float(search_after[0]) / 1000.0

    def iter_rows(
        self, model: str, start_ts: float, end_ts: float, columns: LoggedColumns
    ) -> Iterator[RowBatch]:
        query = window_query(start_ts, end_ts)
        search_after: list[Any] | None = None
        while True:
            hits = self._page(model, query, self.page_size, search_after, "asc")
            if not hits:
                return
            yield _batch([hit.get("_source", {}) for hit in hits], columns)
            if len(hits) < self.page_size:
                return
            search_after = hits[-1]["sort"]

    def close(self) -> None:
        self._client.close()

    def _page(
        self,
        model: str,
        query: dict[str, Any],
        size: int,
        search_after: list[Any] | None,
        order: str,
    ) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "query": query,
            "size": size,
            "sort": [{"@timestamp": order}, {"sample_key": order}],
            "source_includes": list(_FIELDS),
            "track_total_hits": False,
        }
        if search_after is not None:
            request["search_after"] = search_after
        with unavailable(f"reading rows of {model}"):
            try:
                response = self._client.search(
                    index=index_name(self.config.index_prefix, model), **request
                )
            except NotFoundError:
                return []
        hits: list[dict[str, Any]] = response.body["hits"]["hits"]
        return hits

    def _count(self, model: str, query: dict[str, Any]) -> int:
        with unavailable(f"counting {model}"):
            try:
                response = self._client.count(
                    index=index_name(self.config.index_prefix, model), query=query
                )
            except NotFoundError:
                return 0
        return int(response.body["count"])


def _batch(sources: list[Mapping[str, Any]], columns: LoggedColumns) -> RowBatch:
    features = [source.get("features") or {} for source in sources]
    predictions = [source.get("prediction") or {} for source in sources]
    return RowBatch(
        timestamp=np.array([as_number(s.get("@timestamp")) / 1000.0 for s in sources]),
        request_id=[str(s.get("request_id", "")) for s in sources],
        row=[int(s.get("row", 0)) for s in sources],
        model_version=[str(s.get("model_version", "")) for s in sources],
        protocol=[as_text(s.get("protocol")) for s in sources],
        role=[str(s.get("role") or "primary") for s in sources],
        candidate=[str(s.get("candidate") or "") for s in sources],
        prediction_value=np.array([as_number(p.get("value")) for p in predictions]),
        prediction_label=[as_text(p.get("label")) for p in predictions],
        prediction_score=np.array([as_number(p.get("score")) for p in predictions]),
        label=[s.get("label") for s in sources],
        numeric={
            name: np.array([as_number(f.get(name)) for f in features], dtype=np.float32)
            for name in columns.numeric
        },
        categorical={
            name: [_category(f.get(name)) for f in features] for name in columns.categorical
        },
    )


def _category(value: Any) -> str | None:
    return value if isinstance(value, str) else None
