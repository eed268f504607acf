"""The Witnesses panel: the classic forensic analyses of the selected file, on demand.

Computed off the UI thread by :class:`WitnessWorker` (the one worker pattern,
``gui.workers``), cancellable, for the selected row only when the analyst asks; each
witness shows its map beside the others with its one-line finding and stated rule. The
analyses themselves live in ``forensics_app.core.witnesses``; nothing here judges.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QDockWidget,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from forensics_app.core.results import ScanResult
from forensics_app.core.safetext import escape_for_terminal
from forensics_app.gui.workers import WorkCancelled, Worker, release_thread, start_worker

MAP_WIDTH = 260
_MARKS = {True: "⚠ detected", False: "not detected", None: "does not apply"}


class WitnessWorker(Worker):
    """All witnesses for one file: ``result`` is ``(path, [WitnessResult], notes)``."""

    def __init__(self, path: str, sha256: str | None, names: tuple[str, ...] | None = None):
        super().__init__()
        self.path, self.sha256 = path, sha256
        self.names = names

    def work(self) -> tuple[str, list, list[str]]:
        from forensics_app.core.loading import load_evidence
        from forensics_app.core.witnesses import (
            WITNESSES,
            Subject,
            WitnessCancelled,
            run_witnesses,
        )

        read: list[bytes] = []
        evidence, image, err = load_evidence(self.path, on_bytes=read.append)
        if err is not None:
            raise err
        notes = []
        if self.sha256 and evidence.sha256 != self.sha256:
            notes.append("The file changed since it was scanned (SHA-256 differs); these "
                         "witnesses describe the file as it is now.")
        self.check_cancelled()
        try:
            found = run_witnesses(Subject(image, read[0], evidence.format or ""),
                                  self.names or tuple(WITNESSES), self.is_cancelled)
        except WitnessCancelled:
            raise WorkCancelled() from None
        return self.path, found, notes


class WitnessPanel(QWidget):
    """The selected file, a Compute / Cancel pair and one tile per witness."""

    exhibit_requested = Signal(object)  # a WitnessResult whose map goes into the case

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.compute_button = QPushButton("Compute witnesses")
        self.compute_button.setToolTip("Run error levels, noise, JPEG structure, EXIF "
                                       "thumbnail and copy-move on the selected file")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compute_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        self.tiles = QWidget()
        self.grid = QGridLayout(self.tiles)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.tiles)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(scroll, 1)
        self.show_record(None)

    def show_record(self, record: ScanResult | None) -> None:
        self.clear()
        self.compute_button.setEnabled(record is not None)
        self.title.setText("No file selected" if record is None
                           else escape_for_terminal(record.file_name))
        self.status.setText("" if record is None else
                            "Not computed yet. No witness is proof: each states what it can "
                            "and cannot show.")

    def clear(self) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()

    def show_results(self, results: list, notes: list[str]) -> None:
        self.clear()
        for i, r in enumerate(results):
            box = QWidget()
            v = QVBoxLayout(box)
            head = QLabel(f"{r.name}: {_MARKS[r.detected]}")
            head.setStyleSheet("font-weight: bold;" + (" color: #a3261b;" if r.detected else ""))
            v.addWidget(head)
            if r.map_png:
                pm = QPixmap()
                pm.loadFromData(r.map_png, "PNG")
                picture = QLabel()
                picture.setPixmap(pm.scaledToWidth(MAP_WIDTH,
                                                   Qt.TransformationMode.SmoothTransformation))
                v.addWidget(picture)
                add = QPushButton("Add map to case")
                add.setToolTip("Keep this map in the open case as an exhibit (hashed, in the "
                               "audit log, shown in the case report with its finding)")
                add.clicked.connect(lambda _c=False, res=r: self.exhibit_requested.emit(res))
                v.addWidget(add)
            for text in (r.finding, *r.notes, f"Rule: {r.rule}" if r.rule else ""):
                if text:
                    label = QLabel(escape_for_terminal(text))
                    label.setTextFormat(Qt.TextFormat.PlainText)
                    label.setWordWrap(True)
                    label.setMaximumWidth(MAP_WIDTH)
                    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                    v.addWidget(label)
            v.addStretch(1)
            self.grid.addWidget(box, i // 3, i % 3, Qt.AlignmentFlag.AlignTop)
        self.status.setText(" ".join(notes) or "Computed. No witness is proof.")


class WitnessController(QObject):
    """The Witnesses dock beside Provenance and Review: follows the selected row, runs one
    :class:`WitnessWorker` at a time, and cancels it when the selection moves on."""

    def __init__(self, window: Any):
        super().__init__(window)
        self.window = window
        self.panel = WitnessPanel()
        self.dock = QDockWidget("Witnesses", window)
        self.dock.setObjectName("witnesses")
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        window.tabifyDockWidget(window.provenance_dock, self.dock)
        window.provenance_dock.raise_()
        window.view_menu.addAction(self.dock.toggleViewAction())
        self.record: ScanResult | None = None
        self._worker: WitnessWorker | None = None
        self._thread: QThread | None = None
        self.panel.compute_button.clicked.connect(self.compute)
        self.panel.cancel_button.clicked.connect(self.cancel)
        self.panel.exhibit_requested.connect(self.add_exhibit)
        window.table.selectionModel().currentRowChanged.connect(lambda *_: self.follow())

    def follow(self) -> None:
        w = self.window
        row = w.current_row() if w.results.rowCount() else None
        record = None if row is None else w.results.record(row)
        if record is self.record:
            return
        self.cancel()
        self.record = record
        self.panel.show_record(record)

    @Slot()
    def compute(self) -> None:
        if self.record is None or self._thread is not None:
            return
        self._worker = WitnessWorker(self.record.path, self.record.sha256)
        self._worker.result.connect(self._on_result)
        self._worker.error.connect(lambda msg: self.panel.status.setText(
            escape_for_terminal(f"Could not compute: {msg}")))
        self._worker.cancelled.connect(lambda _p: self.panel.status.setText("Cancelled."))
        self._worker.finished.connect(self._on_finished)
        self.panel.compute_button.setEnabled(False)
        self.panel.cancel_button.setEnabled(True)
        self.panel.status.setText("Computing…")
        self._thread = start_worker(self._worker, "witnesses")

    @Slot(object)
    def add_exhibit(self, result: Any) -> None:
        """The map into the open case (core.witnesses.exhibits); says where it went."""
        from forensics_app.core.case import CaseError
        from forensics_app.core.outputs import OutputWriteError
        from forensics_app.core.witnesses.exhibits import add_exhibit

        case = getattr(self.window.cases, "case", None)
        if case is None or self.record is None or not self.record.sha256:
            self.panel.status.setText("Open or create a case (File → New case…) to keep a "
                                      "witness map as an exhibit.")
            return
        try:
            x = add_exhibit(case, self.record.path, self.record.sha256, result)
        except (CaseError, OutputWriteError, OSError, ValueError) as exc:
            self.panel.status.setText(escape_for_terminal(f"Not added: {exc}"))
            return
        self.panel.status.setText(f"The {x.witness} map is in the case as {x.file} (audit "
                                  f"entry {x.seq}); the case report shows it.")

    @Slot()
    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    @Slot(object)
    def _on_result(self, value: tuple) -> None:
        path, results, notes = value
        if self.record is not None and self.record.path == path:
            self.panel.show_results(results, notes)

    @Slot()
    def _on_finished(self) -> None:
        if self._thread is not None:
            release_thread(self._thread)
        self._thread, self._worker = None, None
        self.panel.cancel_button.setEnabled(False)
        self.panel.compute_button.setEnabled(self.record is not None)

    def shutdown(self) -> None:
        self.cancel()
        if self._thread is not None:
            release_thread(self._thread)
            self._thread, self._worker = None, None
