"""Scan jobs that outlive the server process: each job's case folder holds its record.

A batch scan is a case (``DATA/scans/<id>/``); beside the case database the job keeps
``job.json`` (what the client sent, the client's names, the status), written atomically at
every change of status. A server started on the same data folder lists its jobs again from
those files (:func:`restore_jobs`): finished jobs keep their results and reports (read back from
the case, the one store of rows); a job that was queued or running when the server died is
shown as ``interrupted`` and is resumed as the CLI resumes a case -- the same scan run into
the same case, which scores only the files it does not hold yet.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from forensics_app.core.outputs import atomic_write
from forensics_app.core.results import ScanResult
from forensics_app.core.safetext import escape_for_terminal

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
JOB_FILE = "job.json"
JOB_RECORD_VERSION = 1


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    FAILED = "failed"

    @property
    def done(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)

    @property
    def resumable(self) -> bool:
        return self in (JobStatus.CANCELLED, JobStatus.INTERRUPTED, JobStatus.FAILED)


@dataclass
class ScanJob:
    """One batch: uploads stored in a new case (or a folder read in place), scored there,
    reported from it."""

    id: str
    folder: Path  # the case folder (job.json, results.jsonl, evidence/, reports/ inside it)
    names: dict[str, str]  # stored evidence file name -> the client's name, escaped
    sources: list[Path] = field(default_factory=list)  # a folder scan's folder (else evidence/)
    recursive: bool = False
    root: Path | None = None  # the operator's scan root (names are shown relative to it)
    status: JobStatus = JobStatus.QUEUED
    done: int = 0
    total: int = 0
    message: str = ""
    created: float = field(default_factory=time.time)
    finished: float | None = None
    model_id: str = ""  # the model whose rows this job shows (set when it runs)
    runs: int = 0  # times the scan has been started (a resume adds one)
    results: list[ScanResult] = field(default_factory=list)
    # Each file's row number, given once (when the job is made or a scan first discovers the
    # file) and kept in job.json: a row has the same index while the scan runs, after it and
    # after a restart, also when files between are skipped at intake (not images).
    order: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # files taken in by the last run and found not to be images (no row)
    rows_loaded: bool = True  # False for a job listed again after a restart, until read
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)  # reports, Grad-CAM, rows

    @property
    def evidence(self) -> Path:
        return self.folder / "evidence"

    def number(self, paths: Iterable[str]) -> None:
        """Give each path not numbered yet the next index (in the order given)."""
        nxt = max(self.order.values(), default=-1) + 1
        for p in paths:
            if p not in self.order:
                self.order[p] = nxt
                nxt += 1

    def title(self) -> str:
        """What the job scans, to show in a list: the folder (relative to the scan root) or
        the first upload's name (escaped: evidence controls both)."""
        if self.root is not None and self.sources:
            return escape_for_terminal(os.path.relpath(self.sources[0], self.root))
        first = self.names[min(self.names)] if self.names else ""
        more = len(self.names) - 1
        return first + (f" and {more} more" if more > 0 else "")

    def client_name(self, r: ScanResult) -> str:
        if self.root is not None:
            return escape_for_terminal(os.path.relpath(r.path, self.root))
        name = Path(r.path).name
        return self.names.get(name, escape_for_terminal(name))

    def record(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.verdict.value] = counts.get(r.verdict.value, 0) + 1
        return {"id": self.id, "status": str(self.status), "done": self.done,
                "total": self.total, "message": self.message, "counts": counts,
                "created": self.created, "finished": self.finished,
                "resumable": self.status.resumable, "skipped": self.skipped,
                "title": self.title(), "folder_scan": self.root is not None}

    # -- persistence
    def to_record(self) -> dict[str, Any]:
        """What ``job.json`` holds: everything but the rows (the case holds those)."""
        return {"version": JOB_RECORD_VERSION, "id": self.id, "names": self.names,
                "sources": [str(s) for s in self.sources], "recursive": self.recursive,
                "root": str(self.root) if self.root is not None else None,
                "status": str(self.status), "done": self.done, "total": self.total,
                "message": self.message, "created": self.created, "finished": self.finished,
                "model_id": self.model_id, "runs": self.runs, "skipped": self.skipped,
                "order": self.order}

    def save(self) -> None:
        """Write ``job.json`` (atomically: a crash leaves the old record or the new one)."""
        record = self.to_record()
        text = json.dumps(record, indent=2, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a path that is not UTF-8 (a lone surrogate): \u escapes
            text = json.dumps(record, indent=2)  # round-trip through json.loads exactly
        try:
            atomic_write(self.folder / JOB_FILE, text)
        except OSError as exc:  # the job goes on; only a restart would not list it again
            log.warning("cannot record scan job %s: %s", self.id, exc)


def _job_from_record(folder: Path, rec: dict[str, Any]) -> ScanJob:
    if rec.get("id") != folder.name or not JOB_ID.match(folder.name):
        raise ValueError("the record's id is not its folder's name")
    names = rec.get("names") or {}
    if not isinstance(names, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in names.items()):
        raise ValueError("'names' is not a map of names")
    status = JobStatus(rec.get("status", "interrupted"))
    job = ScanJob(folder.name, folder, dict(names),
                  sources=[Path(s) for s in rec.get("sources") or [] if isinstance(s, str)],
                  recursive=bool(rec.get("recursive", False)),
                  root=Path(rec["root"]) if isinstance(rec.get("root"), str) else None,
                  status=status, done=int(rec.get("done") or 0),
                  total=int(rec.get("total") or 0), message=str(rec.get("message") or ""),
                  created=float(rec.get("created") or 0.0),
                  finished=float(rec["finished"]) if rec.get("finished") is not None else None,
                  model_id=str(rec.get("model_id") or ""), runs=int(rec.get("runs") or 0),
                  skipped=int(rec.get("skipped") or 0), rows_loaded=False)
    order = rec.get("order") or {}
    if isinstance(order, dict):  # a damaged numbering is dropped, not trusted
        job.order = {k: v for k, v in order.items()
                     if isinstance(k, str) and isinstance(v, int) and v >= 0}
        if len(set(job.order.values())) != len(job.order):
            job.order = {}
    return job


def _job_from_case(folder: Path) -> ScanJob:
    """A case folder made by a server that kept no ``job.json``: what the case says."""
    from forensics_app.core.case import Case

    with Case.open(folder, read_only=True) as case:
        scans = case.scans()
    if not scans:
        raise ValueError("the case holds no scan")
    last = scans[-1]
    sources = [Path(s) for s in (scans[0].sources or []) if isinstance(s, str)]
    status = {"finished": JobStatus.FINISHED, "cancelled": JobStatus.CANCELLED,
              "failed": JobStatus.FAILED}.get(last.status, JobStatus.INTERRUPTED)
    if sources == [folder / "evidence"]:
        sources = []  # an upload job: the default source
    return ScanJob(folder.name, folder, {}, sources=sources, recursive=bool(last.recursive),
                   status=status, total=last.n_files or 0, model_id=last.model_id or "",
                   created=folder.stat().st_mtime, runs=len(scans), rows_loaded=False)


INTERRUPTED_MESSAGE = ("the server stopped before this scan finished; POST "
                       "/api/v1/scans/{id}/resume scores the files it has not scored yet")


def restore_jobs(scans_dir: Path) -> dict[str, ScanJob]:
    """Every job whose case folder is under ``scans_dir``; queued or running ones (their
    server died) become ``interrupted``. A folder that cannot be read is logged and left."""
    jobs: dict[str, ScanJob] = {}
    if not scans_dir.is_dir():
        return jobs
    for folder in sorted(scans_dir.iterdir()):
        if not JOB_ID.match(folder.name) or not folder.is_dir():
            continue
        job = None
        record_file = folder / JOB_FILE
        if record_file.is_file():
            try:
                rec = json.loads(record_file.read_text(encoding="utf-8"))
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
                job = _job_from_record(folder, rec)
            except Exception as exc:  # noqa: BLE001 -- a damaged record: the case decides
                log.warning("scan job %s: %s unreadable (%s); listed from its case",
                            folder.name, JOB_FILE, exc)
        if job is None:
            try:
                job = _job_from_case(folder)
            except Exception as exc:  # noqa: BLE001 -- one damaged job must not stop a server
                log.warning("scan job %s not listed: %s", folder.name, exc)
                continue
        if not job.status.done:
            job.status = JobStatus.INTERRUPTED
            job.message = INTERRUPTED_MESSAGE.format(id=job.id)
            job.finished = None
            job.save()
        jobs[job.id] = job
    return jobs


def rows_from_case(job: ScanJob) -> list[ScanResult]:
    """The job's rows as its case stores them (the current row of each file, the job's model),
    each with the index the job gave its file (:attr:`ScanJob.order`), so a row keeps its
    number while the scan runs, after it and after a restart. Files the job never numbered (a
    job listed from its case alone) are numbered here, in path order, once."""
    from forensics_app.core.case import Case, CaseError, is_superseded

    try:
        with Case.open(job.folder, read_only=True) as case:
            rows = case.results(job.model_id or None)
    except CaseError as exc:
        log.warning("scan job %s: rows not read: %s", job.id, exc)
        return []
    rows = sorted((r for r in rows if not is_superseded(r)), key=lambda r: r.path)
    job.number(r.path for r in rows)
    return sorted((replace(r, index=job.order[r.path]) for r in rows), key=lambda r: r.index)
