"""The logged record: one per input row, as ARCHITECTURE.md spells it.

What the analysis builds, every store writes and reads back, and the spool keeps on disk
(`LogRecord.to_document`). Ground truth (`GroundTruth`) joins a record by its id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FeatureValue = float | str | None
# Which route answered: the request's one real answer (primary, canary, fallback), or a
# shadow's copy, which never reached the client.
ROLES = ("primary", "shadow", "canary", "fallback")
PRIMARY, SHADOW, CANARY, FALLBACK = ROLES
LabelValue = str | float | int | bool


@dataclass(frozen=True)
class PredictionValue:
    value: float | None = None
    label: str | None = None
    score: float | None = None
    # Per class, for classifiers that return them (multiclass estimation needs them all).
    probabilities: Mapping[str, float] | None = None


@dataclass(frozen=True)
class LogRecord:
    id: str  # f"{request_id}:{row}" (a shadow's: f"{request_id}:{row}:shadow:{candidate}")
    timestamp: float  # epoch seconds (UTC) when the sidecar received the request
    request_id: str
    row: int
    model: str
    model_version: str
    protocol: str
    status: int
    latency_ms: float
    features: Mapping[str, FeatureValue]  # preprocessed; never a `log: false` feature
    issues: Sequence[str] = ()  # "<kind>:<feature>"
    prediction: PredictionValue | None = None
    label: LabelValue | None = None  # ground truth, when /feedback has sent it
    role: str = "primary"  # one of ROLES
    candidate: str = ""  # the configured name of the route that answered; "" for the primary

    def to_document(self) -> dict[str, Any]:
        """The record as ARCHITECTURE.md spells it (Elasticsearch source, JSON spool)."""
        document: dict[str, Any] = {
            "@timestamp": self.timestamp,
            "request_id": self.request_id,
            "row": self.row,
            "model": self.model,
            "model_version": self.model_version,
            "protocol": self.protocol,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "features": dict(self.features),
            "issues": list(self.issues),
            "role": self.role,
            "candidate": self.candidate,
        }
        if self.prediction is not None:
            document["prediction"] = {
                "value": self.prediction.value,
                "label": self.prediction.label,
                "score": self.prediction.score,
            }
            if self.prediction.probabilities:
                document["prediction"]["probabilities"] = dict(self.prediction.probabilities)
        if self.label is not None:
            document["label"] = self.label
        return document


@dataclass(frozen=True)
class GroundTruth:
    """A label for one logged row; it may arrive before or after the record."""

    id: str  # f"{request_id}:{row}"
    label: LabelValue
    timestamp: float


@dataclass(frozen=True)
class StoreColumns:
    """What the writer knows about a model's features, for backends that lay them out
    (an Elasticsearch mapping, a SQLite numeric vector). Order is the schema's."""

    model: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
