"""What `mlmon-stats infer-schema` reads of a data file: feature rows and role columns.

The first `sample_rows` rows of the file go, without their prediction, score and label
columns (`stats_service.baseline.column_roles`), to the shared schema inference
(`exporter.features.compute.SchemaInference`, the sidecar's own): so those columns never become
features. Their values are kept aside, for the same rows, to infer the task
(`stats_service.baseline.task_inference`) that the schema's `prediction:` section declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.features.table import table_to_rows
from exporter.schema.inference import SchemaInference
from stats_service.baseline.column_roles import (
    ROLES,
    ColumnRoles,
    Role,
    check_flagged,
    column_values,
    flag,
    resolve_roles,
)
from stats_service.baseline.readers import DataReader
from stats_service.baseline.task_inference import TaskInference, infer_task

MAX_CHUNK_ROWS = 50_000


@dataclass
class SampledInputs:
    inference: SchemaInference
    roles: ColumnRoles = field(default_factory=lambda: ColumnRoles({}))
    values: dict[Role, list[Any]] = field(default_factory=lambda: {role: [] for role in ROLES})

    @property
    def rows(self) -> int:
        return self.inference.rows_seen

    def task(self) -> TaskInference | None:
        """The task told from the prediction and label columns; None without either."""
        if self.roles.column("prediction") is None and self.roles.column("label") is None:
            return None
        return infer_task(self.values["label"], self.values["prediction"])

    def notes(self, task: TaskInference | None) -> list[str]:
        """For people: which columns were taken for what, and the task assumed."""
        lines: list[str] = []
        if self.roles.columns:
            taken = ", ".join(
                f"{name!r} as the {role} column"
                + (" (recognised by its name)" if role in self.roles.detected else "")
                for role, name in self.roles.columns.items()
            )
            lines.append(f"took {taken}; they are not features")
            flags = " ".join(f"{flag(r)} {c}" for r, c in self.roles.columns.items())
            lines.append(f"pass {flags} to `baseline` and `report`")
        if self.roles.lookalikes:
            names = ", ".join(repr(n) for n in self.roles.lookalikes)
            what = "a feature" if len(self.roles.lookalikes) == 1 else "features"
            lines.append(f"kept {names} as {what} although named like a prediction or label")
        if task is not None:
            if task.spec is None:
                lines.append(f"no prediction section: {task.reason}")
            else:
                lines.append(f"prediction task {task.spec.task}, inferred from {task.reason}")
        return lines


def sample_schema_inputs(
    path: str | Path,
    sample_rows: int,
    flags: Mapping[Role, str | None],
    *,
    detect: bool = True,
) -> SampledInputs:
    """Reads up to `sample_rows` rows of `path` (module docstring).

    Raises ColumnRoleError naming the flag when a flagged column is not in the rows read,
    or two flags name one column; BaselineError when the file cannot be read.
    """
    sampled = SampledInputs(SchemaInference())
    resolved: ColumnRoles | None = None
    seen: dict[str, None] = {}
    for table in DataReader(path).chunks(min(sample_rows, MAX_CHUNK_ROWS)):
        if resolved is None:  # names are recognised on the first rows' columns
            resolved = sampled.roles = resolve_roles(list(table.columns), flags, detect=detect)
        seen.update(dict.fromkeys(table.columns))
        wanted = sample_rows - sampled.rows
        for role in ROLES:
            sampled.values[role] += column_values(table, resolved.column(role), wanted)
        sampled.inference.update(table_to_rows(table.without(*resolved.names()))[:wanted])
        if sampled.rows >= sample_rows:
            break
    if sampled.rows:
        check_flagged(sampled.roles, flags, seen)
    return sampled
