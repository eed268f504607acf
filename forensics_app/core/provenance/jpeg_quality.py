"""JPEG quality estimate from the quantisation tables (which libjpeg quality made them)."""

from __future__ import annotations

from typing import Any

_ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34,
           27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37,
           44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]
_STD_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40,
             57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35,
             55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112,
             100, 103, 99]
_STD_CHROMA = [17, 18, 24, 47] + [99] * 4 + [18, 21, 26, 66] + [99] * 4 + [24, 26, 56] + [99] * 5 \
    + [47, 66] + [99] * 6 + [99] * 32
# standard tables in the zigzag order DQT stores them
_STD_ZZ = ([_STD_LUMA[k] for k in _ZIGZAG], [_STD_CHROMA[k] for k in _ZIGZAG])


def _ijg_table(std: list[int], q: int) -> list[int]:
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return [min(255, max(1, (v * scale + 50) // 100)) for v in std]


_IJG_TABLES: Any = None  # (100, 128) libjpeg luma+chroma tables for q = 1..100, made once


def jpeg_quality(dqt: list[tuple[int, list[int]]]) -> tuple[int | None, bool | None]:
    """Best-fitting libjpeg quality for the tables, and whether they match it exactly."""
    import numpy as np

    global _IJG_TABLES
    tables = {tid: t for tid, t in dqt}
    if 0 not in tables:
        return None, None
    if _IJG_TABLES is None:
        _IJG_TABLES = np.array([_ijg_table(_STD_ZZ[0], q) + _ijg_table(_STD_ZZ[1], q)
                                for q in range(1, 101)], dtype=np.int64)
    target = tables[0] + (tables[1] if 1 in tables else [])
    err = np.abs(_IJG_TABLES[:, :len(target)] - np.asarray(target, dtype=np.int64)).sum(axis=1)
    best = int(np.argmin(err))
    return best + 1, bool(err[best] == 0)

