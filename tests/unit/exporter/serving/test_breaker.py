"""The circuit breaker's sliding window, cool-down and trials."""

from __future__ import annotations

from exporter.release_settings import BreakerSettings
from exporter.serving.breaker import BreakerState, CircuitBreaker

SETTINGS = BreakerSettings(
    enabled=True, error_rate=0.5, window_s=10, min_requests=4, cooldown_s=5, trial_successes=2
)


def test_it_trips_at_the_error_rate_once_the_window_has_enough_requests() -> None:
    breaker = CircuitBreaker(SETTINGS)
    assert not breaker.record(True, 100.0)  # 1 of 1 failed, but too few to judge
    assert not breaker.record(False, 100.1)
    assert not breaker.record(True, 100.2)  # 2 of 3
    assert breaker.record(True, 100.3)  # 3 of 4 >= 0.5
    assert breaker.state is BreakerState.OPEN


def test_old_outcomes_leave_the_window() -> None:
    breaker = CircuitBreaker(SETTINGS)
    for second in range(3):
        breaker.record(True, 100.0 + second)
    # Ten seconds later those failures are out: 1 failure of 4 recent requests.
    for offset in range(3):
        assert not breaker.record(False, 120.0 + offset)
    assert not breaker.record(True, 123.0)
    assert breaker.state is BreakerState.CLOSED


def test_successes_alone_never_trip_it() -> None:
    breaker = CircuitBreaker(SETTINGS)
    assert not any(breaker.record(False, 100.0 + i / 10) for i in range(100))


def test_after_the_cool_down_one_trial_at_a_time_and_enough_successes_close_it() -> None:
    breaker = CircuitBreaker(SETTINGS)
    breaker.open(100.0)
    assert not breaker.take_trial(104.0)  # cooling down
    assert breaker.take_trial(105.0)
    assert not breaker.take_trial(105.1)  # one trial out already
    assert not breaker.trial_result(False, 105.2)  # 1 of 2 successes
    assert breaker.take_trial(105.3)
    assert breaker.trial_result(False, 105.4)
    assert breaker.state is BreakerState.CLOSED


def test_a_failed_trial_opens_it_again_for_a_whole_cool_down() -> None:
    breaker = CircuitBreaker(SETTINGS)
    breaker.open(100.0)
    assert breaker.take_trial(105.0)
    assert not breaker.trial_result(True, 105.5)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.take_trial(110.0)
    assert breaker.take_trial(110.6)
