"""Queue dock: the jobs with their status, and the commands that act on them."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from forensics_app.gui.records import JobStatus
from forensics_app.gui.scan_queue import JobColumn, ScanQueue


class QueueView(QWidget):
    def __init__(self, queue: ScanQueue, parent: QWidget | None = None):
        super().__init__(parent)
        self.queue = queue
        self.table = QTableView()
        self.table.setModel(queue.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setShowGrid(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(JobColumn.NOTE, QHeaderView.ResizeMode.Stretch)
        for col, width in ((JobColumn.ID, 36), (JobColumn.SOURCE, 240), (JobColumn.STATUS, 80),
                           (JobColumn.PROGRESS, 260)):
            self.table.setColumnWidth(col, width)

        self.cancel_running_button = QPushButton("Cancel running")
        self.cancel_running_button.setToolTip("Stop the running scan; finished rows stay")
        self.cancel_running_button.clicked.connect(queue.cancel_running)
        self.cancel_pending_button = QPushButton("Cancel pending")
        self.cancel_pending_button.clicked.connect(queue.cancel_pending)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.clicked.connect(queue.clear_finished)

        buttons = QVBoxLayout()
        for b in (self.cancel_running_button, self.cancel_pending_button, self.clear_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

        for signal in (queue.job_updated, queue.job_finished):
            signal.connect(self.update_buttons)
        queue.model.modelReset.connect(self.update_buttons)
        queue.model.rowsInserted.connect(self.update_buttons)
        self.update_buttons()

    def update_buttons(self, *_args) -> None:
        jobs = self.queue.jobs
        self.cancel_running_button.setEnabled(self.queue.running_thread is not None)
        self.cancel_pending_button.setEnabled(any(j.status is JobStatus.PENDING for j in jobs))
        self.clear_button.setEnabled(any(j.status.finished for j in jobs))
        if jobs:
            self.table.scrollTo(self.queue.model.index(len(jobs) - 1, 0))
