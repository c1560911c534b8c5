"""`DEMO_SECONDS=90 make demo` from a clean checkout, as a newcomer would run it.

The checkout is a copy of the working tree's tracked and untracked, non-ignored files
(`git ls-files -co --exclude-standard`), not a `git clone` of HEAD: a clone would miss
whatever is not committed yet, so the test would check an older tree than the one under
review; the copy is what a clone of this tree would hold once committed, and like a clone
it has no .venv, caches or input logs. `make` bootstraps its own .venv there (pip, from
the package index and the local wheel cache), so this also checks that a fresh machine
needs nothing but the Makefile. TMPDIR points into the test's directory so that the
demo's work directory, and every process started with a path in it, is recognisable.

Checks: exit code 0; the final `demo: drift detected on:` line names exactly the drifted
feature; a live summary was shown; with Prometheus installed, the drift alert fired and
showed in the output (else the output says it is not installed); the work directory is
gone; and no process whose command line or working directory is under the checkout is
left once make has exited. The time to bootstrap .venv and the time of the demo itself are
printed (run with -s) and recorded as `user_properties`. Quick checks of the summary's
figures and of its resilience to failed fetches come first.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from examples import demo_config
from examples.demo_probe import (
    UnavailableError,
    fetch_report,
    histogram_quantile,
    parse_scrape,
    service_figures,
)
from examples.demo_view import Snapshot, render
from examples.stack_processes import free_port

REPO = Path(__file__).resolve().parents[3]
DEMO_SECONDS = 90
DRIFTED = "income"
# Functional bound only: a cold pip install plus start-up plus the 90 s of traffic.
MAKE_TIMEOUT_S = 900.0
STARTING = "demo: starting the stack"
DRIFT_LINE = re.compile(r"^demo: drift detected on: (.*)$", re.MULTILINE)
ALERTS_LINE = re.compile(r"^demo: alerts fired: (.*)$", re.MULTILINE)
# Variables of an enclosing make (`make test`) or virtualenv that must not leak into the
# checkout's own make and interpreter.
_DROPPED = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")


def copy_checkout(target: Path) -> int:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    copied = 0
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.is_file():  # tracked but deleted in the working tree
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
        copied += 1
    return copied


def demo_environment(tmp_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["DEMO_SECONDS"] = str(DEMO_SECONDS)
    env["TMPDIR"] = str(tmp_dir)
    return env


def processes_under(root: Path) -> list[str]:
    """Live processes whose command line or working directory names `root`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue  # exited meanwhile
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            cwd = ""
        if state != "Z" and (str(root) in cmdline or cwd.startswith(str(root))):
            found.append(f"{entry} (cwd {cwd}): {cmdline.strip()}")
    return found


class MakeRun:
    """`make demo` in its own session; every output line with the time it arrived."""

    def __init__(self, checkout: Path, env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.lines: list[tuple[float, str]] = []
        self.timed_out = False
        self.process = subprocess.Popen(
            ["make", "demo"],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._timer = threading.Timer(MAKE_TIMEOUT_S, self._stop)
        self._timer.start()

    def wait(self) -> int:
        assert self.process.stdout is not None
        try:
            for raw in self.process.stdout:
                self.lines.append((time.monotonic() - self.started, raw.decode(errors="replace")))
            return self.process.wait()
        finally:
            self._timer.cancel()

    @property
    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def first(self, prefix: str) -> float | None:
        return next((at for at, line in self.lines if line.startswith(prefix)), None)

    def _stop(self) -> None:
        # SIGTERM to make's group: make passes it on and the demo stops what it started.
        self.timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def _metrics(requests: int, fast: int, slow: int) -> str:
    """Sidecar exposition text: `fast` requests of <= 5 ms, `slow` of <= 10 ms."""
    labels = 'model="credit",model_version="1",protocol="v2",code="200"'
    lines = [f"mlmon_requests_total{{{labels}}} {requests}"]
    for name, buckets in (
        ("mlmon_request_duration_seconds", (("0.005", fast), ("0.01", fast + slow))),
        ("mlmon_proxy_overhead_seconds", (("0.0001", fast + slow),)),
    ):
        lines.append(f"# TYPE {name} histogram")
        for le, count in (*buckets, ("+Inf", fast + slow)):
            lines.append(f'{name}_bucket{{model="credit",protocol="v2",le="{le}"}} {count}')
        lines.append(f'{name}_count{{model="credit",protocol="v2"}} {fast + slow}')
        lines.append(f'{name}_sum{{model="credit",protocol="v2"}} 0.1')
    return "\n".join(["# TYPE mlmon_requests_total counter", *lines]) + "\n"


def test_latency_quantiles_come_from_the_histogram_deltas_between_refreshes() -> None:
    before = parse_scrape(_metrics(1000, 900, 100), at=10.0)
    after = parse_scrape(_metrics(1040, 920, 120), at=12.0)  # 20 fast + 20 slow since
    figures = service_figures(before, after)
    assert figures.rate == pytest.approx(20.0)
    assert figures.p50_s == pytest.approx(0.005)
    assert figures.p99_s == pytest.approx(0.005 + 0.005 * (39.6 - 20) / 20)
    assert figures.overhead_p50_s == pytest.approx(0.00005)
    assert service_figures(after, after).p50_s is None  # no request: no quantile
    assert histogram_quantile(0.99, {0.1: 1.0, math.inf: 10.0}) == 0.1


def test_a_summary_with_nothing_reachable_renders_and_says_so() -> None:
    with pytest.raises(UnavailableError):
        fetch_report(f"http://127.0.0.1:{free_port()}", "credit", "30s")
    text = render(
        Snapshot(
            elapsed_s=3.0,
            duration_s=None,
            drift_plan="none",
            drift_onset_s=None,
            window="30s",
            service="connection refused",
            report="timed out",
            alerts=None,
            notifications=0,
            urls=[("stats page", "http://127.0.0.1:1/")],
        )
    )
    assert "sidecar: unavailable (connection refused)" in text
    assert "window 30s: unavailable (timed out)" in text
    assert "Prometheus not installed" in text
    odd = render(Snapshot(3.0, 90.0, "none", None, "30s", None, {"rows": "x"}, "HTTP 500", 0))
    assert "unexpected report" in odd and "alerts: unavailable (HTTP 500)" in odd


def test_environment_settings_are_checked_by_name() -> None:
    config = demo_config.from_env({"DEMO_SECONDS": "90", "DEMO_DRIFT_AFTER": "off"})
    assert config.seconds == 90.0 and config.drift_after_s is None
    assert demo_config.from_env({}).drift_after_s == 45.0
    for name, value in (("DEMO_SECONDS", "soon"), ("DEMO_DRIFT_FEATURE", "employment")):
        with pytest.raises(ValueError, match=name):
            demo_config.from_env({name: value})


@pytest.mark.slow
@pytest.mark.timeout(MAKE_TIMEOUT_S + 120)
def test_make_demo_from_a_clean_checkout(tmp_path: Path, record_property: Any) -> None:
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("make and git are needed")
    checkout, tmp_dir = tmp_path / "checkout", tmp_path / "tmp"
    tmp_dir.mkdir()
    copied = copy_checkout(checkout)
    assert (checkout / "Makefile").is_file() and not (checkout / ".venv").exists()

    run = MakeRun(checkout, demo_environment(tmp_dir))
    code = run.wait()
    total = time.monotonic() - run.started
    left = processes_under(tmp_path)
    for line in left:  # stopped here so that they cannot outlive the test, then reported
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(line.split()[0]), signal.SIGKILL)

    output = run.output
    bootstrap = run.first(STARTING)
    record_property("files_copied", copied)
    record_property("total_s", round(total, 1))
    if bootstrap is not None:
        record_property("bootstrap_s", round(bootstrap, 1))
        record_property("demo_s", round(total - bootstrap, 1))
    print(
        f"\nmake demo from a clean checkout ({copied} files): {total:.0f} s in all, of which "
        f"bootstrapping .venv {math.nan if bootstrap is None else bootstrap:.0f} s\n"
        + "\n".join(line for line in output.splitlines() if line.startswith("demo: "))
    )
    tail = "\n".join(output.splitlines()[-80:])
    assert not run.timed_out, f"make demo did not finish within {MAKE_TIMEOUT_S:g} s\n{tail}"
    assert code == 0, f"make demo exited with {code}\n{tail}"
    assert left == [], f"left behind: {left}"

    verdicts = DRIFT_LINE.findall(output)
    assert verdicts == [DRIFTED], tail
    assert re.search(r"^sidecar \(last .*\): [\d.]+ req/s", output, re.MULTILINE), tail
    assert list(tmp_dir.glob("mlmon-demo-*")) == [], "the work directory was not removed"

    if shutil.which("prometheus") is not None:
        (fired,) = ALERTS_LINE.findall(output)
        assert f"MlmonFeatureDrift(feature={DRIFTED}," in fired, tail
        other = re.findall(r"MlmonFeatureDrift\(feature=(\w+)", fired)
        assert set(other) == {DRIFTED}, tail
        assert re.search(rf"^  FIRING  MlmonFeatureDrift\(feature={DRIFTED},", output, re.MULTILINE)
    else:
        assert os.environ.get("CI") != "true", "prometheus is required in CI (make test)"
        assert "Prometheus not installed" in output, tail
