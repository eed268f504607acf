"""Owns the loaded detector: loads it (and torch) in a worker, swaps it in when ready.

The detector object is handed to each scan worker; a new one can be loading while a scan
still uses the previous instance, so changing device or checkpoint never blocks a scan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from forensics_app.gui.records import EnvInfo, ModelInfo
from forensics_app.gui.workers import ModelLoadWorker, release_thread, start_worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadRequest:
    path: str | None
    device: str = "auto"
    fake_index: int = 1
    bundled: bool = False


class ModelManager(QObject):
    loading = Signal(str)  # what is being loaded
    model_ready = Signal(object)  # ModelInfo
    model_failed = Signal(str)
    environment_ready = Signal(object)  # EnvInfo
    load_finished = Signal()  # whatever the outcome; is_loading is False again

    def __init__(self, threads: int | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.threads = threads
        self.detector: Any = None
        self.info: ModelInfo | None = None
        self.env: EnvInfo | None = None
        self.last_error: str | None = None
        # model_id -> (path, fake_index): lets a heatmap use the model that scored the row.
        self.known_models: dict[str, tuple[str, int]] = {}
        self._worker: ModelLoadWorker | None = None
        self._thread: QThread | None = None
        self._request: LoadRequest | None = None
        self._pending: LoadRequest | None = None

    @property
    def is_loading(self) -> bool:
        return self._thread is not None

    def load(self, request: LoadRequest) -> None:
        """Load a checkpoint (``path=None``: only import torch and probe the devices)."""
        if self._thread is not None:
            self._pending = request  # the latest request wins
            return
        self._request = request
        self._worker = ModelLoadWorker(request.path, request.device, request.fake_index,
                                       request.bundled, self.threads)
        self._worker.environment.connect(self._on_environment)
        self._worker.result.connect(self._on_result)
        self._worker.error.connect(self._on_error)
        self._worker.finished.connect(self._on_finished)
        # The thread is recorded before anyone hears of the load, so is_loading is already
        # True for them ("Loading model…", not "No detector model is available").
        self._thread = start_worker(self._worker, "model-load")
        self.loading.emit(request.path or "")

    def reload_on(self, device: str) -> None:
        """Put the current checkpoint on another device."""
        if self.info is not None:
            self.load(LoadRequest(self.info.path, device, self.info.fake_index, self.info.bundled))

    @Slot(object)
    def _on_environment(self, env: EnvInfo) -> None:
        self.env = env
        self.environment_ready.emit(env)

    @Slot(object)
    def _on_result(self, value: Any) -> None:
        if value is None:
            return
        self.detector, self.info = value
        self.last_error = None
        self.known_models[self.info.model_id] = (self.info.path, self.info.fake_index)
        self.model_ready.emit(self.info)

    @Slot(str)
    def _on_error(self, message: str) -> None:
        self.last_error = message
        log.warning("model load failed: %s", message)
        self.model_failed.emit(message)

    @Slot()
    def _on_finished(self) -> None:
        if self._thread is not None:
            release_thread(self._thread)
        self._thread, self._worker = None, None
        pending, self._pending = self._pending, None
        if pending is not None:
            self.load(pending)
        else:
            self.load_finished.emit()

    def shutdown(self) -> None:
        self._pending = None
        if self._thread is not None:
            # Loading a checkpoint cannot be interrupted half-way; it finishes quickly.
            release_thread(self._thread, 60_000)
            self._thread, self._worker = None, None
