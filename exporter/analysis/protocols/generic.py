"""Any JSON API, read through JSONPath-like selectors from the settings.

Selector syntax: `$` (the body), then any of `.key`, `['key']` / `["key"]`,
`[N]` (negative counts from the end), `[*]` or `.*` (every element or value).

- `rows_selector` (request body): without a wildcard it must match one value: a
  list gives one row per element, anything else a single row. With a wildcard
  each match is a row. A dict is a row of named inputs; any other value becomes
  `{"value": x}`.
- `predictions_selector` (response body): the same, one output per row, read
  like other protocols' outputs (`outputs.from_rows`).
- `model_selector` / `version_selector`: the response body first, then the
  request body; the first scalar found, else None. Unlike the two above they
  do not fail when nothing matches: the caller falls back to its settings.

An empty selector is not applied. A rows or predictions selector that matches
nothing raises `invalid_selector`, and so does a selector that is not valid
syntax (settings should call `compile_selector` at start to reject it early).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from exporter.analysis.protocols.base import (
    AdapterConfig,
    Exchange,
    Part,
    PayloadError,
    Protocol,
    RequestPart,
    ResponsePart,
)
from exporter.analysis.protocols.json_body import load_json
from exporter.analysis.protocols.outputs import from_rows

_STEP = re.compile(
    r"""\.(?P<key>[^.\[\]]+)
      | \[(?:(?P<index>-?\d+)|(?P<all>\*)|'(?P<single>[^']*)'|"(?P<double>[^"]*)")\]""",
    re.VERBOSE,
)
Step = str | int | None  # a key, an index, or None for the wildcard


@dataclass(frozen=True)
class Selector:
    steps: tuple[Step, ...]

    @property
    def has_wildcard(self) -> bool:
        return None in self.steps

    def matches(self, document: Any) -> list[Any]:
        nodes = [document]
        for step in self.steps:
            found: list[Any] = []
            for node in nodes:
                if step is None:
                    if isinstance(node, list):
                        found.extend(node)
                    elif isinstance(node, dict):
                        found.extend(node.values())
                elif isinstance(step, str):
                    if isinstance(node, dict) and step in node:
                        found.append(node[step])
                elif isinstance(node, list) and -len(node) <= step < len(node):
                    found.append(node[step])
            nodes = found
        return nodes


@lru_cache(maxsize=64)
def compile_selector(text: str) -> Selector:
    """Parse a selector; ValueError names the position that does not parse."""
    if not text.startswith("$"):
        raise ValueError(f"selector {text!r} must start with '$'")
    steps: list[Step] = []
    position = 1
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise ValueError(f"selector {text!r}: cannot parse at {text[position:]!r}")
        key, index = match["key"], match["index"]
        if match["all"] is not None or key == "*":
            steps.append(None)
        elif key is not None:
            steps.append(key)
        elif index is not None:
            steps.append(int(index))
        else:
            steps.append(match["single"] if match["single"] is not None else match["double"])
        position = match.end()
    return Selector(tuple(steps))


def parse_request(exchange: Exchange, config: AdapterConfig) -> RequestPart:
    if not (config.rows_selector or config.model_selector or config.version_selector):
        return RequestPart()
    body = load_json(exchange.request_body, "request")
    rows = []
    if config.rows_selector:
        values = _select(config.rows_selector, body, "request")
        rows = [v if isinstance(v, dict) else {"value": v} for v in values]
    return RequestPart(
        rows=rows,
        model=_scalar(config.model_selector, body, "request"),
        model_version=_scalar(config.version_selector, body, "request"),
    )


def parse_response(exchange: Exchange, config: AdapterConfig) -> ResponsePart:
    if not (config.predictions_selector or config.model_selector or config.version_selector):
        return ResponsePart()
    body = load_json(exchange.response_body, "response")
    predictions = []
    if config.predictions_selector:
        values = _select(config.predictions_selector, body, "response")
        predictions = from_rows(values, config, "response")
    return ResponsePart(
        predictions=predictions,
        model=_scalar(config.model_selector, body, "response"),
        model_version=_scalar(config.version_selector, body, "response"),
    )


def _select(text: str, body: Any, part: Part) -> list[Any]:
    """One entry per row, as described in the module docstring."""
    selector = _compiled(text, part)
    found = selector.matches(body)
    if not found:
        raise PayloadError(part, "invalid_selector", f"{text!r} matched nothing")
    if selector.has_wildcard:
        return found
    value = found[0]
    return value if isinstance(value, list) else [value]


def _scalar(text: str, body: Any, part: Part) -> str | None:
    if not text:
        return None
    for value in _compiled(text, part).matches(body):
        if value is not None and not isinstance(value, dict | list):
            return str(value)
    return None


def _compiled(text: str, part: Part) -> Selector:
    try:
        return compile_selector(text)
    except ValueError as exc:
        raise PayloadError(part, "invalid_selector", str(exc)) from exc


PROTOCOL = Protocol(
    name="generic",
    inference=None,
    control=None,
    parse_request=parse_request,
    parse_response=parse_response,
)
