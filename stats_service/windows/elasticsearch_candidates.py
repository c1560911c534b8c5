"""A window's candidate answers next to the primary's, from the Elasticsearch input log.

The same windows as `candidates.SqliteCandidateReader`, from the documents the sidecar's
Elasticsearch backend writes (`role`, `candidate`, `_id` = request_id:row, a shadow's
+ ":shadow:<candidate>"):
- candidates: one `terms` aggregation on `candidate` per role (shadow, canary) over the
  window, at most MAX_CANDIDATES in all, the most records first;
- a shadow: its records, each paired with the primary's record of the same id, fetched
  by `_id` (one `mget`); both sides carry the primary record's label, as posted. A
  shadow whose primary record is not in the log is counted in `rows`, not paired;
- a canary: its records and the primary's in the window, unpaired, each with its own
  ground truth.
What crosses the network is bounded: each side holds at most `max_result_window` records
(10,000 by default), the ones with the smallest sample_key, a uniform sample of the
window when it has more (SQLite reads them all); `rows` counts them all. A count window
spans the time of the model's newest `rows` records that are not shadows
(`locate_newest`); its candidates are compared within that span, as from SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
from exporter.store.elasticsearch.locate import Search, locate_newest
from exporter.store.elasticsearch.read import MAX_SAMPLE_SIZE
from stats_service.settings import WindowSpec
from stats_service.windows.candidate_window import (
    MAX_CANDIDATES,
    ROLES,
    CandidateRole,
    CandidateWindow,
    Predictions,
)
from stats_service.windows.spec import check_spec

_SIDE_FIELDS = ["prediction", "label"]


class ElasticsearchCandidateReader:
    """CandidateReader on the sidecar's Elasticsearch indices."""

    def __init__(
        self,
        config: ElasticsearchConfig,
        client: Elasticsearch | None = None,
        *,
        max_result_window: int = MAX_SAMPLE_SIZE,
    ) -> None:
        self.config = config
        # The cluster's `index.max_result_window`: records one side may hold.
        self.max_result_window = max_result_window
        self._client = client if client is not None else make_client(config)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ElasticsearchCandidateReader:
        """`options`: ElasticsearchConfig fields, as the sidecar's settings give them."""
        return cls(config_from_url(url, **options))

    def read_candidates(self, model: str, spec: WindowSpec, now: float) -> list[CandidateWindow]:
        check_spec(spec)
        index = index_name(self.config.index_prefix, model)
        search: Search = lambda request: self._search(index, request)  # noqa: E731
        if spec.rows is None:
            start = now - (spec.duration_s or 0.0)
        else:
            start = locate_newest(search, model, spec.rows, now, self.max_result_window).start_ts
        windows: list[CandidateWindow] = []
        primary: Predictions | None = None  # the canaries' other side, read once
        for role, name, rows in self._found(search, start, now):
            if role == "shadow":
                answers, theirs = self._paired(index, search, start, now, name)
            else:
                if primary is None:
                    primary = _side(_sources(self._records(search, start, now, "primary", "")))
                answers = _side(_sources(self._records(search, start, now, role, name)))
                theirs = primary
            windows.append(
                CandidateWindow(model, spec.name, name, role, start, now, rows, theirs, answers)
            )
        return windows

    def close(self) -> None:
        self._client.close()

    def _found(
        self, search: Search, start: float, end: float
    ) -> list[tuple[CandidateRole, str, int]]:
        found: list[tuple[CandidateRole, str, int]] = []
        for role in ROLES:
            request = {
                "query": window_query(start, end, role=role),
                "size": 0,
                "aggregations": {"c": {"terms": {"field": "candidate", "size": MAX_CANDIDATES}}},
            }
            body = search(request)
            buckets = body["aggregations"]["c"]["buckets"] if body else []
            found += [(role, b["key"], int(b["doc_count"])) for b in buckets if b["key"]]
        found.sort(key=lambda entry: (-entry[2], entry[1]))
        return found[:MAX_CANDIDATES]

    def _records(
        self,
        search: Search,
        start: float,
        end: float,
        role: str,
        candidate: str,
        fields: Sequence[str] = _SIDE_FIELDS,
    ) -> list[dict[str, Any]]:
        """The route's records in the window: the sample_key-smallest when there are more
        than a search may return."""
        request = {
            "query": window_query(start, end, role=role, candidate=candidate),
            "size": self.max_result_window,
            "sort": [{"sample_key": "asc"}],
            "source_includes": list(fields),
            "track_total_hits": False,
        }
        body = search(request)
        hits: list[dict[str, Any]] = body["hits"]["hits"] if body else []
        return hits

    def _paired(
        self, index: str, search: Search, start: float, end: float, name: str
    ) -> tuple[Predictions, Predictions]:
        """(the shadow's side, the primary's side), row i of both for one request row."""
        shadows = self._records(search, start, end, "shadow", name, ["prediction"])
        suffix = f":shadow:{name}"
        ids = [hit["_id"][: -len(suffix)] for hit in shadows if hit["_id"].endswith(suffix)]
        primaries = self._by_id(index, ids)
        shadow_side: list[Mapping[str, Any]] = []
        primary_side: list[Mapping[str, Any]] = []
        for hit in shadows:
            found = primaries.get(hit["_id"][: -len(suffix)])
            if found is not None:
                # Ground truth is posted for the primary's id: the shadow's row shares it.
                shadow_side.append({**(hit.get("_source") or {}), "label": found.get("label")})
                primary_side.append(found)
        return _side(shadow_side), _side(primary_side)

    def _by_id(self, index: str, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """The primaries' records among `ids` (real-time get: no refresh needed), by id.
        Label-only documents (ground truth that came before its record) are no record."""
        if not ids:
            return {}
        with unavailable("reading the primaries of shadow records"):
            response = self._client.mget(
                index=index, ids=list(ids), source_includes=["@timestamp", "role", *_SIDE_FIELDS]
            )
        found: dict[str, Mapping[str, Any]] = {}
        for doc in response.body["docs"]:
            source = doc.get("_source") if doc.get("found") else None
            if source and "@timestamp" in source and source.get("role") != "shadow":
                found[doc["_id"]] = source
        return found

    def _search(self, index: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """The response body; None when the model has no index (nothing logged yet)."""
        with unavailable(f"reading candidates of {index}"):
            try:
                response = self._client.search(index=index, **request)
            except NotFoundError:
                return None
        return dict(response.body)


def _sources(hits: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [hit.get("_source") or {} for hit in hits]


def _side(sources: Sequence[Mapping[str, Any]]) -> Predictions:
    predictions = [source.get("prediction") or {} for source in sources]
    return Predictions(
        value=np.array([as_number(p.get("value")) for p in predictions], dtype=np.float64),
        score=np.array([as_number(p.get("score")) for p in predictions], dtype=np.float64),
        label=tuple(as_text(p.get("label")) for p in predictions),
        truth=tuple(source.get("label") for source in sources),
    )
