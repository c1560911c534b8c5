"""The demo's data: a generated credit-risk table, split into training and held-out rows.

Generated rather than downloaded, so the demo runs offline and every run sees the same
rows (fixed seed). Each applicant has five numbers and one category:

  age                   integer, years (18-85)
  income                thousands per year (log-normal, scaled by employment)
  debt_ratio            debt over income (gamma, mean ~0.34)
  credit_history_years  years since the first credit line (grows with age)
  late_payments         integer, late payments in the last two years (more with debt)
  employment            salaried, self_employed, unemployed, student, retired (by age)

The outcome is "default" or "repaid", drawn from a logistic function of those (more debt,
late payments and unemployment raise the risk; income and a long history lower it), so a
linear model can learn it but not perfectly. `examples.credit_model` trains on `train`;
`examples.traffic` replays `held_out`. numpy only: the traffic generator imports this.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL_NAME = "credit"
MODEL_VERSION = "1"
# Index 1 is the positive class: the probability the model reports is P(default).
CLASSES = ("repaid", "default")
EMPLOYMENT = ("salaried", "self_employed", "unemployed", "student", "retired")
NUMERIC = ("age", "income", "debt_ratio", "credit_history_years", "late_payments")
INTEGER = frozenset({"age", "late_payments"})
CATEGORICAL = "employment"
FEATURES = (*NUMERIC, CATEGORICAL)
# The training CSV's extra columns, for `mlmon-stats baseline --prediction-column/--label-column`.
PREDICTION_COLUMN = "prediction"
LABEL_COLUMN = "label"
# P(default) again, under the name `mlmon-stats baseline` reads class probabilities from
# (`proba_<class>`): with the label, it keeps reference rows to estimate performance
# without labels (README "Performance without labels").
PROBABILITY_COLUMN = f"proba_{CLASSES[1]}"

SEED = 20240601
ROWS = 20_000
HELD_OUT_SHARE = 0.25

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]

# Employment mix by age group (<25, 25-64, 65+), in EMPLOYMENT's order.
_EMPLOYMENT_BY_AGE = (
    (0.45, 0.05, 0.15, 0.35, 0.00),
    (0.72, 0.15, 0.10, 0.03, 0.00),
    (0.15, 0.07, 0.03, 0.00, 0.75),
)
_INCOME_FACTOR = {
    "salaried": 1.0,
    "self_employed": 1.15,
    "unemployed": 0.35,
    "student": 0.4,
    "retired": 0.65,
}
_RISK = {"salaried": 0.0, "self_employed": 0.35, "unemployed": 0.9, "student": 0.4, "retired": -0.2}


@dataclass(frozen=True)
class Split:
    """Rows of the table: `numeric[:, j]` is NUMERIC[j]; `label` is 1 for "default"."""

    numeric: FloatArray
    employment: StrArray
    label: IntArray

    def __len__(self) -> int:
        return len(self.label)

    def column(self, name: str) -> FloatArray:
        return self.numeric[:, NUMERIC.index(name)]

    def columns(self, rows: Sequence[int] | IntArray) -> dict[str, list[Any]]:
        """The chosen rows as JSON-ready columns (ints for integer features)."""
        index = np.asarray(rows, dtype=np.int64)
        out: dict[str, list[Any]] = {}
        for j, name in enumerate(NUMERIC):
            values = self.numeric[index, j]
            out[name] = values.astype(np.int64).tolist() if name in INTEGER else values.tolist()
        out[CATEGORICAL] = self.employment[index].tolist()
        return out

    def label_names(self) -> list[str]:
        return [CLASSES[int(y)] for y in self.label]


@dataclass(frozen=True)
class CreditData:
    train: Split
    held_out: Split

    def train_std(self, name: str) -> float:
        """Standard deviation of a numeric feature over the training rows: the drift unit."""
        return float(np.std(self.train.column(name)))


@cache
def load() -> CreditData:
    """The generated table, split (the same rows on every call and every run)."""
    table = _generate(np.random.default_rng(SEED), ROWS)
    cut = round(ROWS * (1 - HELD_OUT_SHARE))
    # The generator draws rows independently, so a contiguous split is a random one.
    return CreditData(train=_rows(table, slice(0, cut)), held_out=_rows(table, slice(cut, None)))


def _rows(split: Split, which: slice) -> Split:
    return Split(split.numeric[which], split.employment[which], split.label[which])


def _generate(rng: np.random.Generator, n: int) -> Split:
    age = np.clip(np.rint(rng.normal(41.0, 12.0, n)), 18, 85)
    group = np.digitize(age, [25, 65])
    employment = np.empty(n, dtype=f"<U{max(map(len, EMPLOYMENT))}")
    for g, shares in enumerate(_EMPLOYMENT_BY_AGE):
        members = group == g
        employment[members] = rng.choice(EMPLOYMENT, size=int(members.sum()), p=shares)
    factor = np.vectorize(_INCOME_FACTOR.__getitem__, otypes=[float])(employment)
    income = np.round(np.exp(rng.normal(np.log(48.0), 0.45, n)) * factor, 1)
    history = np.round(rng.uniform(0.2, 1.0, n) * (age - 18), 1)
    debt_ratio = np.round(np.minimum(rng.gamma(2.0, 0.17, n), 3.0), 3)
    late = rng.poisson(0.25 + 1.2 * debt_ratio).astype(np.float64)
    risk = np.vectorize(_RISK.__getitem__, otypes=[float])(employment)
    logit = (
        -1.6
        - 1.1 * np.log(income / 48.0)
        + 3.0 * (debt_ratio - 0.34)
        + 0.55 * late
        - 0.04 * (history - 10.0)
        + risk
    )
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    numeric = np.column_stack([age, income, debt_ratio, history, late])
    return Split(numeric=numeric, employment=employment, label=label)


def write_training_csv(split: Split, p_default: FloatArray, path: Path) -> None:
    """Features, the model's P(default) (as the prediction and as the positive class's
    probability) and the true class, one row per training row."""
    columns = split.columns(np.arange(len(split)))
    names = list(FEATURES)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*names, PREDICTION_COLUMN, PROBABILITY_COLUMN, LABEL_COLUMN])
        rows = zip(*(columns[name] for name in names), strict=True)
        for row, p, label in zip(rows, p_default.tolist(), split.label_names(), strict=True):
            writer.writerow([*row, p, p, label])
