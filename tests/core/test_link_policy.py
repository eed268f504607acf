"""Symbolic links in the evidence folder: a link out of it is not read (an error row names
its target) unless --follow-links-outside; every followed link is marked, with its target,
in the row, the case and the report. The same rule for the CLI, the GUI and the server: all
three discover through ScanSession (core.discovery)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from forensics_app.cli import EXIT_OK, EXIT_SOME_FAILED, main
from forensics_app.core.discovery import OUTSIDE_LINK_REASON, discover
from helpers import make_image

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt",
                                reason="needs POSIX symbolic links")


def run_cli(argv: list) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code)


@pytest.fixture
def evidence(tmp_path) -> dict[str, Path]:
    """ev/ with a.png, inside.png -> a.png, secret.png -> ../outside/secret.png (an image
    outside the folder) and passwd.jpg -> a non-image file outside it."""
    ev, outside = tmp_path / "ev", tmp_path / "outside"
    ev.mkdir()
    outside.mkdir()
    make_image((48, 48), 1).save(ev / "a.png")
    make_image((48, 48), 2).save(outside / "secret.png")
    private = outside / "passwd"
    private.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (ev / "inside.png").symlink_to("a.png")
    (ev / "secret.png").symlink_to(Path("..", "outside", "secret.png"))
    (ev / "passwd.jpg").symlink_to(private)
    return {"ev": ev, "secret": (outside / "secret.png").resolve(), "passwd": private.resolve(),
            "a": (ev / "a.png").resolve()}


def _rows(path: Path) -> dict[str, dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return {Path(r["path"]).name: r for r in csv.DictReader(fh)}


def test_discovery_marks_links_against_the_evidence_root(evidence):
    found = discover([evidence["ev"]])
    links = {p.name: f for p, f in found.links.items()}
    assert set(links) == {"inside.png", "secret.png", "passwd.jpg"}
    assert links["inside.png"].followed and not links["inside.png"].outside
    assert links["secret.png"].refusal() == OUTSIDE_LINK_REASON + str(evidence["secret"])
    # a file named explicitly: its own folder is the root
    (explicit,) = discover([evidence["ev"] / "secret.png"]).links.values()
    assert explicit.outside and not explicit.followed
    opted = discover([evidence["ev"]], follow_links_outside=True).links
    assert all(f.followed for f in opted.values())


def test_links_out_of_the_folder_are_not_read(evidence, tmp_path, tiny_checkpoint, capsys,
                                               monkeypatch):
    ev, case = evidence["ev"], tmp_path / "case"
    out_csv, out_jsonl = tmp_path / "r.csv", tmp_path / "r.jsonl"
    code = run_cli([ev, "--model", tiny_checkpoint, "--device", "cpu", "-q",
                    "--csv", out_csv, "--jsonl", out_jsonl, "--case", case])
    assert code == EXIT_SOME_FAILED, capsys.readouterr().err
    rows = _rows(out_csv)
    for name, target in (("secret.png", evidence["secret"]), ("passwd.jpg", evidence["passwd"])):
        assert rows[name]["error"] == OUTSIDE_LINK_REASON + str(target)
        assert rows[name]["sha256"] == "" and rows[name]["verdict"] == "Error"
    assert rows["inside.png"]["error"] == "" and rows["inside.png"]["verdict"] != "Error"
    assert f"symbolic link to {evidence['a']} (inside the evidence folder)" in \
        rows["inside.png"]["notes"]
    assert rows["a.png"]["notes"].count("symbolic link") == 0

    # nothing read from outside reaches any output
    secret_sha = hashlib.sha256(evidence["secret"].read_bytes()).hexdigest()
    passwd_sha = hashlib.sha256(evidence["passwd"].read_bytes()).hexdigest()
    blobs = [out_csv.read_bytes(), out_jsonl.read_bytes(), (case / "case.sqlite3").read_bytes()]
    for sha in (secret_sha, passwd_sha):
        assert not any(sha.encode() in b for b in blobs)
    con = sqlite3.connect(case / "case.sqlite3")
    link_targets = dict(con.execute("SELECT path, link_target FROM evidence"))
    con.close()
    assert link_targets[str(ev / "inside.png")] == "a.png"  # the case marks the link

    # a resume does not open them either (the case already holds their error rows)
    import forensics_app.core.case_resume as case_resume

    opened: list[str] = []
    real_hash = case_resume._hash_file
    monkeypatch.setattr(case_resume, "_hash_file",
                        lambda p, *a: (opened.append(Path(p).name), real_hash(p, *a))[1])
    assert run_cli([ev, "--model", tiny_checkpoint, "--device", "cpu", "-q",
                    "--case", case]) == EXIT_OK
    assert "secret.png" not in opened and "passwd.jpg" not in opened
    assert "4 files already scored" in capsys.readouterr().err


def test_follow_links_outside_reads_and_marks_them(evidence, tmp_path, tiny_checkpoint):
    ev, case = evidence["ev"], tmp_path / "case"
    out_jsonl, report = tmp_path / "r.jsonl", tmp_path / "report.html"
    code = run_cli([ev, "--model", tiny_checkpoint, "--device", "cpu", "-q",
                    "--follow-links-outside", "--jsonl", out_jsonl, "--case", case])
    rows = {Path(r["path"]).name: r
            for r in map(json.loads, out_jsonl.read_text().splitlines())}
    assert code == EXIT_SOME_FAILED  # passwd.jpg is read now, and is not an image
    secret = rows["secret.png"]
    assert not secret["error"]
    assert secret["sha256"] == hashlib.sha256(evidence["secret"].read_bytes()).hexdigest()
    note = (f"symbolic link to {evidence['secret']} (outside the evidence folder, followed "
            "because --follow-links-outside was given)")
    assert note in secret["notes"]
    # an error row still says it was a link, and where to
    assert note.replace(str(evidence["secret"]), str(evidence["passwd"])) in \
        rows["passwd.jpg"]["notes"]
    with sqlite3.connect(case / "case.sqlite3") as con:
        (settings,) = con.execute("SELECT settings_json FROM scans").fetchone()
    assert json.loads(settings)["follow_links_outside"] is True
    assert run_cli(["--case", case, "--report", report, "-q"]) == EXIT_OK
    assert f"symbolic link to {evidence['secret']}" in report.read_text(encoding="utf-8")
