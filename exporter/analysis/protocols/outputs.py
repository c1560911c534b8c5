"""Predictions from models that return several named outputs.

A classifier often answers with both a label output and a probability output
(sklearn's `predict` / `predict_proba`, ONNX's `output_label` /
`output_probability`, TF estimators' `classes` / `scores`). Names are split
into words; an output with a score-like word gives the scores, one with a
label-like word the labels. Score words are checked first, so `predict_proba`
is a score output. When no name matches, the first output is used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

from exporter.analysis.protocols.base import (
    AdapterConfig,
    Part,
    PayloadError,
    Prediction,
    class_probabilities,
)
from exporter.analysis.protocols.base import (
    predictions_from_outputs as _predict,
)
from exporter.analysis.protocols.sampling import sample_rows

_SCORE_WORDS = frozenset({"probabilities", "probability", "probas", "proba", "scores", "score"})
_LABEL_WORDS = frozenset({"labels", "label", "classes", "class", "predict"})
# The dict form `predictions_from_outputs` reads itself.
_PREDICTION_KEYS = frozenset({"label", "class", "score", "probability", "value"})
_WORD = re.compile(r"[a-z]+")


def from_value(value: Any, config: AdapterConfig, part: Part) -> list[Prediction]:
    """Predictions from a list of per-row outputs, a dict of named columns, or a scalar."""
    if isinstance(value, list):
        return from_rows(value, config, part)
    if isinstance(value, dict):
        columns = {name: v if isinstance(v, list) else [v] for name, v in value.items()}
        return from_columns(columns, config, part)
    return _predict([value], config)


def from_rows(values: Sequence[Any], config: AdapterConfig, part: Part) -> list[Prediction]:
    """Predictions from per-row outputs; a dict row holds named outputs."""
    values = sample_rows(values)
    if dict not in set(map(type, values)):  # json.loads makes exact dicts
        return _predict(values, config)
    return [
        from_named_row(v, config, part) if isinstance(v, dict) else _predict([v], config)[0]
        for v in values
    ]


def from_columns(
    columns: Mapping[str, Sequence[Any]], config: AdapterConfig, part: Part
) -> list[Prediction]:
    """Predictions from named outputs, each a sequence with one value per row."""
    if not columns:
        return []
    columns = {name: sample_rows(values) for name, values in columns.items()}
    names = tuple(columns)
    if len(names) == 1:
        return _predict(columns[names[0]], config)
    scores_name, labels_name = choose(names)
    if labels_name is None:
        return _predict(columns[scores_name or names[0]], config)
    labels = [_unwrap(label) for label in columns[labels_name]]
    if scores_name is None:
        return _predict(labels, _label_config(config))
    scores = columns[scores_name]
    if len(scores) != len(labels):
        raise PayloadError(
            part, "invalid_shape", f"{scores_name!r} and {labels_name!r} differ in row count"
        )
    class_names = config.class_names
    return [
        _merge(score, label, scored, class_names)
        for score, label, scored in zip(scores, labels, _predict(scores, config), strict=True)
    ]


def from_named_row(row: Mapping[str, Any], config: AdapterConfig, part: Part) -> Prediction:
    """One row's prediction from a dict of named outputs, or of class -> probability
    (MLflow's and KServe v1's `predict_proba` as records)."""
    if row.keys() <= _PREDICTION_KEYS:
        return _predict([row], config)[0]
    by_class = _class_row(row, config)
    if by_class is not None:
        return by_class
    predictions = from_columns({name: [value] for name, value in row.items()}, config, part)
    return predictions[0] if predictions else Prediction()


@lru_cache(maxsize=256)
def choose(names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The score output and the label output among `names`, first match each."""
    scores_name = labels_name = None
    for name in names:
        words = _WORD.findall(name.lower())
        if any(w in _SCORE_WORDS for w in words):
            scores_name = scores_name or name
        elif any(w in _LABEL_WORDS for w in words):
            labels_name = labels_name or name
    return scores_name, labels_name


def _merge(score: Any, label: Any, scored: Prediction, class_names: tuple[str, ...]) -> Prediction:
    if isinstance(label, str):
        label_text: str | None = label
    elif (type(label) is int) or (type(label) is float and label.is_integer()):
        index = int(label)  # a class index
        label_text = class_names[index] if 0 <= index < len(class_names) else str(index)
    elif (
        isinstance(label, list)
        and isinstance(score, list)
        and len(label) == len(score) > 1
        and scored.label is not None
    ):
        # A per-row class vocabulary aligned with the scores (TF `classes`).
        label_text = str(label[score.index(max(score))])
        if scored.probabilities is not None:
            names = [str(name) for name in label]
            return Prediction(
                value=scored.value,
                label=label_text,
                score=scored.score,
                probabilities=class_probabilities(names, list(scored.probabilities.values())),
            )
    else:
        label_text = None
    # A scalar score next to a label is that label's confidence.
    confidence = scored.score if scored.score is not None else scored.value
    probabilities = scored.probabilities
    if probabilities is not None and label_text is not None and label_text not in probabilities:
        # Named by index while the model names its classes otherwise: no telling which is which.
        probabilities = None
    return Prediction(
        value=scored.value, label=label_text, score=confidence, probabilities=probabilities
    )


def _class_row(row: Mapping[str, Any], config: AdapterConfig) -> Prediction | None:
    """{class: probability} with no output-like name: the schema's classes when it lists
    them (the keys among them), else any names (at most MAX_CLASSES)."""
    names = tuple(row)
    if choose(names) != (None, None) or (
        config.class_names and not row.keys() <= set(config.class_names)
    ):
        return None
    values = list(row.values())
    if not all(type(v) in (int, float) for v in values):  # bool excluded
        return None
    scores = [float(v) for v in values]
    probabilities = class_probabilities(names, scores)
    if probabilities is None:
        return None
    top = max(scores)
    # Binary: `value` is the positive class's, the schema's second class when it names them.
    positive = config.class_names[1] if len(config.class_names) == 2 else names[-1]
    return Prediction(
        value=probabilities.get(positive) if len(scores) == 2 else None,
        label=names[scores.index(top)],
        score=top,
        probabilities=probabilities,
    )


def _unwrap(label: Any) -> Any:
    # A label tensor of shape [N, 1] gives one-element rows.
    while isinstance(label, list) and len(label) == 1:
        label = label[0]
    return label


@lru_cache(maxsize=64)
def _label_config(config: AdapterConfig) -> AdapterConfig:
    # Integer outputs of a label-named output are class indices, whatever the task.
    return replace(config, task="multiclass")
