"""The batch queue: jobs in order, one scan worker at a time, and the queue's table model."""

from __future__ import annotations

import logging
import time
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QThread,
    Signal,
    Slot,
)
from PySide6.QtGui import QBrush, QColor

from forensics_app.core.own_outputs import OwnOutputs
from forensics_app.gui.model_manager import ModelManager
from forensics_app.gui.records import JobStatus, PathRegistry, ScanJob, ScanSettings
from forensics_app.gui.scan_progress import format_duration, running_text, skipped_text
from forensics_app.gui.workers import ScanWorker, release_thread, start_worker

log = logging.getLogger(__name__)


CANCELLING_MESSAGE = "Cancelling the running scan…"




class JobColumn(IntEnum):
    ID = 0
    SOURCE = 1
    STATUS = 2
    PROGRESS = 3
    NOTE = 4


JOB_COLUMN_TITLES = {
    JobColumn.ID: "#",
    JobColumn.SOURCE: "Source",
    JobColumn.STATUS: "Status",
    JobColumn.PROGRESS: "Progress",
    JobColumn.NOTE: "Note",
}

STATUS_COLOURS = {
    JobStatus.PENDING: "#666666",
    JobStatus.RUNNING: "#1565c0",
    JobStatus.DONE: "#1e6b2b",
    JobStatus.FAILED: "#a3261b",
    JobStatus.CANCELLED: "#7a5600",
}


def job_progress_text(job: ScanJob) -> str:
    if job.total is None:
        return "finding files…" if job.status is JobStatus.RUNNING else ""
    if job.status is JobStatus.RUNNING:
        return running_text(job, with_title=False)
    text = f"{job.done}/{job.total}"
    if job.status.finished and job.elapsed:
        text += f" in {format_duration(job.elapsed)}"
    return text


def job_note(job: ScanJob) -> str:
    parts = [skipped_text(job.skipped)] if job.skipped else []
    if job.duplicates:
        parts.append(f"{job.duplicates} already queued, skipped")
    if job.errors:
        parts.append(f"{job.errors} unreadable")
    if job.message:
        parts.append(job.message)
    return "; ".join(parts)


class JobListModel(QAbstractTableModel):
    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs: list[ScanJob] = []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.jobs)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(JobColumn)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole
                and 0 <= section < len(JobColumn)):
            return JOB_COLUMN_TITLES[JobColumn(section)]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        job = self.jobs[index.row()]
        col = JobColumn(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return {
                JobColumn.ID: str(job.id),
                JobColumn.SOURCE: job.title + (" (with sub-folders)" if job.recursive
                                               and job.has_folders else ""),
                JobColumn.STATUS: job.status.value,
                JobColumn.PROGRESS: job_progress_text(job),
                JobColumn.NOTE: job_note(job),
            }[col]
        if role == Qt.ItemDataRole.ToolTipRole and col is JobColumn.SOURCE:
            return "\n".join(job.sources)
        if role == Qt.ItemDataRole.ToolTipRole and col is JobColumn.NOTE:
            return job_note(job) or None
        if role == Qt.ItemDataRole.ForegroundRole and col is JobColumn.STATUS:
            return QBrush(QColor(STATUS_COLOURS[job.status]))
        if role == Qt.ItemDataRole.UserRole:
            return job
        return None

    def add(self, job: ScanJob) -> None:
        n = len(self.jobs)
        self.beginInsertRows(QModelIndex(), n, n)
        self.jobs.append(job)
        self.endInsertRows()

    def changed(self, job: ScanJob) -> None:
        row = self.jobs.index(job)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(JobColumn) - 1))

    def remove_finished(self) -> int:
        keep = [j for j in self.jobs if not j.status.finished]
        removed = len(self.jobs) - len(keep)
        if removed:
            self.beginResetModel()
            self.jobs = keep
            self.endResetModel()
        return removed


class ScanQueue(QObject):
    """Runs pending jobs in order, one :class:`ScanWorker` thread at a time.

    A job waits while no model is loaded and starts as soon as one is. The thread of a job
    ends with the job: an idle queue holds no thread.
    """

    rows_ready = Signal(object, object)  # list[ScanResult], ScanSettings
    job_updated = Signal(object)  # ScanJob
    job_finished = Signal(object)  # ScanJob
    idle = Signal()
    message = Signal(str)

    def __init__(self, models: ModelManager, registry: PathRegistry | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.models = models
        self.registry = registry if registry is not None else PathRegistry()
        self.model = JobListModel(self)
        self.threshold: float | None = None
        self.band: float | None = None
        self.current: ScanJob | None = None
        self._worker: ScanWorker | None = None
        self._thread: QThread | None = None
        self._accepting = True
        # () -> the open core Case or None: where the scan session records the job's rows.
        self.case_source: Any = None
        # files the window wrote (core.own_outputs): a scan skips them, with the reason
        self.own_outputs = OwnOutputs()
        models.model_ready.connect(self._dispatch)

    # -- queries
    @property
    def jobs(self) -> list[ScanJob]:
        return self.model.jobs

    @property
    def busy(self) -> bool:
        return self._thread is not None or any(
            j.status is JobStatus.PENDING for j in self.jobs)

    @property
    def running_thread(self) -> QThread | None:
        return self._thread

    def pending(self) -> list[ScanJob]:
        return [j for j in self.jobs if j.status is JobStatus.PENDING]

    # -- commands
    def enqueue(self, sources: list[str], recursive: bool,
                settings: ScanSettings | None = None) -> ScanJob | None:
        """Queue a request; an identical request still pending or running is not queued twice."""
        if not sources or not self._accepting:
            return None
        for job in self.jobs:
            if not job.status.finished and job.same_request(sources, recursive):
                self.message.emit(f"“{job.title}” is already queued")
                return None
        job = ScanJob(list(sources), recursive, settings or ScanSettings())
        self.model.add(job)
        log.info("queued job %d: %s (recursive=%s)", job.id, sources, recursive)
        self._dispatch()
        return job

    def cancel_running(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.message.emit(CANCELLING_MESSAGE)

    def cancel_pending(self) -> int:
        jobs = self.pending()
        for job in jobs:
            job.status = JobStatus.CANCELLED
            job.message = "cancelled before it started"
            self.model.changed(job)
            self.job_finished.emit(job)
        return len(jobs)

    def clear_finished(self) -> int:
        return self.model.remove_finished()

    def shutdown(self) -> None:
        """Stop everything and wait for the worker thread (the window is closing)."""
        self._accepting = False
        self.cancel_pending()
        if self._worker is not None:
            self._worker.cancel()
        if self._thread is not None:
            release_thread(self._thread, 60_000)
            self._thread, self._worker = None, None

    # -- dispatch
    @Slot()
    def _dispatch(self) -> None:
        if self._thread is not None or not self._accepting:
            return
        job = next(iter(self.pending()), None)
        if job is None:
            return
        if self.models.detector is None:
            if not self.models.is_loading:
                self.message.emit("No model is loaded: queued files will be scanned once one is.")
            return
        job.status = JobStatus.RUNNING
        job.started_at = time.monotonic()
        self.current = job
        case = self.case_source() if self.case_source is not None else None
        worker = ScanWorker(job, self.models.detector, self.registry, self.threshold, self.band,
                            case=case, own_outputs=self.own_outputs)
        worker.discovered.connect(self._on_discovered)
        worker.skipped.connect(self._on_skipped)
        worker.rows.connect(self._on_rows)
        worker.progress.connect(self._on_progress)
        worker.result.connect(self._on_done)
        worker.error.connect(self._on_error)
        worker.cancelled.connect(self._on_cancelled)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._thread = start_worker(worker, f"scan-job-{job.id}")
        self.model.changed(job)
        self.job_updated.emit(job)

    @Slot(int, int)
    def _on_discovered(self, n_files: int, duplicates: int) -> None:
        job = self.current
        job.total, job.duplicates = n_files, duplicates
        self.model.changed(job)
        self.job_updated.emit(job)

    @Slot(object)
    def _on_skipped(self, entries: list) -> None:
        """Skipped entries as they are met (discovery, then intake): counted on the job."""
        job = self.current
        if job is None:
            return
        job.skipped.extend(entries)
        self.model.changed(job)
        self.job_updated.emit(job)

    @Slot(object)
    def _on_rows(self, rows: list) -> None:
        job = self.current
        job.errors += sum(1 for r in rows if not r.ok)
        self.rows_ready.emit(rows, job.settings)

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        job = self.current
        job.progressed(done, total)
        self.model.changed(job)
        self.job_updated.emit(job)

    @Slot(object)
    def _on_done(self, results: list) -> None:
        job = self.current
        job.status = JobStatus.DONE
        job.done = len(results)
        if job.total == 0:
            job.message = "no new image files"

    @Slot(str)
    def _on_error(self, message: str) -> None:
        self.current.status = JobStatus.FAILED
        self.current.message = message
        self.message.emit(f"Scan failed: {message}")

    @Slot(object)
    def _on_cancelled(self, partial: Any) -> None:
        job = self.current
        job.status = JobStatus.CANCELLED
        job.done = len(partial or [])
        job.message = f"cancelled; {job.done} finished files kept"

    @Slot()
    def _on_finished(self) -> None:
        job = self.current
        if self._thread is not None:
            release_thread(self._thread)
        self._thread, self._worker, self.current = None, None, None
        if job is not None:
            job.finished_at = time.monotonic()
            if job.status is JobStatus.RUNNING:  # defensive: a worker always reports an outcome
                job.status = JobStatus.FAILED
            log.info("job %d %s: %d/%s files in %.1f s", job.id, job.status.value, job.done,
                     job.total, job.elapsed)
            self.model.changed(job)
            self.job_finished.emit(job)
        if self._accepting:
            self._dispatch()
        if self._thread is None:
            self.idle.emit()
