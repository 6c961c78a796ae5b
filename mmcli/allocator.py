"""Keep freed memory in the process for the next tensor (glibc), instead of handing it back to the kernel.

glibc's malloc serves a large block (a batch of activations) with a fresh `mmap` and gives it back with `munmap` on
`free`; the next batch's block is fresh memory again, and every 4 KiB page of it costs a page fault to map and zero.
For a CNN on a CPU that is most of the time: EfficientNet-Lite0's forward pass over 64 images at 224 px spent 29 CPU
seconds in the kernel against 18 computing, 20.8 images/s; with freed blocks kept, 68.1 images/s and 0.1 s in the
kernel (`benchmarks/allocator.py`, fp32 on 2 cores). PyTorch's own CPU guidance is to preload jemalloc or tcmalloc for this; raising glibc's
two thresholds with `mallopt` does the same for these workloads with nothing to install.

The price: memory a finished batch freed stays with the process (up to `limit` per block), so its resident size stays
near its peak instead of falling between batches.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # free memory at the top of the heap beyond this is returned to the kernel
M_MMAP_THRESHOLD = -3  # blocks at least this large get their own mmap, unmapped again on free
LIMIT = 1 << 30
# Set by hand, these mean the user has tuned glibc's malloc already, or replaced it: leave it alone.
USER_CHOICES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
PRELOADED = ("jemalloc", "tcmalloc", "mimalloc")
OPT_OUT = "MM_SYSTEM_MALLOC"

_applied: bool | None = None


def keep_freed_memory(limit: int = LIMIT) -> bool:
    """Raise glibc's mmap and trim thresholds to `limit` bytes, once per process. -> whether they are raised.

    Nothing is changed off Linux, under another C library, when `$MM_SYSTEM_MALLOC` is set (to 1), or when the
    environment already tunes malloc (`USER_CHOICES`) or preloads another one (`PRELOADED`)."""
    global _applied
    if _applied is None:
        _applied = _apply(limit)
    return _applied


def _apply(limit: int) -> bool:
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT, "") not in ("", "0"):
        return False
    preload = os.environ.get("LD_PRELOAD", "")
    if any(os.environ.get(name) for name in USER_CHOICES) or any(lib in preload for lib in PRELOADED):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # not glibc: another C library's mallopt takes other options
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; the mmap threshold first, so a refused one leaves the trim threshold alone too
    return mallopt(M_MMAP_THRESHOLD, limit) == 1 and mallopt(M_TRIM_THRESHOLD, limit) == 1
