"""The Elasticsearch input log: one regular index per model, upserts by record id.

Layout. Records of model M go to the index `index_name(prefix, M)` (see
`config`), created from a composable index template generated from M's
columns (`mapping`). A regular index, not a data stream: data streams are
append-only, and ground truth must update the record it belongs to, in place, by `_id`.
Nor an alias rolled over by ILM: a label arriving after a rollover would be upserted into
the new write index and miss its record in the old one.

Writes. Every record and every label is an `update` with `doc_as_upsert`, `_id` =
`request_id:row`: a retried batch stores each record once, and a label written before its
record is kept when the record arrives (the record carries no `label` field unless it has
one). Bulk requests, never a refresh per write (readers see records within the index
`refresh_interval`, 5 s). Retries and per-item outcomes: `bulk`.

Retention. ILM deletes whole indices, and one index per model holds all of its history,
so a delete phase would drop every record at once when the index ages; `purge` instead
deletes the records older than `retention_days` by `delete_by_query` (as a background task
on the cluster), and `write` starts it at most once an hour. It works on any cluster and on
engines without ILM; deleted documents are reclaimed by segment merges. Neither ILM
(Elasticsearch) nor ISM (OpenSearch) is used, so retention is the same on both flavors.

Flavors. Elasticsearch and OpenSearch get the same requests (template, bulk, mget,
delete_by_query); only the media type differs, in the client's transport (`config`).
A request refused for good (a 4xx other than 408/429: credentials, wrong flavor) raises
`StoreRefused` (a `StoreUnavailable`): the writer spools the records, as for an outage,
and says why once a minute on stderr and in `mlmon_log_store_refusals_total{status}`;
the feedback endpoint answers 503 naming the cluster's reason.

Ground truth carries no model (`GroundTruth` in base.py), so labels are routed by a
real-time `mget` of their ids over the model indices: a found record is updated where it
is; a label whose record is not written yet is upserted into each model index this
backend writes (one, for a sidecar in front of one model). Such label-only documents have
no `@timestamp`, so window reads never count them; `purge` deletes them by
`label_timestamp` once their record has not come within the retention.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from exporter.records import GroundTruth, LogRecord, StoreColumns
from exporter.store.base import StoreRefused, StoreUnavailable
from exporter.store.elasticsearch.bulk import BulkAction, BulkResult, BulkSender
from exporter.store.elasticsearch.config import (
    ElasticsearchConfig,
    config_from_url,
    epoch_millis,
    index_name,
    make_client,
)
from exporter.store.elasticsearch.errors import unavailable
from exporter.store.elasticsearch.mapping import index_template, mappings

__all__ = ["ElasticsearchConfig", "ElasticsearchLog", "StoreRefused", "sample_key"]

logger = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0
MGET_MAX_DOCS = 10_000  # per look-up request: labels x model indices
_DAY_S = 86400.0


def sample_key(record_id: str) -> float:
    """Uniform in [0, 1) and fixed per record, so a rewrite does not move it."""
    digest = hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / float(1 << 53)


# Indices this writer creates for models without a prepared layout, before the rest share
# the overflow index (OVERFLOW_MODEL's).
MAX_MODEL_INDICES = 100
OVERFLOW_MODEL = "__other__"


class ElasticsearchLog:
    """InputLog on Elasticsearch. `rejected` counts records and labels the cluster refused
    for good (mapping conflicts, unparsable values): skipped, logged, never retried. (When
    a later request of the same batch fails and the caller retries the batch, those items
    are refused, and counted, again.) One thread at a time, like every InputLog."""

    def __init__(self, config: ElasticsearchConfig, client: Elasticsearch | None = None) -> None:
        self.config = config
        self.rejected = 0
        self._client = client if client is not None else make_client(config)
        self._bulk = BulkSender(self._client, config)
        self._indices: dict[str, str] = {}  # model -> its index, once it exists
        self._next_purge = 0.0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ElasticsearchLog:
        """`http(s)://[user:password@]host:port`; `options`: ElasticsearchConfig fields."""
        return cls(config_from_url(url, **options))

    def index_for(self, model: str) -> str:
        return index_name(self.config.index_prefix, model)

    def prepare(self, columns: StoreColumns) -> None:
        """Put the model's template, then create its index, or add new columns to it."""
        index = self.index_for(columns.model)
        with unavailable(f"preparing {index}", refusals=True):
            self._client.indices.put_index_template(**index_template(index, columns, self.config))
            if self._client.indices.exists(index=index):
                self._add_columns(index, columns)
            else:
                self._create(index)
        self._indices[columns.model] = index

    def write(self, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        self._ensure_indices({record.model for record in records})
        actions = [
            BulkAction.upsert(
                self._indices.get(record.model) or self._indices[OVERFLOW_MODEL],
                record.id,
                self._document(record),
            )
            for record in records
        ]
        self._note_rejected(self._bulk.send(actions), len(actions), "records")
        self._purge_when_due()

    def add_ground_truth(self, labels: Sequence[GroundTruth]) -> None:
        if not labels:
            return
        own = sorted(set(self._indices.values()))
        candidates = sorted({*own, *self._existing_indices()})
        if not candidates:
            raise StoreUnavailable("elasticsearch: no model index yet to attach labels to")
        found = self._locate([label.id for label in labels], candidates)
        actions = [
            BulkAction.upsert(
                index,
                label.id,
                {"label": label.label, "label_timestamp": epoch_millis(label.timestamp)},
            )
            for label in labels
            for index in found.get(label.id) or own or candidates
        ]
        # A refusal is a StoreUnavailable: the feedback endpoint answers 503 with the reason.
        self._note_rejected(self._bulk.send(actions), len(actions), "labels")

    def purge(self, older_than: float, *, wait: bool = False) -> int | None:
        """Delete the records written before `older_than` (epoch seconds), and labels that
        arrived before it and never met their record, from this backend's indices. Returns
        the count deleted, or None when the cluster runs it as a background task."""
        indices = sorted(set(self._indices.values()))
        if not indices:
            return 0
        cutoff = epoch_millis(older_than)
        orphan = {
            "bool": {
                "must_not": [{"exists": {"field": "@timestamp"}}],
                "filter": [{"range": {"label_timestamp": {"lt": cutoff}}}],
            }
        }
        query = {
            "bool": {
                "should": [{"range": {"@timestamp": {"lt": cutoff}}}, orphan],
                "minimum_should_match": 1,
            }
        }
        with unavailable("purge"):
            response = self._client.delete_by_query(
                index=",".join(indices),
                query=query,
                conflicts="proceed",
                wait_for_completion=wait,
                ignore_unavailable=True,
            )
        deleted = response.body.get("deleted")
        return int(deleted) if deleted is not None else None

    def probe(self) -> None:
        """One harmless request with a body, as writes send them: StoreRefused when the
        cluster refuses them (credentials, flavor), StoreUnavailable when it is away."""
        with unavailable("probing with a search", refusals=True):
            self._client.search(
                index=f"{self.config.index_prefix}-*",
                query={"match_all": {}},
                size=0,
                ignore_unavailable=True,
                allow_no_indices=True,
            )

    def close(self) -> None:
        self._client.close()

    def _document(self, record: LogRecord) -> dict[str, Any]:
        document = record.to_document()
        document["@timestamp"] = epoch_millis(record.timestamp)
        if record.label is not None:  # it came with the record: no delay (as in SQLite)
            document["label_timestamp"] = document["@timestamp"]
        document["sample_key"] = sample_key(record.id)
        return document

    def _create(self, index: str) -> None:
        try:
            self._client.indices.create(index=index)
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":  # another sidecar won
                raise

    def _add_columns(self, index: str, columns: StoreColumns) -> None:
        try:
            self._client.indices.put_mapping(
                index=index, properties=mappings(columns)["properties"]
            )
        except BadRequestError as exc:
            # A column changed kind (numeric <-> categorical): a field's type is fixed for the
            # life of an index. Records whose values do not fit are then rejected and counted.
            logger.warning("elasticsearch: %s keeps its mapping: %s", index, exc)

    def _ensure_indices(self, models: Iterable[str]) -> None:
        """A model written before `prepare` (a spool replayed after a restart) gets its index
        as it is, or a schemaless one: dynamic templates still type its features. Model names
        come from clients: past MAX_MODEL_INDICES, unprepared models share one index (each
        record still names its model), so a client cannot make the cluster grow indices."""
        for model in models:
            if model in self._indices:
                continue
            if len(self._indices) >= MAX_MODEL_INDICES:
                self._overflow_index()
                continue
            index = self.index_for(model)
            with unavailable(f"checking {index}", refusals=True):
                exists = bool(self._client.indices.exists(index=index))
            if exists:
                self._indices[model] = index
            else:
                self.prepare(StoreColumns(model=model))

    def _overflow_index(self) -> None:
        if OVERFLOW_MODEL not in self._indices:
            self.prepare(StoreColumns(model=OVERFLOW_MODEL))

    def _existing_indices(self) -> list[str]:
        with unavailable("listing indices"):
            try:
                response = self._client.indices.get_alias(index=f"{self.config.index_prefix}-*")
            except NotFoundError:
                return []
        return list(response.body)

    def _locate(self, ids: Sequence[str], indices: Sequence[str]) -> dict[str, list[str]]:
        """The indices that hold each id already (real-time get: no refresh needed)."""
        found: dict[str, list[str]] = {}
        step = max(1, MGET_MAX_DOCS // len(indices))
        for first in range(0, len(ids), step):
            docs = [
                {"_index": index, "_id": doc_id}
                for doc_id in ids[first : first + step]
                for index in indices
            ]
            with unavailable("looking up labelled records"):
                response = self._client.mget(docs=docs, source=False)
            for doc in response.body["docs"]:
                if doc.get("found"):
                    found.setdefault(doc["_id"], []).append(doc["_index"])
        return found

    def _note_rejected(self, result: BulkResult, sent: int, what: str) -> None:
        if result.rejected:
            self.rejected += result.rejected
            logger.warning(
                "elasticsearch rejected %d of %d %s for good (skipped); first: %s",
                result.rejected,
                sent,
                what,
                result.first_error,
            )

    def _purge_when_due(self) -> None:
        now = time.monotonic()
        if self.config.retention_days <= 0 or now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL_S
        try:
            self.purge(time.time() - self.config.retention_days * _DAY_S)
        except StoreUnavailable as exc:  # the records are written; retry the purge later
            logger.warning("%s", exc)
