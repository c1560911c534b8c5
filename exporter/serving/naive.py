"""The naive fallback: a constant answer the sidecar serves itself when no fallback model is
given, from a baseline's prediction summary: the majority class of a classifier, the mean
of a regression. Spoken for Open Inference v2, TF-Serving v1 and MLflow.

The baseline JSON is read directly (the sidecar never imports the stats service): its
"prediction" entry, as the stats service writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.errors import SettingsError

PROTOCOLS = ("v2", "v1", "mlflow")
VERSION = "naive"


@dataclass(frozen=True)
class NaiveAnswer:
    value: float | str  # a class name or a number

    @classmethod
    def from_baseline(cls, path: str) -> NaiveAnswer:
        where = f"settings: key 'fallback.baseline': {path}"
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
            prediction = document["prediction"]
        except (OSError, ValueError) as exc:
            raise SettingsError(f"{where}: expected a readable baseline JSON ({exc})") from None
        except (KeyError, TypeError):
            raise SettingsError(f"{where}: expected a baseline with a 'prediction'") from None
        if not isinstance(prediction, dict):
            raise SettingsError(
                f"{where}: expected a baseline built with a prediction column (it has none)"
            )
        if prediction.get("kind") == "categorical":
            pairs = list(
                zip(
                    prediction.get("categories", ()),
                    prediction.get("proportions", ()),
                    strict=False,
                )
            )
            if not pairs:
                raise SettingsError(f"{where}: expected at least one predicted class")
            return cls(str(max(pairs, key=lambda pair: pair[1])[0]))
        mean = prediction.get("mean")
        if not isinstance(mean, int | float):
            raise SettingsError(f"{where}: expected a numeric prediction with a mean")
        return cls(float(mean))

    def respond(self, protocol: str, model: str, body: bytes) -> tuple[int, bytes]:
        """(status, JSON body) answering `body`, one constant prediction per input row."""
        if protocol not in PROTOCOLS:
            return 503, _error(f"no naive answer for protocol {protocol!r} (only v2, v1, mlflow)")
        try:
            rows = _rows(protocol, json.loads(body))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return 400, _error("the naive fallback could not count the request's rows")
        data = [self.value] * rows
        if protocol == "v2":
            datatype = "BYTES" if isinstance(self.value, str) else "FP64"
            payload: dict[str, Any] = {
                "model_name": model,
                "model_version": VERSION,
                "outputs": [
                    {"name": "predict", "shape": [rows], "datatype": datatype, "data": data}
                ],
            }
        else:
            payload = {"predictions": data}
        return 200, json.dumps(payload).encode()


def _rows(protocol: str, document: Any) -> int:
    if protocol == "v2":
        return int(document["inputs"][0]["shape"][0])
    if protocol == "v1":
        if "instances" in document:
            return len(document["instances"])
        return len(next(iter(document["inputs"].values())))
    for key in ("dataframe_records", "instances", "inputs"):
        if key in document:
            value = document[key]
            return len(value if isinstance(value, list) else next(iter(value.values())))
    return len(document["dataframe_split"]["data"])


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
