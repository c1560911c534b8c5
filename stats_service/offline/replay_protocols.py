"""Requests a candidate model server understands, rebuilt from logged rows, and its answers.

One request per batch of rows, in the protocol the sidecar parsed the rows from:
  v2       POST /v2/models/{model}/infer, one input per feature (`content_type: pd`,
           the pandas codec: FP64 for numbers, BYTES for texts)
  v1       POST /v1/models/{model}:predict, {"instances": [{feature: value}, ...]}
  mlflow   POST /invocations, {"dataframe_split": {"columns": [...], "data": [[...]]}}
  seldon   POST /api/v1.0/predictions, {"data": {"names": [...], "ndarray": [[...]]}}
Rows are the features as logged: a request the candidate reads as it read the original
holds inputs that are the features themselves (a `log: hash` feature is sent hashed, a
`log: false` one not at all, a derived one as its derived values).

Answers are read as the sidecar reads outputs (`exporter.analysis.protocols.base`, which
the stats service may not import: the layering keeps it to definitions and stores): a
number is a value, a text a class, a list of numbers class probabilities (class = the
index of the largest, score = that probability, value = the second one's for two
classes), a v2 output named like probabilities or scores before one named like labels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

PROTOCOLS = ("v2", "v1", "mlflow", "seldon")
_SCORE_WORDS = frozenset({"probabilities", "probability", "probas", "proba", "scores", "score"})
_WORD = re.compile(r"[a-z]+")


class AnswerError(ValueError):
    """An answer that is not the protocol's envelope, or has the wrong number of rows."""


@dataclass(frozen=True)
class Answer:
    value: float | None = None
    label: str | None = None
    score: float | None = None


def request(
    protocol: str, model: str, rows: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) of one request holding `rows` (each maps feature -> value)."""
    if protocol == "v2":
        inputs = []
        for name in names:
            values = [row.get(name) for row in rows]
            texts = any(isinstance(v, str) for v in values)
            inputs.append(
                {
                    "name": name,
                    "shape": [len(rows)],
                    "datatype": "BYTES" if texts else "FP64",
                    "data": values,
                }
            )
        body = {"inputs": inputs, "parameters": {"content_type": "pd"}}
        return f"/v2/models/{quote(model, safe='')}/infer", body
    if protocol == "v1":
        instances = [{name: row.get(name) for name in names} for row in rows]
        return f"/v1/models/{quote(model, safe='')}:predict", {"instances": instances}
    data = [[row.get(name) for name in names] for row in rows]
    if protocol == "mlflow":
        return "/invocations", {"dataframe_split": {"columns": list(names), "data": data}}
    if protocol == "seldon":
        return "/api/v1.0/predictions", {"data": {"names": list(names), "ndarray": data}}
    raise ValueError(f"protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")


def answers(protocol: str, body: Any, rows: int) -> list[Answer]:
    """One `Answer` per row of the request; AnswerError when the body does not hold them."""
    if protocol == "v2":
        outputs = body.get("outputs") if isinstance(body, dict) else None
        if not isinstance(outputs, list) or not outputs:
            raise AnswerError("expected a v2 answer with `outputs`")
        found = _v2_outputs(outputs, rows)
    elif protocol == "seldon":
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or "ndarray" not in data:
            raise AnswerError('expected a Seldon answer {"data": {"ndarray": ...}}')
        found = [_one(value) for value in data["ndarray"]]
    else:
        values = body.get("predictions") if isinstance(body, dict) else body
        if not isinstance(values, list):
            raise AnswerError('expected {"predictions": [...]}')
        found = [_one(value) for value in values]
    if len(found) != rows:
        raise AnswerError(f"{len(found)} predictions for {rows} rows")
    return found


def _v2_outputs(outputs: list[Any], rows: int) -> list[Answer]:
    def rows_of(output: dict[str, Any]) -> list[Any]:
        data = output.get("data", [])
        width = len(data) // rows if rows else 0
        if width <= 1:
            return list(data)
        return [data[i * width : (i + 1) * width] for i in range(rows)]

    scored = next((o for o in outputs if _is_scores(str(o.get("name", "")))), None)
    labelled = next((o for o in outputs if o is not scored), None)
    if scored is None:
        return [_one(value) for value in rows_of(outputs[0])]
    answers_ = [_one(value) for value in rows_of(scored)]
    if labelled is None:
        return answers_
    return [
        Answer(a.value, _class(label), a.score)
        for a, label in zip(answers_, rows_of(labelled), strict=True)
    ]


def _class(label: Any) -> str:
    """A label output's value as a class: an integral number is a class index."""
    if isinstance(label, int | float) and not isinstance(label, bool) and float(label).is_integer():
        return str(int(label))
    return str(label)


def _is_scores(name: str) -> bool:
    return any(word in _SCORE_WORDS for word in _WORD.findall(name.lower()))


def _one(value: Any) -> Answer:
    if isinstance(value, bool):
        return Answer(value=float(value), label=str(value).lower())
    if isinstance(value, int | float):
        return Answer(value=float(value))
    if isinstance(value, str):
        return Answer(label=value)
    if isinstance(value, list) and value and all(_is_number(v) for v in value):
        if len(value) == 1:
            return _one(value[0])
        scores = [float(v) for v in value]
        if not all(map(math.isfinite, scores)):
            return Answer(value=math.nan)
        top = max(scores)
        return Answer(
            value=scores[1] if len(scores) == 2 else None,
            label=str(scores.index(top)),
            score=top,
        )
    if isinstance(value, dict):
        label = value.get("label", value.get("class"))
        score = value.get("score", value.get("probability"))
        return Answer(
            value=_float(value.get("value")),
            label=None if label is None else str(label),
            score=_float(score),
        )
    return Answer()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _float(value: Any) -> float | None:
    return float(value) if _is_number(value) else None
