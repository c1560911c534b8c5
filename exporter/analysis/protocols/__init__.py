"""Protocol detection (`route`, on the request path) and parsing (`parse`, in the worker).

`route` runs for every proxied request, so its answers are cached per path in
a bounded dict. `parse` runs after the client has its response; it only ever
raises `PayloadError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

from exporter.analysis.protocols import generic, mlflow, oip, seldon, tfserving
from exporter.analysis.protocols.base import (
    AdapterConfig,
    Exchange,
    ParsedExchange,
    Part,
    PayloadError,
    RequestPart,
    ResponsePart,
)
from exporter.analysis.protocols.json_body import JSON_NOTES
from exporter.analysis.protocols.sampling import ROW_SAMPLE, RowSample
from exporter.names import printable

# Checked in this order; each protocol declares its own paths and parsers.
_ALL = (oip.PROTOCOL, tfserving.PROTOCOL, mlflow.PROTOCOL, seldon.PROTOCOL, generic.PROTOCOL)
BY_NAME = {protocol.name: protocol for protocol in _ALL}
PROTOCOLS = tuple(BY_NAME)
# Paths every kind of model server uses for itself: never parsed.
_COMMON_CONTROL = re.compile(
    r"/|/(?:ping|health|healthz|livez|readyz|live|ready|version|metrics|metadata|favicon\.ico)"
    r"|/health/(?:ping|status)"
)
_CACHE_LIMIT = 4096
_Part = TypeVar("_Part", RequestPart, ResponsePart)


@dataclass(frozen=True)
class Route:
    """What the request path says: protocol None means "not an inference call"."""

    protocol: str | None
    model: str | None = None
    model_version: str | None = None


_NOT_INFERENCE = Route(None)
_routes: dict[tuple[str, str], Route] = {}


def route(path: str, override: str = "auto") -> Route:
    """Detect the protocol, model and version from a URL path.

    `override` ("auto" or one of PROTOCOLS) forces the protocol for every path
    that is not a known control or metadata path; model and version are still
    read from the path when it has them.
    """
    key = (path, override)
    cached = _routes.get(key)
    if cached is not None:
        return cached
    if override != "auto" and override not in PROTOCOLS:
        raise ValueError(f"unknown protocol {override!r}; expected auto or one of {PROTOCOLS}")
    result = _detect(path.partition("?")[0], override)
    # Paths come from clients: clearing when full bounds memory at a few hundred KB.
    if len(_routes) >= _CACHE_LIMIT:
        _routes.clear()
    _routes[key] = result
    return result


def _detect(path: str, override: str) -> Route:
    for protocol in _ALL:
        match = protocol.inference.fullmatch(path) if protocol.inference else None
        if match is not None:
            groups = match.groupdict()
            return Route(
                protocol.name if override == "auto" else override,
                _decoded(groups.get("model")),
                _decoded(groups.get("version")),
            )
    if override == "auto" or _is_control(path):
        return _NOT_INFERENCE
    return Route(override)


def _is_control(path: str) -> bool:
    if _COMMON_CONTROL.fullmatch(path):
        return True
    return any(p.control is not None and p.control.fullmatch(path) for p in _ALL)


def _decoded(segment: str | None) -> str | None:
    # Names from the path become labels and log fields: `%00` must not become a NUL.
    return None if segment is None else printable(unquote(segment))


def parse(protocol: str, exchange: Exchange, config: AdapterConfig) -> ParsedExchange:
    """Rows from the request and, for a 2xx response, predictions from the response.

    Raises only `PayloadError`, and only for the request: an unreadable response
    must not cost the request's rows, so its error is returned in `response_error`.
    ValueError for a protocol not in PROTOCOLS is a programming error.
    """
    spec = BY_NAME.get(protocol)
    if spec is None:
        raise ValueError(f"unknown protocol {protocol!r}")
    parse_request, parse_response = spec.parse_request, spec.parse_response
    notes: list[tuple[Part, str]] = []
    sample = RowSample(config.max_rows, exchange.sample_seed) if config.max_rows else None
    notes_token, sample_token = JSON_NOTES.set(notes), ROW_SAMPLE.set(sample)
    try:
        request = _guarded("request", parse_request, exchange, config)
        rows: Sequence[dict[str, Any]] = request.rows
        total_rows = len(rows)
        if sample is not None:
            # Adapters that build rows sampled them already; the others are sampled here.
            total_rows = sample.total if sample.total is not None else len(rows)
            sample.indices(total_rows)
            rows = sample.take(rows)
        response, response_error = ResponsePart(), None
        if 200 <= exchange.status < 300:
            try:
                response = _guarded("response", parse_response, exchange, config)
            except PayloadError as error:
                response_error = error
    finally:
        JSON_NOTES.reset(notes_token)
        ROW_SAMPLE.reset(sample_token)
    predictions = response.predictions
    kept = sample.kept if sample is not None else None
    if sample is not None:
        predictions = list(sample.take(predictions))
    return ParsedExchange(
        protocol=protocol,
        model=response.model or request.model,
        model_version=response.model_version or request.model_version,
        rows=list(rows),
        predictions=predictions,
        tensors=request.tensors + response.tensors,
        response_error=response_error,
        notes=tuple(dict.fromkeys(notes)),
        total_rows=total_rows,
        row_numbers=None if kept is None else tuple(kept),
    )


def parse_answer(
    exchange: Exchange, config: AdapterConfig, request: ParsedExchange
) -> ParsedExchange:
    """`parse` of an exchange whose request is `request`, already parsed (a shadow's copy
    of its primary's): only the response is read, its predictions sampled as the
    request's rows were (same seed, same rows)."""
    spec = BY_NAME[request.protocol]
    notes: list[tuple[Part, str]] = []
    sample = RowSample(config.max_rows, exchange.sample_seed) if config.max_rows else None
    if sample is not None:
        sample.indices(request.total_rows)
    response, response_error = ResponsePart(), None
    if 200 <= exchange.status < 300:
        notes_token, sample_token = JSON_NOTES.set(notes), ROW_SAMPLE.set(sample)
        try:
            response = _guarded("response", spec.parse_response, exchange, config)
        except PayloadError as error:
            response_error = error
        finally:
            JSON_NOTES.reset(notes_token)
            ROW_SAMPLE.reset(sample_token)
    predictions = response.predictions
    # Built whole: `dataclasses.replace` costs as much as the rest of this.
    return ParsedExchange(
        protocol=request.protocol,
        model=response.model,
        model_version=response.model_version,
        rows=request.rows,
        predictions=predictions if sample is None else list(sample.take(predictions)),
        tensors=response.tensors,
        response_error=response_error,
        notes=tuple(dict.fromkeys(notes)),
        total_rows=request.total_rows,
        row_numbers=request.row_numbers,
    )


def _guarded(
    part: Part,
    function: Callable[[Exchange, AdapterConfig], _Part],
    exchange: Exchange,
    config: AdapterConfig,
) -> _Part:
    try:
        return function(exchange, config)
    except PayloadError:
        raise
    except Exception as exc:
        # A payload the adapter did not foresee (a RecursionError on a deep but
        # valid document, say) must be counted, not crash the worker.
        raise PayloadError(part, "invalid_shape", f"{type(exc).__name__}: {exc}"[:200]) from exc


__all__ = [
    "PROTOCOLS",
    "AdapterConfig",
    "Exchange",
    "ParsedExchange",
    "PayloadError",
    "Route",
    "parse",
    "parse_answer",
    "route",
]
