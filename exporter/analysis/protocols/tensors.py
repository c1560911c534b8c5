"""Tensor helpers shared by the adapters: shapes, per-row reshaping, base64 sizes.

Rows keep raw JSON values (Python scalars and lists), so reshaping is done by
slicing the flat list rather than through numpy: no per-element conversion.
"""

from __future__ import annotations

import math
from typing import Any

from exporter.analysis.protocols.base import (
    Part,
    PayloadError,
)


def dims(shape: Any, part: Part, what: str = "shape") -> tuple[int, ...]:
    """A validated tensor shape: a list of non-negative ints."""
    if not isinstance(shape, list) or not all(
        type(d) is int and d >= 0  # bool is an int subclass; exclude it
        for d in shape
    ):
        raise PayloadError(part, "invalid_shape", f"{what} must be a list of non-negative ints")
    return tuple(shape)


def batch_rows(
    data: Any, shape: tuple[int, ...], part: Part, *, squeeze: bool = False
) -> list[Any]:
    """Split a tensor's `data` (flat row-major or nested) into one value per row.

    The first dimension is the batch. A row is a scalar when the shape has one
    dimension, else a nested list of shape `shape[1:]`. With `squeeze`, rows of a
    single element become that element (a pandas column sent as [N, 1]).
    """
    if not isinstance(data, list):
        raise PayloadError(part, "invalid_shape", "tensor data must be a list")
    if not shape:  # a 0-d tensor: one row holding one value
        if len(data) != 1:
            raise PayloadError(part, "invalid_shape", "0-d tensor must hold one value")
        return [data[0]]
    per_row = shape[1:]
    if data and isinstance(data[0], list):
        if not _nested_matches(data, shape, 0):
            raise PayloadError(part, "invalid_shape", f"nested data does not match {list(shape)}")
        rows = data
    else:
        if len(data) != math.prod(shape):
            raise PayloadError(
                part, "invalid_shape", f"{len(data)} values do not fill shape {list(shape)}"
            )
        rows = reshape_flat(data, shape)
    if squeeze and per_row and math.prod(per_row) == 1:
        return [_first_leaf(row) for row in rows]
    return rows


def reshape_flat(flat: list[Any], shape: tuple[int, ...]) -> list[Any]:
    """Nest a flat row-major list; the caller has checked len(flat) == prod(shape)."""
    if len(shape) <= 1:
        return flat
    if shape[0] == 1:
        return [flat if len(shape) == 2 else reshape_flat(flat, shape[1:])]
    step = math.prod(shape[1:])
    if len(shape) == 2:
        return [flat[i * step : (i + 1) * step] for i in range(shape[0])]
    inner = shape[1:]
    return [reshape_flat(flat[i * step : (i + 1) * step], inner) for i in range(shape[0])]


def _nested_matches(value: list[Any], shape: tuple[int, ...], depth: int) -> bool:
    # Checks list lengths level by level; leaves are not visited, so the cost is
    # one check per inner list, not per element.
    if len(value) != shape[depth]:
        return False
    if depth + 1 == len(shape):
        return not (value and isinstance(value[0], list))
    return all(isinstance(v, list) and _nested_matches(v, shape, depth + 1) for v in value)


def _first_leaf(value: Any) -> Any:
    while isinstance(value, list):
        value = value[0]
    return value


def b64_size(text: str) -> int:
    """Decoded size of a base64 string, computed without decoding it."""
    # Every 4 significant characters carry 3 bytes; padding and line breaks carry none.
    significant = len(text) - text.count("=") - text.count("\n") - text.count("\r")
    return max(0, significant) * 3 // 4
