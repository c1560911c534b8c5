"""Ground truth posted to the sidecar's `/feedback`, validated into `GroundTruth` labels.

Accepted shapes, alone or in a list (or under "feedback"):
  {"request_id": "r1", "label": "yes"}                  row 0 of request r1
  {"request_id": "r1", "row": 2, "label": 3.5}          one row
  {"request_id": "r1", "labels": ["yes", "no", "no"]}   every row, in order
Labels are strings, numbers or booleans. Errors name the item and the key.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from exporter.records import GroundTruth, LabelValue

MAX_ITEMS = 10_000


class FeedbackError(ValueError):
    """The body is not one of the accepted shapes; the message says where and why."""


def parse_feedback(body: bytes, now: float | None = None) -> list[GroundTruth]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FeedbackError(f"body is not JSON: {str(exc)[:100]}") from None
    if isinstance(document, dict) and "feedback" in document:
        document = document["feedback"]
    items = document if isinstance(document, list) else [document]
    if not items:
        raise FeedbackError("no feedback items")
    if len(items) > MAX_ITEMS:
        raise FeedbackError(f"{len(items)} items; at most {MAX_ITEMS} per request")
    timestamp = time.time() if now is None else now
    labels: list[GroundTruth] = []
    for index, item in enumerate(items):
        where = f"item {index}" if isinstance(document, list) else "body"
        labels.extend(_item(item, where, timestamp))
    return labels


def _item(item: Any, where: str, timestamp: float) -> list[GroundTruth]:
    if not isinstance(item, dict):
        raise FeedbackError(f"{where}: expected an object with request_id and label(s)")
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > 256:
        raise FeedbackError(f"{where}: expected 'request_id', a string of 1 to 256 characters")
    unknown = set(item) - {"request_id", "row", "label", "labels"}
    if unknown:
        raise FeedbackError(f"{where}: unknown key(s) {sorted(unknown)}")
    if ("label" in item) == ("labels" in item):
        raise FeedbackError(f"{where}: expected exactly one of 'label' and 'labels'")
    if "labels" in item:
        if "row" in item:
            raise FeedbackError(f"{where}: 'row' goes with 'label', not 'labels'")
        values = item["labels"]
        if not isinstance(values, list) or not values:
            raise FeedbackError(f"{where}: 'labels' must be a non-empty list, one per row")
        return [
            GroundTruth(f"{request_id}:{row}", _label(v, f"{where}: labels[{row}]"), timestamp)
            for row, v in enumerate(values)
        ]
    row = item.get("row", 0)
    if not isinstance(row, int) or isinstance(row, bool) or row < 0:
        raise FeedbackError(f"{where}: 'row' must be an integer >= 0")
    return [GroundTruth(f"{request_id}:{row}", _label(item["label"], f"{where}: label"),
                        timestamp)]  # fmt: skip


def _label(value: Any, where: str) -> LabelValue:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return value
    raise FeedbackError(f"{where}: expected a string, a finite number or a boolean")
