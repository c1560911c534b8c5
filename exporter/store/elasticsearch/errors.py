"""The one place where the cluster client's failures become the store's.

Every request of the backend and its reader runs inside `unavailable(doing)`: an API
error or a transport failure (down, timed out, refused) becomes `StoreUnavailable`,
naming what was being done, so the writer spools and the stats service marks the
window `error`. A missing index is not a failure: callers that expect one catch
`NotFoundError` inside the block, before this sees it.

The writer's requests (`prepare`, `write`) run inside `unavailable(doing, refusals=True)`
instead: a request the cluster refuses for good — a 4xx other than 408 and 429, such as
400, 401, 403, 406 (OpenSearch refusing the 8.x client's media type when the flavor is
wrong) or 413 — raises `StoreRefused`, a `StoreUnavailable` that says so: the writer
spools the records as for an outage (they are not lost when the operator fixes the
credentials or the flavor) and reports the refusal loudly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from elasticsearch import ApiError, TransportError

from exporter.store.base import StoreRefused, StoreUnavailable

# 4xx statuses that a later attempt may get past: a timeout, too many requests.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})


def is_refusal(exc: BaseException) -> bool:
    """A permanent refusal of a whole request: a 4xx other than 408 and 429."""
    return (
        isinstance(exc, ApiError)
        and 400 <= exc.status_code < 500
        and exc.status_code not in RETRYABLE_CLIENT_STATUSES
    )


def describe(exc: ApiError) -> str:
    """`406 Content-Type header [...] is not supported`: the status and the cluster's reason
    (its error's `reason` when the body has one, else the client's message)."""
    reason = str(exc.message)
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("reason"):
            kind = error.get("type")
            reason = f"{kind}: {error['reason']}" if kind else str(error["reason"])
        elif isinstance(error, str) and error:
            reason = error
    return f"{exc.status_code} {reason}"


class BatchTooLargeError(ValueError):
    """413: this batch, not the store, is the problem; spooling it would only block every
    later batch behind it, so the writer counts it as failed and goes on."""


def refused(doing: str, exc: ApiError) -> StoreRefused | BatchTooLargeError:
    if exc.status_code == 413:
        return BatchTooLargeError(f"elasticsearch {doing}: refused with {describe(exc)}")
    return StoreRefused(
        f"elasticsearch {doing}: refused with {describe(exc)} (check the store URL, "
        f"credentials and `elasticsearch.flavor`)",
        exc.status_code,
    )


@contextmanager
def unavailable(doing: str, *, refusals: bool = False) -> Iterator[None]:
    try:
        yield
    except ApiError as exc:
        if refusals and is_refusal(exc):
            raise refused(doing, exc) from exc
        raise StoreUnavailable(f"elasticsearch: {doing}: {exc}") from exc
    except TransportError as exc:
        raise StoreUnavailable(f"elasticsearch: {doing}: {exc}") from exc
