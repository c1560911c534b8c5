"""Bulk requests with bounded retries: the one way the backend writes.

Actions are serialised once, here, so requests are split by exact size as well as count.
Retried, with jittered exponential backoff: a whole request that failed with 408, 429 or
5xx or did not reach the cluster (connection refused, reset, timed out), and the items that
failed with 429, 503 (the cluster is busy) or 409 (an update raced another one past
`retry_on_conflict`). At most `max_attempts` attempts within `retry_budget_s` seconds per
request; then `StoreUnavailable`. A whole request refused with another 4xx (400, 401,
403, 406, 413: wrong credentials, wrong flavor) is not retried: `StoreRefused`. Items
rejected for good (a mapping conflict, a value that does not parse: 4xx) are counted and
skipped, so one bad record cannot block the pipeline.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from elasticsearch import ApiError, Elasticsearch, TransportError

from exporter.store.base import StoreUnavailable
from exporter.store.elasticsearch.config import ElasticsearchConfig
from exporter.store.elasticsearch.errors import is_refusal, refused

RETRYABLE_ITEM_STATUSES = frozenset({409, 429, 503})
# Updates that race (a label and its record written at once) are retried by the cluster.
RETRY_ON_CONFLICT = 3


@dataclass(frozen=True)
class BulkAction:
    """One upsert: `update` of `doc` into `index` by `id`, creating it when missing, so
    writing a record twice stores it once and fields written first (a label) are kept."""

    index: str
    id: str
    lines: bytes  # the action line and the source line, NDJSON

    @classmethod
    def upsert(cls, index: str, doc_id: str, doc: Mapping[str, Any]) -> BulkAction:
        action = {
            "update": {"_index": index, "_id": doc_id, "retry_on_conflict": RETRY_ON_CONFLICT}
        }
        return cls(index, doc_id, _dumps(action) + _dumps({"doc": doc, "doc_as_upsert": True}))


@dataclass
class BulkResult:
    accepted: int = 0
    rejected: int = 0  # 4xx items, skipped for good
    first_error: str = ""  # of the rejected items, for one log line


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)  # NaN, inf: null
    except orjson.JSONEncodeError:  # an integer label past 64 bits
        pass
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or infinity somewhere: JSON has no such numbers
        text = json.dumps(_finite(value), separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def chunks(
    actions: Sequence[BulkAction], max_docs: int, max_bytes: int
) -> Iterator[list[BulkAction]]:
    """Consecutive runs of at most `max_docs` actions and `max_bytes` bytes (an action
    larger than that goes alone)."""
    chunk: list[BulkAction] = []
    size = 0
    for action in actions:
        if chunk and (len(chunk) >= max_docs or size + len(action.lines) > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(action)
        size += len(action.lines)
    if chunk:
        yield chunk


class BulkSender:
    def __init__(
        self,
        client: Elasticsearch,
        config: ElasticsearchConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._config = config
        self._sleep = sleep
        self._clock = clock

    def send(self, actions: Sequence[BulkAction]) -> BulkResult:
        """Raises StoreUnavailable when a request still fails after its retries; requests
        before it stay written, which is harmless: the caller retries the whole batch and
        upserts are idempotent."""
        result = BulkResult()
        config = self._config
        for chunk in chunks(actions, config.bulk_max_docs, config.bulk_max_bytes):
            self._send_chunk(chunk, result)
        return result

    def _send_chunk(self, chunk: list[BulkAction], result: BulkResult) -> None:
        config = self._config
        deadline = self._clock() + config.retry_budget_s
        pending = chunk
        reason = ""
        for attempt in range(config.max_attempts):
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            try:
                # Already-serialised lines are passed through as they are by the client's
                # NDJSON serializer (its own bulk helpers do the same).
                lines = cast(Sequence[Mapping[str, Any]], [action.lines for action in pending])
                response = self._client.options(
                    request_timeout=min(config.request_timeout_s, remaining)
                ).bulk(operations=lines)
            except ApiError as exc:
                if is_refusal(exc):
                    raise refused("bulk", exc) from exc
                reason = f"{exc.status_code} {exc.message}"
            except TransportError as exc:
                reason = f"{type(exc).__name__}: {exc.message}"
            else:
                pending, reason = _settle(pending, response.body, result)
                if not pending:
                    return
            if attempt + 1 < config.max_attempts and not self._back_off(attempt, deadline):
                break
        raise StoreUnavailable(
            f"elasticsearch bulk: {len(pending)} of {len(chunk)} actions not accepted after "
            f"retries: {reason}"
        )

    def _back_off(self, attempt: int, deadline: float) -> bool:
        """Sleep before the next attempt; False when that would leave no time for it."""
        step = self._config.backoff_s * 2**attempt
        delay = step / 2 + random.uniform(0, step / 2)  # jitter: clients do not retry in step
        if self._clock() + delay >= deadline:
            return False
        self._sleep(delay)
        return True


def _settle(
    sent: list[BulkAction], body: Mapping[str, Any], result: BulkResult
) -> tuple[list[BulkAction], str]:
    """Count accepted and rejected items; return those to retry and why."""
    if not body.get("errors", True):
        result.accepted += len(sent)
        return [], ""
    retry: list[BulkAction] = []
    reason = ""
    for action, item in zip(sent, body["items"], strict=True):
        outcome = next(iter(item.values()))
        status = int(outcome.get("status", 500))
        if status < 300:
            result.accepted += 1
            continue
        error = outcome.get("error", {})
        described = f"{status} {error.get('type', '')}: {error.get('reason', '')}"
        if status in RETRYABLE_ITEM_STATUSES:
            retry.append(action)
            reason = described
        else:
            result.rejected += 1
            result.first_error = result.first_error or f"{action.index}/{action.id}: {described}"
    return retry, reason
