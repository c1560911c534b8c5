"""Request ids the sidecar makes when the client sent none: canonical random UUIDs."""

from __future__ import annotations

import uuid

from exporter.serving.proxy import new_request_id


def test_new_request_ids_are_canonical_version_4_uuids_and_distinct() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    for request_id in ids[:1000]:
        parsed = uuid.UUID(request_id)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == request_id
    assert len(set(ids)) == len(ids)
