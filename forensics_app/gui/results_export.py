"""Export of the window's results without a case (D27): CSV, JSON Lines, HTML or PDF, of
every row or of the rows the active filter shows.

CSV / JSON Lines go through the core exporter at once (they are quick); HTML / PDF are built
by :class:`ResultsReportWorker` on the one worker pattern, through the case report's own
builder and renderer (:mod:`forensics_app.core.results_report`), and shown in the window's
report progress like a case report. The rows are copied on the GUI thread when the export
starts, so the table can change (a scan, a threshold) while the report is written.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMessageBox

from forensics_app.core.case import ModelRecord
from forensics_app.gui.output_folders import (
    output_folder,
    refuse_over_evidence,
    remember_output_folder,
)
from forensics_app.gui.report_worker import ReportWorkerBase
from forensics_app.gui.workers import WorkCancelled

log = logging.getLogger(__name__)

EXPORT_FILTERS = ("CSV report (*.csv);;JSON Lines report (*.jsonl);;"
                  "HTML report, not from a case (*.html);;PDF report, not from a case (*.pdf)")
SUFFIX_OF_FILTER = {"CSV": ".csv", "JSON": ".jsonl", "HTML": ".html", "PDF": ".pdf"}


@dataclass(frozen=True)
class ResultsReportRequest:
    out: str
    rows: tuple[Any, ...]  # ScanResult copies, judged at the window's threshold
    settings: tuple[dict[str, Any], ...]  # each row's scan settings record
    models: tuple[ModelRecord, ...]
    threshold: float | None
    band: float | None
    n_all: int
    selection: str = ""  # which rows, in words, when not all


class ResultsReportWorker(ReportWorkerBase):
    """Builds and writes one HTML or PDF report of results held without a case."""

    request: ResultsReportRequest

    def work(self) -> str:
        from forensics_app.core.report import ReportCancelled, write_html
        from forensics_app.core.results_report import build_results_report
        from forensics_app.reports import report_kind, write_pdf

        req = self.request
        kind = report_kind(req.out)
        try:
            data = build_results_report(
                req.rows, req.settings, req.models, req.threshold, req.band, n_all=req.n_all,
                selection=req.selection, thumbnails=kind == "html",
                progress=self._progress, should_cancel=self.is_cancelled)
            if kind == "html":
                return str(write_html(data, req.out))
            if kind == "pdf":  # laid out in a child process: PySide holds the GIL meanwhile
                return str(write_pdf(data, req.out, isolated=True,
                                     should_cancel=self.is_cancelled))
        except ReportCancelled:
            raise WorkCancelled(None) from None
        raise ValueError(f"not an HTML or PDF report: {req.out}")


def model_records(window: Any) -> tuple[ModelRecord, ...]:
    """What the window knows of every checkpoint that scored a row (Grad-CAM needs paths)."""
    known = {mid: ModelRecord(mid, path, "", "", {"fake_index": fake_index})
             for mid, (path, fake_index) in window.models.known_models.items()}
    info = window.models.info
    if info is not None:
        known[info.model_id] = ModelRecord(info.model_id, info.path, info.sha256, info.kind,
                                           {**dict(info.meta), "fake_index": info.fake_index})
    return tuple(known.values())


def results_request(window: Any, out: str | Path, filtered: bool) -> ResultsReportRequest:
    """The rows to report (all, or the active filter's, in the order shown), copied now."""
    results, proxy = window.results, window.proxy
    if filtered:
        rows = [proxy.mapToSource(proxy.index(i, 0)).row() for i in range(proxy.rowCount())]
    else:
        rows = list(range(results.rowCount()))
    return ResultsReportRequest(
        out=str(out), rows=tuple(copy.deepcopy(results.record(i)) for i in rows),
        settings=tuple(results.settings_for(i).to_record() for i in rows),
        models=model_records(window), threshold=results.threshold, band=results.band,
        n_all=results.rowCount(),
        selection="the rows the window's filter showed" if filtered else "")


def choose_results_export(window: Any) -> None:
    """Export… without a case: where and in which format, then which rows (when a filter
    is active), then CSV/JSONL at once or HTML/PDF in the background."""
    if not window.results.rowCount():
        return
    start = str(output_folder(window) / "scan-report.csv")  # never a scanned folder
    path, chosen = QFileDialog.getSaveFileName(window, "Export report", start, EXPORT_FILTERS)
    if not path:
        return
    if not Path(path).suffix:
        path += SUFFIX_OF_FILTER.get(chosen.split()[0] if chosen else "CSV", ".csv")
    remember_output_folder(window, path)
    export_results(window, path)


def export_results(window: Any, path: str | Path, scope: str | None = None) -> Any:
    """Write ``path`` (its suffix names the format). ``scope`` "all" or "filter"; None asks
    when a filter is active (every format offers both). Returns the CSV/JSONL path, the
    background report's request, or None when nothing was started."""
    n_all, n_shown = window.results.rowCount(), window.proxy.rowCount()
    if scope is None:
        scope = "all"
        if n_shown != n_all:
            scope = window.report_jobs.ask_scope(window, n_all, n_shown, False)
            if scope is None:
                return None
    filtered = scope == "filter"
    kind = Path(path).suffix.lower()
    if kind in (".html", ".htm", ".pdf"):
        try:  # the same device+inode guard as every other output (OutputOverEvidence)
            refuse_over_evidence(window, {"report": path})
        except OSError as exc:
            QMessageBox.warning(window, "Export failed", f"Could not write {path}:\n{exc}")
            return None
        return window.report_jobs.start_results_report(results_request(window, path, filtered))
    try:
        return window.export_report(path, filtered=filtered)
    except OSError as exc:
        QMessageBox.warning(window, "Export failed", f"Could not write {path}:\n{exc}")
        return None
