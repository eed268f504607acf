"""Provenance in the window: the column, its filter, the disagreement highlight, the panel."""

from __future__ import annotations

from gui_helpers import drop, wait_idle
from provenance_samples import (
    c2pa_signed,
    jpeg_camera_declared,
    make_test_ca,
    png_a1111,
    png_with_text,
)
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from forensics_app.core.results import Verdict
from forensics_app.gui.table_model import DISAGREE_COLOUR, Column


def _scan(window, qtbot, folder, files):
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    drop(window, [folder])
    wait_idle(qtbot, window)
    return {r.file_name: i for i, r in enumerate(window.results.records())}


def test_provenance_column_filter_highlight_and_panel(make_window, qtbot, tmp_path):
    window = make_window()
    rows = _scan(window, qtbot, tmp_path / "case", {
        "a1111.png": png_a1111(), "camera.jpg": jpeg_camera_declared(), "plain.png": png_with_text({})})
    model, proxy = window.results, window.proxy
    camera = model.record(rows["camera.jpg"])
    cell = model.index(rows["camera.jpg"], Column.PROVENANCE)
    assert cell.data() == camera.provenance.summary == (
        "XMP DigitalSourceType digitalCapture (unsigned claim) · EXIF names a camera: "
        "Canon EOS 5D Mark IV, "
        "DateTimeOriginal (capture) 2019:06:01 14:03:22")

    window.provenance_filter.setCurrentIndex(window.provenance_filter.findData("declared"))
    assert [r.file_name for r in proxy.visible_records()] == ["a1111.png"]

    # every row judged AI-generated: the camera photo's metadata now disagrees
    window.set_threshold(0.0, 0.0)
    assert model.record(rows["camera.jpg"]).verdict is Verdict.AI_GENERATED
    window.provenance_filter.setCurrentIndex(window.provenance_filter.findData("disagree"))
    assert [r.file_name for r in proxy.visible_records()] == ["camera.jpg"]
    brush = model.index(rows["camera.jpg"], Column.PROVENANCE).data(
        role=Qt.ItemDataRole.BackgroundRole)
    assert brush.color().name() == DISAGREE_COLOUR
    assert "detector says AI-generated" in model.index(
        rows["camera.jpg"], Column.PROVENANCE).data(
        role=Qt.ItemDataRole.ToolTipRole)

    window.provenance_filter.setCurrentIndex(0)
    window.select_source_row(rows["camera.jpg"])
    panel = window.provenance_panel
    assert panel.record.path == camera.path
    assert "EXIF names a camera: Canon EOS 5D Mark IV" in panel.title.text()
    assert not panel.warning.isHidden() and "detector says AI-generated" in panel.warning.text()
    groups = [panel.tree.topLevelItem(i).text(0) for i in range(panel.tree.topLevelItemCount())]
    assert groups[:5] == ["C2PA Content Credentials", "IPTC / XMP", "IPTC-IIM", "EXIF",
                          "Generator text"]
    panel.copy_all()
    text = QGuiApplication.clipboard().text()
    assert "[EXIF]" in text and "Make: Canon" in text and "GPS present: yes" in text

    # back to the model's threshold: no disagreement, and the score never moved
    window.set_threshold(1.0, 0.0)
    assert model.record(rows["camera.jpg"]).prob_fake == camera.prob_fake
    assert panel.warning.isHidden()
    window.select_source_row(rows["a1111.png"])
    assert not panel.warning.isHidden() and "detector says Real" in panel.warning.text()


def test_trust_anchor_setting_reaches_the_scan(make_window, qtbot, tmp_path):
    ca = make_test_ca()
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(ca[2])
    window = make_window()
    window.set_trust_anchors(str(anchors))
    assert window.settings.c2pa_trust_anchors == str(anchors)
    rows = _scan(window, qtbot, tmp_path / "signed", {"signed.jpg": c2pa_signed("jpeg", ca=ca)[0]})
    record = window.results.record(rows["signed.jpg"])
    assert record.provenance.c2pa.trust == "trusted"
    assert record.provenance.c2pa.trust_anchors.startswith(str(anchors))
