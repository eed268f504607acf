"""Issue 11 items 15-19: the desktop app neither alarms falsely nor risks the evidence."""

from __future__ import annotations

from gui_helpers import wait_idle
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from forensics_app.gui.model_manager import LoadRequest
from helpers import make_images

MODEL_TIMEOUT_MS = 60_000


def test_loading_model_is_shown_not_a_missing_model_alarm(make_window, qtbot, tiny_checkpoint):
    """Item 15: while the model loads, no banner says that none is available."""
    window = make_window()
    window.models.info = window.models.detector = None  # as on a fresh start
    seen = []
    window.models.loading.connect(lambda _path: seen.append(
        (window.models.is_loading, window.banner.isVisible(), window.model_label.text())))
    with qtbot.waitSignal(window.models.model_ready, timeout=MODEL_TIMEOUT_MS):
        window.models.load(LoadRequest(str(tiny_checkpoint), "cpu"))
    assert seen, "no loading signal"
    loading, banner_shown, label = seen[0]
    assert loading and not banner_shown, seen
    assert label.startswith("Loading"), label
    assert "No detector model" not in window.banner_text.text()


def _drag(window, paths, actions, proposed):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.rect().center())
    args = (pos, actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    events = []
    for cls in (QDragEnterEvent, QDragMoveEvent, QDropEvent):
        ev = cls(*args) if cls is not QDropEvent else QDropEvent(*args)
        ev.setDropAction(proposed)
        QApplication.sendEvent(window, ev)
        events.append(ev)
        if not ev.isAccepted():
            break
    return events


def test_drops_are_taken_as_copy_never_move(make_window, qtbot, tmp_path):
    """Item 16: a file manager told "moved" may delete the source, which is evidence."""
    window = make_window()
    files = make_images(tmp_path / "ev", 1)
    Move, Copy, Link = (Qt.DropAction.MoveAction, Qt.DropAction.CopyAction,
                        Qt.DropAction.LinkAction)
    events = _drag(window, files, Move | Copy, proposed=Move)
    assert len(events) == 3 and all(e.isAccepted() for e in events)
    assert all(e.dropAction() == Copy for e in events), [e.dropAction() for e in events]
    wait_idle(qtbot, window)
    assert files[0].exists() and len(window.results.records()) == 1

    events = _drag(window, files, Move | Link, proposed=Move)
    assert all(e.dropAction() == Link for e in events)
    wait_idle(qtbot, window)

    events = _drag(window, files, Move, proposed=Move)  # a move or nothing: nothing
    assert len(events) == 1 and not events[0].isAccepted()


def test_save_dialogs_never_open_in_a_scanned_folder(make_window, qtbot, tmp_path, monkeypatch):
    """Item 17: Export report / Save overlay start in documents (or the case), not evidence."""
    import platformdirs

    from forensics_app.gui.output_folders import output_folder

    docs = tmp_path / "docs"
    docs.mkdir()
    monkeypatch.setattr(platformdirs, "user_documents_dir", lambda: str(docs))
    window = make_window()
    folder = tmp_path / "ev"
    make_images(folder, 1)
    window.scan_paths([str(folder)])
    wait_idle(qtbot, window)
    window.last_output_folder = str(folder / "sub")  # even a remembered one inside evidence
    (folder / "sub").mkdir()
    assert output_folder(window) == docs
    window.last_output_folder = str(tmp_path / "reports")
    (tmp_path / "reports").mkdir()
    assert output_folder(window) == tmp_path / "reports"


def test_saved_overlay_carries_its_provenance(qapp, tmp_path):
    """Item 17: file name, SHA-256, model id and score in PNG text chunks and a caption."""
    from PIL import Image
    from PySide6.QtGui import QColor, QImage

    from forensics_app.core.results import ScanResult, Verdict
    from forensics_app.gui.overlay_export import captioned_overlay

    record = ScanResult(path=str(tmp_path / "photo.jpg"), sha256="ab" * 32, prob_fake=0.8125,
                        verdict=Verdict.AI_GENERATED, model_id="tiny.pt@0123456789ab")
    image = QImage(120, 90, QImage.Format.Format_RGB32)
    image.fill(QColor("red"))
    out = captioned_overlay(image, record)
    assert out.width() == 120 and out.height() > 90
    path = tmp_path / "overlay.png"
    assert out.save(str(path), "PNG")
    with Image.open(path) as saved:
        text = dict(saved.text)
    assert text["Source"] == "photo.jpg" and text["SHA-256"] == "ab" * 32
    assert text["Model"] == "tiny.pt@0123456789ab" and text["P(generated)"] == "0.8125"
