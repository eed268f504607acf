"""Thumbnails for the results table, made lazily for the rows the view actually paints."""

from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QImage, QPixmap

from forensics_app.gui.workers import ThumbnailWorker, release_thread, start_worker


class ThumbnailCache(QObject):
    """``pixmap(path)`` returns a cached preview or None and schedules it in a worker."""

    ready = Signal(str)

    def __init__(self, size: int = 48, capacity: int = 2000, batch: int = 32,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.size, self.capacity, self.batch = size, capacity, batch
        self._cache: OrderedDict[str, QPixmap] = OrderedDict()
        self._wanted: OrderedDict[str, None] = OrderedDict()
        self._worker: ThumbnailWorker | None = None
        self._thread: QThread | None = None
        self._enabled = True
        self._kick = QTimer(self)
        self._kick.setSingleShot(True)
        self._kick.timeout.connect(self._start_next)

    def pixmap(self, path: str) -> QPixmap | None:
        pm = self._cache.get(path)
        if pm is not None:
            self._cache.move_to_end(path)
            return None if pm.isNull() else pm
        if path not in self._wanted:
            self._wanted[path] = None
            self._kick.start(0)
        return None

    def forget(self, paths) -> None:
        for p in paths:
            self._cache.pop(p, None)
            self._wanted.pop(p, None)

    @Slot()
    def _start_next(self) -> None:
        if self._thread is not None or not self._wanted or not self._enabled:
            return
        paths = []
        while self._wanted and len(paths) < self.batch:
            paths.append(self._wanted.popitem(last=False)[0])
        self._worker = ThumbnailWorker(paths, self.size)
        self._worker.thumbnail.connect(self._on_thumbnail)
        self._worker.finished.connect(self._on_finished)
        self._thread = start_worker(self._worker, "thumbnails")

    @Slot(str, QImage)
    def _on_thumbnail(self, path: str, image: QImage) -> None:
        self._cache[path] = QPixmap.fromImage(image) if not image.isNull() else QPixmap()
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        self.ready.emit(path)

    @Slot()
    def _on_finished(self) -> None:
        if self._thread is not None:
            release_thread(self._thread)
        self._thread, self._worker = None, None
        self._start_next()

    def shutdown(self) -> None:
        self._enabled = False
        self._kick.stop()
        self._wanted.clear()
        if self._worker is not None:
            self._worker.cancel()
        if self._thread is not None:
            release_thread(self._thread)
            self._thread, self._worker = None, None
