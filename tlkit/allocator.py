"""glibc's allocator, set for training: a fixed mmap threshold.

glibc serves blocks under its mmap threshold from a heap that does not shrink by itself, and raises that
threshold up to 32 MB as large blocks are freed; a training step's megabyte-sized activations then
fragment the heap. Measured on the default run (docs/performance.md#memory-and-speed-of-the-default-run):
6 steps grew to 4.9 GB resident with glibc's defaults, 3.0 GB with the threshold fixed at 4 MB, at the
same speed (256 KB: 2.0 GB, but 36% slower). Nothing happens where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 4 << 20  # bytes
M_MMAP_THRESHOLD = -3  # mallopt's option number (malloc.h)


def glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


def fix_mmap_threshold() -> None:
    """Fix glibc's mmap threshold at 4 MB, unless MALLOC_MMAP_THRESHOLD_ sets it; call before the model loads."""
    libc = glibc()
    if libc is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
