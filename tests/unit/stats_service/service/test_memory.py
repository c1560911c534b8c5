"""The stats service's allocator setting, in fresh processes: blocks freed after a large
one are given back to the system rather than kept in the heap."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]

# Frees one 32 MB block (which makes glibc keep later blocks below that size in its
# heap), then holds 20 blocks of 6 MB, each followed by a small block that stays, frees
# the large ones and prints how much RSS they left behind, in MB.
SCRIPT = """
import sys
import numpy as np
from stats_service.service.memory import return_freed_memory

def rss_mb():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024

if sys.argv[1] == "set":
    assert return_freed_memory()
first = np.ones(4_000_000)
del first
before = rss_mb()
large, kept = [], []
for _ in range(20):
    large.append(np.ones(750_000))
    kept.append(np.ones(512))
del large
print(rss_mb() - before)
"""

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)


def _left_behind_mb(mode: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return float(result.stdout)


def test_freed_blocks_go_back_to_the_system() -> None:
    assert _left_behind_mb("set") < 10


def test_without_it_they_stay() -> None:
    # Why the service sets it: the same frees without the setting keep the 120 MB.
    assert _left_behind_mb("unset") > 100
