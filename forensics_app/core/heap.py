"""Give freed image memory back to the operating system (glibc's heap), for bounded scans.

A scan decodes large images one after another, in intake threads; Pillow stores each in 16 MiB
blocks. glibc serves a block of that size with mmap the first time, and after the first one is
freed it raises its mmap threshold (up to 32 MiB), so later blocks come from the threads' heaps
and stay resident after the image is gone: on this machine a mixed folder (500 small images,
two 100 MP JPEGs, two 8000^2 PNGs) peaked at 1.70 GB instead of 1.27 GB
(``benchmarks/scale_memory.py``). Fixing the threshold at 8 MiB keeps image blocks on mmap (freed
at once) while the forward pass's smaller tensors still come from the heap.

Only on Linux with glibc, once per process, and never over a ``MALLOC_MMAP_THRESHOLD_`` the user
set. Called by the CLI and the GUI at start-up; recorded in the report side-car.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 8 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
_state: dict = {"applied": False, "mmap_threshold": None, "why": "not requested"}


def limit_heap_retention(threshold: int = MMAP_THRESHOLD) -> dict:
    """Fix glibc's mmap threshold at ``threshold`` bytes; returns :func:`heap_record`."""
    if _state["applied"]:
        return heap_record()
    if not sys.platform.startswith("linux"):
        _state["why"] = f"not Linux ({sys.platform}): left as the C library sets it"
    elif "MALLOC_MMAP_THRESHOLD_" in os.environ:
        _state["why"] = "MALLOC_MMAP_THRESHOLD_ is set in the environment: left as set"
    else:
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):
            _state["why"] = "no glibc mallopt (another C library): left as it is"
        else:
            mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
            if mallopt(_M_MMAP_THRESHOLD, int(threshold)) == 1:
                _state.update(applied=True, mmap_threshold=int(threshold),
                              why="glibc mmap threshold fixed")
            else:
                _state["why"] = "glibc refused the mmap threshold"
    return heap_record()


def heap_record() -> dict:
    return dict(_state)
