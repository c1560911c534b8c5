"""Baseline files: human-readable JSON (indented, sorted keys), validated on load.

JSON has no infinities: the open ends of numeric bin edges are written as the strings
"-inf" and "+inf" (always the first and last edge), and missing values in the row sample
as null. Loading checks every key and reports the first problem as one line:
`<file>: <key path>: expected ...; got ...`. The key "reference" (labelled rows for
estimation, `baseline.reference`) is optional: files written before it load without.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

from exporter.schema import Schema, schema_hash, schema_to_dict
from stats_service.baseline.check import FORMAT_NAME, BaselineChecker
from stats_service.baseline.contents import (
    Baseline,
    BaselineError,
    FeatureBaseline,
    NumericFeatureBaseline,
)
from stats_service.baseline.reference import reference_to_dict
from stats_service.baseline.reference_check import check_reference


def save_baseline(baseline: Baseline, path: str | Path) -> None:
    """Write atomically: a reader never sees half a baseline."""
    target = Path(path)
    text = json.dumps(baseline_to_dict(baseline), indent=1, sort_keys=True, allow_nan=False)
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        temporary.write_text(text + "\n", encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        raise BaselineError(f"{target}: cannot write the baseline: {exc.strerror}") from exc


def baseline_to_dict(baseline: Baseline) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": baseline.format_version,
        "created_at": baseline.created_at,
        "schema": schema_to_dict(baseline.schema),
        "schema_hash": baseline.schema_hash,
        "data": {
            "path": baseline.data.path,
            "sha256": baseline.data.sha256,
            "rows": baseline.data.rows,
        },
        "bins": baseline.bins,
        "sample_size": baseline.sample_size,
        "features": [_feature_to_dict(feature) for feature in baseline.features],
        "prediction": _optional_feature(baseline.prediction),
        "label": _optional_feature(baseline.label),
        "row_sample": {
            "columns": list(baseline.row_sample.columns),
            "rows": [
                [None if math.isnan(v) else v for v in row] for row in baseline.row_sample.rows
            ],
        },
        "issue_counts": dict(baseline.issue_counts),
        "thresholds": None,
        **(
            {"reference": reference_to_dict(baseline.reference)}
            if baseline.reference is not None
            else {}
        ),
    }


def _optional_feature(feature: FeatureBaseline | None) -> dict[str, Any] | None:
    return None if feature is None else _feature_to_dict(feature)


def _feature_to_dict(feature: FeatureBaseline) -> dict[str, Any]:
    common = {"name": feature.name, "count": feature.count, "missing_count": feature.missing_count}
    if isinstance(feature, NumericFeatureBaseline):
        return {
            **common,
            "kind": "numeric",
            "edges": ["-inf", *feature.edges[1:-1], "+inf"],
            "proportions": list(feature.proportions),
            "min": feature.minimum,
            "max": feature.maximum,
            "mean": feature.mean,
            "std": feature.std,
            "sample": list(feature.sample),
        }
    return {
        **common,
        "kind": "categorical",
        "categories": list(feature.categories),
        "proportions": list(feature.proportions),
        "other_proportion": feature.other_proportion,
        "unseen_proportion": feature.unseen_proportion,
        "sample": list(feature.sample),
    }


def load_baseline(path: str | Path, running_schema: Schema | None = None) -> Baseline:
    """Read and validate; with `running_schema`, also require the baseline to be built
    for that very schema (same hash)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BaselineError(f"{path}: baseline file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read the baseline: {exc}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path}: invalid JSON (truncated or corrupted?): {exc.msg} "
            f"at line {exc.lineno} column {exc.colno}"
        ) from exc
    checker = BaselineChecker(str(path))
    baseline = checker.baseline(document)
    if isinstance(document, dict) and document.get("reference") is not None:
        reference = check_reference(checker, document["reference"], baseline)
        baseline = dataclasses.replace(baseline, reference=reference)
    if running_schema is not None:
        running = schema_hash(running_schema)
        if running != baseline.schema_hash:
            raise BaselineError(
                f"{path}: schema_hash: the baseline was built for schema {baseline.schema_hash}, "
                f"the running schema is {running}; rebuild the baseline with the running schema"
            )
    return baseline
