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
import math
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from forensics_app.core.detector import Detector
from forensics_app.core.discovery import Skipped, discover
from forensics_app.core.loading import (
    DEFAULT_MAX_DECODE_PIXELS,
    Evidence,
    ImageLoadError,
    NotAnImage,
    load_evidence,
    looks_like_image,
)
from forensics_app.core.preprocess import PreparedImage, PreprocessConfig, prepare_image
from forensics_app.core.provenance import Provenance, ProvenanceOptions, read_provenance
from forensics_app.core.results import ScanResult, Verdict, verdict_for

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
    # Cap on pixels in one forward batch, so a batch of large images does not exhaust memory.
    max_batch_pixels: int = 16 * 512 * 512
    # Files found inside folders without an image extension: taken in only if the first
    # bytes of their single read are an image, else skipped (set by scan_files' ``sniff``).
    images_only_paths: frozenset[str] = frozenset()
    # Provenance (C2PA, IPTC/XMP, EXIF, generator text) read from the same bytes at intake.
    provenance: bool = True
    provenance_options: ProvenanceOptions = field(default_factory=ProvenanceOptions)


def discover_files(paths: Iterable[Path | str], recursive: bool = False) -> list[Path]:
    """Expand files and folders into a de-duplicated, ordered list of files to scan.

    The rule is :func:`forensics_app.core.discovery.discover`'s; files inside folders without
    an image extension are sniffed here (a first open). Callers that can report skipped
    entries use ``discover()`` and pass ``sniff=`` to :func:`scan_files` instead, which
    sniffs from the single read.
    """
    found = discover(paths, recursive=recursive)
    return [f for f in found.files if f not in found.sniff or looks_like_image(f)]


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


def _take_in(index: int, path: Path, options: ScanOptions) -> _Intake:
    t0 = time.perf_counter()
    prov: list[Provenance] = []  # read from the intake's bytes (metadata never fails a file)
    on_bytes = ((lambda data: prov.append(read_provenance(data, options.provenance_options)))
                if options.provenance else None)
    try:
        evidence, img, err = load_evidence(path, options.max_decode_pixels, on_bytes=on_bytes,
                                           images_only=str(path) in options.images_only_paths)
        if err is not None:
            return _Intake(index, path, evidence, None, err.reason, _ms(t0), *prov[:1])
        prepared = prepare_image(img, options.preprocess)
        return _Intake(index, path, evidence, prepared, None, _ms(t0), *prov[:1])
    except NotAnImage as exc:
        return _Intake(index, path, None, None, exc.reason, _ms(t0),
                       skipped=Skipped(str(path), exc.reason, "not-image"))
    except ImageLoadError as exc:
        return _Intake(index, path, None, None, exc.reason, _ms(t0))
    except Exception as exc:  # noqa: BLE001 -- any failure on one file must not stop the scan
        return _Intake(index, path, None, None, f"{type(exc).__name__}: {exc}", _ms(t0))


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
        n = len(intake.prepared.tensors)
        self.probs: list[float | None] = [None] * n
        self.remaining = n
        self.forward_ms = 0.0


def scan_files(
    files: Sequence[Path | str],
    detector: Detector,
    options: ScanOptions | None = None,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    on_result: ResultFn | None = None,
    *,
    sniff: Iterable[Path | str] = (),
    on_skipped: Callable[[Skipped], None] | None = None,
) -> list[ScanResult]:
    """Score ``files`` (already discovered); results come back in input order.

    Files in ``sniff`` (``Discovery.sniff``) that turn out not to be images get no row: they
    are handed to ``on_skipped`` (and still count in ``progress``).
    """
    options = options or ScanOptions()
    sniff = frozenset(str(Path(f)) for f in sniff)
    if sniff:
        options = dataclasses.replace(options, images_only_paths=options.images_only_paths | sniff)
    ckpt = detector.checkpoint
    threshold = ckpt.threshold if options.threshold is None else options.threshold
    band = ckpt.inconclusive_band if options.inconclusive_band is None else options.inconclusive_band
    device_desc = detector.device_description
    files = [Path(f) for f in files]
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
        ev = intake.evidence
        prep = intake.prepared
        res = ScanResult(
            path=str(intake.path), index=intake.index,
            sha256=ev.sha256 if ev else None, bytes=ev.n_bytes if ev else None,
            format=ev.format if ev else None, width=ev.width if ev else None,
            height=ev.height if ev else None, mode=ev.mode if ev else None,
            prob_fake=prob,
            verdict=verdict_for(prob, threshold, band) if intake.error is None else Verdict.ERROR,
            threshold=threshold, inconclusive_band=band, model_id=detector.model_id,
            device=device_desc, preprocessing=prep.mode_used if prep else "",
            elapsed_ms=round(intake.intake_ms + forward_ms, 2), error=intake.error,
            notes=list(prep.notes) if prep else [],
            tile_probs=tile_probs if tile_probs and len(tile_probs) > 1 else [],
            tile_boxes=list(prep.boxes) if prep and len(prep.boxes) > 1 else [],
            provenance=intake.provenance,
        )
        if intake.provenance is not None:
            res.notes.extend(f"provenance: {n}" for n in intake.provenance.notes)
        if ev is not None and ev.n_frames > 1:
            res.notes.append(f"animated/multi-frame ({ev.n_frames} frames): first frame scored")
        if ev is not None:
            res.notes.extend(ev.notes)
        results[intake.index] = res
        done += 1
        if on_result is not None:
            on_result(res)
        if progress is not None:
            progress(done, total)

    # shape -> list of (pending, tile index, tensor); ordered by age of the group
    groups: OrderedDict[tuple[int, ...], list[tuple[_Pending, int, torch.Tensor]]] = OrderedDict()
    waiting = 0

    def batch_limit(shape: tuple[int, ...]) -> int:
        pixels = shape[-1] * shape[-2]
        return max(1, min(options.batch_size, options.max_batch_pixels // max(1, pixels)))

    def run_group(shape: tuple[int, ...]) -> None:
        nonlocal waiting
        entries = groups.pop(shape)
        waiting -= len(entries)
        if should_cancel is not None and should_cancel():
            raise ScanCancelled([r for r in results if r is not None])
        t0 = time.perf_counter()
        probs = detector.predict_proba(torch.stack([t for _, _, t in entries]))
        share = _ms(t0) / len(entries)
        for (pend, tile_idx, _), p in zip(entries, probs, strict=True):
            pend.probs[tile_idx] = float(p)
            pend.forward_ms += share
            pend.remaining -= 1
            if pend.remaining == 0:
                tiles = [float(x) for x in pend.probs]
                prob = tiles[0] if len(tiles) == 1 else aggregate_tiles(tiles)
                finish(pend.intake, prob, pend.forward_ms, tiles)

    def add_intake(intake: _Intake) -> None:
        nonlocal waiting
        if intake.prepared is None:
            finish(intake, None, 0.0)
            return
        pend = _Pending(intake)
        for i, t in enumerate(intake.prepared.tensors):
            shape = tuple(t.shape)
            groups.setdefault(shape, []).append((pend, i, t))
            waiting += 1
            if len(groups[shape]) >= batch_limit(shape):
                run_group(shape)
        # Bound memory: when too much waits, score the oldest group even if not full.
        while waiting > 2 * options.batch_size and groups:
            run_group(next(iter(groups)))

    window = max(2, options.batch_size * 2)
    workers = max(1, min(options.workers, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="intake") as pool:
        inflight: deque[Future[_Intake]] = deque()
        next_idx = 0
        try:
            while next_idx < total or inflight:
                while next_idx < total and len(inflight) < window:
                    inflight.append(pool.submit(_take_in, next_idx, files[next_idx], options))
                    next_idx += 1
                add_intake(inflight.popleft().result())
                if should_cancel is not None and should_cancel():
                    raise ScanCancelled([r for r in results if r is not None])
            while groups:
                run_group(next(iter(groups)))
        except ScanCancelled:
            for fut in inflight:
                fut.cancel()
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
    """Discover then scan: the one call the CLI and the GUI worker make."""
    files = discover_files(paths, recursive=recursive)
    return scan_files(files, detector, options, progress, should_cancel, on_result)
