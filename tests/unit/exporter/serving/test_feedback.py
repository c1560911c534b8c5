from __future__ import annotations

import json

import pytest

from exporter.records import GroundTruth
from exporter.serving.feedback import FeedbackError, parse_feedback


def parse(value: object) -> list[GroundTruth]:
    return parse_feedback(json.dumps(value).encode(), now=1.0)


def test_accepted_shapes() -> None:
    assert parse({"request_id": "r", "label": "yes"}) == [GroundTruth("r:0", "yes", 1.0)]
    assert parse({"request_id": "r", "row": 2, "label": 3.5}) == [GroundTruth("r:2", 3.5, 1.0)]
    assert parse({"request_id": "r", "labels": [True, False]}) == [
        GroundTruth("r:0", True, 1.0), GroundTruth("r:1", False, 1.0)]  # fmt: skip
    batch = [{"request_id": "a", "label": 1}, {"request_id": "b", "label": 0}]
    assert parse(batch) == parse({"feedback": batch}) == [
        GroundTruth("a:0", 1, 1.0), GroundTruth("b:0", 0, 1.0)]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "body is not JSON"),
    (b"[]", "no feedback items"),
    (b'"yes"', "body: expected an object"),
    (b'{"label": 1}', "body: expected 'request_id'"),
    (b'[{"request_id": "a", "label": 1}, {"request_id": "b"}]',
     "item 1: expected exactly one of 'label' and 'labels'"),
    (b'{"request_id": "a", "label": {"x": 1}}', "body: label: expected a string"),
    (b'{"request_id": "a", "label": NaN}', "expected a string, a finite number"),
    (b'{"request_id": "a", "labels": []}', "'labels' must be a non-empty list"),
    (b'{"request_id": "a", "row": -1, "label": 1}', "'row' must be an integer >= 0"),
    (b'{"request_id": "a", "label": 1, "extra": 2}', "unknown key(s) ['extra']"),
])  # fmt: skip
def test_bad_feedback_is_rejected_naming_where_and_what(body: bytes, message: str) -> None:
    with pytest.raises(FeedbackError) as caught:
        parse_feedback(body)
    assert message in str(caught.value)
