"""Issue 24: scan jobs survive a server restart (each job's case folder holds its record).

Two app instances on the same data folder: what the first finished, the second lists with its
rows and reports; what the first left queued or half-scored, the second shows as interrupted
and resumes into the same case without scoring the stored files again.
"""

from __future__ import annotations

import io
import json
import time

from fastapi.testclient import TestClient

from forensics_app.core.case import Case, CaseRecorder, detector_facts
from forensics_app.core.scan import ScanOptions, scan_files
from forensics_app.server.api import create_app
from helpers import make_image


def _png(seed: int, size=(72, 64)) -> bytes:
    buf = io.BytesIO()
    make_image(size, seed).save(buf, "PNG")
    return buf.getvalue()


def _uploads(n: int) -> list:
    return [("image", (f"photo {i}\u202e.png", _png(i), "image/png")) for i in range(n)]


def _wait(client, job_id, tries=1200):
    for _ in range(tries):
        s = client.get(f"/api/v1/scans/{job_id}").json()
        if s["status"] not in ("queued", "running"):
            return s
        time.sleep(0.05)
    raise AssertionError(f"scan still {s['status']}")


def _restart(make_service) -> tuple[TestClient, object]:
    service = make_service()
    return TestClient(create_app(service)), service


def test_a_finished_job_and_its_reports_survive_a_restart(make_client, make_service):
    client, first = make_client()
    job_id = client.post("/api/v1/scans", files=_uploads(3)).json()["id"]
    before = _wait(client, job_id)
    assert before["status"] == "finished" and before["done"] == 3
    rows = client.get(f"/api/v1/scans/{job_id}/results").json()
    html = client.get(f"/api/v1/scans/{job_id}/report.html")
    assert html.status_code == 200
    first.stop()

    client2, second = _restart(make_service)
    assert second is not first and job_id in second.jobs
    listed = client2.get("/api/v1/scans").json()
    assert [(j["id"], j["status"]) for j in listed] == [(job_id, "finished")]
    after = client2.get(f"/api/v1/scans/{job_id}")
    assert after.status_code == 200, after.text
    assert {k: after.json()[k] for k in ("status", "done", "total", "counts")} == {
        k: before[k] for k in ("status", "done", "total", "counts")}
    rows2 = client2.get(f"/api/v1/scans/{job_id}/results").json()
    strip = ("elapsed_ms",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in rows2] == [
        {k: v for k, v in r.items() if k not in strip} for r in rows]
    assert rows2[0]["filename"] == rows[0]["filename"] and "\u202e" not in rows2[0]["filename"]
    again = client2.get(f"/api/v1/scans/{job_id}/report.html")
    assert again.status_code == 200 and again.content == html.content  # the kept report
    csv = client2.get(f"/api/v1/scans/{job_id}/report.csv")
    assert csv.status_code == 200 and all(r["sha256"] in csv.text for r in rows)
    png = client2.get(f"/api/v1/scans/{job_id}/results/1/gradcam.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    resume = client2.post(f"/api/v1/scans/{job_id}/resume")
    assert resume.status_code == 409 and "finished" in resume.json()["detail"]
    assert client2.post("/api/v1/scans/" + "f" * 32 + "/resume").status_code == 404


def test_a_job_running_when_the_server_died_is_interrupted_and_resumes(
        make_service, tiny_detector):
    dead = make_service(start=False)  # the worker never runs: we play its part, then "die"
    job = dead.submit_scan([(f"img {i}.png", _png(10 + i)) for i in range(4)])
    files = sorted(job.evidence.iterdir())
    # What the worker had done when the process died: 2 of 4 rows stored, the case's scan
    # still 'running', the job record 'running'.
    job.status, job.model_id, job.total = type(job.status).RUNNING, tiny_detector.model_id, 4
    job.save()
    with Case.open(job.folder) as case:
        sid = case.begin_scan(detector_facts(tiny_detector), {"mode": "full"},
                              [str(job.evidence)], False, 4)
        rec = CaseRecorder(case, sid, batch_size=4)
        scan_files(files[:2], tiny_detector, ScanOptions(batch_size=4), on_result=rec)
        rec.flush()
    assert json.loads((job.folder / "job.json").read_text())["status"] == "running"

    client, service = _restart(make_service)
    s = client.get(f"/api/v1/scans/{job.id}").json()
    assert (s["status"], s["done"], s["total"], s["resumable"]) == ("interrupted", 2, 4, True)
    assert "/resume" in s["message"]
    rows = client.get(f"/api/v1/scans/{job.id}/results").json()
    assert [(r["index"], r["filename"]) for r in rows] == [(0, "img 0.png"), (1, "img 1.png")]
    r = client.post(f"/api/v1/scans/{job.id}/resume")
    assert r.status_code == 202, r.text
    done = _wait(client, job.id)
    assert (done["status"], done["done"], done["total"]) == ("finished", 4, 4)
    rows = client.get(f"/api/v1/scans/{job.id}/results").json()
    assert [(r["index"], r["filename"]) for r in rows] == [
        (i, f"img {i}.png") for i in range(4)]
    with Case.open(job.folder, read_only=True) as case:
        assert case.count_results() == 4  # the two stored rows were not scored again
        scans = case.scans()
        assert [sc.status for sc in scans] == ["interrupted", "finished"]
        assert scans[-1].n_done == 2 and case.verify().ok
    report = client.get(f"/api/v1/scans/{job.id}/report.jsonl")
    assert report.status_code == 200 and len(report.text.splitlines()) == 4


def test_a_queued_job_of_a_stopped_server_is_listed_again_and_resumed(make_service):
    first = make_service(start=False)
    job = first.submit_scan([("a.png", _png(1)), ("b.png", _png(2))])
    first.stop()  # a clean stop: the queued job is kept, not dropped
    client, _ = _restart(make_service)
    s = client.get(f"/api/v1/scans/{job.id}").json()
    assert (s["status"], s["done"], s["resumable"]) == ("interrupted", 0, True)
    assert client.get(f"/api/v1/scans/{job.id}/results").json() == []
    assert client.post(f"/api/v1/scans/{job.id}/resume").status_code == 202
    assert _wait(client, job.id)["status"] == "finished"
    names = [r["filename"] for r in client.get(f"/api/v1/scans/{job.id}/results").json()]
    assert names == ["a.png", "b.png"]


def test_a_job_without_a_readable_record_is_listed_from_its_case(make_client, make_service):
    client, first = make_client()
    job_id = client.post("/api/v1/scans", files=_uploads(2)).json()["id"]
    _wait(client, job_id)
    first.stop()
    (first.scans_dir / job_id / "job.json").write_text("{not json")  # damaged (or older)
    (first.scans_dir / ("e" * 32)).mkdir()  # an empty folder: no record, no case
    client2, second = _restart(make_service)
    assert client2.get("/healthz").status_code == 200 and "e" * 32 not in second.jobs
    s = client2.get(f"/api/v1/scans/{job_id}").json()
    assert (s["status"], s["done"]) == ("finished", 2)
    rows = client2.get(f"/api/v1/scans/{job_id}/results").json()
    # The client's names were in the record: the stored names stand in for them.
    assert [r["filename"] for r in rows] == ["00000.png", "00001.png"]
    assert client2.get(f"/api/v1/scans/{job_id}/report.csv").status_code == 200


def test_folder_scan_rows_keep_their_index_when_a_file_is_skipped_at_intake(
        make_client, make_service, tmp_path, monkeypatch):
    """A file without an image extension is taken in and found not to be an image: it gets no
    row. Every row keeps the index it had while the scan ran -- after it, after a restart and
    for its Grad-CAM overlay (the cache is keyed by index)."""
    from PIL import Image

    import forensics_app.server.service as service_module

    root = tmp_path / "root"
    (root / "case").mkdir(parents=True)
    for name, seed in (("a.png", 1), ("c.png", 3), ("d.png", 4)):
        (root / "case" / name).write_bytes(_png(seed))
    (root / "case" / "b notes").write_text("not an image, no extension: sniffed at intake")
    client, first = make_client(scan_root=root)
    during: list[list[tuple[int, str]]] = []

    class Watched(service_module.ScanSession):
        def _on_result(self, result):  # after each row: what a client sees at that moment
            super()._on_result(result)
            job_id = client.get("/api/v1/scans").json()[0]["id"]
            during.append([(r["index"], r["filename"]) for r in
                           client.get(f"/api/v1/scans/{job_id}/results").json()])

    monkeypatch.setattr(service_module, "ScanSession", Watched)
    job_id = client.post("/api/v1/scans", json={"folder": "case"}).json()["id"]
    done = _wait(client, job_id)
    expected = [(0, "case/a.png"), (2, "case/c.png"), (3, "case/d.png")]
    assert (done["status"], done["done"], done["total"], done["skipped"]) == (
        "finished", 3, 4, 1)
    assert during[-1] == expected and all(seen == expected[:len(seen)] for seen in during)
    after = [(r["index"], r["filename"]) for r in
             client.get(f"/api/v1/scans/{job_id}/results").json()]
    assert after == expected
    png = client.get(f"/api/v1/scans/{job_id}/results/2/gradcam.png")
    assert png.status_code == 200
    assert Image.open(io.BytesIO(png.content)).text["Source"] == "case/c.png"
    assert client.get(f"/api/v1/scans/{job_id}/results/1/gradcam.png").status_code == 404
    first.stop()

    client2, _ = _restart(make_service)
    listed = client2.get("/api/v1/scans").json()
    assert [(j["id"], j["title"], j["skipped"]) for j in listed] == [(job_id, "case", 1)]
    again = [(r["index"], r["filename"]) for r in
             client2.get(f"/api/v1/scans/{job_id}/results").json()]
    assert again == expected
    png2 = client2.get(f"/api/v1/scans/{job_id}/results/2/gradcam.png")
    assert png2.content == png.content  # the cached overlay is still this row's


def test_the_scan_list_names_each_job_and_a_resumed_folder_scan_keeps_its_numbers(
        make_client, make_service, tmp_path):
    """A file added to the folder before a resume is numbered after the ones the job already
    numbered: no earlier row changes its index. The list's title is the first upload's
    (escaped) name."""
    root = tmp_path / "root"
    (root / "f").mkdir(parents=True)
    for name, seed in (("b.png", 2), ("d.png", 4)):
        (root / "f" / name).write_bytes(_png(seed))
    client, first = make_client(scan_root=root)
    up = client.post("/api/v1/scans", files=_uploads(2)).json()["id"]
    _wait(client, up)
    folder_job = first.submit_folder_scan("f")
    _wait(client, folder_job.id)
    first.stop()
    titles = {j["id"]: j["title"] for j in client.get("/api/v1/scans").json()}
    assert titles[up] == "photo 0\\u202e.png and 1 more" and titles[folder_job.id] == "f"

    # The job is made resumable as a crash would leave it; a file sorting first appears.
    record = json.loads((folder_job.folder / "job.json").read_text())
    record["status"] = "running"
    (folder_job.folder / "job.json").write_text(json.dumps(record))
    (root / "f" / "a.png").write_bytes(_png(1))
    client2, _ = _restart(make_service)
    assert client2.post(f"/api/v1/scans/{folder_job.id}/resume").status_code == 202
    assert _wait(client2, folder_job.id)["status"] == "finished"
    rows = [(r["index"], r["filename"]) for r in
            client2.get(f"/api/v1/scans/{folder_job.id}/results").json()]
    assert rows == [(0, "f/b.png"), (1, "f/d.png"), (2, "f/a.png")]


def test_a_folder_scan_with_an_undecodable_file_name_keeps_its_record(
        make_client, make_service, tmp_path):
    """A file name that is not UTF-8 (a lone surrogate in Python) is numbered and recorded in
    job.json like any other; the job finishes and is listed again after a restart."""
    import os

    root = tmp_path / "root"
    (root / "u").mkdir(parents=True)
    (root / "u" / "a.png").write_bytes(_png(1))
    odd = os.fsdecode(b"b\xff.png")
    (root / "u" / odd).write_bytes(_png(2))
    client, first = make_client(scan_root=root)
    job_id = client.post("/api/v1/scans", json={"folder": "u"}).json()["id"]
    done = _wait(client, job_id)
    assert (done["status"], done["done"]) == ("finished", 2), done["message"]
    record = json.loads((first.scans_dir / job_id / "job.json").read_text(encoding="utf-8"))
    assert sorted(record["order"].values()) == [0, 1]
    assert str(root / "u" / odd) in record["order"]  # the lone surrogate round-trips
    # no temporary file is left behind (one may exist for an instant while the finished
    # job's record is being replaced: wait for that write, never for a leftover)
    deadline = time.monotonic() + 10
    while list((first.scans_dir / job_id).glob("*.tmp*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list((first.scans_dir / job_id).glob("*.tmp*"))
    rows = [(r["index"], r["filename"]) for r in
            client.get(f"/api/v1/scans/{job_id}/results").json()]
    first.stop()
    client2, _ = _restart(make_service)
    assert [(r["index"], r["filename"]) for r in
            client2.get(f"/api/v1/scans/{job_id}/results").json()] == rows
    assert rows[0] == (0, "u/a.png") and rows[1][0] == 1 and "\\xff" in rows[1][1]
