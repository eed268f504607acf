"""One scan, start to finish, for every front end: the CLI, the GUI worker and the server.

:class:`ScanSettings` is the one serialisable record of what a scan asks the engine for: the
case database stores it (``to_record``), the report reads it back (``from_record``) to
recompute Grad-CAM on the inputs the scan scored, and :meth:`ScanSettings.scan_options` is
the one place it becomes engine options. :class:`ScanSession` runs a scan end to end --
discovery, case resume, rows streamed to the case, CSV/JSON Lines and a callback, the scan's
outcome recorded -- and knows nothing about threads, windows or HTTP: front ends pass
``progress`` / ``should_cancel`` callables and observe the rows (napari's ViewerModel pattern).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics_app.core.bomb_guard import (
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_DECODE_BYTES,
    DEFAULT_MAX_JPEG_SCANS,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SECONDS_PER_FILE,
    DEFAULT_MAX_TIFF_PAGES,
)
from forensics_app.core.case import (
    SCAN_CANCELLED,
    SCAN_FAILED,
    SCAN_FINISHED,
    SCAN_INTERRUPTED,
    Case,
    CaseError,
    CaseRecorder,
    detector_facts,
)
from forensics_app.core.discovery import Discovery, Skipped, discover
from forensics_app.core.loading import InMemoryImage
from forensics_app.core.outputs import OutputWriteError
from forensics_app.core.results import ScanResult

DEFAULT_MAX_INFLIGHT_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class ScanSettings:
    """What a scan asks the engine for, as plain data (every field the scan loop uses).

    ``threshold`` / ``inconclusive_band`` None: the checkpoint's own. ``c2pa_trust_anchors``
    is a PEM file ("" = no trust list). Detector-level choices (device, precision, threads,
    speed levers of the forward pass) belong to the loaded :class:`Detector` and are recorded
    from it (``detector_facts``, ``engine_record``).
    """

    mode: str = "full"
    tile_size: int = 512
    crop_size: int = 224
    sample_tiles: int = 8
    sample_seed: int = 0
    batch_size: int = 16
    workers: int = 2
    threshold: float | None = None
    inconclusive_band: float | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES
    max_jpeg_scans: int = DEFAULT_MAX_JPEG_SCANS
    max_tiff_pages: int = DEFAULT_MAX_TIFF_PAGES
    max_seconds_per_file: float = DEFAULT_MAX_SECONDS_PER_FILE
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES
    cross_image_batching: bool = True
    overlap_decode: bool = True
    provenance: bool = True
    c2pa_trust_anchors: str = ""
    # read files that links inside the evidence folder point to outside it (core.discovery)
    follow_links_outside: bool = False

    def __post_init__(self) -> None:
        from forensics_app.core.preprocess import PreprocessMode

        object.__setattr__(self, "mode", str(PreprocessMode(self.mode)))
        for name in ("tile_size", "crop_size", "sample_tiles", "batch_size", "workers",
                     "max_pixels", "max_inflight_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("threshold", "inconclusive_band"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")

    # -- the record a case, a report side-car and the API store
    def to_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> ScanSettings:
        """Settings from a stored record; keys it does not know are ignored, missing ones take
        the defaults (cases written before this record stored fewer fields, and the GUI's
        older ones named the mode ``preprocess_mode``)."""
        record = dict(record or {})
        if "mode" not in record and "preprocess_mode" in record:
            record["mode"] = record["preprocess_mode"]
        names = {f.name for f in dataclasses.fields(cls)}
        nullable = ("threshold", "inconclusive_band")
        return cls(**{k: v for k, v in record.items()
                      if k in names and (v is not None or k in nullable)})

    def replace(self, **changes: Any) -> ScanSettings:
        return dataclasses.replace(self, **changes)

    # -- the one place the record becomes engine options
    def preprocess_config(self):
        from forensics_app.core.preprocess import PreprocessConfig

        return PreprocessConfig(mode=self.mode, crop_size=self.crop_size,
                                tile_size=self.tile_size, sample_tiles=self.sample_tiles,
                                sample_seed=self.sample_seed)

    def decode_limits(self):
        from forensics_app.core.bomb_guard import DecodeLimits

        return DecodeLimits(max_pixels=self.max_pixels,
                            max_compression_ratio=self.max_compression_ratio,
                            max_decode_bytes=self.max_decode_bytes,
                            max_jpeg_scans=self.max_jpeg_scans,
                            max_tiff_pages=self.max_tiff_pages,
                            max_seconds_per_file=self.max_seconds_per_file)

    def provenance_options(self, strict: bool = True):
        """The C2PA trust list; ``strict=False`` falls back to none (signers then read as
        untrusted, which is what they are without a list) instead of raising
        ``ProvenanceConfigError``."""
        from forensics_app.core.provenance import (
            ProvenanceConfigError,
            ProvenanceOptions,
            load_trust_anchors,
        )

        if not self.c2pa_trust_anchors:
            return ProvenanceOptions()
        try:
            return load_trust_anchors(self.c2pa_trust_anchors)
        except ProvenanceConfigError:
            if strict:
                raise
            return ProvenanceOptions()

    def scan_options(self, provenance_options: Any = None):
        """The core ``ScanOptions`` (``provenance_options``: already loaded, else loaded
        leniently from ``c2pa_trust_anchors``)."""
        from forensics_app.core.scan import ScanOptions

        return ScanOptions(
            preprocess=self.preprocess_config(), batch_size=self.batch_size,
            threshold=self.threshold, inconclusive_band=self.inconclusive_band,
            workers=self.workers, limits=self.decode_limits(),
            max_inflight_bytes=self.max_inflight_bytes,
            cross_image_batching=self.cross_image_batching, overlap_decode=self.overlap_decode,
            provenance=self.provenance,
            provenance_options=(provenance_options if provenance_options is not None
                                else self.provenance_options(strict=False)),
        )


class SessionFailed(Exception):
    """The scan stopped because its results could not be stored (the message says why)."""


@dataclass
class SessionOutcome:
    """How a scan ended: ``status`` is the case's (finished, cancelled, interrupted, failed)."""

    status: str
    results: list[ScanResult]
    message: str = ""
    problems: list[str] = field(default_factory=list)  # met while closing sinks
    n_files: int = 0  # files the scan was asked to score (after discovery and claims)
    n_already: int = 0  # files the case already held for this model (not scored again)
    n_new: int = 0  # rows the case stored as new
    n_stored: int = 0  # rows handed to the case and the streamed reports
    elapsed_s: float = 0.0
    # a streamed report or a case batch that could not be written (disk full, I/O, a value
    # the case cannot store): the CLI's exit 3
    output_failure: str = ""

    @property
    def interrupted(self) -> bool:
        return self.status != SCAN_FINISHED


ClaimFn = Callable[[list[Path]], list[Path]]


class ScanSession:
    """Runs one scan: ``discover`` (optional, to look first), then ``run``.

    ``case``: a case folder (opened with :meth:`Case.open_or_create` and closed at the end)
    or an open :class:`Case` the caller keeps. ``csv`` / ``jsonl``: streamed reports (with
    the rows the case already held, so a report is the union). ``on_result``: called for
    each row as it finishes. ``claim``: the front end's last say on which files to score
    (the GUI drops files already queued this session). ``on_skipped``: called for each file
    found at intake not to be an image. Rows reach the case, then the
    streamed reports, once per batch through one :class:`CaseRecorder`.
    """

    def __init__(self, detector: Any, settings: ScanSettings,
                 sources: Sequence[Path | str | InMemoryImage], *,
                 recursive: bool = False, case: Case | Path | str | None = None,
                 csv: Path | None = None, jsonl: Path | None = None,
                 on_result: Callable[[ScanResult], None] | None = None,
                 claim: ClaimFn | None = None, command: str = "forensics-scan",
                 provenance_options: Any = None,
                 on_skipped: Callable[[Skipped], None] | None = None,
                 confine_to: Path | None = None,
                 witnesses: Sequence[str] = (), witness_dir: Path | str | None = None):
        self.detector, self.settings = detector, settings
        self._source_items = list(sources)
        self.sources = [str(s) for s in sources]
        self.recursive = recursive
        self._case_arg = case
        self.csv, self.jsonl = csv, jsonl
        self.on_result, self.claim = on_result, claim
        self.on_skipped = on_skipped  # a file taken in and found not to be an image
        self.options = settings.scan_options(provenance_options)
        if confine_to is not None:  # files resolving outside it are error rows, never read
            self.options = dataclasses.replace(self.options, confine_to=Path(confine_to))
        self.found: Discovery | None = None
        self.skipped: list[Skipped] = []  # folder entries not scanned (discovery and intake)
        self.case: Case | None = None
        self.scan_id: int | None = None
        self.files: list[Path] = []  # what this run scores
        self._owns_case = False
        self._streams: list[Any] = []
        self._recorder: CaseRecorder | None = None
        self._finished: list[ScanResult] = []
        self.n_already = 0
        self.extra: dict[str, Any] = {"command": command}
        self._write_failure = ""  # a case batch or report that could not be stored
        # second witnesses per scored file (core.witnesses); maps only into ``witness_dir``,
        # which the front end has passed through the output guard
        self.witnesses = tuple(witnesses)
        self.witness_dir = witness_dir
        self._should_cancel: Callable[[], bool] | None = None
        if self.witnesses:
            self.extra["witnesses"] = list(self.witnesses)

    # -- before the scan
    def discover(self) -> Discovery:
        """Files and folders expanded by the one discovery rule; images already in memory
        (uploads) are taken as they are."""
        if self.found is None:
            on_disk = [s for s in self._source_items if not isinstance(s, InMemoryImage)]
            self.found = discover(on_disk, recursive=self.recursive,
                                  follow_links_outside=self.settings.follow_links_outside)
            self.found.files.extend(s for s in self._source_items
                                    if isinstance(s, InMemoryImage))
            self.skipped = list(self.found.skipped)
        return self.found

    def side_car(self) -> dict[str, Any]:
        """What the streamed reports' side-car records about the scan (plain data)."""
        from forensics_app.core.speed import engine_record

        self.extra.update(device=self.detector.device_description,
                          preprocessing=self.settings.mode,
                          settings=self.settings.to_record(),
                          skipped=[s.record() for s in self.skipped],
                          engine=engine_record(self.detector, self.options))
        return self.extra

    def _start(self, files: list[Path]) -> list[Path]:
        """Open the case and the reports; return the files still to score."""
        from forensics_app.core.export import StreamedReport

        todo, earlier, plan = list(files), [], None
        if self._case_arg is not None:
            if isinstance(self._case_arg, Case):
                self.case = self._case_arg
            else:
                self.case = Case.open_or_create(self._case_arg)
                self._owns_case = True
            model_id = self.detector.model_id
            links = self.found.links if self.found is not None else {}
            plan = self.case.plan_resume(files, model_id, self.sources,
                                         {str(p) for p, f in links.items() if not f.followed},
                                         root=self.options.confine_to)
            todo = plan.todo
            held = {str(p) for p in plan.skipped}
            earlier = [r for r in self.case.results(model_id) if r.path in held] if held else []
        if self.claim is not None:
            todo = self.claim(todo)
        if self.case is not None:
            self.scan_id = self.case.begin_scan(
                detector_facts(self.detector), self.settings.to_record(), self.sources,
                self.recursive, n_files=len(files), plan=plan)
        outputs = [(p, kind) for p, kind in ((self.csv, "csv"), (self.jsonl, "jsonl")) if p]
        extra = self.side_car() if outputs else {}  # one dict: intake-time skips join it
        for path, kind in outputs:
            self._streams.append(StreamedReport(path, kind, extra,
                                                witness_names=self.witnesses))
        for stream in self._streams:
            stream.write(earlier)
        self._recorder = CaseRecorder(self.case, self.scan_id,
                                      batch_size=self.settings.batch_size, sinks=self._streams)
        self.n_already = len(files) - len(todo) if plan is not None else 0
        return todo

    # -- the scan
    def run(self, progress: Callable[[int, int], None] | None = None,
            should_cancel: Callable[[], bool] | None = None) -> SessionOutcome:
        """Scan; never raises for a scan that was stopped (Ctrl-C, cancel, a case that could
        not store a batch): the outcome says how it ended. A case or report that cannot be
        opened raises ``CaseError`` / ``OSError`` (nothing was scanned)."""
        from forensics_app.core.scan import ScanCancelled

        found = self.discover()
        self.n_already = 0
        self._should_cancel = should_cancel
        try:
            self.files = self._start(found.files)
        except (CaseError, OSError) as exc:
            self._close(SCAN_FAILED, str(exc))
            raise
        t0 = time.perf_counter()
        status, message = SCAN_FINISHED, ""
        try:
            results = self._scan(found, progress, should_cancel)
        except KeyboardInterrupt:
            status, results = SCAN_INTERRUPTED, self._so_far()
        except ScanCancelled as exc:
            status, results = SCAN_CANCELLED, exc.results
        except (CaseError, OutputWriteError) as exc:  # a batch not stored (disk full, I/O)
            status, message, results = SCAN_FAILED, str(exc), self._so_far()
            self._write_failure = message
        except BaseException as exc:
            self._close(SCAN_FAILED, f"{type(exc).__name__}: {exc}")
            raise
        status, message, problems = self._close(status, message)
        rec = self._recorder
        return SessionOutcome(status, results, message, problems, len(self.files),
                              self.n_already, rec.n_new, rec.n_committed,
                              time.perf_counter() - t0,
                              next((f"{st.path}: {st.failure}" for st in self._streams
                                    if getattr(st, "failure", None)), self._write_failure))

    def _scan(self, found: Discovery, progress: Callable[[int, int], None] | None,
              should_cancel: Callable[[], bool] | None) -> list[ScanResult]:
        """Score ``self.files``, handing each row to ``_on_result`` (a cluster scan,
        ``core.ray_scan``, scores them elsewhere through the same engine)."""
        from forensics_app.core.scan import scan_files

        return scan_files(self.files, self.detector, self.options, progress=progress,
                          should_cancel=should_cancel, on_result=self._on_result,
                          sniff=found.sniff, on_skipped=self._on_skipped, links=found.links)

    def _on_result(self, result: ScanResult) -> None:
        if self.witnesses:
            from forensics_app.core.witnesses.scan_hook import add_witnesses

            add_witnesses(result, self.witnesses, self.settings.decode_limits(),
                          self.witness_dir, self._should_cancel)
        self._finished.append(result)
        if self.on_result is not None:
            self.on_result(result)
        self._recorder(result)

    def _on_skipped(self, entry: Skipped) -> None:
        self.skipped.append(entry)
        self.extra.setdefault("skipped", []).append(entry.record())
        if self.on_skipped is not None:
            self.on_skipped(entry)

    def _so_far(self) -> list[ScanResult]:
        return sorted(self._finished, key=lambda r: r.index)

    def _close(self, status: str, message: str) -> tuple[str, str, list[str]]:
        """Flush and close everything; the (possibly worsened) status and the problems met."""
        problems: list[str] = []
        if self._recorder is not None:
            try:
                self._recorder.flush()
            except (CaseError, OSError) as exc:
                problems.append(str(exc))
                status, message = SCAN_FAILED, str(exc)
                self._write_failure = self._write_failure or message
        for stream in self._streams:
            try:
                stream.close(completed=status == SCAN_FINISHED, status=status,
                             reason=message if status != SCAN_FINISHED else None)
            except OSError as exc:
                problems.append(f"cannot finish {stream.path}: {exc}")
            if getattr(stream, "failure", None) and status == SCAN_FINISHED:
                status, message = SCAN_FAILED, f"{stream.path}: {stream.failure}"
        if self.case is not None:
            try:
                if self.scan_id is not None:
                    self.case.finish_scan(self.scan_id, status, message)
            except CaseError as exc:
                problems.append(str(exc))
            finally:
                if self._owns_case:
                    self.case.close()
        return status, message, problems
