"""The scan pipeline: discover files, take them in on background threads, score in batches.

Decoding, hashing and preprocessing run in a small thread pool (PIL and numpy release the GIL)
while the main loop runs the forward pass, so the two overlap. Inputs of equal shape are
batched together; a bounded window of in-flight files keeps memory flat however many files
are scanned. A file that cannot be read or decoded becomes an error result and the scan goes
on. Long work follows the house pattern: ``progress(done, total)`` and ``should_cancel()``
callables, and a dedicated :class:`ScanCancelled` carrying the results finished so far.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from forensics_app.core.bomb_guard import DecodeLimits
from forensics_app.core.branches import assess as assess_branch
from forensics_app.core.detector import Detector
from forensics_app.core.discovery import LinkFact, Skipped, discover
from forensics_app.core.failure_text import unexpected_failure
from forensics_app.core.loading import (
    DEFAULT_MAX_DECODE_PIXELS,
    Evidence,
    ImageLoadError,
    InMemoryImage,
    NotAnImage,
    load_evidence,
    looks_like_image,
)
from forensics_app.core.preprocess import PreparedImage, PreprocessConfig, prepare_image
from forensics_app.core.provenance import Provenance, ProvenanceOptions, read_provenance
from forensics_app.core.read_budget import abandon_pending_reads
from forensics_app.core.results import ScanResult, Verdict, verdict_for
from forensics_app.core.warning_capture import file_warnings

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]
ResultFn = Callable[[ScanResult], None]


class ScanCancelled(Exception):
    """Raised when ``should_cancel()`` returned True; ``results`` holds finished rows."""

    def __init__(self, results: list[ScanResult]):
        super().__init__(f"scan cancelled after {len(results)} files")
        self.results = results


@dataclass(frozen=True)
class ScanOptions:
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    batch_size: int = 16
    threshold: float | None = None  # None: the checkpoint's own threshold
    inconclusive_band: float | None = None
    workers: int = 2
    max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS
    # The bomb guard's limits; None: the defaults with ``max_decode_pixels`` as the pixel cap.
    limits: DecodeLimits | None = None
    # Cap on pixels in one forward batch, so a batch of large images does not exhaust memory
    # (activations of the forward pass grow with it; 4 tiles of 512^2 already fill 2 cores).
    max_batch_pixels: int = 4 * 512 * 512
    # The intake memory window, in bytes of decoded images (not in files): a file is only
    # decoded when the images already taken in and not yet cut into tiles leave room for it
    # (one image larger than the window is still taken in, alone).
    max_inflight_bytes: int = 512 * 1024 * 1024
    # Speed levers of the scan loop (the forward pass's own are the Detector's SpeedLevers).
    cross_image_batching: bool = True  # tiles of different images share a forward batch
    overlap_decode: bool = True  # decode on intake threads while the forward pass runs
    # Files found inside folders without an image extension: taken in only if the first
    # bytes of their single read are an image, else skipped (set by scan_files' ``sniff``).
    images_only_paths: frozenset[str] = frozenset()
    # Files that are symbolic links (``Discovery.links``, set by scan_files' ``links``): one
    # whose target lies outside the evidence folder is not read (core.discovery's rule); a
    # followed one is noted on its row with its target.
    links: dict[str, LinkFact] = field(default_factory=dict, compare=False)
    # Provenance (C2PA, IPTC/XMP, EXIF, generator text) read from the same bytes at intake.
    provenance: bool = True
    provenance_options: ProvenanceOptions = field(default_factory=ProvenanceOptions)
    # A resolved folder every file must lie in once its links are resolved (the server's
    # --scan-root); a file outside it is an error row, never read. None: no such bound.
    confine_to: Path | None = None

    @property
    def decode_limits(self) -> DecodeLimits:
        return self.limits or DecodeLimits(max_pixels=self.max_decode_pixels)

    def record(self) -> dict:
        """The scan's settings as plain data, for the report side-car."""
        return {
            "preprocess": {k: str(v) if k == "mode" else v
                           for k, v in asdict(self.preprocess).items()},
            "batch_size": self.batch_size, "max_batch_pixels": self.max_batch_pixels,
            "workers": self.workers, "max_inflight_bytes": self.max_inflight_bytes,
            "cross_image_batching": self.cross_image_batching,
            "overlap_decode": self.overlap_decode, "decode_limits": self.decode_limits.record(),
        }


def discover_files(paths: Iterable[Path | str], recursive: bool = False) -> list[Path]:
    """Expand files and folders into a de-duplicated, ordered list of files to scan.

    The rule is :func:`forensics_app.core.discovery.discover`'s; files inside folders without
    an image extension are sniffed here (a first open); links out of the evidence folder are
    left out. Callers that can report skipped
    entries use ``discover()`` and pass ``sniff=`` to :func:`scan_files` instead, which
    sniffs from the single read.
    """
    found = discover(paths, recursive=recursive)
    return [f for f in found.files if (f not in found.sniff or looks_like_image(f))
            and (f not in found.links or found.links[f].followed)]


@dataclass
class _Intake:
    index: int
    path: Path
    evidence: Evidence | None
    prepared: PreparedImage | None
    error: str | None
    intake_ms: float
    provenance: Provenance | None = None
    skipped: Skipped | None = None  # not an image (sniffed): no result row
    warnings: list[str] = field(default_factory=list)  # raised while reading this file
    # Logits of the detector's other branches (``core.branches``), computed on the intake
    # thread from the same decode, so they overlap the trace branch's forward pass.
    branch_logits: dict[str, float] = field(default_factory=dict)
    domain_caveat: str | None = None  # a branch found the image outside its validated domains


def _noting_warnings(take_in: Callable[..., _Intake]) -> Callable[..., _Intake]:
    """Warnings raised while a file is read and prepared become notes on its row."""

    @functools.wraps(take_in)
    def wrapper(index: int, path: Path, *args, **kwargs) -> _Intake:
        with file_warnings() as caught:
            intake = take_in(index, path, *args, **kwargs)
        intake.warnings = [f"decoder warning: {w}" for w in caught]
        return intake

    return wrapper


class _MemoryWindow:
    """The intake's memory window in bytes: decodes wait here, in file order, for room.

    Turns go strictly by file index (the scan consumes intakes in that order, so a later
    file holding the room while an earlier one waits would deadlock); a file that is not
    decoded (unreadable, refused) passes its turn. The room is given back when the scan has
    cut every tile of the image and dropped the decoded copy.
    """

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self.used = 0
        self._turn = 0
        self._passed: set[int] = set()
        self._held: dict[int, int] = {}
        self._waiting = 0
        self._cond = threading.Condition()

    def reserve(self, index: int, n_bytes: int) -> None:
        with self._cond:
            while self._turn != index:
                self._cond.wait()
            self._waiting += 1
            try:
                while self.used > 0 and self.used + n_bytes > self.capacity:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self.used += n_bytes
            self._held[index] = self._held.get(index, 0) + n_bytes
            self._pass(index)

    def pass_turn(self, index: int) -> None:
        with self._cond:
            self._pass(index)

    def _pass(self, index: int) -> None:
        if index >= self._turn:
            self._passed.add(index)
        while self._turn in self._passed:
            self._passed.discard(self._turn)
            self._turn += 1
        self._cond.notify_all()

    def release(self, index: int) -> None:
        with self._cond:
            self.used -= self._held.pop(index, 0)
            self._cond.notify_all()

    def release_all(self) -> None:
        """Give back all room and let every waiting decode through (the scan is ending)."""
        with self._cond:
            self._held.clear()
            self.used = 0
            self._cond.notify_all()

    @property
    def starved(self) -> bool:
        """A decode is waiting for room (the scan should score what it holds)."""
        with self._cond:
            return self._waiting > 0


@_noting_warnings
def _take_in(index: int, path: Path, options: ScanOptions,
             window: _MemoryWindow | None = None, branches: dict | None = None) -> _Intake:
    t0 = time.perf_counter()
    queued = [0.0]  # seconds spent waiting for room in the memory window: not this file's time

    def reserve(n: int) -> None:
        t = time.perf_counter()
        window.reserve(index, n)
        queued[0] += time.perf_counter() - t

    def elapsed_ms() -> float:
        return _ms(t0) - 1000.0 * queued[0]

    link = options.links.get(str(path)) if options.links else None
    if link is not None:
        problem = link.refusal() or _link_changed(path, link)
        if problem:
            return _Intake(index, path, None, None, problem, elapsed_ms())
    prov: list[Provenance] = []  # read from the intake's bytes (metadata never fails a file)
    on_bytes = ((lambda data: prov.append(read_provenance(data, options.provenance_options)))
                if options.provenance else None)
    try:
        evidence, img, err = load_evidence(path, limits=options.decode_limits,
                                           reserve=None if window is None else reserve,
                                           on_bytes=on_bytes,
                                           images_only=str(path) in options.images_only_paths,
                                           root=options.confine_to)
        if err is not None:
            return _Intake(index, path, evidence, None, err.reason, elapsed_ms(), *prov[:1])
        logits: dict[str, float] = {}
        caveats: list[str] = []
        for name, branch in (branches or {}).items():
            try:
                (said,) = assess_branch(branch, [branch.input_for(img)])
                logits[name] = said.logit
                if said.caveat:  # "not on this image": the row will be Inconclusive
                    caveats.append(f"{name} branch: {said.caveat}")
                if not math.isfinite(logits[name]):
                    raise ValueError(f"non-finite logit {logits[name]!r}")
            except Exception as exc:  # noqa: BLE001 -- a failing branch fails this row only
                if isinstance(exc, MemoryError):
                    raise
                return _Intake(index, path, evidence, None,
                               f"the {name} branch could not score this image "
                               f"({type(exc).__name__}: {str(exc)[:200]}); no verdict",
                               elapsed_ms(), *prov[:1])
        prepared = prepare_image(img, options.preprocess)
        return _Intake(index, path, evidence, prepared, None, elapsed_ms(), *prov[:1],
                       branch_logits=logits, domain_caveat="; ".join(caveats) or None)
    except NotAnImage as exc:
        return _Intake(index, path, None, None, exc.reason, elapsed_ms(),
                       skipped=Skipped(str(path), exc.reason, "not-image"))
    except ImageLoadError as exc:
        return _Intake(index, path, None, None, exc.reason, elapsed_ms())
    except MemoryError:
        return _Intake(index, path, None, None, "out of memory decoding this image; not "
                       "scored (free memory or lower --max-pixels)", elapsed_ms())
    except Exception as exc:  # noqa: BLE001 -- any failure on one file must not stop the scan
        return _Intake(index, path, None, None, unexpected_failure(exc), elapsed_ms())
    finally:
        if window is not None:
            window.pass_turn(index)


def _link_changed(path: Path, link: LinkFact) -> str | None:
    """A followed link must still lead where discovery found it (else it is not read)."""
    try:
        now = os.path.realpath(path)
    except (OSError, ValueError):
        now = ""
    if now != link.target:
        return (f"symbolic link changed after it was listed (was to {link.target}, now to "
                f"{now or 'nothing'}); not read")
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure (CPU or GPU), as torch and numpy report it."""
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("out of memory", "can't allocate memory", "not enough memory",
                            "DefaultCPUAllocator"))


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def aggregate_tiles(tile_probs: Sequence[float]) -> float:
    """Tiles are combined by the mean of their logits (robust to one odd tile)."""
    p = np.clip(np.asarray(tile_probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    logit = float(np.mean(np.log(p / (1 - p))))
    return 1.0 / (1.0 + math.exp(-logit))


class _Pending:
    """An image waiting for all of its tensors to be scored."""

    def __init__(self, intake: _Intake):
        self.intake = intake
        n = intake.prepared.n_tiles
        self.probs: list[float | None] = [None] * n
        self.remaining = n
        self.uncut = n  # tiles not yet cut from the decoded image
        self.forward_ms = 0.0
        self.failure: str | None = None


def scan_files(
    files: Sequence[Path | str | InMemoryImage],
    detector: Detector,
    options: ScanOptions | None = None,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    on_result: ResultFn | None = None,
    *,
    sniff: Iterable[Path | str] = (),
    on_skipped: Callable[[Skipped], None] | None = None,
    links: Mapping[Path | str, LinkFact] | None = None,
) -> list[ScanResult]:
    """Score ``files`` (already discovered, or images in memory); results come back in
    input order.

    Files in ``sniff`` (``Discovery.sniff``) that turn out not to be images get no row: they
    are handed to ``on_skipped`` (and still count in ``progress``). ``links``
    (``Discovery.links``): the link rule of core.discovery, applied at intake.
    """
    options = options or ScanOptions()
    sniff = frozenset(str(Path(f)) for f in sniff)
    if sniff:
        options = dataclasses.replace(options, images_only_paths=options.images_only_paths | sniff)
    if links:
        options = dataclasses.replace(
            options, links={**options.links, **{str(Path(k)): v for k, v in links.items()}})
    ckpt = detector.checkpoint
    threshold = ckpt.threshold if options.threshold is None else options.threshold
    band = ckpt.inconclusive_band if options.inconclusive_band is None else options.inconclusive_band
    device_desc = detector.device_description
    files = [f if isinstance(f, InMemoryImage) else Path(f) for f in files]
    total = len(files)
    results: list[ScanResult | None] = [None] * total
    done = 0

    def finish(intake: _Intake, prob: float | None, forward_ms: float,
               tile_probs: list[float] | None = None) -> None:
        nonlocal done
        if intake.skipped is not None:
            done += 1
            if on_skipped is not None:
                on_skipped(intake.skipped)
            if progress is not None:
                progress(done, total)
            return
        if prob is not None and not all(map(math.isfinite, [prob, *(tile_probs or ())])):
            # A NaN/inf from the network is an error row, never a verdict (issue 11, item 14).
            bad = sum(not math.isfinite(p) for p in (tile_probs or [prob]))
            of = f"{bad} of {len(tile_probs)} tiles" if tile_probs and len(tile_probs) > 1 else (
                "this image")
            intake.error = intake.error or (f"the model returned a non-finite score (NaN/inf) "
                                            f"for {of}; not scored, no verdict")
            prob, tile_probs = None, None
        ev = intake.evidence
        prep = intake.prepared
        branch_probs: dict[str, float] = {}
        if prob is not None and detector.branches:
            prob, branch_probs = detector.fuse(prob, intake.branch_logits)
        res = ScanResult(
            path=str(intake.path), index=intake.index,
            sha256=ev.sha256 if ev else None, bytes=ev.n_bytes if ev else None,
            format=ev.format if ev else None, width=ev.width if ev else None,
            height=ev.height if ev else None, mode=ev.mode if ev else None,
            prob_fake=prob,
            verdict=(verdict_for(prob, threshold, band, intake.domain_caveat)
                     if intake.error is None else Verdict.ERROR),
            threshold=threshold, inconclusive_band=band, model_id=detector.model_id,
            device=device_desc, preprocessing=prep.mode_used if prep else "",
            elapsed_ms=round(intake.intake_ms + forward_ms, 2), error=intake.error,
            notes=list(prep.notes) if prep else [],
            tile_probs=tile_probs if tile_probs and len(tile_probs) > 1 else [],
            tile_boxes=list(prep.boxes) if prep and len(prep.boxes) > 1 else [],
            provenance=intake.provenance, branch_probs=branch_probs,
            domain_caveat=intake.domain_caveat if intake.error is None else None,
        )
        if intake.provenance is not None:
            res.notes.extend(f"provenance: {n}" for n in intake.provenance.notes)
        if ev is not None and ev.n_frames > 1:
            res.notes.append(f"animated/multi-frame ({ev.n_frames} frames): first frame scored")
        if ev is not None:
            res.notes.extend(ev.notes)
        link = options.links.get(str(intake.path)) if options.links else None
        if link is not None and link.followed:
            res.notes.append(link.note())
        res.notes.extend(intake.warnings)
        results[intake.index] = res
        done += 1
        if on_result is not None:
            on_result(res)
        if progress is not None:
            progress(done, total)

    # shape -> list of (pending, tile index); ordered by age of the group. Tiles are cut from
    # the decoded image only when their batch runs, so waiting costs no float memory.
    groups: OrderedDict[tuple[int, ...], list[tuple[_Pending, int]]] = OrderedDict()
    waiting = 0
    window = _MemoryWindow(options.max_inflight_bytes)

    def batch_limit(shape: tuple[int, ...]) -> int:
        pixels = shape[-1] * shape[-2]
        return max(1, min(options.batch_size, options.max_batch_pixels // max(1, pixels)))

    def cut(pend: _Pending, tile_idx: int) -> torch.Tensor:
        tensor = pend.intake.prepared.tile(tile_idx)
        pend.uncut -= 1
        if pend.uncut == 0:  # every tile taken: drop the decoded image, give its room back
            pend.intake.prepared.release()
            window.release(pend.intake.index)
        return tensor

    def forward(tiles: list[torch.Tensor]) -> list[float]:
        batch = tiles[0].unsqueeze(0) if len(tiles) == 1 else torch.stack(tiles)
        return [float(p) for p in detector.predict_proba(batch)]

    def forward_or_alone(entries: list[tuple[_Pending, int]],
                         tiles: list[torch.Tensor]) -> list[float | None]:
        """The batch's scores; when it runs out of memory, each image's tiles again alone,
        and an image that still does not fit becomes an error row."""
        try:
            return forward(tiles)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if detector.device.type == "cuda":
            torch.cuda.empty_cache()
        probs: list[float | None] = []
        for (pend, _), tile in zip(entries, tiles, strict=True):
            if pend.failure is not None:
                probs.append(None)
                continue
            try:
                probs.extend(forward([tile]))
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                pend.failure = ("out of memory in the forward pass, in a batch and again alone "
                                f"({reason}); not scored -- free memory or lower --tile-size")
                probs.append(None)
        return probs

    def run_group(shape: tuple[int, ...]) -> None:
        nonlocal waiting
        entries = groups.pop(shape)
        waiting -= len(entries)
        if should_cancel is not None and should_cancel():
            raise ScanCancelled([r for r in results if r is not None])
        t0 = time.perf_counter()
        tiles = [cut(pend, i) for pend, i in entries]
        probs = forward_or_alone(entries, tiles)
        del tiles
        share = _ms(t0) / len(entries)
        for (pend, tile_idx), p in zip(entries, probs, strict=True):
            pend.probs[tile_idx] = p
            pend.forward_ms += share
            pend.remaining -= 1
            if pend.remaining == 0:
                if pend.failure is not None:
                    pend.intake.error = pend.failure
                    finish(pend.intake, None, pend.forward_ms)
                    continue
                tiles_p = [float(x) for x in pend.probs]
                prob = tiles_p[0] if len(tiles_p) == 1 else aggregate_tiles(tiles_p)
                finish(pend.intake, prob, pend.forward_ms, tiles_p)

    def add_intake(intake: _Intake) -> None:
        nonlocal waiting
        if intake.prepared is None:
            # A decode that failed after reserving room (a corrupt body, say) gives it back.
            window.release(intake.index)
            finish(intake, None, 0.0)
            return
        pend = _Pending(intake)
        prepared = intake.prepared
        for i in range(prepared.n_tiles):
            shape = prepared.tile_shape(i)
            groups.setdefault(shape, []).append((pend, i))
            waiting += 1
            if len(groups[shape]) >= batch_limit(shape):
                run_group(shape)
        if not options.cross_image_batching:
            while groups:
                run_group(next(iter(groups)))
        # Bound latency and memory: when too much waits, score the oldest group even if not full.
        while waiting > 2 * options.batch_size and groups:
            run_group(next(iter(groups)))

    def next_intake(fut: Future[_Intake]) -> _Intake:
        # While the next file waits for room in the memory window, score what is held.
        while not fut.done():
            if groups and window.starved:
                run_group(next(iter(groups)))
            else:
                wait_futures([fut], timeout=0.02)
        return fut.result()

    if not options.overlap_decode:  # lever off: decode in this thread, between forward passes
        try:
            for i, f in enumerate(files):
                add_intake(_take_in(i, f, options, branches=detector.branches))
                if should_cancel is not None and should_cancel():
                    raise ScanCancelled([r for r in results if r is not None])
            while groups:
                run_group(next(iter(groups)))
        finally:
            groups.clear()
        return [r for r in results if r is not None]

    in_flight_files = max(2, options.batch_size * 2)
    workers = max(1, min(options.workers, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="intake") as pool:
        inflight: deque[Future[_Intake]] = deque()
        next_idx = 0
        try:
            while next_idx < total or inflight:
                while next_idx < total and len(inflight) < in_flight_files:
                    inflight.append(
                        pool.submit(_take_in, next_idx, files[next_idx], options, window,
                                    detector.branches))
                    next_idx += 1
                add_intake(next_intake(inflight.popleft()))
                if should_cancel is not None and should_cancel():
                    raise ScanCancelled([r for r in results if r is not None])
            while groups:
                run_group(next(iter(groups)))
        except BaseException:
            for fut in inflight:
                fut.cancel()
            abandon_pending_reads()  # a stuck read must not hold the pool's shutdown
            # Decodes already running may wait for room that will never be given back.
            window.capacity = 1 << 62
            groups.clear()
            window.release_all()
            raise
    return [r for r in results if r is not None]


def scan_paths(
    paths: Iterable[Path | str],
    detector: Detector,
    options: ScanOptions | None = None,
    recursive: bool = False,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    on_result: ResultFn | None = None,
) -> list[ScanResult]:
    """Discover then scan (a link out of the folder is an error row, as in a session)."""
    found = discover(paths, recursive=recursive)
    files = [f for f in found.files if f not in found.sniff or looks_like_image(f)]
    return scan_files(files, detector, options, progress, should_cancel, on_result,
                      links=found.links)
