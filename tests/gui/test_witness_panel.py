"""The Witnesses dock: follows the selected row, computes on demand off the UI thread, shows
each witness's finding and map, and can be cancelled."""

from __future__ import annotations

import io

import numpy as np
from gui_helpers import drop, wait_idle
from PIL import Image

from forensics_app.gui.witness_panel import WitnessWorker


def _textured_jpeg(seed: int, moved: bool) -> bytes:
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).resize(
        (320, 240), Image.Resampling.BICUBIC)
    if moved:
        im.paste(im.crop((20, 30, 120, 130)), (200, 110))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_witness_dock_computes_for_the_selected_file(make_window, qtbot, tmp_path):
    window = make_window()
    folder = tmp_path / "ev"
    folder.mkdir()
    (folder / "moved.jpg").write_bytes(_textured_jpeg(1, True))
    drop(window, [folder])
    wait_idle(qtbot, window)
    assert window.witnesses.dock.windowTitle() == "Witnesses"
    window.select_source_row(0)
    panel = window.witnesses.panel
    assert window.witnesses.record.file_name == "moved.jpg"
    assert panel.compute_button.isEnabled() and panel.grid.count() == 0
    window.witnesses.compute()
    qtbot.waitUntil(lambda: window.witnesses._thread is None, timeout=60_000)
    assert panel.grid.count() == 5
    texts = [w.text() for w in panel.tiles.findChildren(type(panel.title))]
    assert "clone: ⚠ detected" in texts
    assert any("IJG/libjpeg standard tables at quality 92" in t for t in texts)


def test_witness_worker_cancelled(qtbot, tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(_textured_jpeg(2, False))
    worker = WitnessWorker(str(path), None)
    worker.cancel()
    with qtbot.waitSignal(worker.cancelled, timeout=30_000):
        worker.run()  # in this thread: the flag is checked before the first witness
    other = WitnessWorker(str(tmp_path / "missing.jpg"), None)
    with qtbot.waitSignal(other.error, timeout=30_000) as blocker:
        other.run()
    assert "missing.jpg" in blocker.args[0]


def test_add_map_to_case_needs_a_case(make_window, qtbot, tmp_path):
    from forensics_app.core.results import ScanResult
    from forensics_app.core.witnesses import analyse_bytes

    window = make_window()
    controller = window.witnesses
    (clone,) = analyse_bytes(_textured_jpeg(3, True), ["clone"])
    controller.record = ScanResult(str(tmp_path / "x.jpg"), sha256="cd" * 32)
    controller.panel.show_results([clone], [])
    buttons = [b for b in controller.panel.tiles.findChildren(type(controller.panel.compute_button))
               if b.text() == "Add map to case"]
    assert len(buttons) == 1
    assert window.cases.case is None
    buttons[0].click()
    assert "Open or create a case" in controller.panel.status.text()
    case = window.cases.new_case(tmp_path / "case")
    assert case is not None
    buttons[0].click()
    assert "audit entry" in controller.panel.status.text()
    (entry,) = [e for e in case.audit_entries() if e.action == "witness exhibit added"]
    assert entry.params["witness"] == "clone" and entry.params["evidence_sha256"] == "cd" * 32
    assert (tmp_path / "case" / "exhibits" / entry.params["file"]).is_file()
