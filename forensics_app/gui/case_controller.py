"""The window's case: File → New case / Open case / Recent cases, results stored as they arrive.

All reading and writing goes through :class:`forensics_app.core.case.Case`. Scans are
recorded by the core's :class:`~forensics_app.core.session.ScanSession` in the scan worker's
thread -- which files the case still needs, the rows once per batch, the scan's outcome -- the
same recorder the CLI uses; this controller only hands the open case to the queue. A scan
still "running" when a case is reopened died with its window and is offered for resuming.
Without a case the window works as before: results live in memory until exported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QFileDialog, QLabel, QMenu, QMessageBox

from forensics_app.core.case import (
    ACTION_CHECKPOINT_LOADED,
    ACTION_THRESHOLD_CHANGED,
    Case,
    CaseError,
    ScanRecord,
)
from forensics_app.core.case_resume import files_held
from forensics_app.core.safetext import escape_text, isolate
from forensics_app.core.session import ScanSettings
from forensics_app.gui.plain_text import plain_tooltip
from forensics_app.gui.records import ModelInfo

log = logging.getLogger(__name__)

MAX_RECENT = 8
RECENT_FILE = "recent_cases.json"


class CaseController(QObject):
    """Owns the window's open :class:`Case` (or none) and its menu entries."""

    case_changed = Signal(object)  # Case | None

    def __init__(self, window: Any, recent_file: Path | None = None,
                 ask: Callable[[str, str], bool] | None = None):
        super().__init__(window)
        self.window = window
        self.case: Case | None = None
        self.recent_file = recent_file
        self.ask = ask or self._ask
        self._scan_ids: dict[int, int] = {}  # job id -> scan id in the case
        self._threshold_timer = QTimer(self)
        self._threshold_timer.setSingleShot(True)
        self._threshold_timer.setInterval(1500)
        self._threshold_timer.timeout.connect(self._record_threshold)
        self.label = QLabel()
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        window.statusBar().addPermanentWidget(self.label)
        self._build_menu()
        window.queue.case_source = lambda: self.case
        window.models.model_ready.connect(self._on_model_ready)
        window.threshold_spin.valueChanged.connect(lambda _v: self._threshold_timer.start())
        window.band_spin.valueChanged.connect(lambda _v: self._threshold_timer.start())
        self._refresh()

    # ------------------------------------------------------------------ menu
    def _build_menu(self) -> None:
        w = self.window
        self.act_new = QAction("New case…", w)
        self.act_new.setStatusTip("Create a case folder: every result is stored there as it "
                                  "arrives, with an audit log")
        self.act_new.triggered.connect(self.choose_new_case)
        self.act_open = QAction("Open case…", w)
        self.act_open.triggered.connect(self.choose_case_to_open)
        self.recent_menu = QMenu("Recent cases", w)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.act_close = QAction("Close case", w)
        self.act_close.triggered.connect(self.close_case)
        self.act_report = QAction("Export case report…", w)
        self.act_report.setStatusTip("HTML or PDF report (thumbnails, Grad-CAM of flagged "
                                     "images, model card, audit log), or CSV / JSON Lines")
        self.act_report.triggered.connect(self.choose_report_path)
        self.act_verify = QAction("Verify case integrity", w)
        self.act_verify.triggered.connect(self.show_verification)
        menu: QMenu = w.file_menu
        first = menu.actions()[0] if menu.actions() else None
        for a in (self.act_new, self.act_open):
            menu.insertAction(first, a)
        menu.insertMenu(first, self.recent_menu)
        for a in (self.act_close, self.act_report, self.act_verify):
            menu.insertAction(first, a)
        menu.insertSeparator(first)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_cases()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for folder in recent:
            a = self.recent_menu.addAction(folder)
            a.triggered.connect(lambda _c=False, f=folder: self.open_case(f))

    # ------------------------------------------------------------------ recent cases
    def recent_cases(self) -> list[str]:
        if self.recent_file is None or not self.recent_file.is_file():
            return []
        try:
            items = json.loads(self.recent_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [str(x) for x in items if isinstance(x, str)][:MAX_RECENT] if isinstance(
            items, list) else []

    def _remember(self, folder: Path) -> None:
        if self.recent_file is None:
            return
        key = str(folder.absolute())
        items = [key] + [f for f in self.recent_cases() if f != key]
        try:
            self.recent_file.parent.mkdir(parents=True, exist_ok=True)
            self.recent_file.write_text(json.dumps(items[:MAX_RECENT], indent=1),
                                        encoding="utf-8")
        except OSError as exc:
            log.warning("could not save the recent cases: %s", exc)

    # ------------------------------------------------------------------ open / close
    def choose_new_case(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self.window, "New case: choose an empty folder", self.window.settings.last_folder)
        if folder:
            self.new_case(folder)

    def choose_case_to_open(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open case folder",
                                                  self.window.settings.last_folder)
        if folder:
            self.open_case(folder)

    def new_case(self, folder: str | Path) -> Case | None:
        return self._adopt(lambda: Case.create(folder), folder)

    def open_case(self, folder: str | Path) -> Case | None:
        """An existing case, or a new one in an empty folder (the core's one rule)."""
        return self._adopt(lambda: Case.open_or_create(folder), folder)

    def _adopt(self, opener: Callable[[], Case], folder: str | Path) -> Case | None:
        if self.window.queue.running_thread is not None:
            self._warn("Case not changed", "Wait for the running scan to finish (or cancel "
                       "it) before switching cases.")
            return None
        # M1: the table is replaced by the case's rows; results held by no case are lost
        if not self.window.close_guard.may_discard("the case is opened"):
            return None
        try:
            case = opener()
        except CaseError as exc:
            self._warn("Cannot use this case", str(exc))
            return None
        self.close_case()
        self.case = case
        try:  # H1: what the case says the window wrote earlier is never scanned as evidence
            self.window.own_outputs.load_case(case)
        except CaseError as exc:
            log.warning("outputs recorded in the case not read: %s", exc)
        self._remember(case.folder)
        self._load_rows()
        self._adopt_threshold(case)
        info = self.window.models.info
        if info is not None:
            self._record_model(info)
        self._refresh()
        self.window._flash(f"Case “{isolate(escape_text(case.name))}” open: {case.count_results()} stored results")
        self.case_changed.emit(case)
        self._offer_resume()
        return case

    def close_case(self) -> None:
        if self.case is None:
            return
        self._flush_threshold()
        try:
            self.case.close()
        finally:
            self.case = None
            self._scan_ids.clear()
            self.window.clear_results()
            self._refresh()
            self.case_changed.emit(None)

    def shutdown(self) -> None:
        """The window is closing (its scan worker already stopped)."""
        if self.case is not None:
            self._flush_threshold()
            self.case.close()  # a scan cut short stays "running": reopening offers resume
            self.case = None

    def _load_rows(self) -> None:
        self.window.clear_results()
        scans = {s.scan_id: s for s in self.case.scans()}
        groups: dict[int, list] = {}
        for _seq, scan_id, r in self.case.result_rows():
            groups.setdefault(scan_id, []).append(r)
        for scan_id, rows in groups.items():
            self.window.results.add_results(rows, _settings_of(scans.get(scan_id)))

    def _offer_resume(self) -> None:
        scans = self.case.resumable_scans() if self.case is not None else []
        if not scans:
            return
        s = scans[0]
        # D15: what the case holds for these files (every attempt's rows), not the count of
        # the last attempt's own record
        held = files_held(self.case, s.sources, s.recursive, s.model_id)
        of = f" of {s.n_files}" if s.n_files is not None and s.n_files >= held else ""
        question = (f"The scan of {', '.join(escape_text(x) for x in s.sources)} started "
                    f"{s.started_utc[:19]} UTC was {s.status}. The case holds results for "
                    f"{held}{of} of its files. Resume it? Files already scored are skipped.")
        if self.ask("Resume scan?", question):
            self.window.scan_paths(list(s.sources), recursive=s.recursive)

    # ------------------------------------------------------------------ audit
    def _on_model_ready(self, info: ModelInfo) -> None:
        if self.case is not None:
            self._record_model(info)

    def _record_model(self, info: ModelInfo) -> None:
        try:
            self.case.register_model(info.model_id, info.path, info.sha256, info.kind,
                                     dict(info.meta))
            self.case.audit(ACTION_CHECKPOINT_LOADED, {
                "model_id": info.model_id, "path": info.path, "sha256": info.sha256,
                "kind": info.kind, "device": info.device, "bundled": info.bundled})
        except CaseError as exc:
            self._warn("Case not updated", str(exc))

    def _adopt_threshold(self, case: Case) -> None:
        """M5: the case's own threshold, never one left over from another session; a case
        that records none takes the toolbar's now, so all its rows are judged at one."""
        from forensics_app.core.case_threshold import case_threshold

        try:
            point = case_threshold(case)
        except CaseError as exc:
            log.warning("case threshold not read: %s", exc)
            return
        if point is None:
            if not case.read_only:
                self._record_threshold()
            return
        t, b = point
        self.window._set_threshold_widgets(t, b if b is not None else self.window.band_spin.value())
        self._threshold_timer.stop()  # set from the case: nothing new to record

    def _flush_threshold(self) -> None:
        if self._threshold_timer.isActive():
            self._threshold_timer.stop()
            self._record_threshold()

    def _record_threshold(self) -> None:
        if self.case is None:
            return
        try:
            self.case.audit(ACTION_THRESHOLD_CHANGED, {
                "threshold": round(self.window.threshold_spin.value(), 4),
                "inconclusive_band": round(self.window.band_spin.value(), 4)})
        except CaseError as exc:
            self._warn("Case not updated", str(exc))

    # ------------------------------------------------------------------ report, verify
    def choose_report_path(self) -> None:
        if self.case is None:
            self._warn("No case open", "Open or create a case first (File → New case…).")
            return
        start = str(self.case.folder / "report.html")
        path, chosen = QFileDialog.getSaveFileName(
            self.window, "Export case report", start,
            "HTML report (*.html);;PDF report (*.pdf);;CSV (*.csv);;JSON Lines (*.jsonl)")
        if path:
            if not Path(path).suffix:
                path += {"PDF": ".pdf", "CSV": ".csv", "JSON": ".jsonl"}.get(
                    chosen.split()[0], ".html")
            self.export_report(path)

    def export_report(self, path: str | Path) -> Path | None:
        """Write the case report at the toolbar's threshold (Grad-CAM runs here: may take a
        few seconds per flagged image)."""
        from forensics_app.core.case_chain import anchor_path
        from forensics_app.gui.output_folders import refuse_over_evidence
        from forensics_app.reports import export_case_report

        self._flush_threshold()
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            refuse_over_evidence(self.window, {"report": path, "report anchor":
                                               anchor_path(Path(path))})
            out = export_case_report(self.case, path, threshold=self.window.results.threshold,
                                     band=self.window.results.band)
        except (CaseError, OSError, ValueError) as exc:
            self._warn("Report not written", f"Could not write {path}:\n{exc}")
            return None
        finally:
            QGuiApplication.restoreOverrideCursor()
        self.window.own_outputs.note(out, "case report")
        self.window._flash(f"Case report written to {out}")
        return out

    def show_verification(self) -> None:
        if self.case is None:
            return
        report = self.case.verify()
        if report.ok:
            QMessageBox.information(self.window, "Case intact", (
                f"{report.n_audit} audit entries and {report.n_results} results match their "
                f"hash chains.\n\nAudit head {report.audit_head}\nResults head "
                f"{report.results_head}"))
        else:
            self._warn("Case integrity BROKEN", f"First broken entry: {report.first_problem}")

    # ------------------------------------------------------------------ misc
    def _refresh(self) -> None:
        case = self.case
        for a in (self.act_close, self.act_report, self.act_verify):
            a.setEnabled(case is not None)
        if case is None:
            self.label.setText("No case")
            self.label.setToolTip("Results are kept in memory until exported; File → New case… "
                                  "stores them as they arrive")
            self.window.setWindowTitle("Forensics App — AI-generated image detector")
        else:
            self.label.setText(f"Case: {isolate(escape_text(case.name))}")
            self.label.setToolTip(plain_tooltip(escape_text(case.folder)))
            self.window.setWindowTitle(f"{isolate(escape_text(case.name))} — Forensics App")

    def _warn(self, title: str, text: str) -> None:
        log.warning("%s: %s", title, text)
        if self.window.isVisible():
            QMessageBox.warning(self.window, title, text)
        self.window._flash(f"{title}: {text.splitlines()[0]}")

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self.window, title, text)
        return answer == QMessageBox.StandardButton.Yes


def _settings_of(scan: ScanRecord | None) -> ScanSettings:
    try:
        return ScanSettings.from_record(scan.settings if scan is not None else None)
    except (TypeError, ValueError):  # a record this version cannot read: the defaults
        return ScanSettings()
