"""Allocator tuning for large arrays.

glibc serves allocations above 128 KiB with fresh mmaps and returns them on free,
so every large numpy temporary pays page faults again; on this class of VM first
touch runs at well under 1 GB/s, which made an 8 MB copy cost ~35 ms instead of
0.3 ms. Raising the mmap threshold, disabling heap trimming and using one arena
lets freed buffers (including those the link reader threads allocate) be reused.
Set JOINTML_NO_MALLOC_TUNING=1 to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import numpy as np

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_done = False


def tune_allocator() -> bool:
    """Keep freed large buffers in the heap for reuse (glibc only; a no-op elsewhere)."""
    global _done
    if _done or os.environ.get("JOINTML_NO_MALLOC_TUNING"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    ok &= mallopt(_M_ARENA_MAX, 1) == 1
    _done = bool(ok)
    return _done


def warm_heap(megabytes: int = 256) -> None:
    """Touch and free a block so later large arrays reuse mapped pages (call once per process)."""
    if tune_allocator():
        a = np.ones(megabytes * (1 << 20) // 8)
        del a
