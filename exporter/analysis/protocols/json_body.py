"""Reading JSON bodies as model servers send them, which is not always JSON.

orjson first (a fifth of the standard parser's time); what it refuses (NaN, Infinity,
numbers past float range, lone surrogates, UTF-16/32, nesting past 1,024) the standard
parser reads, and what JSON does not allow is noted for the analysis to count.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

import orjson

from exporter.analysis.protocols.base import (
    Part,
    PayloadError,
)
from exporter.names import REPLACEMENT

# What the standard parser accepted that JSON does not allow, per part of the exchange
# being parsed: `protocols.parse` collects it and the analysis counts it.
JSON_NOTES: ContextVar[list[tuple[Part, str]] | None] = ContextVar("json_notes", default=None)
_FLOAT_DIGITS = 309  # an integer of this many digits is past float range (1.8e308)
_LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def load_json(body: bytes, part: Part) -> Any:
    """Parse a JSON body. NaN/Infinity tokens and numbers past float range are accepted
    (model servers emit them) and noted as `non_finite_number`; lone surrogate escapes
    become U+FFFD (no UTF-8 encoder, so no store, takes them), noted as `invalid_unicode`.
    """
    try:
        # orjson parses in a fifth of the time; integers past 64 bits become floats.
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # NaN/Infinity, 1e400, surrogates, UTF-16/32, nesting past 1,024: the stdlib
    non_finite = False

    def note_non_finite(text: str) -> float:
        nonlocal non_finite
        non_finite = True
        return float(text)

    def parse_float(text: str) -> float:
        number = float(text)
        return number if math.isfinite(number) else note_non_finite(text)

    def parse_int(text: str) -> int | float:
        # Past float range no feature can use the integer: read it as what it is, infinite.
        if len(text.lstrip("-")) < _FLOAT_DIGITS:
            return int(text)
        return note_non_finite("-Infinity" if text.startswith("-") else "Infinity")

    try:
        document = json.loads(
            body, parse_constant=note_non_finite, parse_float=parse_float, parse_int=parse_int
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise PayloadError(part, "invalid_json", str(exc)[:200]) from exc
    notes = JSON_NOTES.get()
    if non_finite and notes is not None:
        notes.append((part, "non_finite_number"))
    if _LONE_SURROGATE_ESCAPE.search(body) and _has_surrogates(document):
        document = _without_surrogates(document)
        if notes is not None:
            notes.append((part, "invalid_unicode"))
    return document


def _has_surrogates(document: Any) -> bool:
    try:
        orjson.dumps(document)
    except TypeError:  # orjson.JSONEncodeError: "str is not valid UTF-8: surrogates..."
        return True
    return False


def _without_surrogates(document: Any) -> Any:
    """The document with every lone surrogate in keys and texts replaced. Iterative: a
    document may be nested as deep as the parser allowed."""
    fixed = _fix_text(document) if isinstance(document, str) else document
    stack = [fixed] if isinstance(fixed, dict | list) else []
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    node[index] = _fix_text(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        else:
            for key in list(node):
                value = node.pop(key)
                if isinstance(value, str):
                    value = _fix_text(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
                node[_fix_text(key)] = value
    return fixed


def _fix_text(text: str) -> str:
    return (
        text.encode("utf-8", "surrogatepass")
        .decode("utf-8", "replace")
        .replace("\ufffd\ufffd\ufffd", REPLACEMENT)
    )


def load_envelope(body: bytes, part: Part, keys: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """A JSON object with exactly one of `keys`: (that key, the object)."""
    document = load_json(body, part)
    if not isinstance(document, dict):
        raise PayloadError(part, "invalid_shape", "body is not a JSON object")
    present = [key for key in keys if key in document]
    if len(present) != 1:
        raise PayloadError(part, "invalid_shape", f"expected exactly one of {tuple(keys)}")
    return present[0], document
