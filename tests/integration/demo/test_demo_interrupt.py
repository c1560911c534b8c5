"""Ctrl-C on `make demo`, typed on a terminal, as a user stops the demo.

`make demo` runs in the repository with its bootstrapped .venv, as the session leader of a
new session on a pseudo-terminal. Once the live summary shows, Ctrl-C is typed: the
terminal sends SIGINT to the whole foreground process group, make and the demo alike.
The user must see a clean stop: the demo's final summary and no `make: ***` line (make
prints one for any failure of its recipe, `Error 130` for the demo's old exit status, and
`Interrupt` if the demo died of the signal), no traceback; every process the demo started
is gone, and so is its work directory. make itself then ends by the SIGINT it received,
as GNU make does whatever its recipe returns: its status is -SIGINT (or 0, should a make
ignore the signal). How long anything takes is not asserted; each wait is bounded.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest

from tests.integration.demo.demo_runs import (
    REPO,
    TerminalMakeRun,
    demo_environment,
    group_members,
    kill_listed,
    processes_under,
)

# Bounds only: the stack starts in well under this (model training, baseline, services).
LIVE_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 120.0
# A fallback end should Ctrl-C not stop it; far beyond the moment Ctrl-C is typed.
DEMO_SECONDS = 300
# The live summary with figures from two scrapes: the demo is in its steady state.
LIVE = r"\nsidecar \(last [\d.]+ s\): [\d.]+ req/s"


@pytest.mark.slow
@pytest.mark.timeout(LIVE_TIMEOUT_S + 2 * STOP_TIMEOUT_S + 60)
def test_ctrl_c_on_make_demo_stops_everything_with_no_make_error(tmp_path: Path) -> None:
    for tool in ("make", "setsid"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is needed")
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("no bootstrapped .venv in the repository (run make once)")
    # The repository's .venv as bootstrapped: `-o` keeps make from reinstalling it (that
    # would be pip in a venv other tests are using), and BIN names this test's
    # interpreter's directory, which is that venv when run as documented.
    command = ["make", "-o", ".venv/.installed", "demo", f"BIN={Path(sys.executable).parent}"]
    env = demo_environment(tmp_path, DEMO_SECONDS=str(DEMO_SECONDS))
    run = TerminalMakeRun(command, REPO, env)
    started: list[str] = []
    try:
        live = run.wait_for(LIVE, LIVE_TIMEOUT_S)
        started = processes_under(tmp_path)
        run.interrupt()
        code = run.wait(STOP_TIMEOUT_S)
        if code is None:
            run.kill()
        left = processes_under(tmp_path)
        group = group_members(run.process.pid)
    finally:
        kill_listed(processes_under(tmp_path))  # nothing outlives the test, even a failed one
        run.kill()
        run.close()

    output = run.output
    tail = "\n".join(output.splitlines()[-40:])
    assert live, f"the live summary never showed\n{tail}"
    # The model server, the sidecar (and its analysis process), the stats service, and
    # Prometheus and Alertmanager where installed: all named after the work directory.
    assert len(started) >= 4, started
    assert code is not None, f"make demo did not stop within {STOP_TIMEOUT_S:g} s of Ctrl-C\n{tail}"
    assert "demo: stopping on SIGINT" in output, tail
    assert "demo: stopped: every process it started has exited" in output, tail
    assert "demo: drift detected on: " in output, tail
    assert "make: ***" not in output, tail
    assert "Traceback" not in output, tail
    assert code in (0, -signal.SIGINT), f"make ended with {code}\n{tail}"
    assert left == [], f"left behind after Ctrl-C: {left}"
    assert group == [], f"still in make's process group: {group}"
    assert "(removed; DEMO_KEEP=1 keeps it)" in output, tail
    assert list(tmp_path.glob("mlmon-demo-*")) == [], "the work directory was not removed"
