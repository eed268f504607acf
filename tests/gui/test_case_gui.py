"""The window and cases: open shows the rows, scans go to the case, resume is offered."""

from __future__ import annotations

from pathlib import Path

import pytest
from gui_helpers import wait_idle

from forensics_app.core.case import Case, CaseRecorder, detector_facts
from forensics_app.core.scan import ScanOptions, discover_files, scan_files


def _case_with_rows(folder: Path, detector, files, finish: bool = True) -> None:
    with Case.create(folder, name="Op Harbour") as case:
        scan_id = case.begin_scan(detector_facts(detector), {"mode": "full"},
                                  [str(f) for f in files], False, len(files))
        rec = CaseRecorder(case, scan_id, batch_size=4)
        scan_files(files, detector, ScanOptions(batch_size=4), on_result=rec)
        rec.flush()
        if finish:
            case.finish_scan(scan_id)


def test_open_case_shows_its_rows_and_names_it(make_window, tiny_detector, image_folder,
                                               tmp_path):
    files = discover_files([image_folder])
    _case_with_rows(tmp_path / "case", tiny_detector, files)
    window = make_window()
    assert window.cases.label.text() == "No case"
    assert window.cases.open_case(tmp_path / "case") is not None
    assert window.results.rowCount() == len(files)
    assert sorted(r.path for r in window.results.records()) == sorted(map(str, files))
    assert window.cases.label.text() == "Case: Op Harbour"
    assert "Op Harbour" in window.windowTitle()
    assert window.cases.recent_cases()[0] == str((tmp_path / "case").absolute())
    window.cases.close_case()
    assert window.results.rowCount() == 0 and window.cases.label.text() == "No case"


def test_scan_goes_to_the_case_and_rescan_skips(make_window, image_folder, tmp_path, qtbot):
    window = make_window()
    case = window.cases.new_case(tmp_path / "new-case")
    assert case is not None
    window.scan_paths([str(image_folder)])
    wait_idle(qtbot, window)
    assert case.count_results() == 8
    assert [s.status for s in case.scans()] == ["finished"]
    actions = [a.action for a in case.audit_entries()]
    assert actions[0] == "case created" and "checkpoint loaded" in actions
    assert actions[-2:] == ["scan started", "scan finished"]
    # Threshold changes are audited (debounced).
    window.set_threshold(0.3)
    window.cases._flush_threshold()
    assert case.audit_entries()[-1].action == "threshold changed"
    # Reopen: the table comes from the case; rescanning the folder adds nothing.
    window.cases.close_case()
    window.cases.open_case(tmp_path / "new-case")
    assert window.results.rowCount() == 8
    window.scan_paths([str(image_folder)])
    wait_idle(qtbot, window)
    assert window.cases.case.count_results() == 8 and window.results.rowCount() == 8
    assert window.cases.case.verify().ok


def test_interrupted_scan_is_offered_for_resume(make_window, tiny_detector, image_folder,
                                                tmp_path, qtbot):
    files = discover_files([image_folder])
    _case_with_rows(tmp_path / "case", tiny_detector, files[:3], finish=False)
    with Case.open(tmp_path / "case") as case:  # what a window killed mid-scan leaves
        sid = case.begin_scan(detector_facts(tiny_detector), {"mode": "full"},
                              [str(image_folder)], True, len(files))
        assert sid == 2
    window = make_window()
    asked = []
    window.cases.ask = lambda title, text: asked.append(text) or True
    window.cases.open_case(tmp_path / "case")
    assert asked and "Resume it?" in asked[0]
    wait_idle(qtbot, window)
    case = window.cases.case
    assert sorted(r.path for r in case.results()) == sorted(map(str, files))
    assert window.results.rowCount() == len(files)


def test_case_reports_from_the_window(make_window, tiny_detector, image_folder, tmp_path):
    files = discover_files([image_folder])[:3]
    _case_with_rows(tmp_path / "case", tiny_detector, files)
    window = make_window()
    window.cases.open_case(tmp_path / "case")
    window.set_threshold(0.0, 0.0)  # everything flagged: a Grad-CAM page per image
    html = window.cases.export_report(tmp_path / "out" / "report.html")
    text = html.read_text(encoding="utf-8")
    assert text.count("data:image/jpeg;base64,") >= len(files) * 2
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert all(r.sha256 in text for r in window.results.records())
    assert "Grad-CAM overlay" in text and "Audit log" in text and "Integrity: intact" in text
    pdf = window.cases.export_report(tmp_path / "out" / "report.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000
    assert window.cases.case.audit_entries()[-1].action == "report exported"


def test_names_are_shown_escaped_in_the_table(qtbot):
    from PySide6.QtCore import Qt

    from forensics_app.core.results import ScanResult
    from forensics_app.gui.records import ScanSettings
    from forensics_app.gui.table_model import Column, ResultsTableModel

    model = ResultsTableModel(threshold=0.5, band=0.05)
    model.add_results([ScanResult(path="/x/invoice\u202egnp.exe\x1b[31m", prob_fake=0.9)],
                      ScanSettings())
    index = model.index(0, int(Column.FILE))
    shown = model.data(index, Qt.ItemDataRole.DisplayRole)
    tip = model.data(index, Qt.ItemDataRole.ToolTipRole)
    assert shown == "invoice\\u202egnp.exe\\x1b[31m"
    assert "\u202e" not in tip and "\x1b" not in tip


def test_pdf_shows_the_hash_of_a_bidi_named_file_in_order(qapp, tmp_path, tiny_checkpoint):
    """U+202E in a name must not print the file's SHA-256 reversed (issue 21)."""
    import shutil
    import subprocess

    from forensics_app.cli import main
    from forensics_app.reports import export_case_report
    from helpers import make_image

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    images = tmp_path / "images"
    images.mkdir()
    name = "invoice\u202egnp.exe"
    make_image((64, 64), 3).save(images / name, format="PNG")
    make_image((64, 64), 4).save(images / "plain.png", format="PNG")
    case_dir = tmp_path / "case"
    assert main([str(images), "--model", str(tiny_checkpoint), "--device", "cpu", "--case",
                 str(case_dir), "-q"]) == 0
    out = export_case_report(case_dir, tmp_path / "r.pdf", threshold=0.0, band=0.0,
                             gradcam=False)
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True,
                          text=True, check=True).stdout
    with Case.open(case_dir, read_only=True) as case:
        sha = next(r.sha256 for r in case.results() if r.file_name == name)
    flat = text.replace("\n", "").replace(" ", "")
    assert sha in flat and sha[::-1] not in flat  # whole, in order, not mirrored
    assert "\u202e" not in text and "invoice\\u202egnp.exe" in flat
