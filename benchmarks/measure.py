"""Measurements the benchmark scripts share."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_kib() -> int:
    """This process's peak resident memory (VmHWM; ru_maxrss would include children)."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])
