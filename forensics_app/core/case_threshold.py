"""The one operating point a case is judged at (issue 37, M5).

A threshold typed in an earlier session used to become the scan threshold of whatever case was
opened next, so one case's rows were judged at different points. A case keeps its own: the
last ``threshold changed`` entry of its audit log, else the threshold its latest scan ran at.
Exports record the point they were judged at (:func:`thresholds_of` for rows that carry their
own).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from forensics_app.core.case import ACTION_THRESHOLD_CHANGED


def case_threshold(case: Any) -> tuple[float, float | None] | None:
    """``(threshold, band)`` the case was last judged at, or None when it records none."""
    for entry in reversed(case.audit_entries()):
        if entry.action == ACTION_THRESHOLD_CHANGED and entry.params.get("threshold") is not None:
            return float(entry.params["threshold"]), entry.params.get("inconclusive_band")
    for scan in reversed(case.scans()):
        t = scan.settings.get("threshold")
        if t is not None:
            return float(t), scan.settings.get("inconclusive_band")
    return None


def thresholds_of(rows: Iterable[Any]) -> list[dict[str, float | None]]:
    """Every distinct operating point the rows were judged at (one entry: one threshold)."""
    points = sorted({(r.threshold, r.inconclusive_band) for r in rows
                     if getattr(r, "threshold", None) is not None},
                    key=lambda p: (p[0], p[1] if p[1] is not None else -1.0))
    return [{"threshold": t, "inconclusive_band": b} for t, b in points]
