"""Give freed image memory back to the operating system, for bounded scans.

A scan decodes large images one after another, in intake threads; Pillow stores each in
blocks of 16 MiB by default. glibc serves a block of that size with mmap the first time, and
after the first one is freed it raises its mmap threshold (up to 32 MiB), so later blocks come
from the threads' heaps and stay resident after the image is gone.

The fix chosen: Pillow blocks of 64 MiB. glibc never raises its threshold above 32 MiB, so
every large image block is mmapped and unmapped when the image is freed, while the forward
pass's tensors keep glibc's fast dynamic behaviour. A mixed folder (500 small images, two
100 MP JPEGs, two 8000^2 PNGs, triage) peaked at 1,465 MiB with it, 1,704 MiB without, when it
was measured (``benchmarks/scale_memory.py``). Fixing glibc's threshold at 8 MiB
(``MALLOC_MMAP_THRESHOLD_=8388608`` in the environment) bounds memory a little further but makes
each forward pass page-fault its 8-32 MiB activations afresh (full mode 17 % slower); with the
other memory fixes (README, *Memory*) the issue's folder stays within 1.5 GB without it, so it
is left to the analyst. ``malloc_trim`` after each large image was tried and gained nothing
measurable.

Once per process, and never over a ``PILLOW_BLOCK_SIZE`` the user set. Called by the CLI and
the GUI at start-up; recorded in the report side-car.
"""

from __future__ import annotations

import os

PILLOW_BLOCK_BYTES = 64 * 1024 * 1024
_state: dict = {"applied": False, "pillow_block_bytes": None, "why": "not requested"}


def limit_heap_retention(block_bytes: int = PILLOW_BLOCK_BYTES) -> dict:
    """Set Pillow's image block size to ``block_bytes``; returns :func:`heap_record`."""
    if _state["applied"]:
        return heap_record()
    from PIL import Image

    if "PILLOW_BLOCK_SIZE" in os.environ:
        _state.update(pillow_block_bytes=Image.core.get_block_size(),
                      why="PILLOW_BLOCK_SIZE is set in the environment: left as set")
        return heap_record()
    try:
        Image.core.set_block_size(int(block_bytes))
    except (AttributeError, ValueError) as exc:
        _state["why"] = f"Pillow refused the block size: {exc}"
    else:
        _state.update(applied=True, pillow_block_bytes=Image.core.get_block_size(),
                      why="Pillow image blocks above glibc's mmap threshold")
    return heap_record()


def heap_record() -> dict:
    return dict(_state)
