"""One evaluation cycle: every configured window of every model, against its baseline.

Start-up work happens once per model (`prepare_model`: load the baseline, calibrate the
drift thresholds, fit the multivariate PCA); each cycle then reads each window through the
injected `WindowReader` and evaluates it. A window the store cannot serve becomes an
`error` result and is counted; the other windows are still evaluated. The latest
`Evaluation` is replaced whole, so a scrape or a report sees one consistent cycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from stats_service.baseline.contents import Baseline
from stats_service.baseline.files import load_baseline
from stats_service.checks.comparison import CandidateComparison, compare_candidate
from stats_service.checks.drift.calibration import Calibration, calibrate
from stats_service.checks.drift.features import evaluate_features
from stats_service.checks.drift.settings import DriftSettings
from stats_service.checks.estimation.estimate import Estimator, fit_estimator
from stats_service.checks.model_health import add_model_health
from stats_service.checks.multivariate import PcaModel, fit_pca
from stats_service.checks.performance import evaluate_performance
from stats_service.checks.quality import evaluate_quality
from stats_service.checks.results import WindowResult
from stats_service.settings import DriftSection, StatsSettings, WindowSpec
from stats_service.windows.candidates import CandidateReader
from stats_service.windows.spec import WindowReader
from stats_service.windows.summary import WindowSummary

log = logging.getLogger("mlmon.stats")


@dataclass(frozen=True)
class ModelContext:
    """What one model's evaluations need, prepared once at start-up."""

    model: str
    baseline_path: str
    baseline: Baseline
    drift: DriftSettings
    calibration: Calibration
    pca: PcaModel | None
    dataset_share: float
    min_samples: int
    # Estimates performance without labels; a sentence when the baseline cannot.
    estimator: Estimator | str = "no estimator prepared"


@dataclass(frozen=True)
class Evaluation:
    started_at: float  # epoch seconds
    duration_s: float
    results: tuple[WindowResult, ...] = ()
    errors: int = 0  # windows the store could not serve, or that failed to evaluate
    # Shadow and canary models against the primary, per model and window.
    comparisons: tuple[CandidateComparison, ...] = ()


def drift_settings(section: DriftSection) -> DriftSettings:
    return DriftSettings(
        false_alarm_rate=section.false_alarm_rate,
        numeric_method=section.numeric_method,
        categorical_method=section.categorical_method,
        floors=dict(section.floors),
        feature_methods=dict(section.feature_methods),
        feature_floors=dict(section.feature_floors),
        resamples=section.resamples,
        seed=section.seed,
    )


def prepare_model(
    model: str, baseline: Baseline, baseline_path: str, settings: StatsSettings
) -> ModelContext:
    drift = drift_settings(settings.drift)
    pca = None
    if settings.multivariate.enabled:
        pca = fit_pca(
            baseline,
            variance=settings.multivariate.variance,
            false_alarm_rate=settings.drift.false_alarm_rate,
        )
    return ModelContext(
        model=model,
        baseline_path=baseline_path,
        baseline=baseline,
        drift=drift,
        calibration=calibrate(baseline, drift),
        pca=pca,
        dataset_share=settings.drift.dataset_share,
        min_samples=settings.min_samples,
        estimator=(
            fit_estimator(
                baseline,
                calibration=settings.estimation.calibration,
                thresholds=settings.estimation.thresholds,
            )
            if settings.estimation.enabled
            else "estimation.enabled is false"
        ),
    )


def prepare_models(settings: StatsSettings) -> dict[str, ModelContext]:
    """Raises BaselineError naming the file when a baseline cannot be loaded."""
    return {
        model: prepare_model(model, load_baseline(path), path, settings)
        for model, path in settings.baselines.items()
    }


def evaluate_window(context: ModelContext, summary: WindowSummary) -> WindowResult:
    common = {
        "model": summary.model,
        "window": summary.window,
        "start_ts": summary.start_ts,
        "end_ts": summary.end_ts,
        "rows": summary.rows,
    }
    if summary.rows < context.min_samples:
        return WindowResult(
            **common,  # type: ignore[arg-type]
            status="insufficient",
            message=f"{summary.rows} rows, fewer than min_samples={context.min_samples}",
        )
    features, prediction = evaluate_features(
        context.baseline, summary, context.calibration, context.drift
    )
    share = sum(f.detected for f in features) / len(features) if features else None
    result = WindowResult(
        **common,  # type: ignore[arg-type]
        status="ok",
        features=features,
        quality=evaluate_quality(context.baseline, summary),
        prediction=prediction,
        multivariate=context.pca.evaluate(summary.row_sample) if context.pca else None,
        performance=evaluate_performance(context.baseline.schema.prediction, summary.labelled),
        drift_share=share,
        dataset_drift=None if share is None else share >= context.dataset_share,
    )
    return add_model_health(
        result, summary, context.estimator, context.pca, lambda part: evaluate_window(context, part)
    )


class Runner:
    """Evaluates every (model, window) each interval; `latest` is the last full cycle."""

    def __init__(
        self,
        contexts: Mapping[str, ModelContext],
        windows: Sequence[WindowSpec],
        reader: WindowReader,
        *,
        candidates: CandidateReader | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.contexts = dict(contexts)
        self.windows = tuple(windows)
        self.reader = reader
        self.candidates = candidates
        self.clock = clock
        self.latest: Evaluation | None = None
        self.errors_total = 0
        self.evaluations_total = 0

    def evaluate_once(self) -> Evaluation:
        started = self.clock()
        begun = time.perf_counter()
        results: list[WindowResult] = []
        comparisons: list[CandidateComparison] = []
        errors = 0
        for model, context in self.contexts.items():
            for spec in self.windows:
                try:
                    summary = self.reader.read(model, spec, context.baseline, started)
                    results.append(evaluate_window(context, summary))
                except Exception as exc:  # one window failing must not stop the others
                    errors += 1
                    log.warning("evaluating %s window %s failed: %s", model, spec.name, exc)
                    results.append(_failed(model, spec, started, exc))
                if self.candidates is not None:
                    try:
                        comparisons += compare_candidates(context, spec, self.candidates, started)
                    except Exception as exc:  # nor a failing comparison the windows
                        errors += 1
                        log.warning("comparing %s candidates failed: %s", model, exc)
        evaluation = Evaluation(
            started,
            time.perf_counter() - begun,
            tuple(results),
            errors,
            comparisons=tuple(comparisons),
        )
        self.latest = evaluation
        self.errors_total += errors
        self.evaluations_total += 1
        return evaluation

    def run(self, stop: threading.Event, interval_s: float) -> None:
        while not stop.is_set():
            begun = time.monotonic()
            self.evaluate_once()
            stop.wait(max(0.0, interval_s - (time.monotonic() - begun)))


def compare_candidates(
    context: ModelContext, spec: WindowSpec, reader: CandidateReader, now: float
) -> list[CandidateComparison]:
    baseline = context.baseline
    return [
        compare_candidate(
            window, baseline.prediction, baseline.schema.prediction, context.min_samples
        )
        for window in reader.read_candidates(context.model, spec, now)
    ]


def _failed(model: str, spec: WindowSpec, now: float, exc: Exception) -> WindowResult:
    start = now - spec.duration_s if spec.duration_s is not None else now
    return WindowResult(
        model=model,
        window=spec.name,
        start_ts=start,
        end_ts=now,
        rows=0,
        status="error",
        message=f"{type(exc).__name__}: {exc}",
    )
