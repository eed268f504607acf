"""Issue 22 items 1-2 in the window: every GUI output (table export, case report, overlay PNG)
is refused when it *is* a scanned file -- a hard link or the target of a scanned symbolic
link -- by the CLI's device+inode check, and the evidence keeps its bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from gui_helpers import wait_idle

from forensics_app.core.case import Case, CaseRecorder, detector_facts
from forensics_app.core.outputs import OutputOverEvidence
from forensics_app.core.scan import ScanOptions, scan_files
from forensics_app.gui.output_folders import refuse_over_evidence
from helpers import make_images

pytestmark = pytest.mark.skipif(os.name != "posix", reason="hard and symbolic links")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def linked(tmp_path):
    """``ev/`` holds two images, one of them a symbolic link to ``data/x.png``; ``out/``
    holds a hard link to the other under a report's name."""
    real = make_images(tmp_path / "ev", 1)[0]
    target = make_images(tmp_path / "data", 1)[0].rename(tmp_path / "data" / "x.png")
    os.symlink(target, tmp_path / "ev" / "x.png")
    (tmp_path / "out").mkdir()
    return {"real": real, "target": target, "out": tmp_path / "out",
            "digests": {real: _digest(real), target: _digest(target)}}


def _unchanged(linked) -> bool:
    return all(_digest(p) == d for p, d in linked["digests"].items())


def test_table_export_over_a_hard_link_or_a_symlink_target_is_refused(make_window, qtbot,
                                                                      linked):
    window = make_window()
    window.scan_paths([linked["real"].parent])
    wait_idle(qtbot, window)
    assert window.results.rowCount() == 2
    hard = linked["out"] / "r.csv"
    os.link(linked["real"], hard)
    for out in (hard, linked["target"], linked["out"] / ".." / "ev" / "x.png"):
        with pytest.raises(OutputOverEvidence, match="same file as the input"):
            window.export_report(out)
    assert _unchanged(linked) and os.stat(linked["real"]).st_nlink == 2
    ok = window.export_report(linked["out"] / "fine.csv")  # an ordinary path still works
    assert ok.read_text(encoding="utf-8").count("\n") >= 3


def test_case_reports_over_evidence_are_refused_in_the_window_and_the_worker(
        make_window, qtbot, tiny_detector, linked, tmp_path):
    files = [linked["real"], linked["real"].parent / "x.png"]
    with Case.create(tmp_path / "case", name="Links") as case:
        sid = case.begin_scan(detector_facts(tiny_detector), {"mode": "full"},
                              [str(f) for f in files], False, len(files))
        rec = CaseRecorder(case, sid, batch_size=4)
        scan_files(files, tiny_detector, ScanOptions(batch_size=4), on_result=rec)
        rec.flush()
        case.finish_scan(sid)
    window = make_window()
    window.cases.open_case(tmp_path / "case")
    warned: list[str] = []
    window.cases._warn = lambda title, text: warned.append(f"{title}: {text}")
    hard = linked["out"] / "report.html"
    os.link(linked["real"], hard)
    assert window.cases.export_report(hard) is None
    assert window.cases.export_report(linked["target"]) is None
    assert window.report_jobs.start_case_report(linked["out"] / "report.html") is None
    assert len(warned) == 3 and all("same file as the input" in w for w in warned), warned
    assert window.report_jobs._thread is None  # nothing started, nothing logged as exported
    assert _unchanged(linked)


def test_cli_case_report_over_evidence_is_refused(tiny_detector, linked, tmp_path, capsys):
    from forensics_app.case_cli import write_report

    with Case.create(tmp_path / "case", name="Links") as case:
        sid = case.begin_scan(detector_facts(tiny_detector), {"mode": "full"},
                              [str(linked["real"])], False, 1)
        rec = CaseRecorder(case, sid, batch_size=4)
        scan_files([linked["real"]], tiny_detector, ScanOptions(), on_result=rec)
        rec.flush()
        case.finish_scan(sid)
    hard = linked["out"] / "r.csv"
    os.link(linked["real"], hard)
    assert write_report(tmp_path / "case", hard) == 1
    assert "same file as the input" in capsys.readouterr().err
    assert _unchanged(linked)


def test_overlay_png_over_evidence_is_refused_and_never_truncates(make_window, qtbot, linked):
    from forensics_app.core.results import ScanResult
    from forensics_app.gui.heatmap_view import HeatmapViewer

    window = make_window()
    window.scan_paths([linked["real"].parent])
    wait_idle(qtbot, window)
    viewer = HeatmapViewer(window)
    qtbot.addWidget(viewer)
    viewer.record = ScanResult(path=str(linked["real"].parent / "x.png"))
    viewer.refuse_over_evidence = lambda out: refuse_over_evidence(window, {"overlay": out})
    hard = linked["out"] / "overlay.png"
    os.link(linked["real"], hard)
    assert not viewer.save_overlay(str(linked["target"]))  # the shown image's own file
    assert "same file as the input" in viewer.status.text()
    assert not viewer.save_overlay(str(hard))  # another scanned file, via the window
    assert "same file as the input" in viewer.status.text()
    assert _unchanged(linked)


def test_no_case_html_pdf_export_over_evidence_is_refused(make_window, qtbot, linked,
                                                          monkeypatch):
    from forensics_app.gui import results_export

    window = make_window()
    window.scan_paths([linked["real"].parent])
    wait_idle(qtbot, window)
    warned = []
    monkeypatch.setattr(results_export.QMessageBox, "warning",
                        lambda *a: warned.append(a[2]))
    started = []
    monkeypatch.setattr(window.report_jobs, "start_results_report",
                        lambda req: started.append(req) or req)
    hard = linked["out"] / "r.html"
    os.link(linked["real"], hard)
    assert results_export.export_results(window, hard, scope="all") is None
    assert results_export.export_results(window, linked["target"].with_suffix(".pdf"),
                                         scope="all") is not None  # not evidence: allowed
    assert len(started) == 1 and "same file as the input" in warned[0]
    assert _unchanged(linked)
