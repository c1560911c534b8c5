"""Windows of the SQLite input log: one indexed read, then numpy over whole columns.

The file is opened read-only (an SQLite URI with mode=ro): the sidecar writes it
concurrently in WAL mode, where readers never wait for the writer, and the stats service
must not create, convert or lock it. A missing file (the sidecar has not started yet)
reads as `StoreUnavailable`, as do a busy or unreadable one; the connection is opened on
the first read and again after a failure.

Numeric features are stored as float32 (`sqlite.format`), so the baseline's edges,
minimum and maximum are rounded to float32 before values are compared with them: a live
value equal to the training maximum, or to an edge, then falls where it did in training,
not above the maximum because float32(v) > v. Predictions are float64 and compared as is.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from exporter.store.base import StoreUnavailable
from exporter.store.sqlite.errors import is_transient
from exporter.store.sqlite.format import FORMAT_VERSION
from exporter.store.sqlite.log import URL_PREFIX
from exporter.store.sqlite.read import Window, read_window
from stats_service.baseline.contents import (
    Baseline,
    CategoricalFeatureBaseline,
    FeatureBaseline,
    NumericFeatureBaseline,
)
from stats_service.settings import WindowSpec
from stats_service.windows.predictions import (
    is_classifier,
    label_delays,
    prediction_rows,
    probabilities_at,
    row_predictions,
    sample_indices,
)
from stats_service.windows.segments import segment_features, split
from stats_service.windows.spec import ROW_SAMPLE_CAP, check_spec, decode_label
from stats_service.windows.summary import (
    CategoricalSummary,
    ColumnSummary,
    FloatArray,
    Labelled,
    NumericSummary,
    WindowSummary,
    summarize_categorical,
    summarize_numeric,
)


class SqliteWindowReader:
    """WindowReader on the sidecar's SQLite file. Calls run one at a time (a lock)."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 5.0,
        row_sample_cap: int = ROW_SAMPLE_CAP,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.row_sample_cap = row_sample_cap
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> SqliteWindowReader:
        """The sidecar's URL spelling (`SqliteLog.from_url`): "sqlite:///" then the path."""
        path = url.removeprefix(URL_PREFIX)
        if path == url or not path or path == ":memory:" or "?" in path:
            raise ValueError(f"input log URL {url!r}: expected sqlite:///path/to/file.db")
        return cls(path)

    def read(self, model: str, spec: WindowSpec, baseline: Baseline, now: float) -> WindowSummary:
        check_spec(spec)
        if self._connection is None and not self.path.is_file():
            # The sidecar creates the file with its first record: until then the window
            # is empty (insufficient), not a failure that would page someone.
            start = now if spec.rows is not None else now - (spec.duration_s or 0.0)
            return summarize_window(_empty(model), baseline, spec.name, start, now)
        probabilities = is_classifier(baseline)
        with self._lock, self._reading() as connection:
            if spec.rows is not None:
                window = read_window(
                    connection,
                    model,
                    -math.inf,
                    now,
                    max_rows=spec.rows,
                    newest_first=True,
                    probabilities=probabilities,
                )
                start = float(window.timestamps.min()) if window.count else now
            else:
                start = now - (spec.duration_s or 0.0)
                window = read_window(connection, model, start, now, probabilities=probabilities)
        return summarize_window(window, baseline, spec.name, start, now, self.row_sample_cap)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: the layouts and the rows come from one snapshot."""
        try:
            connection = self._connect()
            connection.execute("BEGIN")
            try:
                yield connection
            finally:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")  # it only read: ends the snapshot
        except sqlite3.Error as exc:
            self._forget()
            if is_transient(exc):
                raise StoreUnavailable(f"SQLite input log {self.path}: {exc}") from exc
            raise

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            # Checked first: mode=ro would not create it, but its error names no file.
            if not self.path.is_file():
                raise StoreUnavailable(f"SQLite input log {self.path}: no such file yet")
            self._connection = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        version = self._connection.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:  # created, tables not yet: the sidecar is starting
            self._forget()
            raise StoreUnavailable(f"SQLite input log {self.path}: not set up yet")
        if version != FORMAT_VERSION:
            raise ValueError(f"{self.path}: input log format {version}, expected {FORMAT_VERSION}")
        return self._connection

    def _forget(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def summarize_window(
    window: Window,
    baseline: Baseline,
    name: str,
    start_ts: float,
    end_ts: float,
    row_sample_cap: int = ROW_SAMPLE_CAP,
    segments: bool = True,
) -> WindowSummary:
    """A window read from SQLite, on the baseline's bins (see `stats_service.windows.spec`);
    with `segments`, also each segment's (`windows.segments`)."""
    prediction: ColumnSummary | None = None
    if isinstance(baseline.prediction, NumericFeatureBaseline):
        prediction = summarize_numeric(window.prediction_value, baseline.prediction)
    elif isinstance(baseline.prediction, CategoricalFeatureBaseline):
        prediction = summarize_categorical(window.prediction_label)
    return WindowSummary(
        model=window.model,
        window=name,
        start_ts=start_ts,
        end_ts=end_ts,
        rows=window.count,
        columns={feature.name: _column(window, feature) for feature in baseline.features},
        prediction=prediction,
        row_sample=_row_sample(window, baseline.row_sample.columns, row_sample_cap),
        labelled=_labelled(window),
        predictions=prediction_rows(window),
        row_predictions=row_predictions(window, row_sample_cap),
        segments={
            feature: {
                value: summarize_window(
                    part, baseline, name, start_ts, end_ts, row_sample_cap, False
                )
                for value, part in split(window, feature).items()
            }
            for feature in (segment_features(baseline) if segments else ())
        },
    )


def _empty(model: str) -> Window:
    nothing = np.empty(0)
    return Window(
        model=model,
        numeric_names=(),
        numeric=np.empty((0, 0), dtype=np.float32),
        categorical_names=(),
        categorical={},
        prediction_value=nothing,
        prediction_score=nothing,
        prediction_label=[],
        label=[],
        timestamps=nothing,
    )


def _column(window: Window, feature: FeatureBaseline) -> ColumnSummary:
    if isinstance(feature, CategoricalFeatureBaseline):
        categories = window.categorical.get(feature.name)
        if categories is None:
            return CategoricalSummary(counts={}, missing=window.count)
        return summarize_categorical(categories)
    if feature.name not in window.numeric_names:
        bins = len(feature.edges) - 1
        return NumericSummary(
            counts=(0,) * bins, missing=window.count, below_minimum=0, above_maximum=0
        )
    values = window.numeric[:, window.numeric_names.index(feature.name)]
    return summarize_numeric(values, _as_stored(feature))


def _as_stored(feature: NumericFeatureBaseline) -> NumericFeatureBaseline:
    """The feature's edges and range at the precision the store keeps values (float32)."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else float(np.float32(value))

    with np.errstate(over="ignore"):  # beyond float32's range is +-inf, as stored values
        edges = np.asarray(feature.edges, dtype=np.float32).astype(np.float64)
        return dataclasses.replace(
            feature,
            edges=tuple(edges.tolist()),
            minimum=rounded(feature.minimum),
            maximum=rounded(feature.maximum),
        )


def _row_sample(window: Window, columns: tuple[str, ...], cap: int) -> FloatArray:
    """Whole rows of `columns` (NaN where missing or not stored), a uniform subsample
    without replacement when the window has more than `cap`; the same rows every time."""
    rows = sample_indices(window.count, cap)
    sample = np.full((len(rows), len(columns)), np.nan)
    for j, name in enumerate(columns):
        if name in window.numeric_names:
            sample[:, j] = window.numeric[rows, window.numeric_names.index(name)]
    return sample


def _labelled(window: Window) -> Labelled:
    if window.label.count(None) == len(window.label):  # the usual case: no ground truth yet
        return Labelled()
    # One C loop to find them; Python objects only for the labelled rows themselves.
    labels = np.asarray(window.label, dtype=object)
    which = np.flatnonzero(labels != None)  # noqa: E711 - elementwise, not an identity test
    return Labelled(
        truth=tuple(map(decode_label, labels[which].tolist())),
        predicted_value=np.asarray(window.prediction_value[which], dtype=np.float64),
        predicted_label=tuple(window.prediction_label[i] for i in which.tolist()),
        score=np.asarray(window.prediction_score[which], dtype=np.float64),
        probabilities=probabilities_at(window, which),
        delay=label_delays(window, which),
    )
