"""Issue 37 M2, M3, H3 (report side) and H1 (CLI side).

M2: no PDF table row is split across pages (a row's verdict on one page, its score on the
next); a SHA-256 is two lines of 32; the flagged image pages fit the page width.
M3: the HTML file table has fixed columns that fit the page and print CSS keeping every column.
H3: the method text and the flagged pages describe the branches by their fusion weight.
H1: ``forensics-scan --case`` skips the files the case recorded as its own outputs.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from forensics_app.cli import main
from forensics_app.core.branch_explain import meta_roles
from forensics_app.core.case import Case
from forensics_app.core.report import build_report, render_html
from forensics_app.core.report_branches import method_paragraphs
from forensics_app.core.results import ScanResult, Verdict
from helpers import make_images

SEMANTIC_META = {
    "branches": {"semantic": {"kind": "clip-vitb16-blocks"}},
    "fusion": {"kind": "logistic", "weights": {"trace": 0.0, "semantic": 1.0}, "bias": 0.0},
}


def _case(folder: Path, n: int, meta: dict | None = None, long_notes: bool = True) -> Case:
    case = Case.create(folder, name="Layout")
    facts = {"model_id": "m1", "path": "/nowhere/m1.pt", "sha256": "ab" * 32, "kind": "test",
             "meta": meta or {}}
    rows = []
    for i in range(n):
        p = 0.05 + 0.9 * ((i * 37) % 100) / 100
        verdict = Verdict.AI_GENERATED if p >= 0.6 else Verdict.REAL if p < 0.4 \
            else Verdict.INCONCLUSIVE
        # rows of different heights: names and notes of 1 to 6 lines
        name = f"/evidence/folder_{i}/" + "long_name_" * (i % 5) + f"IMG_{i:04d}.jpg"
        notes = ["could not read the EXIF block at offset 4096; " * (i % 4)] if long_notes \
            else []
        rows.append(ScanResult(name, hashlib.sha256(name.encode()).hexdigest(), 100, "JPEG", 64, 64, "RGB", p, verdict,
                               0.5, 0.1, model_id="m1", notes=[n for n in notes if n]))
    scan_id = case.begin_scan(facts, {"mode": "full"}, ["/evidence"], True, n)
    case.add_results(scan_id, rows)
    case.finish_scan(scan_id)
    return case


needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                     reason="pdftotext (poppler-utils) is not installed")


@needs_pdftotext
def test_pdf_rows_are_never_split_across_pages(tmp_path):
    """Every row of the file table is whole on one page: its name, verdict and P(gen.)."""
    from forensics_app.reports import write_pdf

    with _case(tmp_path / "case", 90) as case:
        data = build_report(case, gradcam=False, thumbnails=False)
        rows = {r.path: r for r in data.rows}
    out = write_pdf(data, tmp_path / "r.pdf")
    pages = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True,
                           text=True, check=True).stdout.split("\f")
    assert len(pages) > 3
    # each row's name, both SHA-256 halves, verdict and score are on one page
    for r in rows.values():
        first = [n for n, page in enumerate(pages) if r.sha256[:32] in page]
        assert len(first) == 1, r.path
        page = pages[first[0]]
        folder = r.path.split("/")[2] + "/"  # "folder_N/": never wrapped, unique
        assert r.sha256[32:] in page and folder in page, (r.path, first)
        (line,) = [ln for ln in page.splitlines() if r.sha256[:32] in ln]
        assert r.verdict.value.split("-")[0] in line and f"{r.prob_fake:.3f}" in line, line
    assert "page 1 of" in pages[0]


def test_pdf_split_check_finds_no_straddling_row(tmp_path):
    """The layout check itself: after keep_rows_together no table row spans two pages."""
    from PySide6.QtCore import QSizeF
    from PySide6.QtGui import QTextDocument

    from forensics_app.pdf_pages import first_split_row, keep_rows_together
    from forensics_app.reports import _qt_app

    _qt_app()
    rows = "".join(f"<tr><td>row {i}" + "<br>more" * (i % 7) + f"</td><td>{i}</td></tr>"
                   for i in range(120))
    doc = QTextDocument()
    doc.setHtml(f"<table><thead><tr><th>a</th><th>b</th></tr></thead>{rows}</table>")
    doc.setPageSize(QSizeF(400, 300))
    assert first_split_row(doc, 300) is not None  # Qt alone splits rows
    assert keep_rows_together(doc, 300) > 0
    assert first_split_row(doc, 300) is None


def test_html_file_table_fits_the_page_and_prints_every_column(tmp_path):
    with _case(tmp_path / "case", 6) as case:
        html = render_html(build_report(case, gradcam=False, thumbnails=False))
    assert "<table class='files'>" in html and "table-layout: fixed" in html
    # one <col> per column, in the header's order (Examiner, Notes kept in print)
    cols = re.search(r"<colgroup>(.*?)</colgroup>", html).group(1)
    assert re.findall(r"class='(\w+)'", cols) == ["thumb", "file", "sha", "verdict", "num",
                                                   "exam", "notes"]
    header = re.search(r"<table class='files'>.*?</thead>", html, re.S).group(0)
    for th in ("File", "SHA-256", "Verdict", "P(generated)", "Examiner", "Notes"):
        assert f">{th}</th>" in header
    css = re.search(r"@media print \{(.*?)\n\}", html, re.S).group(1)
    assert "display: none" not in css  # nothing hidden when printed
    assert "break-inside: avoid" in css and "table-header-group" in css
    assert "overflow-wrap: anywhere" in html  # long names wrap inside their column


@pytest.mark.skipif(shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists(),
                    reason="chromium is not installed")
@needs_pdftotext
def test_html_report_printed_by_chromium_keeps_every_column(tmp_path):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with _case(tmp_path / "case", 12) as case:
        html = render_html(build_report(case, gradcam=False, thumbnails=False))
    src = tmp_path / "r.html"
    src.write_text(html, encoding="utf-8")
    pdf = tmp_path / "printed.pdf"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", f"--print-to-pdf={pdf}",
                    "--no-pdf-header-footer", src.as_uri()], capture_output=True, timeout=180)
    if not pdf.is_file():
        pytest.skip("chromium could not print here")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    for col in ("P(generated)", "Examiner", "Notes", "Verdict"):
        assert col in text, col
    assert text.count("unreviewed") >= 12  # the Examiner column of every row


def test_method_and_maps_lead_with_the_deciding_branch(tmp_path):
    roles = meta_roles(SEMANTIC_META)
    assert [r.name for r in roles] == ["semantic", "trace"]
    assert roles[0].weight == 1.0 and not roles[1].decides
    assert "centre 224² crop" in roles[0].sees and "resized to 224" in roles[0].sees
    with _case(tmp_path / "case", 3, SEMANTIC_META) as case:
        data = build_report(case, gradcam=False, thumbnails=False)
        html = render_html(data)
    method = html[html.index("Method and limits"):]
    assert method.index("semantic branch (fusion weight +1.00)") < method.index(
        "trace branch (fusion weight +0.00)")
    assert "decides the verdict" in method and "does not move the verdict" in method
    assert "occlusion sensitivity" in method
    # a checkpoint without fusion is its trace branch alone
    (only,) = method_paragraphs([type("M", (), {"model_id": "x", "meta": {}})()])[:1]
    assert "one branch" in only and "trace branch (fusion weight +1.00)" in only


def test_flagged_page_shows_each_branch_map_labelled_with_its_weight(tmp_path):
    """A fake semantic branch (the real one needs CLIP): its occlusion map comes first."""
    import numpy as np
    from PIL import Image

    from forensics_app.core.report import FLAGGED_PX, FlaggedPage, _figures
    from forensics_app.core.report_branches import BranchSource, branch_maps

    class Centre:  # sees the centre 32² of the image; its logit is the centre's brightness
        def input_for(self, img):
            w, h = img.size
            return np.asarray(img.convert("L").crop((w // 2 - 16, h // 2 - 16, w // 2 + 16,
                                                     h // 2 + 16)), np.float32)

        def logits(self, inputs):
            return np.array([float(x.mean()) / 255 for x in inputs])

    source = BranchSource({})
    source.roles = lambda _m: meta_roles(SEMANTIC_META)  # type: ignore[method-assign]
    source._cache["m1"] = {"semantic": Centre()}
    img = Image.fromarray(np.full((96, 96, 3), 200, np.uint8))
    maps = branch_maps(img, "m1", b"trace-jpeg", "", source, FLAGGED_PX)
    assert [m.role.name for m in maps] == ["semantic", "trace"]
    assert maps[0].jpeg and maps[0].jpeg[:2] == b"\xff\xd8"
    assert "semantic branch (fusion weight +1.00), occlusion sensitivity" in maps[0].caption
    assert "does not move the verdict" in maps[1].caption and maps[1].jpeg == b"trace-jpeg"
    page = FlaggedPage(ScanResult("/e/a.jpg", "a" * 64, prob_fake=0.9,
                                  verdict=Verdict.AI_GENERATED), image=b"img", maps=maps)
    for qt in (True, False):
        parts: list[str] = []
        _figures(page, 0, parts.append, lambda k, _b: k, qt)
        text = "".join(parts)
        assert text.index("map0_0") < text.index("map0_1")  # deciding branch first
        assert "fusion weight +1.00" in text
        if qt:  # two figures to a row, 300 px each: inside an A4 body
            assert text.count("<tr>") == 2 and "width='300'" in text


def test_cli_case_scan_skips_the_outputs_the_case_recorded(tmp_path, tiny_checkpoint):
    from forensics_app.core.own_outputs import record_output

    ev = tmp_path / "ev"
    make_images(ev, 3)
    case_dir = tmp_path / "case"
    argv = [str(ev), "--model", str(tiny_checkpoint), "--device", "cpu", "--case",
            str(case_dir), "-q"]
    assert main(argv) == 0
    overlay = ev / "img_000_overlay.png"  # an overlay the window once saved into the folder
    shutil.copy(ev / "img_000.png", overlay)
    with Case.open(case_dir) as case:
        record_output(case, overlay, "overlay PNG")
    plain = ev / "new_evidence.png"  # a new file that is evidence
    shutil.copy(ev / "img_002.png", plain)
    assert main(argv) == 0
    with Case.open(case_dir, read_only=True) as case:
        paths = {Path(r.path).name for r in case.results()}
        started = [a for a in case.audit_entries() if a.action == "scan started"]
    assert "new_evidence.png" in paths
    assert "img_000_overlay.png" not in paths
    assert started, "the scans are logged"
