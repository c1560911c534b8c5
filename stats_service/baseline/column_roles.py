"""Which columns of a data file are the model's prediction, score and label, not features.

`mlmon-stats infer-schema` keeps these columns out of the inferred features (a label made
a feature would drift with the world, and a prediction is watched as a prediction) and
reads their values to infer the task (`stats_service.baseline.task_inference`). A column is given
by its flag (`--prediction-column`, `--score-column`, `--label-column`, the names
`baseline` and `report` use) or, without one, recognised by its name, ignoring case:

- prediction: ROLE_NAMES["prediction"] (prediction, predictions, predicted, pred, preds,
  y_pred, y_hat, yhat, proba, probability, probabilities, predict_proba);
- label: ROLE_NAMES["label"] (label, labels, target, targets, y_true, ground_truth,
  truth, actual, y). "y" only when there is no "x" column: next to an "x" it is a
  coordinate;
- score: only by its flag. "score" is also a common feature name (a credit score), so it
  is not recognised by name.
The first name of a role's list that a column has wins; other columns whose names are in
that list stay features, and are reported so the user can pass a flag. Detection is off
with `--no-detect-columns`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from exporter.features.table import RawTable

Role = Literal["prediction", "score", "label"]
ROLES: tuple[Role, ...] = ("prediction", "score", "label")
ROLE_NAMES: Mapping[Role, tuple[str, ...]] = {
    "prediction": (
        "prediction",
        "predictions",
        "predicted",
        "pred",
        "preds",
        "y_pred",
        "y_hat",
        "yhat",
        "proba",
        "probability",
        "probabilities",
        "predict_proba",
    ),
    "score": (),
    "label": (
        "label",
        "labels",
        "target",
        "targets",
        "y_true",
        "ground_truth",
        "truth",
        "actual",
        "y",
    ),
}
# A name taken for its role only when no column has the paired name.
_UNLESS_PAIRED = {"y": "x"}


class ColumnRoleError(ValueError):
    """A flag naming a column that cannot be used; the message names the flag."""


def flag(role: Role) -> str:
    return f"--{role}-column"


@dataclass(frozen=True)
class ColumnRoles:
    columns: Mapping[Role, str]  # role -> the data's column
    detected: tuple[Role, ...] = ()  # roles recognised by name rather than given by a flag
    # Further columns whose names look like a role's, left as features.
    lookalikes: tuple[str, ...] = ()

    def column(self, role: Role) -> str | None:
        return self.columns.get(role)

    def names(self) -> tuple[str, ...]:
        return tuple(self.columns.values())


def resolve_roles(
    columns: Sequence[str], flags: Mapping[Role, str | None], *, detect: bool = True
) -> ColumnRoles:
    """The role columns of a file with `columns`: the flags', then recognised names.

    Raises ColumnRoleError when two flags name one column. A flagged column missing from
    `columns` is accepted here (JSON lines may add fields later): see `check_flagged`.
    """
    given = {role: name for role, name in flags.items() if name}
    _check_distinct(given)
    chosen: dict[Role, str] = dict(given)
    detected: list[Role] = []
    lookalikes: list[str] = []
    if detect:
        taken = set(given.values())
        for role in ROLES:
            matches = [c for c in _matches(role, columns) if c not in taken]
            if role not in chosen and matches:
                chosen[role] = matches.pop(0)
                detected.append(role)
                taken.add(chosen[role])
            lookalikes += matches
    ordered = {role: chosen[role] for role in ROLES if role in chosen}
    return ColumnRoles(ordered, tuple(detected), tuple(dict.fromkeys(lookalikes)))


def check_flagged(
    roles: ColumnRoles, flags: Mapping[Role, str | None], seen: Iterable[str]
) -> None:
    """Raises ColumnRoleError naming the flag when its column was in none of the rows read."""
    present = set(seen)
    for role, name in flags.items():
        if name and name not in present:
            listed = ", ".join(sorted(present)[:20]) or "none"
            raise ColumnRoleError(
                f"{flag(role)}: expected a column of the data (columns: {listed}); got {name!r}"
            )


def column_values(table: RawTable, name: str | None, limit: int) -> list[Any]:
    """The first `limit` values of a column, None where missing or absent (or no column)."""
    rows = min(limit, table.n_rows)
    column = table.columns.get(name) if name else None
    if column is None:
        return [None] * rows
    raw = column.values
    if isinstance(raw, np.ndarray):
        values: list[Any] = [None if np.isnan(v) else v for v in raw[:rows].tolist()]
    else:
        values = list(raw[:rows])
    if column.present is not None:
        values = [
            v if here else None for v, here in zip(values, column.present[:rows], strict=True)
        ]
    return values


def _matches(role: Role, columns: Sequence[str]) -> list[str]:
    by_name: dict[str, str] = {}
    for column in columns:
        by_name.setdefault(column.lower(), column)
    found = []
    for name in ROLE_NAMES[role]:
        paired = _UNLESS_PAIRED.get(name)
        if name in by_name and (paired is None or paired not in by_name):
            found.append(by_name[name])
    return found


def _check_distinct(given: Mapping[Role, str]) -> None:
    first: dict[str, Role] = {}
    for role, name in given.items():
        if name in first:
            raise ColumnRoleError(
                f"{flag(role)}: expected a column other than {flag(first[name])}'s; "
                f"got {name!r} for both"
            )
        first[name] = role
