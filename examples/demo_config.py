"""The demo's choices: what the environment may change, and the stack settings that make
drift visible within a short run.

    DEMO_SECONDS        seconds of traffic after start-up, then a summary and exit 0
                        (unset or 0: until Ctrl-C / SIGTERM)
    DEMO_DRIFT_AFTER    seconds of stationary traffic before drift starts (default 45;
                        "off": no drift)
    DEMO_DRIFT_FEATURE  the numeric feature shifted (default income)
    DEMO_RATE           requests per second (default 20)
    DEMO_REFRESH        seconds between refreshes of the summary (default 2)
    DEMO_KEEP=1         keep the work directory (logs, input log, configurations)
    DEMO_SHADOW=1       also run a candidate model as a shadow of the primary, compared
                        on the same requests (examples/demo_shadow.py)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from examples.credit_data import NUMERIC
from examples.drift import DEFAULT_FEATURE
from examples.stack_options import AlertmanagerOptions, PrometheusOptions, StackOptions

# The shortest window first: its evaluations drive the summary and the final verdict.
# 30 s holds about 1,800 rows at 20 requests/s (1-5 rows each) and is refilled with
# drifted rows within 30 s of the onset; 5 m is there to show a slower window next to it.
WINDOWS = ("30s", "5m")
SHORTEST_WINDOW = WINDOWS[0]
STATS_INTERVAL_S = 2.0
MIN_SAMPLES = 500
# 1% (the default) per feature and evaluated window, over 6 features, the prediction and
# the multivariate check, every 2 s: a false alarm now and then in the stationary phase.
# At 0.1% it stays quiet (as in tests/integration/stack), and +1.5 std still scores far
# above the threshold.
FALSE_ALARM_RATE = 0.001
SCRAPE_S = 2.0
# Every rule's `for:` in the demo's copy of the rules (they say 2 minutes to an hour): long
# enough that the sidecar being down while the model trains raises nothing, short enough
# that a drift alert fires within the demo.
FOR_S = 10.0


@dataclass(frozen=True)
class DemoConfig:
    seconds: float | None = None  # None: until interrupted
    drift_after_s: float | None = 45.0  # None: no drift
    drift_feature: str = DEFAULT_FEATURE
    rate: float = 20.0
    refresh_s: float = 2.0
    keep: bool = False
    shadow: bool = False


def from_env(environ: Mapping[str, str]) -> DemoConfig:
    """ValueError naming the variable and what it expects."""
    seconds = _number(environ, "DEMO_SECONDS", 0.0, minimum=0.0)
    drift_off = environ.get("DEMO_DRIFT_AFTER", "").strip().lower() in ("off", "none", "no")
    drift_after = None if drift_off else _number(environ, "DEMO_DRIFT_AFTER", 45.0, minimum=0.0)
    feature = environ.get("DEMO_DRIFT_FEATURE", "").strip() or DEFAULT_FEATURE
    if feature not in NUMERIC:
        raise ValueError(
            f"DEMO_DRIFT_FEATURE: expected one of {', '.join(NUMERIC)}; got {feature!r}"
        )
    keep, shadow = (_flag(environ, name) for name in ("DEMO_KEEP", "DEMO_SHADOW"))
    return DemoConfig(
        seconds=seconds or None,
        drift_after_s=drift_after,
        drift_feature=feature,
        rate=_number(environ, "DEMO_RATE", 20.0, minimum=0.1),
        refresh_s=_number(environ, "DEMO_REFRESH", 2.0, minimum=0.2),
        keep=keep,
        shadow=shadow,
    )


def _flag(environ: Mapping[str, str], name: str) -> bool:
    text = environ.get(name, "").strip().lower()
    if text not in ("", "0", "1", "true", "false", "yes", "no"):
        raise ValueError(f"{name}: expected 1 or 0; got {text!r}")
    return text in ("1", "true", "yes")


def _number(environ: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= minimum):
        raise ValueError(f"{name}: expected a number >= {minimum:g}; got {text!r}")
    return value


def stack_options(log: Callable[[str], None], *, shadow: bool = False) -> StackOptions:
    """Prometheus and Alertmanager where installed (`required=False`: without them the
    stack says so and starts the rest); with `shadow`, the candidate model too."""
    return StackOptions(
        candidate=shadow,
        windows=WINDOWS,
        stats_interval_s=STATS_INTERVAL_S,
        min_samples=MIN_SAMPLES,
        drift={"false_alarm_rate": FALSE_ALARM_RATE},
        prometheus=PrometheusOptions(
            scrape_interval_s=SCRAPE_S,
            evaluation_interval_s=SCRAPE_S,
            for_override_s=FOR_S,
            required=False,
        ),
        alertmanager=AlertmanagerOptions(
            group_wait_s=1.0, group_interval_s=2.0, repeat_interval_s=3600.0, required=False
        ),
        startup_timeout_s=120.0,
        stop_grace_s=5.0,
        log=log,
    )
