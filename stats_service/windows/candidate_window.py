"""What a candidate reader gives, whichever store it reads: a candidate's answers in one
window next to the primary's (`candidates` for SQLite, `elasticsearch_candidates`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from exporter.records import LabelValue
from stats_service.settings import WindowSpec
from stats_service.windows.summary import FloatArray

CandidateRole = Literal["shadow", "canary"]
ROLES: tuple[CandidateRole, ...] = ("shadow", "canary")
MAX_CANDIDATES = 8


@dataclass(frozen=True)
class Predictions:
    """One side's answers, row i the same row in every field."""

    value: FloatArray  # NaN = none
    score: FloatArray  # NaN = none
    label: tuple[str | None, ...]
    truth: tuple[LabelValue | None, ...]  # ground truth, None until it arrives

    @property
    def count(self) -> int:
        return len(self.label)


@dataclass(frozen=True)
class CandidateWindow:
    """A candidate's answers in one window, and the primary's to compare them with."""

    model: str
    window: str
    candidate: str  # the configured name of the route
    role: CandidateRole
    start_ts: float
    end_ts: float
    rows: int  # the candidate's records in the window
    primary: Predictions  # shadow: row i answered the same request row as answers' row i
    answers: Predictions

    @property
    def paired(self) -> bool:
        return self.role == "shadow"


class CandidateReader(Protocol):
    def read_candidates(self, model: str, spec: WindowSpec, now: float) -> list[CandidateWindow]:
        """Every candidate of `model` in the window ending at `now`, the most rows first.
        Raises StoreUnavailable when the store cannot be read."""

    def close(self) -> None: ...
