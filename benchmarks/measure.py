"""Measurements the benchmark scripts share."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_kib() -> int:
    """This process's peak resident memory (VmHWM; ru_maxrss would include children)."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


def extract(revision: str, into: Path) -> None:
    """The revision's exporter and stats_service packages, as files under `into`: the
    anchor a benchmark runs beside this tree."""
    into.mkdir()
    archive = subprocess.run(
        ["git", "archive", revision, "exporter", "stats_service"],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=60)
