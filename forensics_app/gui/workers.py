"""The one worker pattern of the GUI: a ``QObject`` moved to a ``QThread``.

Every background task (loading the model, scanning a job, Grad-CAM, thumbnails) subclasses
:class:`Worker` and implements :meth:`Worker.work`. ``run`` is the single place where
exceptions are caught and turned into signals; cancellation is its own exception type
(:class:`WorkCancelled`) and is requested through a thread-safe flag checked by the work
(the core's ``should_cancel`` callable), never by ``QThread.terminate``.

:func:`start_worker` owns the thread's lifetime and records it in a registry so tests can
fail when a thread outlives them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage

from forensics_app.gui.records import (
    EnvInfo,
    HeatmapData,
    ModelInfo,
    PathRegistry,
    ScanJob,
    ScanSettings,
)

log = logging.getLogger(__name__)

_live_threads: set[QThread] = set()
_live_lock = threading.Lock()


# Worker threads run this much nicer than the GUI thread (Linux, where nice is per thread):
# the event loop gets a core the moment it has work, and the threads a worker starts -- the
# scan's intake pool, torch's intra-op pool when it is created there -- inherit the value.
WORKER_NICE = 5


def lower_thread_priority(increment: int = WORKER_NICE) -> int | None:
    """Raise the calling thread's nice value by ``increment``; the new value, or None where
    threads have no nice value of their own (not Linux) or it cannot be read."""
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return None
    tid = threading.get_native_id()
    try:
        nice = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, nice + increment))
        return os.getpriority(os.PRIO_PROCESS, tid)
    except OSError:
        return None


class WorkCancelled(Exception):
    """Raised by :meth:`Worker.work` when the cancel flag was seen; carries partial output."""

    def __init__(self, partial: Any = None):
        super().__init__("cancelled")
        self.partial = partial


class Worker(QObject):
    """Base class: subclasses implement :meth:`work`, which runs in the worker thread."""

    started = Signal()
    progress = Signal(int, int)
    result = Signal(object)
    error = Signal(str)
    cancelled = Signal(object)
    finished = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next check; callable from any thread."""
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self, partial: Any = None) -> None:
        if self._cancel.is_set():
            raise WorkCancelled(partial)

    def work(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @Slot()
    def run(self) -> None:
        # Name the Python side of the thread so log lines say which worker wrote them.
        threading.current_thread().name = QThread.currentThread().objectName() or type(self).__name__
        lower_thread_priority()
        self.started.emit()
        t0 = time.perf_counter()
        try:
            value = self.work()
        except WorkCancelled as exc:
            log.info("%s cancelled after %.2f s", type(self).__name__, time.perf_counter() - t0)
            self.cancelled.emit(exc.partial)
        except Exception as exc:  # noqa: BLE001 -- the one place worker errors are caught
            log.exception("%s failed", type(self).__name__)
            self.error.emit(describe_exception(exc))
        else:
            self.result.emit(value)
        finally:
            self.finished.emit()


def describe_exception(exc: BaseException) -> str:
    """A message for the analyst: the core's own errors already say what went wrong."""
    name = type(exc).__name__
    if name in ("CheckpointError", "NoBundledModelError", "ImageLoadError", "SessionFailed"):
        return str(exc)
    return f"{name}: {exc}"


def start_worker(worker: Worker, name: str) -> QThread:
    """Move ``worker`` to a new thread and start it; the thread quits when the work ends.

    The caller keeps references to both objects until ``thread.finished`` and then calls
    :func:`release_thread`, so Python never deletes a running thread.
    """
    thread = QThread()
    thread.setObjectName(name)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: quit() is thread-safe, and a queued call would never arrive while the GUI
    # thread is blocked in release_thread() during shutdown.
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    with _live_lock:
        _live_threads.add(thread)
    thread.start()
    return thread


def release_thread(thread: QThread, timeout_ms: int = 10_000) -> bool:
    """Wait for a thread whose work has finished and forget it; False if it would not stop."""
    stopped = thread.wait(timeout_ms)
    if stopped:
        with _live_lock:
            _live_threads.discard(thread)
    return stopped


def live_threads() -> list[QThread]:
    """Threads started by :func:`start_worker` that are still running (for tests)."""
    with _live_lock:
        threads = list(_live_threads)
    return [t for t in threads if t.isRunning()]


class Throttle:
    """True at most once per ``interval`` seconds: keeps signal traffic to the GUI bounded."""

    def __init__(self, interval: float):
        self.interval = interval
        self._last = 0.0

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


# --------------------------------------------------------------------------- concrete workers
# Heavy modules (torch, the core engine, PIL) are imported inside ``work`` so that importing
# the GUI never imports torch: they load in the worker thread, after the window is shown.


def probe_environment() -> EnvInfo:
    import torch

    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        ok, reason = False, "this PyTorch build has no CUDA support"
    elif not torch.cuda.is_available():
        ok, reason = False, "no CUDA device or driver was found"
    else:
        ok, reason = True, torch.cuda.get_device_name(0)
    return EnvInfo(torch.__version__, ok, reason, torch.get_num_threads())


class ModelLoadWorker(Worker):
    """Imports torch, reports the environment, then loads a checkpoint onto a device."""

    environment = Signal(object)  # EnvInfo

    def __init__(self, path: str | None, device: str = "auto", fake_index: int = 1,
                 bundled: bool = False, threads: int | None = None):
        super().__init__()
        self.path, self.device, self.fake_index = path, device, fake_index
        self.bundled, self.threads = bundled, threads

    def work(self) -> tuple[Any, ModelInfo] | None:
        self.environment.emit(probe_environment())
        if self.path is None:
            return None
        from forensics_app.core.detector import Detector

        det = Detector.from_checkpoint(self.path, device=self.device,
                                       fake_index=self.fake_index, threads=self.threads)
        ck = det.checkpoint
        info = ModelInfo(
            path=ck.path, sha256=ck.sha256, model_id=ck.model_id, kind=ck.kind,
            arch=dict(ck.arch), meta=dict(ck.meta), threshold=ck.threshold,
            band=ck.inconclusive_band, fake_index=ck.fake_index,
            device=det.device_description, bundled=self.bundled,
        )
        log.info("loaded %s (%s) on %s", info.model_id, info.kind, info.device)
        return det, info


class ScanWorker(Worker):
    """Runs one :class:`ScanJob` through the core's :class:`ScanSession` (discover, skip what
    the case holds and what this window already queued, score, record into the case).

    Rows go to the GUI in batches (``rows``) at most every ``emit_interval`` seconds so a
    fast scan cannot flood the event loop. 0.25 s: each batch repaints the table, and at
    10 batches a second the GUI thread took 8-14 % of a core from the scan on 2 cores (5-7 %
    at 4 a second; ``benchmarks/gui_responsiveness.py``). The case, when one is open, is
    written by the session's recorder in this thread, once per batch -- the same write path
    as the CLI's.
    """

    discovered = Signal(int, int)  # files to scan, duplicates skipped
    # list[core.discovery.Skipped]: entries not scanned -- discovery's at once, then
    # intake's as they are met
    skipped = Signal(object)
    rows = Signal(object)  # list[ScanResult]

    def __init__(self, job: ScanJob, detector: Any, registry: PathRegistry,
                 threshold: float | None, band: float | None, emit_interval: float = 0.25,
                 case: Any = None, own_outputs: Any = None):
        super().__init__()
        self.own_outputs = own_outputs  # core.own_outputs.OwnOutputs: never scanned
        self.sources = list(job.sources)
        self.recursive = job.recursive
        self.settings = job.settings.replace(threshold=threshold, inconclusive_band=band)
        self.detector, self.registry, self.case = detector, registry, case
        self._buffer: list = []
        self._skipped_buffer: list = []  # intake's not-an-image files, emitted with rows
        self._row_throttle = Throttle(emit_interval)
        self._progress_throttle = Throttle(emit_interval)
        self._claimed: list[Path] = []
        self._finished: set[str] = set()

    def work(self) -> list:
        from forensics_app.core.case import SCAN_CANCELLED, SCAN_FAILED
        from forensics_app.core.session import ScanSession, SessionFailed

        session = ScanSession(self.detector, self.settings, self.sources,
                              recursive=self.recursive, case=self.case,
                              on_result=self._on_result, claim=self._claim,
                              command="forensics-app", on_skipped=self._on_skipped)
        try:
            found = session.discover()
            if self.own_outputs is not None:  # H1: an overlay saved earlier is no evidence
                from forensics_app.core.own_outputs import skip_own_outputs

                session.skipped.extend(skip_own_outputs(found, self.own_outputs))
            if session.skipped:  # counted on the job from the start (D17)
                self.skipped.emit(list(session.skipped))
            self.check_cancelled([])
            outcome = session.run(progress=self._on_progress, should_cancel=self.is_cancelled)
        finally:
            self._flush()
            self.registry.release(p for p in self._claimed if str(p) not in self._finished)
            for entry in session.skipped:  # never dropped silently: logged and reported
                log.info("not scanned: %r: %s", entry.path, entry.reason)
        if outcome.status == SCAN_CANCELLED:  # translated, not handled: run() reports it
            raise WorkCancelled(outcome.results)
        if outcome.status == SCAN_FAILED:
            raise SessionFailed(outcome.message)
        return outcome.results

    def _claim(self, files: list[Path]) -> list[Path]:
        """The files of this job not already queued or scanned in this window."""
        self._claimed, dupes = self.registry.claim(files)
        self.discovered.emit(len(self._claimed), dupes)
        return self._claimed

    def _on_result(self, result) -> None:
        self._finished.add(result.path)
        self._buffer.append(result)
        if self._row_throttle.ready():
            self._flush()

    def _on_progress(self, done: int, total: int) -> None:
        if done == total or self._progress_throttle.ready():
            self.progress.emit(done, total)

    def _on_skipped(self, entry) -> None:
        self._skipped_buffer.append(entry)
        if self._row_throttle.ready():
            self._flush()

    def _flush(self) -> None:
        if self._skipped_buffer:
            entries, self._skipped_buffer = self._skipped_buffer, []
            self.skipped.emit(entries)
        if self._buffer:
            rows, self._buffer = self._buffer, []
            self.rows.emit(rows)


@dataclass(frozen=True)
class HeatmapRequest:
    path: str
    sha256: str
    model_id: str
    preprocessing: str
    settings: ScanSettings
    tile_boxes: tuple[tuple[int, int, int, int], ...] = ()
    tile_probs: tuple[float, ...] = ()
    # H3: the detector's branches beside the trace CNN (name -> branch) and every branch's
    # role (core.branch_explain.BranchRole, heaviest fusion weight first)
    branches: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    roles: tuple[Any, ...] = field(default=(), compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.sha256, self.model_id, self.preprocessing)


class HeatmapWorker(Worker):
    """Grad-CAM for one file on a private CPU model instance (never the scan's).

    ``result`` is ``(HeatmapData, cam_model)`` so the caller can reuse the model instance.
    With ``request=None`` it only prepares (imports the Grad-CAM library, loads the private
    model copy) and ``result`` is ``(None, cam_model)``: the first map then starts at once.
    """

    def __init__(self, request: HeatmapRequest | None, model_path: str, fake_index: int,
                 cam_model: Any = None):
        super().__init__()
        self.request, self.model_path = request, model_path
        self.fake_index, self.cam_model = fake_index, cam_model

    def work(self) -> tuple[HeatmapData | None, Any]:
        # timed from the start: the first map imports pytorch_grad_cam (7.5 s measured with
        # python -X importtime on the 2-core dev box), which a later clock missed (D18)
        t0 = time.perf_counter()
        import numpy as np

        from forensics_app.core.detector import load_checkpoint
        from forensics_app.core.gradcam import (
            CamCancelled,
            cam_model_copy,
            colour_map,
            tiled_gradcam,
        )
        from forensics_app.core.loading import load_evidence
        from forensics_app.core.preprocess import prepare_image
        from forensics_app.core.warning_capture import logged_file_warnings

        imported_s = time.perf_counter() - t0
        req = self.request
        model, fake_index = self.cam_model, self.fake_index
        prepare_s = imported_s if imported_s >= 0.05 else 0.0  # a library loaded: say so
        if model is None:
            ckpt = load_checkpoint(self.model_path, fake_index=self.fake_index)
            model, fake_index = cam_model_copy(ckpt.model), ckpt.fake_index
            prepare_s = time.perf_counter() - t0
        self.check_cancelled()
        if req is None:  # prepare only (HeatmapService.prewarm)
            return None, model
        with logged_file_warnings(req.path, log) as caught:
            evidence, img, err = load_evidence(req.path, limits=req.settings.decode_limits())
        if err is not None:
            raise err
        notes: list[str] = [f"decoder warning: {w}" for w in caught]
        from forensics_app.core.branch_explain import ExplainCancelled, branch_occlusion_maps

        try:  # H3: each non-trace branch's map, before img is freed
            occlusions = branch_occlusion_maps(req.roles, req.branches, img, self.is_cancelled)
        except ExplainCancelled:
            raise WorkCancelled() from None
        if req.sha256 and evidence.sha256 != req.sha256:
            notes.append("The file changed since it was scanned (SHA-256 differs); this map "
                         "describes the file as it is now.")
        prepared = prepare_image(img, req.settings.preprocess_config())
        del img  # the prepared image holds the one decoded copy
        notes.extend(prepared.notes)
        try:
            cam = tiled_gradcam(model, prepared, fake_index, should_cancel=self.is_cancelled)
        except CamCancelled:
            raise WorkCancelled() from None
        prepared.release()
        notes.extend(cam.notes)
        heat_rgb = colour_map(cam.heat)
        alpha = np.where(cam.analysed, 255, 0).astype(np.uint8)[..., None]
        # Tile boxes in the picture's coordinates (it is scaled down for very large images).
        k = cam.scale
        boxes = [(round(x * k), round(y * k), max(1, round(w * k)), max(1, round(h * k)))
                 for x, y, w, h in req.tile_boxes]
        data = HeatmapData(
            key=req.key, path=req.path, image=cam.image, heat=cam.heat,
            heat_rgba=np.ascontiguousarray(np.concatenate([heat_rgb, alpha], axis=2)),
            tile_boxes=boxes, tile_probs=list(req.tile_probs), notes=notes,
            elapsed_s=time.perf_counter() - t0, prepare_s=prepare_s, display_scale=k,
            roles=list(req.roles),
        )
        for name, m in occlusions.items():  # coloured at the size of the image shown
            if isinstance(m, str):
                data.branch_notes[name] = [f"no occlusion map: {m}"]
                continue
            data.branch_rgba[name] = m.rgba(data.image.shape[1], data.image.shape[0])
            data.branch_notes[name] = list(m.notes) + [
                f"occlusion sensitivity: {m.n_forward} forward passes of the {name} branch."]
        return data, model


def to_8bit(im):
    """16- and 32-bit greyscale scaled to 8 bits (Pillow's own convert clips it to white)."""
    import numpy as np
    from PIL import Image

    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im).astype(np.float64)
        return Image.fromarray(np.clip(a / 257.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return im


class ThumbnailWorker(Worker):
    """Small previews for the table, decoded off the GUI thread (QImage is thread-safe)."""

    thumbnail = Signal(str, QImage)

    def __init__(self, paths: list[str], size: int):
        super().__init__()
        self.paths, self.size = paths, size

    def work(self) -> int:
        from PIL import Image, ImageOps

        from forensics_app.core.bomb_guard import DecodeLimits, check_declared_image
        from forensics_app.core.loading import DECODE_FORMATS
        from forensics_app.core.warning_capture import logged_file_warnings

        # BombRefused is a ValueError: the engine's bomb guard applies to previews too (Pillow's
        # own pixel limit is off once core.loading is imported).
        unreadable = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
        limits = DecodeLimits()
        # Only JPEG has reduced-size decoding (draft); other formats decode in full, so very
        # large ones get no preview rather than a full decode on the GUI's behalf.
        no_draft_limits = DecodeLimits(max_pixels=64_000_000)
        for path in self.paths:
            self.check_cancelled()
            qimg = QImage()
            try:
                with logged_file_warnings(path, log), \
                        Image.open(path, formats=DECODE_FORMATS) as im:
                    check_declared_image(im.width, im.height, im.mode, Path(path).stat().st_size,
                                         limits if im.format == "JPEG" else no_draft_limits)
                    im.draft("RGB", (self.size * 2, self.size * 2))
                    im = ImageOps.exif_transpose(im) or im
                    im = to_8bit(im)
                    im.thumbnail((self.size, self.size))
                    im = im.convert("RGB")
                    qimg = QImage(im.tobytes(), im.width, im.height, 3 * im.width,
                                  QImage.Format.Format_RGB888).copy()
            except unreadable as exc:  # a preview only: the row already reports the file
                log.debug("no thumbnail for %s: %s", path, exc)
            self.thumbnail.emit(path, qimg)
        return len(self.paths)
