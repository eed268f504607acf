"""GUI fixtures: a main window on the tiny checkpoint, real drop events, thread hygiene."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication

from forensics_app.gui.close_guard import CloseChoice
from forensics_app.gui.main_window import MainWindow
from forensics_app.gui.settings import AppSettings
from forensics_app.gui.workers import live_threads

MODEL_TIMEOUT_MS = 60_000


@pytest.fixture(autouse=True)
def no_thread_left_running(qapp):
    """Fail any test that leaves a worker QThread (or a scan's intake thread) running.

    Runs after pytest-qt has closed the test's widgets (which stops their workers).
    """
    yield
    deadline = time.monotonic() + 2.0
    while (live_threads() or _intake_threads()) and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    left = [t.objectName() for t in live_threads()] + [t.name for t in _intake_threads()]
    assert not left, f"test left threads running: {left}"
    # Finalise this test's Qt wrappers here, on the GUI thread: left to a later collection
    # they can be freed from a worker thread (a model-load QThread), which crashed the suite.
    gc.collect()


def _intake_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("intake")]


@pytest.fixture
def make_window(qtbot, tiny_checkpoint, tmp_path):
    """Build a shown main window that uses the tiny checkpoint, with settings in tmp_path."""

    def make(model_path: Path | None = tiny_checkpoint, wait_model: bool = True,
             settings: AppSettings | None = None) -> MainWindow:
        window = MainWindow(
            settings=settings or AppSettings(last_folder=str(tmp_path)),
            settings_path=tmp_path / "settings.json",
            model_path=str(model_path) if model_path else None,
            threads=2,
        )
        # Closing at teardown must not block on the unexported-results question.
        window.close_guard.ask = lambda _parent, _n: CloseChoice.DISCARD
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        window.start()
        if wait_model and model_path is not None:
            qtbot.waitUntil(lambda: bool(window.models.info or window.models.last_error),
                            timeout=MODEL_TIMEOUT_MS)
            assert window.models.info is not None, window.models.last_error
        return window

    return make
