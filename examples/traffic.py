"""Live KServe v2 traffic for the demo credit model, with drift on a schedule.

    python -m examples.traffic --url http://127.0.0.1:8000 [--rate 20] [--min-rows 1]
        [--max-rows 5] [--duration 600] [--max-requests N] [--drift-after SECONDS]
        [--drift-feature income] [--drift-shift-std 1.5] [--drift-ramp SECONDS]
        [--drift-missing-share S] [--drift-new-category NAME --drift-new-category-share S]
        [--feedback-share 0.5] [--feedback-url URL] [--feedback-token T]
        [--timeout 5] [--wait-ready 10] [--seed 0] [--run-id ID]

Sends `rate` requests per second to `{url}/v2/models/credit/infer` (the sidecar's URL),
each with 1-5 rows drawn at random from the held-out split of `examples.credit_data`,
one input per feature and `parameters.content_type: "pd"`, request id
`{run_id}-{n}` in `x-request-id` and the body's `id`. From `--drift-after` seconds on,
rows are drifted as `examples.drift` documents (default: income +1.5 std, nothing else).
For a random `feedback-share` of the rows of answered requests, the true class is posted
to `{feedback_url}/feedback` as `{"request_id", "row", "label"}` items, batched once per
second, like ground truth arriving shortly after the decision.

Bounded: stops after `--duration` seconds (0: until interrupted) or `--max-requests`,
on SIGINT/SIGTERM, or when the library caller sets the stop event; each network call
has `--timeout`. Failures are counted by kind, never raised; one summary line is printed
on exit. Exit code 0, or 1 when requests were sent and none was answered with a 2xx.
As a library: `run_traffic(TrafficConfig(url=...), stop_event)` returns the summary.
numpy and the standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import numpy as np

from examples.credit_data import CLASSES, FEATURES, INTEGER, MODEL_NAME, load
from examples.drift import DEFAULT_FEATURE, DEFAULT_SHIFT_STD, DriftSpec, apply_drift, intensity
from examples.http_client import HttpClient, failure_kind

PROG = "traffic"
_JSON = {"content-type": "application/json"}
_MAX_FEEDBACK_BATCH = 1000
_DATATYPES = {name: "INT64" if name in INTEGER else "FP64" for name in FEATURES}
_DATATYPES["employment"] = "BYTES"


@dataclass(frozen=True)
class TrafficConfig:
    url: str
    rate: float = 20.0  # requests per second
    min_rows: int = 1
    max_rows: int = 5
    duration_s: float | None = 600.0  # None: until stopped
    max_requests: int | None = None
    drift_after_s: float | None = None  # None: no drift
    drift: DriftSpec = field(default_factory=DriftSpec)
    feedback_share: float = 0.5
    feedback_url: str | None = None  # None: `url`
    feedback_token: str = ""
    feedback_interval_s: float = 1.0
    timeout_s: float = 5.0
    wait_ready_s: float = 10.0
    seed: int = 0
    run_id: str = ""  # request-id prefix; "": a random one, so reruns never collide

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate: expected a positive number; got {self.rate}")
        if not 1 <= self.min_rows <= self.max_rows:
            raise ValueError(f"rows: expected 1 <= min ({self.min_rows}) <= max ({self.max_rows})")
        if not 0.0 <= self.feedback_share <= 1.0:
            raise ValueError(f"feedback_share: expected 0..1; got {self.feedback_share}")
        for name in ("timeout_s", "feedback_interval_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a positive number")


@dataclass
class TrafficSummary:
    run_id: str
    requests: int = 0
    answered: int = 0  # 2xx
    rows: int = 0
    labels_posted: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # "infer:timeout", "feedback:http_503"
    elapsed_s: float = 0.0
    drift: str = ""  # what was injected, once it started
    drift_started_at: float | None = None  # wall clock of the first drifted request
    first_drifted_request: int | None = None  # its n in `{run_id}-{n}`

    def line(self) -> str:
        errors = sum(self.errors.values())
        detail = ", ".join(f"{kind} {count}" for kind, count in sorted(self.errors.items()))
        text = (
            f"{PROG}: {self.requests} requests ({self.rows} rows) in {self.elapsed_s:.1f} s, "
            f"{errors} errors{f' ({detail})' if detail else ''}; "
            f"{self.labels_posted} labels posted; "
        )
        if self.drift_started_at is None:
            return text + "no drift injected"
        started = datetime.fromtimestamp(self.drift_started_at, UTC).isoformat(timespec="seconds")
        return text + (
            f"drift ({self.drift}) from {started.replace('+00:00', 'Z')} "
            f"at request {self.run_id}-{self.first_drifted_request}"
        )


def run_traffic(
    config: TrafficConfig,
    stop: threading.Event | None = None,
    log: Callable[[str], None] | None = None,
) -> TrafficSummary:
    """Send traffic until the config's bounds or `stop`; never raises for network trouble."""
    return _Run(config, stop or threading.Event(), log or (lambda _: None)).run()


class _Run:
    def __init__(
        self, config: TrafficConfig, stop: threading.Event, log: Callable[[str], None]
    ) -> None:
        self.config = config
        self.stop = stop
        self.log = log
        self.data = load()
        self.unit = self.data.train_std(config.drift.feature)
        self.summary = TrafficSummary(run_id=config.run_id or uuid.uuid4().hex[:8])
        self.rows_rng = np.random.default_rng(config.seed)
        self.drift_rng = np.random.default_rng(config.seed + 1)
        self.feedback_rng = np.random.default_rng(config.seed + 2)
        self.infer = HttpClient(config.url, config.timeout_s)
        self.feedback = HttpClient(config.feedback_url or config.url, config.timeout_s)
        self.pending: list[dict[str, Any]] = []
        self.path = f"/v2/models/{MODEL_NAME}/infer"

    def run(self) -> TrafficSummary:
        config = self.config
        try:
            self._wait_ready()
            started = time.monotonic()
            next_send = next_flush = started
            interval = 1.0 / config.rate
            while not self._done(time.monotonic() - started):
                now = time.monotonic()
                if now < next_send:
                    self.stop.wait(next_send - now)
                    continue  # the bounds may have been reached while waiting
                if now - next_send > 1.0:
                    next_send = now  # fell behind (slow answers): resume the rate, no burst
                self._send(time.monotonic() - started)
                next_send += interval
                if time.monotonic() >= next_flush or len(self.pending) >= _MAX_FEEDBACK_BATCH:
                    self._flush_feedback()
                    next_flush = time.monotonic() + config.feedback_interval_s
            self.summary.elapsed_s = time.monotonic() - started
            self._flush_feedback()
        finally:
            self.infer.close()
            self.feedback.close()
        return self.summary

    def _done(self, elapsed: float) -> bool:
        config, sent = self.config, self.summary.requests
        return (
            self.stop.is_set()
            or (config.duration_s is not None and elapsed >= config.duration_s)
            or (config.max_requests is not None and sent >= config.max_requests)
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.wait_ready_s
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                if self.infer.request("GET", "/v2/health/ready") == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass  # not up yet: keep polling until the deadline
            self.stop.wait(0.2)
        if self.config.wait_ready_s > 0 and not self.stop.is_set():
            self.log(f"{self.infer.base_url} not ready after {self.config.wait_ready_s:g} s")

    def _send(self, elapsed: float) -> None:
        config, summary = self.config, self.summary
        n = summary.requests
        request_id = f"{summary.run_id}-{n}"
        count = int(self.rows_rng.integers(config.min_rows, config.max_rows + 1))
        picked = self.rows_rng.integers(0, len(self.data.held_out), size=count)
        columns = self.data.held_out.columns(picked)
        level = 0.0
        if config.drift_after_s is not None:
            level = intensity(config.drift, elapsed - config.drift_after_s)
        if level > 0:
            columns = apply_drift(config.drift, columns, level, self.unit, self.drift_rng)
            if summary.drift_started_at is None:
                summary.drift_started_at = time.time()
                summary.first_drifted_request = n
                summary.drift = config.drift.describe(self.unit)
                self.log(f"drift started at request {request_id}: {summary.drift}")
        body = json.dumps(
            {
                "id": request_id,
                "parameters": {"content_type": "pd"},
                "inputs": [
                    {"name": name, "shape": [count], "datatype": _DATATYPES[name], "data": values}
                    for name, values in columns.items()
                ],
            }
        ).encode()
        summary.requests += 1
        summary.rows += count
        status = self._call(
            self.infer, "infer", self.path, body, {**_JSON, "x-request-id": request_id}
        )
        if status is None:
            return
        summary.answered += 1
        labels = self.data.held_out.label[picked]
        chosen = self.feedback_rng.random(count) < config.feedback_share
        for row in np.flatnonzero(chosen).tolist():
            label = CLASSES[int(labels[row])]
            self.pending.append({"request_id": request_id, "row": row, "label": label})

    def _flush_feedback(self) -> None:
        if not self.pending:
            return
        items, self.pending = self.pending, []
        headers = dict(_JSON)
        if self.config.feedback_token:
            headers["authorization"] = f"Bearer {self.config.feedback_token}"
        if self._call(self.feedback, "feedback", "/feedback", json.dumps(items).encode(), headers):
            self.summary.labels_posted += len(items)

    def _call(
        self, client: HttpClient, what: str, path: str, body: bytes, headers: dict[str, str]
    ) -> int | None:
        """The 2xx status, or None after counting the failure under `what:kind`."""
        try:
            status = client.request("POST", path, body, headers)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.summary.errors[f"{what}:{failure_kind(exc)}"] += 1
            return None
        if not 200 <= status < 300:
            self.summary.errors[f"{what}:http_{status}"] += 1
            return None
        return status


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    summary = run_traffic(config, stop, lambda message: print(f"{PROG}: {message}", flush=True))
    print(summary.line(), flush=True)
    return 1 if summary.requests and not summary.answered else 0


def _config(args: argparse.Namespace) -> TrafficConfig:
    drift = DriftSpec(
        feature=args.drift_feature,
        shift_std=args.drift_shift_std,
        missing_share=args.drift_missing_share,
        new_category=args.drift_new_category,
        new_category_share=args.drift_new_category_share,
        ramp_s=args.drift_ramp,
    )
    return TrafficConfig(
        url=args.url,
        rate=args.rate,
        min_rows=args.min_rows,
        max_rows=args.max_rows,
        duration_s=args.duration or None,
        max_requests=args.max_requests,
        drift_after_s=args.drift_after,
        drift=drift,
        feedback_share=args.feedback_share,
        feedback_url=args.feedback_url,
        feedback_token=args.feedback_token,
        timeout_s=args.timeout,
        wait_ready_s=args.wait_ready,
        seed=args.seed,
        run_id=args.run_id,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m examples.{PROG}",
        description="KServe v2 traffic for the demo credit model, with scheduled drift",
    )
    add = parser.add_argument
    add("--url", required=True, help="the sidecar (or model server) base URL")
    add("--rate", type=float, default=20.0, help="requests per second (default %(default)s)")
    add("--min-rows", type=int, default=1, help="rows per request, at least (default 1)")
    add("--max-rows", type=int, default=5, help="rows per request, at most (default 5)")
    add("--duration", type=float, default=600.0, metavar="SECONDS", help="0: until interrupted")
    add("--max-requests", type=int, metavar="N")
    add("--drift-after", type=float, metavar="SECONDS", help="start drift after this long")
    add("--drift-feature", default=DEFAULT_FEATURE, help="numeric feature to shift")
    add("--drift-shift-std", type=float, default=DEFAULT_SHIFT_STD, metavar="K")
    add("--drift-ramp", type=float, default=0.0, metavar="SECONDS", help="0: a step")
    add("--drift-missing-share", type=float, default=0.0, metavar="S")
    add("--drift-new-category", default="gig_worker", metavar="NAME")
    add("--drift-new-category-share", type=float, default=0.0, metavar="S")
    add("--feedback-share", type=float, default=0.5, metavar="S", help="0: no ground truth")
    add("--feedback-url", help="where /feedback is (default: --url)")
    add("--feedback-token", default="", help="bearer token for /feedback")
    add("--timeout", type=float, default=5.0, metavar="SECONDS", help="per network call")
    add("--wait-ready", type=float, default=10.0, metavar="SECONDS")
    add("--seed", type=int, default=0)
    add("--run-id", default="", help="request-id prefix (default: random)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
