"""Logged rows as they were served, in bounded batches: what `mlmon-stats export` streams.

Both stores' row readers (`sqlite.rows`, `elasticsearch.rows`) yield `RowBatch`es of
at most a chunk of rows, columns fixed for the whole read (`LoggedColumns`), oldest row
first. Features are the preprocessed values the sidecar logged: a `log: hash` feature
holds its hash, a `log: false` one is not there at all. A column of texts or rows is a
list or an Arrow array (`pa.array(column, type)` takes either): the SQLite reader builds
Arrow arrays without a Python object per value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from exporter.records import LabelValue

FloatArray = npt.NDArray[np.floating[Any]]
# What one batch holds at most: memory does not grow with the window.
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class LoggedColumns:
    """The model's feature columns in the log (the newest layout), known before any row."""

    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowBatch:
    """Row i is the same record in every column. NaN / None = not logged."""

    timestamp: FloatArray  # epoch seconds
    request_id: Sequence[str]
    row: Sequence[int]
    model_version: Sequence[str]
    protocol: Sequence[str | None]
    role: Sequence[str]
    candidate: Sequence[str]
    prediction_value: FloatArray
    prediction_label: Sequence[str | None]
    prediction_score: FloatArray
    label: Sequence[LabelValue | None]  # ground truth as stored, None until it arrives
    numeric: Mapping[str, FloatArray]  # every `LoggedColumns.numeric` name
    categorical: Mapping[str, Sequence[str | None]]

    def __len__(self) -> int:
        return len(self.timestamp)
