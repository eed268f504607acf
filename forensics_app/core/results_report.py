"""The HTML/PDF report of results held without a case (D27): the window's table, all rows or
the active filter's, through the case report's own builder and renderer.

Without a case there is no audit log, no hash chain, no examiner's review: the report says
so where the case report shows its integrity box, and it writes no anchor file. Everything
else -- the file table, thumbnails, Grad-CAM pages of flagged files, method and model card --
is the case report's, from the same records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensics_app.core.case import ModelRecord
from forensics_app.core.report import (
    DEFAULT_MAX_FLAGGED,
    ReportData,
    _card_for,
    gather_images,
    model_card_sections,
)
from forensics_app.core.results import ScanResult

TITLE = "results held by the window (not from a case)"


def build_results_report(rows: Sequence[ScanResult], settings: Sequence[dict[str, Any]],
                         models: Sequence[ModelRecord], threshold: float | None,
                         band: float | None, *, n_all: int | None = None,
                         selection: str = "", gradcam: bool = True,
                         thumbnails: bool = True,
                         max_flagged: int | None = DEFAULT_MAX_FLAGGED,
                         model_card: Path | None = None,
                         progress: Callable[[int, int], None] | None = None,
                         should_cancel: Callable[[], bool] | None = None) -> ReportData:
    """``rows`` (already judged at ``threshold`` ± ``band``) and ``settings[i]``, the scan
    settings record row ``i`` was scored with; ``models``: what is known of the checkpoints
    (a Grad-CAM page needs its path). ``n_all`` rows were held in all; ``selection`` says in
    words which of them ``rows`` are (the active filter)."""
    rows = list(rows)
    if len(settings) != len(rows):
        raise ValueError("one settings record per row")
    by_id = {m.model_id: m for m in models}
    thumbs, thumb_notes, flagged, n_flagged = gather_images(
        rows, list(settings), by_id, {}, gradcam=gradcam, max_flagged=max_flagged,
        thumbnails=thumbnails, progress=progress, should_cancel=should_cancel)
    note = ""
    if n_all is not None and n_all != len(rows):
        note = (f"This report lists {len(rows)} of the {n_all} rows the window held"
                + (f": {selection}." if selection else "."))
    card = model_card if model_card is not None else _card_for(list(by_id.values()))
    used = [by_id[m] for m in dict.fromkeys(r.model_id for r in rows) if m in by_id]
    return ReportData(
        case_name=TITLE, case_id="", case_folder="", created_utc="",
        generated_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        threshold=threshold, band=band, rows=rows, thumbnails=thumbs,
        thumb_notes=thumb_notes, flagged=flagged, n_flagged=n_flagged, models=used,
        scans=[], audit=[], verify=None, model_card=model_card_sections(card),
        scope="all", scope_note=note, n_case_rows=n_all if n_all is not None else len(rows),
        from_case=False,
    )
