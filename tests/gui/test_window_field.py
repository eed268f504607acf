"""Issue 37: the analyst's window in the field -- never write into evidence (H1), lose no
work (M1), evidence text shown as plain text (M4), one threshold recorded (M5), the case
report's heading (M8)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from gui_helpers import wait_idle

from forensics_app.core.outputs import OutputOverEvidence
from forensics_app.gui.close_guard import CloseChoice
from helpers import make_images


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_h1_every_window_write_inside_a_scanned_folder_is_refused(make_window, qtbot,
                                                                  tmp_path, monkeypatch):
    from forensics_app.gui import results_export
    from forensics_app.gui.heatmap_view import HeatmapViewer

    ev = tmp_path / "ev"
    make_images(ev, 2)
    before = _digests(ev)
    window = make_window()
    window.scan_paths([ev])
    wait_idle(qtbot, window)
    assert window.results.rowCount() == 2
    # table export (CSV / JSONL and their .meta.json)
    for name in ("r.csv", "r.jsonl"):
        with pytest.raises(OutputOverEvidence, match="inside the evidence folder"):
            window.export_report(ev / name)
    # no-case HTML / PDF
    warned: list[str] = []
    monkeypatch.setattr(results_export.QMessageBox, "warning", lambda *a: warned.append(a[2]))
    assert results_export.export_results(window, ev / "r.html", scope="all") is None
    assert results_export.export_results(window, ev / "r.pdf", scope="all") is None
    assert len(warned) == 2 and all("inside the evidence folder" in w for w in warned)
    # the overlay, also through a symbolic link to the evidence folder
    viewer = HeatmapViewer(window)
    qtbot.addWidget(viewer)
    from forensics_app.gui.output_folders import refuse_over_evidence

    viewer.refuse_over_evidence = lambda out: refuse_over_evidence(window, {"overlay": out})
    assert not viewer.save_overlay(str(ev / "o.png"))
    assert "inside the evidence folder" in viewer.status.text()
    if os.name == "posix":
        os.symlink(ev, tmp_path / "alias")
        assert not viewer.save_overlay(str(tmp_path / "alias" / "o.png"))
    assert _digests(ev) == before  # nothing written, nothing changed
    out = window.export_report(tmp_path / "elsewhere" / "r.csv")
    assert out.exists()


def test_h1_case_report_inside_the_case_evidence_roots_is_refused(make_window, tiny_detector,
                                                                  tmp_path):
    from forensics_app.core.case import Case, CaseRecorder, detector_facts
    from forensics_app.core.scan import ScanOptions, scan_files

    ev = tmp_path / "ev"
    files = make_images(ev, 1)
    with Case.create(tmp_path / "case", name="Roots") as case:  # scanned by another session
        sid = case.begin_scan(detector_facts(tiny_detector), {"mode": "full"}, [str(ev)],
                              False, 1)
        rec = CaseRecorder(case, sid, batch_size=4)
        scan_files(files, tiny_detector, ScanOptions(batch_size=4), on_result=rec)
        rec.flush()
        case.finish_scan(sid)
    window = make_window()
    assert window.cases.open_case(tmp_path / "case") is not None  # roots from the case
    warned: list[str] = []
    window.cases._warn = lambda title, text: warned.append(text)
    assert window.report_jobs.start_case_report(ev / "report.html") is None
    assert window.cases.export_report(ev / "report.pdf") is None
    assert len(warned) == 2 and all("inside the evidence folder" in w for w in warned)
    assert sorted(p.name for p in ev.iterdir()) == ["img_000.png"]


def test_h1_a_saved_overlay_is_never_scanned_as_evidence(make_window, qtbot, tmp_path):
    from forensics_app.core.own_outputs import ACTION_OUTPUT_WRITTEN, SKIP_KIND

    ev, out = tmp_path / "ev", tmp_path / "out"
    make_images(ev, 1)
    make_images(out, 1, seed=7)  # a genuine image in the output folder is still scanned
    window = make_window()
    assert window.cases.new_case(tmp_path / "case") is not None
    window.scan_paths([ev])
    wait_idle(qtbot, window)
    window.table.selectRow(0)
    window.show_heatmap()
    viewer = window.heatmap_viewer
    qtbot.waitUntil(lambda: viewer.data is not None, timeout=60_000)
    assert viewer.save_overlay(str(out / "img_000_gradcam.png"))
    case = window.cases.case
    assert any(e.action == ACTION_OUTPUT_WRITTEN and e.params["what"] == "overlay PNG"
               for e in case.audit_entries())
    n_before = case.count_results()
    window.scan_paths([out])
    wait_idle(qtbot, window)
    job = window.queue.jobs[-1]
    assert [(Path(s.path).name, s.kind) for s in job.skipped] == \
        [("img_000_gradcam.png", SKIP_KIND)]
    assert "written by this application" in job.skipped[0].reason
    assert case.count_results() == n_before + 1  # only the genuine image
    assert not any(r.file_name.endswith("_gradcam.png") for r in window.results.records())
    viewer.close()
    # a later session: the case remembers what the window wrote
    window.cases.close_case()
    window.own_outputs.__init__()  # forget this session's notes
    window.cases.open_case(tmp_path / "case")
    assert window.own_outputs.reason(out / "img_000_gradcam.png")


@pytest.mark.parametrize("via", ["new", "open", "recent"])
def test_m1_switching_case_asks_before_discarding_unexported_results(make_window, qtbot,
                                                                     tmp_path, via):
    ev = tmp_path / "ev"
    make_images(ev, 2)
    window = make_window()
    asked: list[int] = []
    answer = [CloseChoice.CANCEL]
    window.close_guard.ask = lambda _p, n: (asked.append(n), answer[0])[1]
    window.scan_paths([ev])
    wait_idle(qtbot, window)
    assert window.results.rowCount() == 2
    from forensics_app.core.case import Case

    Case.create(tmp_path / "old", name="Old").close()

    def switch():
        if via == "new":
            return window.cases.new_case(tmp_path / f"new{len(asked)}")
        return window.cases.open_case(tmp_path / "old")

    if via == "recent":
        window.cases._remember(tmp_path / "old")
        window.cases._fill_recent()
        action = next(a for a in window.cases.recent_menu.actions() if a.isEnabled())
        switch = action.trigger  # noqa: F811 - the menu entry itself
    switch()
    assert asked == [2] and window.cases.case is None and window.results.rowCount() == 2
    answer[0] = CloseChoice.DISCARD
    switch()
    assert asked == [2, 2] and window.cases.case is not None


def _rendered(tip: str) -> str:
    from PySide6.QtGui import QTextDocument

    doc = QTextDocument()
    doc.setHtml(tip)
    return doc.toPlainText()


def test_m4_evidence_text_in_tooltips_and_labels_is_plain_text(make_window, qtbot):
    from PySide6.QtCore import Qt

    from forensics_app.core.results import ScanResult
    from forensics_app.core.session import ScanSettings
    from forensics_app.gui.heatmap_view import HeatmapViewer
    from forensics_app.gui.table_model import Column, ResultsTableModel

    name = "IMG_2041.jpg<font color=#ffffdc>.generated"
    model = ResultsTableModel(threshold=0.5, band=0.05)
    model.add_results([ScanResult(path=f"/ev/{name}", prob_fake=0.9, sha256="ab" * 32)],
                      ScanSettings())
    tip = model.data(model.index(0, int(Column.FILE)), Qt.ItemDataRole.ToolTipRole)
    assert name in _rendered(tip)  # every character shown, nothing taken as markup
    for col in Column:  # no column's tooltip is interpreted
        tip = model.data(model.index(0, int(col)), Qt.ItemDataRole.ToolTipRole)
        assert tip is None or tip.startswith("<qt>"), (col, tip)
    window = make_window()
    viewer = HeatmapViewer(window)
    qtbot.addWidget(viewer)
    viewer.show_pending(ScanResult(path=f"/ev/{name}", prob_fake=0.9), None, False)
    assert viewer.title.textFormat() == Qt.TextFormat.PlainText
    assert name in viewer.title.text()
    assert f"/ev/{name}" in _rendered(viewer.title.toolTip())


def test_m5_a_case_keeps_its_threshold_and_exports_record_it(make_window, qtbot, tmp_path):
    import json

    from forensics_app.core.case import ACTION_THRESHOLD_CHANGED

    ev = tmp_path / "ev"
    make_images(ev, 2)
    window = make_window()
    window.set_threshold(0.3, 0.02)  # this session's choice
    assert window.cases.new_case(tmp_path / "case") is not None
    case = window.cases.case
    # a new case takes the toolbar's point at once
    assert [e.params["threshold"] for e in case.audit_entries()
            if e.action == ACTION_THRESHOLD_CHANGED] == [0.3]
    window.scan_paths([ev])
    wait_idle(qtbot, window)
    window.cases.close_case()
    window.set_threshold(0.8, 0.1)  # another session's threshold left in the toolbar
    window.cases.open_case(tmp_path / "case")
    assert (window.threshold_spin.value(), window.band_spin.value()) == (0.3, 0.02)
    assert {r.threshold for r in window.results.records()} == {0.3}
    out = window.export_report(tmp_path / "out" / "r.csv")
    meta = json.loads(Path(f"{out}.meta.json").read_text(encoding="utf-8"))
    assert meta["threshold"] == 0.3 and meta["inconclusive_band"] == 0.02
    assert meta["thresholds"] == [{"threshold": 0.3, "inconclusive_band": 0.02}]
    from forensics_app.reports import export_case_report

    rep = export_case_report(window.cases.case, tmp_path / "out" / "case.csv", 0.3, 0.02)
    meta = json.loads(Path(f"{rep}.meta.json").read_text(encoding="utf-8"))
    assert meta["threshold"] == 0.3 and meta["thresholds"][0]["threshold"] == 0.3


def test_m8_case_report_heading_shows_number_examiner_description(make_window, tmp_path):
    from forensics_app.core.report import build_report, render_html
    from forensics_app.gui.case_dialog import CaseDetails, create_case

    window = make_window()
    details = CaseDetails("2026-0042", "E. <b>Ames</b>", "Seized phone, DCIM",
                          tmp_path / "cases" / "x")
    assert create_case(window, details) is not None
    html = render_html(build_report(window.cases.case))
    heading = html[html.index("<h1>"):html.index("class='sub'")]
    assert "Case report: <bdi>2026-0042</bdi>" in heading
    assert "Examiner:</b> <bdi>E. &lt;b&gt;Ames&lt;/b&gt;</bdi>" in heading
    assert "Seized phone, DCIM" in heading


def test_h3_viewer_shows_each_branch_map_by_weight(make_window, qtbot, tmp_path):
    """The semantic branch decides (weight 1, trace 0): the viewer lists it first and shows
    its occlusion map, labelled with its weight; the trace Grad-CAM stays one choice away,
    labelled as the trace branch with its weight."""
    import numpy as np

    from forensics_app.core.branches import Fusion
    from forensics_app.gui.branch_maps import caption

    class CentreBranch:
        def input_for(self, img):
            w, h = img.size
            return np.asarray(img.crop((w // 4, h // 4, w // 4 + 32, h // 4 + 32)),
                              np.float32).mean(axis=2)

        def logits(self, inputs):
            return np.array([float(x[:16, :16].mean()) / 10 for x in inputs])

    ev = tmp_path / "ev"
    make_images(ev, 1, size=(96, 96))
    window = make_window()
    det = window.models.detector
    det.branches = {"semantic": CentreBranch()}
    det.fusion = Fusion({"trace": 0.0, "semantic": 1.0}, 0.0)
    window.scan_paths([ev])
    wait_idle(qtbot, window)
    window.table.selectRow(0)
    window.show_heatmap()
    viewer = window.heatmap_viewer
    qtbot.waitUntil(lambda: viewer.data is not None, timeout=60_000)
    combo = viewer.branch_choice.combo
    items = [combo.itemText(i) for i in range(combo.count())]
    assert items == ["semantic branch (fusion weight +1.00): occlusion sensitivity",
                     "trace branch (fusion weight +0.00): Grad-CAM"]
    assert combo.currentIndex() == 0
    assert viewer.cam_caption.text().startswith("semantic branch (fusion weight +1.00)")
    rgba = viewer.data.branch_rgba["semantic"]
    assert rgba.shape[:2] == viewer.data.image.shape[:2]
    assert 0 < (rgba[..., 3] > 0).mean() < 1  # transparent outside what the branch sees
    assert any("occlusion sensitivity" in n for n in viewer.data.branch_notes["semantic"])
    combo.setCurrentIndex(1)
    assert viewer.cam_caption.text() == caption(viewer.data.roles[1])
    assert "trace branch (fusion weight +0.00), Grad-CAM" in viewer.cam_caption.text()
    combo.setCurrentIndex(0)
    out = tmp_path / "out" / "o.png"
    assert viewer.save_overlay(str(out))
    from PIL import Image

    assert "semantic branch" in Image.open(out).text["Description"]
    viewer.close()


def test_h2_camera_exif_without_declaration_is_a_weak_disagreement_and_notes_show(qapp):
    from PySide6.QtCore import Qt

    from forensics_app.core.metadata_disagreement import metadata_disagreement
    from forensics_app.core.provenance.records import ExifFindings, Provenance
    from forensics_app.core.results import ScanResult, Verdict
    from forensics_app.core.session import ScanSettings
    from forensics_app.gui.table_model import Column, ResultsFilterProxy, ResultsTableModel

    def camera(make, model):
        return Provenance(exif=ExifFindings(make=make, model=model))

    rows = [
        ScanResult(path="/ev/iphone.jpg", prob_fake=0.88, provenance=camera("Apple", "iPhone 7")),
        ScanResult(path="/ev/real.jpg", prob_fake=0.10, provenance=camera("NIKON", "NIKON D200")),
        ScanResult(path="/ev/bare.png", prob_fake=0.95, provenance=Provenance()),
        ScanResult(path="/ev/unsure.png", prob_fake=0.52,
                   notes=["out of the detector's validated domains (face crop)"]),
    ]
    model = ResultsTableModel(threshold=0.5, band=0.05)
    model.add_results(rows, ScanSettings())
    proxy = ResultsFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_provenance("disagree")
    assert [r.file_name for r in proxy.visible_records()] == ["iphone.jpg"]
    clash = metadata_disagreement(model.record(0).provenance, model.record(0).verdict)
    assert clash.startswith("weak: EXIF names a camera (Apple iPhone 7)")
    tip = _rendered(model.data(model.index(0, int(Column.PROVENANCE)),
                               Qt.ItemDataRole.ToolTipRole))
    assert "weak: EXIF names a camera" in tip
    assert model.record(3).verdict is Verdict.INCONCLUSIVE
    tip = _rendered(model.data(model.index(3, int(Column.VERDICT)), Qt.ItemDataRole.ToolTipRole))
    assert "Why Inconclusive: out of the detector's validated domains (face crop)" in tip


@pytest.mark.parametrize("avail", [(1366, 728), (910, 472)])  # 1366×768 at 1× and at 1.5×
def test_m6_window_fits_a_small_screen_and_shows_p_generated(make_window, qtbot, avail):
    from PySide6.QtCore import QSize

    from forensics_app.gui.compact_layout import apply_compact_layout
    from forensics_app.gui.table_model import Column

    window = make_window()
    size = QSize(*avail)
    apply_compact_layout(window, size)
    need = window.minimumSizeHint()
    assert need.width() <= size.width() and need.height() <= size.height(), need
    window.resize(size)
    qtbot.wait(50)
    header = window.table.horizontalHeader()
    right = header.sectionViewportPosition(int(Column.PROB)) + header.sectionSize(int(Column.PROB))
    assert right <= window.table.viewport().width(), (right, window.table.viewport().width())


def test_m7_tab_reaches_review_filters_toolbar_and_ctrl_e_works_in_the_filter(
        make_window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QToolButton

    make_images(tmp_path / "ev", 2)
    window = make_window()
    assert window.cases.new_case(tmp_path / "case") is not None
    window.scan_paths([tmp_path / "ev"])
    wait_idle(qtbot, window)
    window.table.selectRow(0)
    window.review_dock.raise_()
    window.activateWindow()
    window.table.setFocus()
    seen = []
    for _ in range(80):
        qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_Tab)
        seen.append(QApplication.focusWidget())
    queue_table = window.queue_view.table
    run = longest = 0
    for w in seen:
        run = run + 1 if w is queue_table else 0
        longest = max(longest, run)
    assert longest <= 1  # one stop, never cell by cell
    assert window.text_filter in seen
    assert any(isinstance(w, QToolButton) and w.parent() is not None
               and w.parent().objectName() == "main-toolbar" for w in seen)
    panel = window.reviews.panel
    assert any(w is not None and panel.isAncestorOf(w) for w in seen)
    from PySide6.QtWidgets import QTabBar

    assert any(isinstance(w, QTabBar) for w in seen)  # the dock tabs: arrows switch them
    # Ctrl+E with the filter box focused opens the export
    exported = []
    monkeypatch.setattr(window, "choose_export_path", lambda: exported.append(1))
    window.act_export.triggered.disconnect()
    window.act_export.triggered.connect(window.choose_export_path)
    window.text_filter.setFocus()
    qtbot.keyClick(window.text_filter, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert exported == [1]
