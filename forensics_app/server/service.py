"""The server's engine room: one detector, one worker thread, a bounded queue of work.

Requests never score anything themselves: an analysis (one upload, in memory) or a batch scan
(uploads stored into a new case) waits in :class:`WorkQueue`; the worker thread runs each
through a :class:`~forensics_app.core.session.ScanSession`. Analyses waiting together are
scored as one session, so their tiles share forward batches as a CLI scan's do. When the
queue is full, :class:`QueueFull` tells the caller to come back later (HTTP 429).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics_app.core.loading import InMemoryImage, sniff_format
from forensics_app.core.outputs import atomic_write
from forensics_app.core.results import ScanResult
from forensics_app.core.safetext import escape_for_terminal
from forensics_app.core.session import ScanSession, ScanSettings
from forensics_app.server.jobs import (
    INTERRUPTED_MESSAGE,
    JOB_ID,
    JobStatus,
    ScanJob,
    restore_jobs,
    rows_from_case,
)

__all__ = ["REPORT_FORMATS", "BadUpload", "JobStatus", "NoSpace", "NotResumable", "QueueFull",
           "ScanJob", "ServeLimits", "ServeService"]

log = logging.getLogger(__name__)

# Extensions of stored uploads, from the format their bytes announce (never from the client).
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif",
               "WEBP": ".webp", "JPEG2000": ".jp2", "QOI": ".qoi"}
REPORT_FORMATS = ("html", "pdf", "csv", "jsonl")


@dataclass(frozen=True)
class ServeLimits:
    max_request_bytes: int = 256 * 1024 * 1024  # one HTTP request body (413 above)
    max_files: int = 1000  # images in one batch
    queue_size: int = 16  # requests waiting for the worker (429 above)
    analysis_timeout_s: float = 120.0  # an analysis not answered by then: 504
    report_timeout_s: float = 600.0
    retry_after_s: int = 2
    # Room kept free on the data disk beyond a batch's own bytes (its case database, reports)
    min_free_bytes: int = 16 * 1024 * 1024


class QueueFull(Exception):
    """Every place in the queue is taken; try again after ``retry_after_s``."""


class NotResumable(Exception):
    """The scan is queued, running or finished: there is nothing to resume (HTTP 409)."""


class BadUpload(ValueError):
    """An upload refused before anything was stored; the message says which and why."""


class NoSpace(Exception):
    """The disk of the server's data folder is full (HTTP 507); nothing of the request was
    kept, and the server goes on: a later request succeeds once there is room again."""


_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def is_disk_full(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) is a full disk or quota: OSError ENOSPC/EDQUOT,
    or SQLite's "database or disk is full"."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
            return True
        text = str(exc).lower()
        if "disk is full" in text or "no space left" in text or "is full (" in text:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (the disk to free space on)."""
    path = Path(os.path.abspath(path))
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return path


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):,.1f} MB"


@dataclass
class Analysis:
    """One ``/analyze`` request: the upload, in memory, and where its row goes."""

    image: InMemoryImage
    future: Future = field(default_factory=Future)


class WorkQueue:
    """Bounded FIFO of analyses and scan jobs; the worker takes runs of analyses together."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: deque[Analysis | ScanJob] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Analysis | ScanJob) -> None:
        with self._cond:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if len(self._items) >= self.capacity:
                raise QueueFull(f"the queue is full ({self.capacity} requests waiting)")
            self._items.append(item)
            self._cond.notify()

    def take(self, max_analyses: int) -> list[Analysis] | ScanJob | None:
        """The next scan job, or up to ``max_analyses`` analyses in arrival order; None once
        closed and empty."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if not self._items:
                return None
            first = self._items.popleft()
            if isinstance(first, ScanJob):
                return first
            run = [first]
            while (self._items and len(run) < max_analyses
                   and isinstance(self._items[0], Analysis)):
                run.append(self._items.popleft())
            return run

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def close(self) -> list[Analysis | ScanJob]:
        with self._cond:
            self._closed = True
            left, self._items = list(self._items), deque()
            self._cond.notify_all()
            return left


class ServeService:
    """The detector, the queue, the worker thread and the scan jobs of one server."""

    def __init__(self, detector: Any, settings: ScanSettings, data_dir: Path,
                 limits: ServeLimits | None = None, model_path: Path | None = None,
                 scan_root: Path | None = None):
        self.detector, self.settings = detector, settings
        self.scan_root = Path(scan_root).resolve() if scan_root is not None else None
        self.data_dir = Path(data_dir).absolute()
        self.limits = limits or ServeLimits()
        self.model_path = model_path
        self.queue = WorkQueue(self.limits.queue_size)
        # Jobs of earlier runs of a server on this data folder, listed again from their
        # case folders (server.jobs); rows are read from each case when first asked for.
        self.jobs: dict[str, ScanJob] = restore_jobs(self.scans_dir)
        self._stopping = False
        self._cam_model: Any = None
        self._cam_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self.started = time.time()
        self.n_analysed = 0

    # -- lifetime
    def start(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="serve-worker", daemon=True)
            self._worker.start()

    @property
    def scans_dir(self) -> Path:
        return self.data_dir / "scans"

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping = True
        for item in self.queue.close():
            if isinstance(item, Analysis):
                item.future.cancel()
            else:  # never started: kept, and resumable after a restart
                item.status = JobStatus.INTERRUPTED
                item.message = INTERRUPTED_MESSAGE.format(id=item.id)
                item.save()
        for job in self.jobs.values():
            job.cancel.set()
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None

    @property
    def ready(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def model_info(self) -> dict[str, Any]:
        ck = self.detector.checkpoint
        return {"model_id": ck.model_id, "kind": ck.kind, "sha256": ck.sha256,
                "threshold": ck.threshold, "inconclusive_band": ck.inconclusive_band,
                "device": self.detector.device_description,
                "architecture": ck.arch.get("name") if isinstance(ck.arch, dict) else None,
                "version": ck.meta.get("version") if isinstance(ck.meta, dict) else None,
                "settings": self.settings.to_record()}

    # -- submitting work
    def submit_analysis(self, data: bytes) -> Analysis:
        analysis = Analysis(InMemoryImage("upload", data))
        self.queue.put(analysis)
        return analysis

    def submit_scan(self, uploads: list[tuple[str, bytes]]) -> ScanJob:
        """Store the uploads in a new case and queue its scan. Every upload is checked first
        (an image by its bytes, a name to show); a refused batch stores nothing."""
        if not uploads:
            raise BadUpload("no images: send one or more multipart fields named 'image'")
        if len(uploads) > self.limits.max_files:
            raise BadUpload(f"{len(uploads)} images in one batch; at most "
                            f"{self.limits.max_files}")
        stored: list[tuple[str, bytes, str]] = []
        for i, (name, data) in enumerate(uploads):
            shown = escape_for_terminal(name)[:200] or f"image {i + 1}"
            fmt = sniff_format(data[:16])
            if fmt is None:
                raise BadUpload(f"{shown}: not an image in a format this server decodes "
                                f"({', '.join(sorted(_EXTENSIONS))}); nothing was stored")
            # The stored name is built from the position and the bytes' format only.
            stored.append((f"{i:05d}{_EXTENSIONS[fmt]}", data, shown))
        self._check_space(sum(len(data) for _, data, _ in stored))
        job_id, folder = self._new_case()
        evidence = folder / "evidence"
        try:
            evidence.mkdir()
            for file_name, data, _ in stored:
                (evidence / file_name).write_bytes(data)
                (evidence / file_name).chmod(0o400)  # evidence: read-only from here on
        except OSError as exc:  # nothing half-stored is left behind: the batch is refused
            self._discard_case(folder)
            if is_disk_full(exc):
                raise self._no_space("the batch was not stored") from None
            raise
        job = ScanJob(job_id, folder, {f: shown for f, _, shown in stored}, total=len(stored))
        job.number(str(evidence / f) for f, _, _ in stored)  # row i is upload i
        self._enqueue(job)
        return job

    def submit_folder_scan(self, folder: str, recursive: bool = False) -> ScanJob:
        """Queue a scan of a folder under the operator's ``--scan-root`` (read in place,
        never copied); refused unless the operator enabled it and the folder lies inside."""
        if self.scan_root is None:
            raise BadUpload("folder scans are off: the operator enables them by starting the "
                            "server with --scan-root DIR")
        rel = Path(folder)
        if not folder or "\x00" in folder or rel.is_absolute() or ".." in rel.parts:
            raise BadUpload("'folder' must be a path relative to the scan root, without '..'")
        target = (self.scan_root / rel).resolve()  # links resolved before the check
        if not target.is_relative_to(self.scan_root) or not target.is_dir():
            raise BadUpload(f"{escape_for_terminal(folder)[:200]}: no such folder under the "
                            "scan root")
        job_id, case_folder = self._new_case()
        job = ScanJob(job_id, case_folder, {}, sources=[target], recursive=recursive,
                      root=self.scan_root)
        self._enqueue(job)
        return job

    def _check_room(self) -> None:
        if len(self.queue) >= self.queue.capacity:
            raise QueueFull(f"the queue is full ({self.queue.capacity} requests waiting)")

    def _new_case(self) -> tuple[str, Path]:
        """A new job's id and its (created, empty) case folder, once the queue has room."""
        from forensics_app.core.case import Case

        self._check_room()
        job_id = uuid.uuid4().hex
        folder = self.data_dir / "scans" / job_id
        try:
            with Case.create(folder, name=f"forensics-serve scan {job_id[:8]}"):
                pass
        except Exception as exc:
            self._discard_case(folder)
            if is_disk_full(exc):
                raise self._no_space("no case was made") from None
            raise
        return job_id, folder

    def _check_space(self, need: int) -> None:
        """507 before anything is written when the batch cannot fit on the data disk."""
        try:
            free = shutil.disk_usage(self.data_dir).free
        except OSError:
            return  # unknown: the writes themselves will tell
        if free < need + self.limits.min_free_bytes:
            raise self._no_space(f"the batch ({_mb(need)}) was not stored", free)

    def _no_space(self, what: str, free: int | None = None) -> NoSpace:
        """The 507 message: which disk is full and how much is free; the full path of the
        data folder goes to the operator's log, not to the client."""
        disk = mount_point(self.data_dir)
        if free is None:
            try:
                free = shutil.disk_usage(self.data_dir).free
            except OSError:
                free = None
        log.error("no space left on %s (data folder %s): %s", disk, self.data_dir, what)
        room = f"{_mb(free)} free" if free is not None else "free space unknown"
        return NoSpace(f"no space left on the server's data disk (the file system mounted at "
                       f"{disk}, {room}, holding --data-dir): {what}. Scans already stored are "
                       "intact; free space there, then send it again")

    @staticmethod
    def _discard_case(folder: Path) -> None:
        """Remove a case folder this request made and could not complete."""
        shutil.rmtree(folder, ignore_errors=True)

    def _enqueue(self, job: ScanJob) -> None:
        job.save()
        try:
            self.queue.put(job)
        except QueueFull:
            job.status, job.message = JobStatus.CANCELLED, "the queue was full"
            job.save()
            raise
        finally:
            self.jobs[job.id] = job

    def resume(self, job: ScanJob) -> ScanJob:
        """Queue an interrupted, cancelled or failed scan again, into the same case: as the
        CLI resumes a case, the files the case already holds are not scored again."""
        with job.lock:
            if not job.status.resumable:
                raise NotResumable(f"the scan is {job.status}; only an interrupted, "
                                   "cancelled or failed scan is resumed")
            self._check_room()
            self._load_rows(job)
            job.cancel.clear()
            job.status, job.message, job.finished = JobStatus.QUEUED, "", None
            # Reports and overlays made from the rows so far would go stale: made again.
            for cached in (*job.folder.glob("reports/report.*"),
                           *job.folder.glob("gradcam/*.png")):
                cached.unlink(missing_ok=True)
            job.save()
            self.queue.put(job)
        return job

    def job(self, job_id: str) -> ScanJob | None:
        job = self.jobs.get(job_id) if JOB_ID.match(job_id) else None
        if job is not None and not job.rows_loaded:
            with job.lock:
                self._load_rows(job)
        return job

    @staticmethod
    def _load_rows(job: ScanJob) -> None:
        if not job.rows_loaded:
            job.results = rows_from_case(job)
            job.done = len(job.results)
            job.rows_loaded = True

    # -- the worker
    def _work(self) -> None:
        while True:
            item = self.queue.take(max_analyses=self.settings.batch_size)
            if item is None:
                return
            try:
                if isinstance(item, ScanJob):
                    self._run_scan(item)
                else:
                    self._run_analyses(item)
            except Exception:  # noqa: BLE001 -- the worker outlives any one request
                log.exception("serve worker: a request failed")

    def _run_analyses(self, run: list[Analysis]) -> None:
        live = [a for a in run if a.future.set_running_or_notify_cancel()]
        if not live:
            return
        images = [InMemoryImage(f"upload-{i}", a.image.data) for i, a in enumerate(live)]

        def deliver(r: ScanResult) -> None:
            live[r.index].future.set_result(r)

        try:
            outcome = ScanSession(self.detector, self.settings, images, on_result=deliver,
                                  command="forensics-serve").run()
            self.n_analysed += len(outcome.results)
        except Exception as exc:  # noqa: BLE001 -- every waiting request gets an answer
            for a in live:
                if not a.future.done():
                    a.future.set_exception(exc)
            raise
        for a in live:  # a file without a row (cannot happen for uploads): say so
            if not a.future.done():
                a.future.set_exception(RuntimeError("the scan returned no row for this image"))

    def _run_scan(self, job: ScanJob) -> None:
        if job.cancel.is_set():
            job.status = JobStatus.CANCELLED
            job.save()
            return
        self._load_rows(job)  # a resumed job starts from the rows its case holds
        job.status, job.model_id = JobStatus.RUNNING, self.detector.model_id
        job.runs += 1
        job.save()
        # Rows are numbered by the job's numbering of its files (ScanJob.order), given once:
        # a file skipped at intake keeps its number unused, a resumed run numbers only files
        # new to the job, so a row's index never changes (during, after, across restarts).
        job.skipped = 0

        def on_result(r: ScanResult) -> None:
            job.number([r.path])  # (every discovered file is numbered already)
            job.results.append(dataclasses.replace(r, index=job.order[r.path]))

        def on_skipped(_entry: Any) -> None:
            job.skipped += 1

        session = ScanSession(self.detector, self.settings, job.sources or [job.evidence],
                              recursive=job.recursive, case=job.folder,
                              jsonl=job.folder / "results.jsonl", on_result=on_result,
                              on_skipped=on_skipped, command="forensics-serve",
                              confine_to=job.root)  # a folder scan reads nothing outside

        def progress(done: int, _total: int) -> None:
            job.done = session.n_already + done

        try:
            found = session.discover()
            job.number(str(p) for p in found.files)
            job.total = len(found.files)
            job.save()  # the numbering is kept before any row exists
            outcome = session.run(progress=progress, should_cancel=job.cancel.is_set)
        except Exception as exc:
            job.status, job.message = JobStatus.FAILED, self._failure(job, exc)
            job.finished = time.time()
            job.save()
            raise
        job.finished = time.time()
        # The case is the one store of rows: the job shows what it holds (earlier runs too).
        job.results = rows_from_case(job) or job.results
        job.done = len(job.results)
        job.status, job.message = JobStatus(outcome.status), outcome.message
        if job.status is JobStatus.FAILED:
            job.message = self._failure(job, outcome.message)
        if self._stopping and job.status is JobStatus.CANCELLED:  # stopped by the server
            job.status, job.message = (JobStatus.INTERRUPTED,
                                       INTERRUPTED_MESSAGE.format(id=job.id))
        job.save()

    def _failure(self, job: ScanJob, error: BaseException | str) -> str:
        """Why a scan failed, as its client may read it: a full disk named as such (the rows
        stored before it are kept; resume once there is room), no server path in it."""
        from forensics_app.server.case_report import PublicView

        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if is_disk_full(error) if isinstance(error, BaseException) else is_disk_full(
                Exception(text)):
            return str(self._no_space(
                f"the scan stopped with {job.done} of {job.total} file(s) stored in its case; "
                f"POST /api/v1/scans/{job.id}/resume scores the rest once there is room"))
        return PublicView(job).text(text)

    # -- products of a finished job
    def report(self, job: ScanJob, fmt: str) -> Path:
        """The case report in ``fmt`` (made once, then served from the case folder)."""
        from forensics_app.server.case_report import write_job_report

        out = job.folder / "reports" / f"report.{fmt}"
        with job.lock:
            if out.is_file():
                return out
            out.parent.mkdir(exist_ok=True)
            if fmt == "pdf":  # Qt lays the PDF out: in a process of its own, not the server's
                cmd = [sys.executable, "-m", "forensics_app.server.case_report",
                       str(job.folder), str(out)]
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=self.limits.report_timeout_s, check=False)
                if proc.returncode != 0 or not out.is_file():
                    raise OSError(f"the PDF report could not be written: "
                                  f"{proc.stderr.strip()[-300:]}")
            else:
                write_job_report(job, out, model_path=self.model_path)
        return out

    def gradcam_png(self, job: ScanJob, index: int) -> bytes:
        """The Grad-CAM overlay of one stored upload as a PNG that says what it is."""
        out = job.folder / "gradcam" / f"{index:05d}.png"
        r = next((r for r in job.results if r.index == index), None)
        if r is None or not r.ok:
            raise LookupError(f"no scored image at index {index} in this scan")
        with job.lock:
            if out.is_file():
                return out.read_bytes()
            png = self._render_gradcam(r, job.client_name(r), job.root)
            # Whole or absent: a cut file would be served from the cache ever after.
            atomic_write(out, png)
        return png

    def _render_gradcam(self, r: ScanResult, shown_name: str,
                        job_root: Path | None = None) -> bytes:
        import io

        import numpy as np
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        from forensics_app.core.gradcam import cam_model_copy, colour_map, tiled_gradcam
        from forensics_app.core.loading import load_evidence
        from forensics_app.core.preprocess import prepare_image
        from forensics_app.core.warning_capture import logged_file_warnings

        with logged_file_warnings(f"upload {shown_name}", log):  # named, not bare on stderr
            evidence, img, err = load_evidence(r.path, limits=self.settings.decode_limits(),
                                               root=job_root)
        if err is not None:
            raise err
        if evidence.sha256 != r.sha256:
            raise LookupError("the stored upload no longer matches its SHA-256")
        prepared = prepare_image(img, self.settings.preprocess_config())
        del img
        with self._cam_lock:  # one private CPU copy of the model, never the scan's instance
            if self._cam_model is None:
                self._cam_model = cam_model_copy(self.detector.checkpoint.model)
            cam = tiled_gradcam(self._cam_model, prepared, self.detector.checkpoint.fake_index)
        heat = colour_map(cam.heat).astype(np.float32)
        base = cam.image.astype(np.float32)
        mask = cam.analysed[..., None]
        blended = np.where(mask, 0.5 * base + 0.5 * heat, base).round().astype(np.uint8)
        info = PngInfo()
        for key, value in {
            "Title": f"Grad-CAM overlay of {shown_name}", "Source": shown_name,
            "SHA-256": r.sha256 or "", "Model": r.model_id,
            "P(generated)": f"{r.prob_fake:.4f}", "Verdict": r.verdict.value,
            "Description": "Regions that most raised the detector's score for this image; "
                           "not a map of edited or manipulated areas.",
        }.items():
            info.add_text(key, value)
        buf = io.BytesIO()
        Image.fromarray(blended, "RGB").save(buf, "PNG", pnginfo=info)
        return buf.getvalue()
