"""How the stats service's process gives memory back after a window.

glibc's malloc maps large blocks with mmap and unmaps them on free, but each time it
frees such a block it raises the size from which it does so to that block's size (up
to 32 MiB). After that, the many blocks of a few MB that a window read and its
statistics allocate come from the heap, between blocks that outlive them, and the heap
rarely shrinks: a 1,000,000-row window then held 60 MB more than its arrays. A fixed
threshold turns the raise off (mallopt(3)). Its value is a trade: at 128 KiB (glibc's
start) every float32 column of a 1M-row window is mapped afresh and a window took 0.5 s
longer; at 16 MiB the 60 MB came back; 4 MiB kept the window's peak RSS within 300 MB for
0.1 s more (`benchmarks/sqlite_window.py`). Elsewhere (musl, macOS) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # <malloc.h>
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def return_freed_memory() -> bool:
    """True when the allocator took the setting."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
