"""Which estimator a model gets, fitted once at start-up, and a window's estimate.

Classifiers with probability-carrying reference rows get CBPE (`cbpe`), regressions
the direct-loss model (`direct_loss`). A baseline without reference rows, or whose rows
cannot fit one, gets a sentence instead, which every window's result repeats as its
reason: a missing estimate always says why.
"""

from __future__ import annotations

from collections.abc import Mapping

from stats_service.baseline.contents import Baseline
from stats_service.checks.estimation.calibration import CalibrationMethod
from stats_service.checks.estimation.cbpe import CbpeModel, fit_cbpe
from stats_service.checks.estimation.direct_loss import DirectLossModel, fit_direct_loss
from stats_service.checks.results import EstimatedPerformance
from stats_service.windows.summary import WindowSummary

Estimator = CbpeModel | DirectLossModel

NO_REFERENCE = (
    "the baseline has no labelled reference rows: rebuild it with --label-column and "
    "the probability columns proba_<class> (classifiers) or --prediction-column (regressions)"
)


def fit_estimator(
    baseline: Baseline,
    *,
    calibration: CalibrationMethod = "isotonic",
    thresholds: Mapping[str, float] | None = None,
) -> Estimator | str:
    reference = baseline.reference
    if reference is None or reference.count == 0:
        return NO_REFERENCE
    if reference.task == "regression":
        return fit_direct_loss(reference, baseline, thresholds=thresholds)
    spec = baseline.schema.prediction
    return fit_cbpe(
        reference,
        method=calibration,
        threshold=spec.threshold if spec is not None else None,
        thresholds=thresholds,
    )


def estimate(
    estimator: Estimator | str, summary: WindowSummary, task: str = ""
) -> EstimatedPerformance:
    if isinstance(estimator, str):
        return EstimatedPerformance(task=task, method="none", samples=0, reason=estimator)
    if isinstance(estimator, CbpeModel):
        return estimator.estimate(summary.predictions)
    return estimator.estimate(summary.row_sample, summary.row_predictions)
