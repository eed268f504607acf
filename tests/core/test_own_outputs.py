"""Issue 37 H1, Qt-free: no output inside a scanned folder (device and inode), and a scan
skips, with a reason, every file the application wrote."""

from __future__ import annotations

import os

import pytest

from forensics_app.core.case import Case
from forensics_app.core.discovery import discover
from forensics_app.core.output_guard import outputs_inside_roots, refuse_outputs_in_evidence
from forensics_app.core.outputs import OutputOverEvidence
from forensics_app.core.own_outputs import (
    ACTION_OUTPUT_WRITTEN,
    SKIP_KIND,
    OwnOutputs,
    record_output,
    skip_own_outputs,
)
from helpers import make_images


def test_outputs_inside_a_scanned_folder_are_refused_by_folder_identity(tmp_path):
    ev = tmp_path / "ev"
    make_images(ev / "sub", 1)
    (tmp_path / "out").mkdir()
    assert outputs_inside_roots({"csv": tmp_path / "out" / "r.csv"}, [ev]) == []
    for inside in (ev / "r.csv", ev / "sub" / "deeper" / "o.png",
                   tmp_path / "out" / ".." / "ev" / "r.csv"):
        (problem,) = outputs_inside_roots({"csv": inside}, [ev])
        assert "inside the evidence folder" in problem and str(ev) in problem
    if os.name == "posix":  # a link to the evidence folder is the same folder
        os.symlink(ev / "sub", tmp_path / "out" / "alias")
        assert outputs_inside_roots({"csv": tmp_path / "out" / "alias" / "r.csv"}, [ev])
    # a root that is a file protects only that file (the same-file rule)
    (img,) = make_images(tmp_path / "one", 1)
    assert outputs_inside_roots({"csv": tmp_path / "one" / "r.csv"}, [img]) == []
    with pytest.raises(OutputOverEvidence, match="same file as the input"):
        refuse_outputs_in_evidence({"overlay": img}, [img], [img])
    with pytest.raises(OutputOverEvidence, match="inside the evidence folder"):
        refuse_outputs_in_evidence({"report": ev / "r.html"}, [], [ev])
    assert not (ev / "r.html").exists()


def test_a_scan_skips_files_the_application_wrote_with_a_reason(tmp_path):
    folder = tmp_path / "out"
    images = make_images(folder, 3)
    overlay = images[0].rename(folder / "img_gradcam.png")
    book = OwnOutputs()
    book.note(overlay, "overlay PNG")
    found = discover([folder])
    assert len(found.files) == 3
    skipped = skip_own_outputs(found, book)
    assert [s.kind for s in skipped] == [SKIP_KIND]
    assert "written by this application (overlay PNG)" in skipped[0].reason
    assert overlay not in found.files and len(found.files) == 2
    assert skipped[0] in found.skipped
    if os.name == "posix":  # the same file under another name (a hard link) is skipped too
        os.link(overlay, folder / "renamed.png")
        found = discover([folder])
        assert {p.name for p in found.files} - {p.name for p in images} == \
            {"img_gradcam.png", "renamed.png"}
        skip_own_outputs(found, book)
        assert {p.name for p in found.files} == {"img_001.jpg", "img_002.png"}


def test_the_case_records_outputs_and_a_later_session_reads_them(tmp_path):
    (overlay,) = make_images(tmp_path / "out", 1)
    with Case.create(tmp_path / "case", name="H1") as case:
        record_output(case, overlay, "overlay PNG")
        assert case.audit_entries()[-1].action == ACTION_OUTPUT_WRITTEN
    with Case.open(tmp_path / "case", read_only=True) as case:
        book = OwnOutputs()
        assert book.load_case(case) == 1
    assert "overlay PNG" in book.reason(overlay)
    assert book.reason(tmp_path / "out" / "other.png") is None
