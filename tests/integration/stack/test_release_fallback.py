"""The fallback loop end to end with real Prometheus and Alertmanager on 127.0.0.1: a
failing primary raises an alert in Prometheus, Alertmanager's webhook reaches the sidecar's
admin listener, traffic moves to the fallback; the alert resolves and the resolved
notification moves traffic back. A tiny rule file (`for: 1s`) and Alertmanager timers of
1 s keep it under a minute; the seconds from firing to the fallback are printed (-s)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.release_stack import MODEL, Timing, Traffic, release_stack, wait

pytestmark = pytest.mark.slow


def test_an_alert_moves_traffic_to_the_fallback_and_its_resolution_moves_it_back(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    with (
        release_stack(tmp_path, Timing(group_wait=1, group_interval=1)) as stack,
        Traffic(stack.sidecar.url) as traffic,
    ):
        wait(lambda: any(v == "1" for _, _, v in traffic.answers), 10)
        assert stack.routes()["models"] == {}

        stack.primary.failing.set()
        fired = wait(lambda: stack.alert_state() == "firing", 30)
        wait(lambda: MODEL in stack.routes()["models"], 20)
        moved = stack.routes()["models"][MODEL]
        assert moved["reason"] == "alert"
        seconds = moved["since"] - fired
        record_property("alert_to_fallback_s", round(seconds, 2))
        print(f"alert firing -> traffic on the fallback: {seconds:.2f} s")
        switched_at = moved["since"]
        wait(lambda: any(t > switched_at + 0.2 and v == "0" for t, _, v in traffic.answers), 5)

        # The primary recovers; on the fallback it gets no traffic, so its error rate falls
        # to nothing, the alert resolves, and the resolved notification moves traffic back.
        stack.primary.failing.clear()
        wait(lambda: MODEL not in stack.routes()["models"], 40)
        back_at = wait(lambda: traffic.answers[-1][2] == "1", 5)
        time.sleep(1.0)  # traffic on the primary again
    after = [(status, version) for t, status, version in traffic.answers if t > back_at]
    assert after and all(answer == (200, "1") for answer in after)
    on_fallback = [v for t, _, v in traffic.answers if switched_at + 0.2 < t < back_at - 1]
    assert on_fallback and set(on_fallback) == {"0"}
