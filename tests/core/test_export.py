"""CSV / JSON Lines reports: columns, provenance side-car, spreadsheet-injection escaping."""

from __future__ import annotations

import csv
import json

import pytest

from forensics_app import __version__
from forensics_app.core.export import (
    COLUMNS,
    escape_cell,
    result_to_row,
    sidecar_path,
    write_csv,
    write_jsonl,
)
from forensics_app.core.preprocess import PreprocessConfig
from forensics_app.core.results import ScanResult, Verdict, verdict_for
from forensics_app.core.scan import ScanOptions, scan_files
from helpers import make_image

HOSTILE_NAMES = ["=cmd.png", "+SUM(A1).png", "-2+3.png", "@SUM(1).png", "\tTAB.png"]


@pytest.fixture
def hostile_results(tmp_path, tiny_detector):
    folder = tmp_path / "hostile"
    folder.mkdir()
    files = []
    for i, name in enumerate(HOSTILE_NAMES):
        make_image((64, 64), i).save(folder / name, format="PNG")
        files.append(folder / name)
    (folder / "=broken.jpg").write_text("not an image")
    files.append(folder / "=broken.jpg")
    return scan_files(files, tiny_detector)


def _read_csv(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_escapes_formula_injection(tmp_path, hostile_results):
    out = write_csv(tmp_path / "report.csv", hostile_results)
    rows = _read_csv(out)
    # A tab is a control character: written as a visible, reversible "\t" (core.safetext).
    expected = ["'" + n for n in HOSTILE_NAMES[:-1]] + ["\\tTAB.png", "'=broken.jpg"]
    assert [r["file_name"] for r in rows] == expected
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
    # Numbers stay numbers (a negative number is not text and is not escaped).
    assert all(float(r["prob_fake"]) >= 0 for r in rows[:-1])
    assert rows[-1]["prob_fake"] == "" and rows[-1]["verdict"] == "Error" and rows[-1]["error"]


def test_escape_cell():
    assert escape_cell("=1+1") == "'=1+1"
    assert escape_cell("\rx") == "'\rx"
    assert escape_cell("plain") == "plain"
    assert escape_cell(-0.5) == -0.5
    assert escape_cell(None) is None


def test_csv_columns_and_sidecar(tmp_path, tiny_detector, image_folder):
    results = scan_files(sorted(image_folder.iterdir()), tiny_detector)
    out = write_csv(tmp_path / "out" / "report.csv", results, {"command": "test"})
    rows = _read_csv(out)
    assert list(rows[0]) == list(COLUMNS)
    for required in ("path", "sha256", "prob_fake", "verdict", "label", "confidence_pct",
                     "prob_real", "model_id", "device", "preprocessing", "elapsed_ms"):
        assert required in COLUMNS
    assert len(rows) == len(results) == 8
    for row, r in zip(rows, results, strict=True):
        assert row["path"] == r.path and row["sha256"] == r.sha256
        p = float(row["prob_fake"])
        assert p == pytest.approx(r.prob_fake, abs=1e-6)
        assert float(row["prob_real"]) == pytest.approx(1 - p, abs=1e-6)
        assert float(row["confidence_pct"]) == pytest.approx(100 * max(p, 1 - p), abs=0.01)
        assert row["label"] in ("fake", "real", "inconclusive")
    meta = json.loads(sidecar_path(out).read_text(encoding="utf-8"))
    assert meta["app_version"] == __version__
    assert meta["model_ids"] == [tiny_detector.model_id]
    assert meta["created_utc"].endswith("+00:00")
    assert meta["n_files"] == 8 and meta["report"] == "report.csv" and meta["command"] == "test"
    assert not list(out.parent.glob(".report.csv.*")), "temporary file left behind"


def test_jsonl_rows_and_tiles(tmp_path, tiny_detector):
    path = tmp_path / "wide.png"
    make_image((150, 80), 3).save(path)
    (r,) = scan_files([path], tiny_detector,
                      ScanOptions(preprocess=PreprocessConfig(mode="tiles", tile_size=64)))
    out = write_jsonl(tmp_path / "report.jsonl", [r])
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    # the CSV's review_* columns are one ``review`` object in JSON Lines
    assert {c for c in COLUMNS if not c.startswith("review") and c not in (
        "bookmarked", "reviewed_by", "reviewed_utc")} | {"review"} <= set(row)
    assert row["review"]["status"] == "unreviewed"
    assert row["prob_fake"] == pytest.approx(r.prob_fake, abs=1e-6)
    assert row["tile_probs"] == r.tile_probs and len(row["tile_boxes"]) == len(r.tile_probs)
    assert isinstance(row["notes"], list)
    assert json.loads(sidecar_path(out).read_text())["app_version"] == __version__


def test_reports_keep_unicode(tmp_path):
    r = ScanResult(path="/évidence/фото 😀.png", sha256="0" * 64, prob_fake=0.9,
                   verdict=Verdict.AI_GENERATED)
    write_csv(tmp_path / "u.csv", [r])
    write_jsonl(tmp_path / "u.jsonl", [r])
    assert _read_csv(tmp_path / "u.csv")[0]["file_name"] == "фото 😀.png"
    assert json.loads((tmp_path / "u.jsonl").read_text(encoding="utf-8"))["path"] == r.path


def test_error_row_has_empty_scores():
    row = result_to_row(ScanResult(path="x.png", error="file not found"))
    assert row["prob_fake"] == row["prob_real"] == row["confidence_pct"] == ""
    assert row["verdict"] == "Error" and row["label"] == "error"


@pytest.mark.parametrize(
    "prob, expected",
    [(0.9, Verdict.AI_GENERATED), (0.55, Verdict.AI_GENERATED), (0.54, Verdict.INCONCLUSIVE),
     (0.5, Verdict.INCONCLUSIVE), (0.45, Verdict.INCONCLUSIVE), (0.449, Verdict.REAL),
     (None, Verdict.ERROR)],
)
def test_verdict_band(prob, expected):
    assert verdict_for(prob, 0.5, 0.05) is expected


def test_rejudging_keeps_the_score():
    r = ScanResult(path="x", prob_fake=0.7, verdict=verdict_for(0.7, 0.5, 0.05))
    stricter = r.with_threshold(0.8, 0.0)
    assert stricter.verdict is Verdict.REAL and stricter.prob_fake == 0.7
    assert r.verdict is Verdict.AI_GENERATED


def test_huge_notes_are_capped_and_summarised(tmp_path):
    """Issue 22, item 15: a file with thousands of bad EXIF tags must not make a 328 KB cell."""
    import csv as csv_module
    import json as json_module

    from forensics_app.core.export import MAX_NOTES_CHARS, summarise_notes

    notes = [f"EXIF tag {i} is corrupt: " + "x" * 200 for i in range(1500)]
    notes += ["same warning"] * 40 + ["y" * 5000]
    row = ScanResult(path="bad_exif.jpg", prob_fake=0.2, verdict=Verdict.REAL, notes=notes)
    out = write_csv(tmp_path / "r.csv", [row])
    (read,) = list(csv_module.DictReader(out.open(encoding="utf-8")))
    assert len(read["notes"]) <= MAX_NOTES_CHARS + 200
    assert "more notes (" in read["notes"] and "characters) not shown" in read["notes"]
    jl = write_jsonl(tmp_path / "r.jsonl", [row])
    record = json_module.loads(jl.read_text())
    assert sum(map(len, record["notes"])) <= MAX_NOTES_CHARS + 200
    short = summarise_notes(["same warning"] * 3 + ["z" * 2000])
    assert short[0] == "same warning (x3)"
    assert short[1].endswith("more characters]") and len(short[1]) < 600
