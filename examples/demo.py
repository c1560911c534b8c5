"""`make demo`: the whole mlmon job on 127.0.0.1, on embedded defaults, in one command.

    python -m examples.demo        # from the repository root; settings: examples/demo_config.py

Starts, through `examples.stack`, the demo model server (a scikit-learn model trained at
start-up), the sidecar in front of it with the input log in SQLite, the baseline built
from the training split, the stats service, and Prometheus + Alertmanager with the
project's rules where those binaries are installed. Then it sends live traffic, injects
drift on one feature after DEMO_DRIFT_AFTER seconds, and refreshes a summary every
DEMO_REFRESH seconds: request rate, latency and sidecar overhead, drift and data quality
of the shortest window, active alerts, and the URLs to open. DEMO_SHADOW=1 also runs a
candidate model as a shadow of the primary and says where the two are compared
(`examples.demo_shadow`). Redrawn in place on a
terminal; appended as plain blocks otherwise, so a log stays readable.

Ends after DEMO_SECONDS of traffic (exit 0), on Ctrl-C (exit 0: the way a user ends it,
not a failure, so `make demo` reports no error), or on SIGTERM (143) / SIGHUP (129), each
time with a final summary whose line `demo: drift detected on: FEATURES|none` is for
scripts, and with every process it started stopped. The work directory is a temporary
one, removed at exit unless DEMO_KEEP=1.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from examples import demo_config, demo_shadow
from examples.demo_config import DemoConfig
from examples.demo_live import Live
from examples.drift import DriftSpec
from examples.stack import Stack, StackError
from examples.traffic import TrafficConfig

PROG = "demo"


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) turned into the KeyboardInterrupt path, which stops the stack."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def say(message: str) -> None:
    print(f"{PROG}: {message}", flush=True)


def main() -> int:
    try:
        config = demo_config.from_env(os.environ)
    except ValueError as exc:
        say(str(exc))
        return 2
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_terminated)
    work_dir = Path(tempfile.mkdtemp(prefix="mlmon-demo-"))
    try:
        return run(config, work_dir)
    except KeyboardInterrupt as exc:  # while starting or finishing: the stack has stopped
        say(f"interrupted ({str(exc) or 'SIGINT'})")
        return _interrupted_code(exc)
    except StackError as exc:
        say(f"could not run: {exc}")
        return 1
    finally:
        if config.keep:
            say(f"work directory: {work_dir} (kept: logs in {work_dir / 'logs'})")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
            say(f"work directory: {work_dir} (removed; DEMO_KEEP=1 keeps it)")


def run(config: DemoConfig, work_dir: Path) -> int:
    say(f"starting the stack in {work_dir} (model training, baseline, services)")
    live = Live(config, tty=sys.stdout.isatty(), say=say)
    started = time.monotonic()
    options = demo_config.stack_options(live.event, shadow=config.shadow)
    with Stack(work_dir, options) as stack:
        say(f"stack up in {time.monotonic() - started:.1f} s; sending traffic")
        if config.shadow:
            for line in demo_shadow.where_to_look(stack.urls, stack.model):
                say(line)
        drift_after = config.drift_after_s
        stack.start_traffic(
            TrafficConfig(
                stack.urls.sidecar,
                rate=config.rate,
                duration_s=None,
                drift_after_s=drift_after,
                drift=DriftSpec(config.drift_feature),
            )
        )
        outcome: BaseException | None = None
        try:
            live.run(stack)
        except (KeyboardInterrupt, StackError) as exc:
            outcome = exc
        # Read while everything is still up; a second Ctrl-C here still stops the stack.
        live.finish(stack, outcome)
        if config.shadow:
            for line in demo_shadow.verdict(stack.urls.stats, demo_config.SHORTEST_WINDOW):
                say(line)
    if isinstance(outcome, KeyboardInterrupt):
        say("stopped: every process it started has exited")
        return _interrupted_code(outcome)
    return 1 if outcome is not None else 0


def _interrupted_code(exc: KeyboardInterrupt) -> int:
    """0 for Ctrl-C, which is how the demo is meant to be ended (make would otherwise
    print `Error 130`); 128 + N for a signal from elsewhere, as a shell reports it."""
    return 128 + exc.signum if isinstance(exc, Terminated) else 0


if __name__ == "__main__":
    sys.exit(main())
