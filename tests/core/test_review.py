"""The examiner's conclusions: stored in the case, every change audited, covered by verify."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from forensics_app.core.case import CASE_DB_NAME, Case
from forensics_app.core.results import ScanResult, Verdict
from forensics_app.core.review import (
    ACTION_REVIEW_CHANGED,
    ReviewBook,
    ReviewError,
    ReviewStatus,
    clean_tags,
    disagrees,
    duplicate_groups,
    parse_status,
)

FACTS = {"model_id": "m1", "path": "/models/m1.pt", "sha256": "ab" * 32, "kind": "test",
         "meta": {}}
SHA_A, SHA_B = "a" * 64, "b" * 64


def rows() -> list[ScanResult]:
    return [
        ScanResult("/ev/one.jpg", SHA_A, 10, prob_fake=0.9, verdict=Verdict.AI_GENERATED,
                   model_id="m1"),
        ScanResult("/ev/copy-of-one.jpg", SHA_A, 10, prob_fake=0.9,
                   verdict=Verdict.AI_GENERATED, model_id="m1"),
        ScanResult("/ev/two.png", SHA_B, 20, prob_fake=0.1, verdict=Verdict.REAL, model_id="m1"),
    ]


def make_case(folder: Path) -> Case:
    case = Case.create(folder, name="Op Review")
    scan_id = case.begin_scan(FACTS, {"mode": "full"}, ["/ev"], False, 3)
    case.add_results(scan_id, rows())
    case.finish_scan(scan_id)
    return case


def test_review_change_is_stored_audited_and_verified(tmp_path):
    with make_case(tmp_path / "case") as case:
        book = ReviewBook(case)
        assert book.get("/ev/two.png", SHA_B).status is ReviewStatus.UNREVIEWED
        [rev] = book.set([("/ev/two.png", SHA_B)], status=ReviewStatus.CONFIRMED_GENERATED,
                         note="GAN fingerprint in the sky", add_tags=["batch-7", " batch-7 "],
                         examiner="E. Ames")
        assert rev.status is ReviewStatus.CONFIRMED_GENERATED and rev.tags == ("batch-7",)
        entry = case.audit_entries()[-1]
        assert entry.action == ACTION_REVIEW_CHANGED and entry.seq == rev.audit_seq
        assert entry.params["old"]["status"] == "unreviewed"
        assert entry.params["new"] == {"status": "confirmed-generated",
                                       "note": "GAN fingerprint in the sky",
                                       "tags": ["batch-7"], "bookmarked": False}
        assert entry.params["examiner"] == "E. Ames" and entry.os_user
        # An unchanged value writes no audit entry.
        n = len(case.audit_entries())
        book.set([("/ev/two.png", SHA_B)], status=ReviewStatus.CONFIRMED_GENERATED)
        assert len(case.audit_entries()) == n
        assert case.verify().ok
    # Reopened, the review is still there, with its history.
    with Case.open(tmp_path / "case", read_only=True) as case:
        book = ReviewBook(case)
        assert book.get("/ev/two.png", SHA_B).note == "GAN fingerprint in the sky"
        assert [h["new"]["status"] for h in book.history("/ev/two.png", SHA_B)] == [
            "confirmed-generated"]
        assert disagrees(Verdict.REAL, book.get("/ev/two.png", SHA_B))
        assert not disagrees(Verdict.AI_GENERATED, book.get("/ev/two.png", SHA_B))


def test_sha_names_every_copy_and_path_one(tmp_path):
    with make_case(tmp_path / "case") as case:
        book = ReviewBook(case)
        assert duplicate_groups(case.results()) == {SHA_A: ["/ev/one.jpg", "/ev/copy-of-one.jpg"]}
        assert book.resolve(SHA_A.upper()) == [("/ev/one.jpg", SHA_A),
                                              ("/ev/copy-of-one.jpg", SHA_A)]
        assert book.resolve("/ev/one.jpg") == [("/ev/one.jpg", SHA_A)]
        assert len(book.resolve("/ev/one.jpg", all_copies=True)) == 2
        with pytest.raises(ReviewError, match="not a file of this case"):
            book.resolve("/elsewhere.jpg")
        with pytest.raises(ReviewError, match="no file with SHA-256"):
            book.resolve("c" * 64)
        out = book.set(book.resolve(SHA_A), status=ReviewStatus.CONFIRMED_REAL)
        assert [r.status for r in out] == [ReviewStatus.CONFIRMED_REAL] * 2
        assert [a.action for a in case.audit_entries()][-2:] == [ACTION_REVIEW_CHANGED] * 2


@pytest.mark.parametrize("tamper, finding", [
    ("UPDATE reviews SET status = 'confirmed-real'", "does not match audit entry"),
    ("DELETE FROM reviews", "missing from the reviews table"),
    ("INSERT INTO reviews VALUES ('/ev/one.jpg', '" + SHA_A + "', 'confirmed-real', '', '[]',"
     " 0, 'x', 't', 99)", "no audit entry records it"),
])
def test_verify_catches_a_review_edited_outside_the_app(tmp_path, tamper, finding):
    with make_case(tmp_path / "case") as case:
        ReviewBook(case).set([("/ev/two.png", SHA_B)], status=ReviewStatus.NEEDS_SECOND_OPINION)
    conn = sqlite3.connect(tmp_path / "case" / CASE_DB_NAME)
    conn.execute(tamper)
    conn.commit()
    conn.close()
    with Case.open(tmp_path / "case", read_only=True) as case:
        report = case.verify()
    assert not report.ok
    assert any(finding in p for p in report.problems), report.problems


def test_bad_values_change_nothing(tmp_path):
    with make_case(tmp_path / "case") as case:
        book = ReviewBook(case)
        n = len(case.audit_entries())
        with pytest.raises(ReviewError, match="at most"):
            book.set([("/ev/two.png", SHA_B)], add_tags=["x" * 65])
        with pytest.raises(ReviewError, match="unknown review status"):
            parse_status("probably fake")
        assert len(case.audit_entries()) == n and book.all() == {}
    assert parse_status("Confirmed generated") is ReviewStatus.CONFIRMED_GENERATED
    assert clean_tags(["b", "A", "a", ""]) == ("A", "b")


def test_schema_2_case_is_upgraded_with_a_reviews_table(tmp_path):
    with make_case(tmp_path / "case") as case:
        pass
    conn = sqlite3.connect(tmp_path / "case" / CASE_DB_NAME)
    conn.execute("DROP TABLE reviews")
    conn.execute("DELETE FROM schema_version WHERE version = 3")
    conn.commit()
    conn.close()
    with Case.open(tmp_path / "case") as case:  # writable open migrates
        ReviewBook(case).set([("/ev/one.jpg", SHA_A)], bookmarked=True)
        assert case.verify().ok
        versions = [r[0] for r in case.query("SELECT version FROM schema_version")]
    assert versions == [1, 2, 3]


# ----------------------------------------------------------------------------- CLI and reports
def cli(*argv: str) -> int:
    from forensics_app.cli import main

    return main(list(argv))


def test_cli_review_then_verify_and_jsonl_csv_carry_it(tmp_path, capsys):
    import csv

    make_case(tmp_path / "case").close()
    case_dir = str(tmp_path / "case")
    assert cli("--case", case_dir, "--review", "/ev/one.jpg", "--status", "confirmed-real",
               "--note", "=HYPERLINK(\"x\") camera original", "--tag", "phone",
               "--examiner", "E. Ames") == 0
    assert "reviewed: confirmed-real" in capsys.readouterr().out
    # A SHA-256 names every copy; the copy already reviewed only gains the bookmark.
    assert cli("--case", case_dir, "--review", SHA_A, "--bookmark", "--examiner", "E. Ames") == 0
    out = capsys.readouterr().out
    assert out.count("reviewed:") == 2
    assert cli("--case", case_dir, "--verify") == 0
    assert cli("--case", case_dir, "--report", str(tmp_path / "r.jsonl")) == 0
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    by_path = {row["path"]: row["review"] for row in lines}
    assert by_path["/ev/one.jpg"]["status"] == "confirmed-real"
    assert by_path["/ev/one.jpg"]["tags"] == ["phone"]
    assert by_path["/ev/one.jpg"]["bookmarked"] is True
    assert by_path["/ev/one.jpg"]["examiner"] is not None
    assert by_path["/ev/copy-of-one.jpg"]["status"] == "unreviewed"
    assert by_path["/ev/copy-of-one.jpg"]["bookmarked"] is True
    assert by_path["/ev/two.png"] == {"status": "unreviewed", "note": "", "tags": [],
                                      "bookmarked": False, "examiner": None, "updated_utc": None}
    assert cli("--case", case_dir, "--report", str(tmp_path / "r.csv"),
               "--report-scope", "reviewed") == 0
    with open(tmp_path / "r.csv", encoding="utf-8", newline="") as fh:
        got = list(csv.DictReader(fh))
    assert [g["path"] for g in got] == ["/ev/one.jpg", "/ev/copy-of-one.jpg"]
    assert got[0]["review_status"] == "confirmed-real" and got[0]["reviewed_by"] == "E. Ames"
    assert got[0]["review_note"].startswith("'=HYPERLINK")  # no formula in a spreadsheet
    assert got[0]["review_tags"] == "phone" and got[0]["bookmarked"] == "yes"


def test_cli_review_refuses_unknown_files_and_bad_usage(tmp_path, capsys):
    make_case(tmp_path / "case").close()
    case_dir = str(tmp_path / "case")
    assert cli("--case", case_dir, "--review", "/ev/none.jpg", "--status",
               "confirmed-real") == 2
    assert "not a file of this case" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli("--case", case_dir, "--review", "/ev/one.jpg")  # nothing to change
    with pytest.raises(SystemExit):
        cli("--case", case_dir, "--status", "confirmed-real", "--verify")
    with Case.open(case_dir, read_only=True) as case:
        assert ReviewBook(case).all() == {}
        assert ACTION_REVIEW_CHANGED not in [a.action for a in case.audit_entries()]


def test_report_shows_conclusion_beside_verdict_and_lists_disagreements(tmp_path):
    from forensics_app.core.report import build_report, render_html

    with make_case(tmp_path / "case") as case:
        book = ReviewBook(case)
        book.set([("/ev/two.png", SHA_B)], status=ReviewStatus.CONFIRMED_GENERATED,
                 note="<script>alert(1)</script> sky")
        data = build_report(case, gradcam=False, thumbnails=False)
        assert [r.path for r, _ in data.disagreements] == ["/ev/two.png"]
        html = render_html(data)
        assert "Examiner's conclusions" in html
        assert "1 file(s) where the examiner's conclusion contradicts" in html
        assert "<script>alert" not in html and "&lt;script&gt;" in html
        assert html.count("Confirmed generated") >= 2  # disagreement table and file table
        # a confirmed-generated file gets a flagged page although the detector said Real
        assert [p.result.path for p in data.flagged] == ["/ev/one.jpg", "/ev/copy-of-one.jpg",
                                                         "/ev/two.png"]
        only = build_report(case, gradcam=False, thumbnails=False, scope="reviewed")
        assert [r.path for r in only.rows] == ["/ev/two.png"]
        assert "1 of the case's 3 rows" in only.scope_note
        picked = build_report(case, gradcam=False, thumbnails=False, paths={"/ev/one.jpg"})
        assert [r.path for r in picked.rows] == ["/ev/one.jpg"]
        assert "filter" in picked.scope_note


def test_report_build_reports_progress_and_cancels(tmp_path):
    from forensics_app.core.report import ReportCancelled, build_report

    seen: list[tuple[int, int]] = []
    with make_case(tmp_path / "case") as case:
        build_report(case, gradcam=False, thumbnails=True,
                     progress=lambda d, t: seen.append((d, t)))
        assert seen[0] == (0, 5) and seen[-1] == (5, 5)  # 3 thumbnails + 2 flagged pages
        with pytest.raises(ReportCancelled):
            build_report(case, gradcam=False, should_cancel=lambda: True)
