"""`DEMO_SHADOW=1 make demo`: the demo with a candidate model as a shadow of the primary.

Runs `make demo` in the repository with its bootstrapped .venv (as test_demo_interrupt.py
does), for DEMO_SECONDS of stationary traffic. Checks: exit 0; the demo says where the
comparison shows (the stats page, the report, the Releases dashboard) and how to move
traffic to the fallback; its final line about the shadow gives an agreement over a few
hundred paired answers that is high but not total (the candidate is a different model)
and each side's accuracy on the labelled answers; no process outlives it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from examples.stack_components import CANDIDATE_NAME
from tests.integration.demo.demo_runs import REPO, demo_environment, kill_listed, processes_under

DEMO_SECONDS = 20
TIMEOUT_S = 300.0  # a bound only: start-up takes well under a minute
VERDICT = (
    rf"demo: shadow {re.escape(CANDIDATE_NAME)}: agreement (?P<agreement>[\d.]+)% of "
    r"(?P<pairs>[\d,]+) answers, prediction distance \(Jensen-Shannon\) [\d.]+, "
    r"primary accuracy [\d.]+, candidate accuracy [\d.]+"
)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 60)
def test_demo_with_a_shadow_compares_the_candidate_with_the_primary(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is needed")
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("no bootstrapped .venv in the repository (run make once)")
    command = ["make", "-s", "-o", ".venv/.installed", "demo", f"BIN={Path(sys.executable).parent}"]
    env = demo_environment(
        tmp_path, DEMO_SHADOW="1", DEMO_SECONDS=str(DEMO_SECONDS), DEMO_DRIFT_AFTER="off"
    )
    try:
        result = subprocess.run(
            command,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    finally:
        left = processes_under(tmp_path)
        kill_listed(left)
    output = result.stdout + result.stderr
    tail = "\n".join(output.splitlines()[-30:])
    assert result.returncode == 0, tail
    assert f"demo: shadow {CANDIDATE_NAME} at http://127.0.0.1:" in output, tail
    assert "(Candidates against the primary)" in output and "mlmon / Releases" in output
    assert re.search(r"demo: to move traffic to the naive fallback: curl -X POST", output)
    verdict = re.search(VERDICT, output)
    assert verdict, tail
    # A different model: most answers agree, not all (97% on the held-out split).
    assert 80.0 <= float(verdict["agreement"]) < 100.0, verdict.group()
    assert int(verdict["pairs"].replace(",", "")) >= 100, verdict.group()
    assert "Traceback" not in output, tail
    assert left == [], f"left behind: {left}"
