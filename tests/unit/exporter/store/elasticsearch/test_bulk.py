"""The bulk sender's pure parts and its retry schedule (against a port nobody listens on)."""

from __future__ import annotations

import json

import pytest

from exporter.store.base import StoreUnavailable
from exporter.store.elasticsearch.bulk import BulkAction, BulkSender, chunks
from exporter.store.elasticsearch.config import config_from_url, make_client
from tests.support.processes import free_port


def test_actions_are_upserts_and_non_finite_numbers_become_null() -> None:
    action = BulkAction.upsert("idx", "r:0", {"a": float("nan"), "b": [1.0, float("inf")]})
    meta, body = (json.loads(line) for line in action.lines.splitlines())
    assert meta == {"update": {"_index": "idx", "_id": "r:0", "retry_on_conflict": 3}}
    assert body == {"doc": {"a": None, "b": [1.0, None]}, "doc_as_upsert": True}


def test_chunks_are_bounded_by_count_and_bytes() -> None:
    actions = [BulkAction.upsert("idx", str(i), {"pad": "x" * 100}) for i in range(10)]
    size = len(actions[0].lines)
    assert [len(chunk) for chunk in chunks(actions, 4, 10**6)] == [4, 4, 2]
    assert [len(chunk) for chunk in chunks(actions, 100, 3 * size)] == [3, 3, 3, 1]
    # An action larger than the byte bound still goes, alone.
    assert [len(chunk) for chunk in chunks(actions[:2], 100, 1)] == [1, 1]


def test_retries_back_off_with_jitter_within_attempts_and_budget() -> None:
    config = config_from_url(
        f"http://127.0.0.1:{free_port()}", max_attempts=4, retry_budget_s=100.0, backoff_s=1.0
    )
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    client = make_client(config)
    sender = BulkSender(client, config, sleep=sleep, clock=lambda: now[0])
    with pytest.raises(StoreUnavailable, match="ConnectionError"):
        sender.send([BulkAction.upsert("idx", "r:0", {"a": 1})])
    assert len(sleeps) == 3  # between four attempts
    for attempt, delay in enumerate(sleeps):
        step = 2.0**attempt
        assert step / 2 <= delay <= step

    # With little budget left, it gives up rather than sleep past it.
    tight = config_from_url(config.url, max_attempts=10, retry_budget_s=2.5, backoff_s=1.0)
    sleeps.clear()
    with pytest.raises(StoreUnavailable):
        BulkSender(client, tight, sleep=sleep, clock=lambda: now[0]).send(
            [BulkAction.upsert("idx", "r:0", {"a": 1})]
        )
    assert sum(sleeps) < 2.5
    client.close()
