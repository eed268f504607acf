"""Reports off the GUI thread (D1): a :class:`ReportWorker` on the one worker pattern.

The worker opens the case read-only on its own connection (a reader takes no lock, and the
WAL lets it read while the window's scan writes), builds the report from the stored records
with ``progress`` / ``should_cancel``, and writes it atomically: a cancelled report leaves no
file. The window's case records the "report exported" audit entry when the worker is done.

Report choices (D27 too): every file, the rows the active filter shows, files the detector
or the examiner flagged, or files the examiner reviewed/tagged. Without a case the window's
export (CSV, JSON Lines, and HTML / PDF through :mod:`forensics_app.gui.results_export`, in
this same progress bar) offers the active filter as well.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from forensics_app.core.case import ACTION_REPORT_EXPORTED, ACTION_REPORT_FAILED, CaseError
from forensics_app.gui.workers import Throttle, WorkCancelled, Worker, release_thread, start_worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportRequest:
    case_folder: str
    out: str
    threshold: float | None = None
    band: float | None = None
    scope: str = "all"  # core.report.SCOPES
    paths: frozenset[str] | None = None  # the active filter's rows; None: no filter


class ReportWorkerBase(Worker):
    """One report from one request, its progress sent at most every 0.1 s (and at both ends)."""

    def __init__(self, request: Any):
        super().__init__()
        self.request = request
        self._throttle = Throttle(0.1)

    def _progress(self, done: int, total: int) -> None:
        if done in (0, total) or self._throttle.ready():
            self.progress.emit(done, total)


class ReportWorker(ReportWorkerBase):
    """Builds and writes one case report and its anchor; returns the report's path."""

    def work(self) -> str:
        from forensics_app.core.case import Case
        from forensics_app.core.report import ReportCancelled
        from forensics_app.reports import write_case_report

        req = self.request
        with Case.open(req.case_folder, read_only=True) as case:
            try:
                return str(write_case_report(case, req.out, req.threshold, req.band,
                                         pdf_in_process=True,  # PySide holds the GIL
                                         scope=req.scope, paths=req.paths,
                                         progress=self._progress,
                                         should_cancel=self.is_cancelled))
            except ReportCancelled:
                raise WorkCancelled(None) from None


SCOPE_CHOICES: list[tuple[str, str]] = [
    ("all", "Every file"),
    ("filter", "The rows the table shows now (active filter)"),
    ("flagged", "Flagged files only (detector: AI-generated, or examiner: confirmed "
                "generated)"),
    ("reviewed", "Files the examiner reviewed, tagged, noted or bookmarked"),
]


class ReportScopeDialog(QDialog):
    """Which rows go into the report."""

    def __init__(self, parent: QWidget | None, n_all: int, n_shown: int, case_open: bool):
        super().__init__(parent)
        self.setWindowTitle("Report contents")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Include in the report:"))
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QRadioButton] = {}
        for key, text in SCOPE_CHOICES:
            if key in ("flagged", "reviewed") and not case_open:
                continue
            label = {"all": f"{text} ({n_all})", "filter": f"{text} ({n_shown})"}.get(key, text)
            b = QRadioButton(label)
            self.group.addButton(b)
            self.buttons[key] = b
            layout.addWidget(b)
        self.buttons["filter"].setEnabled(n_shown != n_all)
        (self.buttons["filter"] if n_shown != n_all else self.buttons["all"]).setChecked(True)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                               | QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)
        layout.addWidget(box)

    def scope(self) -> str:
        return next(k for k, b in self.buttons.items() if b.isChecked())


def ask_scope(parent: QWidget | None, n_all: int, n_shown: int, case_open: bool) -> str | None:
    dialog = ReportScopeDialog(parent, n_all, n_shown, case_open)
    return dialog.scope() if dialog.exec() == QDialog.DialogCode.Accepted else None


class ReportJobs(QObject):
    """The window's report exports: one at a time, in a worker, shown in the status bar."""

    report_written = Signal(str)
    report_failed = Signal(str)
    report_cancelled = Signal()
    busy_changed = Signal(bool)

    def __init__(self, window: Any):
        super().__init__(window)
        self.window = window
        self.ask_scope = ask_scope  # (parent, n_all, n_shown, case_open) -> scope | None
        self._worker: ReportWorker | None = None
        self._thread: QThread | None = None
        self._request: ReportRequest | None = None
        self._results_request: Any = None  # a no-case report being written (D27)
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(160)
        self.bar.setFormat("Report %p%")
        self.cancel_button = QPushButton("Cancel report")
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QWidget()
        row = QHBoxLayout(self.status)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar)
        row.addWidget(self.cancel_button)
        self.status.hide()
        window.statusBar().addPermanentWidget(self.status)

    @property
    def busy(self) -> bool:
        return self._thread is not None

    # -- choosing
    def choose_case_report(self) -> None:
        """File → Export case report…: where, what, then in the background."""
        w = self.window
        case = w.cases.case
        if case is None:
            w.cases._warn("No case open", "Open or create a case first (File → New case…).")
            return
        if self.busy:
            w._flash("A report is being written; wait for it or cancel it first")
            return
        start = str(case.folder / "report.html")
        path, chosen = QFileDialog.getSaveFileName(
            w, "Export case report", start,
            "HTML report (*.html);;PDF report (*.pdf);;CSV (*.csv);;JSON Lines (*.jsonl)")
        if not path:
            return
        if not Path(path).suffix:
            path += {"PDF": ".pdf", "CSV": ".csv", "JSON": ".jsonl"}.get(chosen.split()[0],
                                                                         ".html")
        scope = self.ask_scope(w, w.results.rowCount(), w.proxy.rowCount(), True)
        if scope is not None:
            self.start_case_report(path, scope)

    def start_case_report(self, out: str | Path, scope: str = "all") -> ReportRequest | None:
        """``scope``: a core.report scope, or "filter" for the rows the table shows."""
        w = self.window
        case = w.cases.case
        if case is None or self.busy:
            return None
        w.cases._flush_threshold()
        paths = None
        if scope == "filter":
            paths, scope = frozenset(r.path for r in w.proxy.visible_records()), "all"
        req = ReportRequest(str(case.folder), str(out), w.results.threshold, w.results.band,
                            scope, paths)
        from forensics_app.core.case_chain import anchor_path
        from forensics_app.gui.output_folders import refuse_over_evidence
        from forensics_app.reports import export_params

        try:  # the CLI's check (device and inode) before anything is logged or built
            refuse_over_evidence(w, {"report": out, "report anchor": anchor_path(Path(out))})
        except OSError as exc:
            w.cases._warn("Report not written", str(exc))
            return None
        try:  # logged first, so the heads the report prints are the ones --verify shows
            params = export_params(case, out, req.threshold, req.band, scope, paths)
            if not case.read_only:
                case.audit(ACTION_REPORT_EXPORTED, params)
        except (CaseError, ValueError) as exc:
            w.cases._warn("Report not written", str(exc))
            return None
        self._request = req
        self._launch(ReportWorker(req), out)
        return req

    def start_results_report(self, request: Any) -> Any:
        """HTML/PDF of results held without a case (a ``ResultsReportRequest``, D27): no
        audit entry, no anchor -- the report itself says it carries no chain."""
        from forensics_app.gui.results_export import ResultsReportWorker

        if self.busy:
            self.window._flash("A report is being written; wait for it or cancel it first")
            return None
        self._request = None
        self._results_request = request
        self._launch(ResultsReportWorker(request), request.out)
        return request

    def _launch(self, worker: Worker, out: str | Path) -> None:
        w = self.window
        worker.progress.connect(self._on_progress)
        worker.result.connect(self._on_result)
        worker.error.connect(self._on_error)
        worker.cancelled.connect(self._on_cancelled)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.bar.setRange(0, 0)
        self.status.show()
        self._thread = start_worker(worker, "report")
        self.busy_changed.emit(True)
        w._flash(f"Writing the report {out} in the background…")

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    # -- worker signals
    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(done)

    @Slot(object)
    def _on_result(self, path: str) -> None:
        done = self._results_request
        if done is not None and len(done.rows) == done.n_all:
            # every row is in a file now (a filtered report leaves rows nowhere else)
            self.window.close_guard.exported()
        self.window.own_outputs.note(path, "report")  # the case logged it before writing
        from forensics_app.core.case_chain import anchor_path

        anchor = anchor_path(path)
        if anchor.exists():
            self.window.own_outputs.note(anchor, "report anchor")
        self.window._flash(f"Report written to {path}")
        self.report_written.emit(str(Path(path).absolute()))

    def _record_failure(self, error: str) -> None:
        case, req = self.window.cases.case, self._request
        if case is not None and req is not None and str(case.folder) == req.case_folder \
                and not case.read_only:
            try:
                case.audit(ACTION_REPORT_FAILED, {"path": str(Path(req.out).absolute()),
                                                  "error": error})
            except CaseError as exc:
                log.warning("report failure not audited: %s", exc)

    @Slot(str)
    def _on_error(self, message: str) -> None:
        self._record_failure(message)
        req = self._request
        self.window.cases._warn("Report not written",
                                f"Could not write {req.out if req else 'the report'}:\n{message}")
        self.report_failed.emit(message)

    @Slot(object)
    def _on_cancelled(self, _partial: Any) -> None:
        self._record_failure("cancelled")
        self.window._flash("Report cancelled; no file was written")
        self.report_cancelled.emit()

    @Slot()
    def _on_finished(self) -> None:
        if self._thread is not None:
            release_thread(self._thread)
        self._thread, self._worker = None, None
        self._results_request = None
        self.status.hide()
        self.busy_changed.emit(False)

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        if self._thread is not None:
            release_thread(self._thread, 60_000)
            self._thread, self._worker = None, None

