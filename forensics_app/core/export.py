"""Report export: CSV (spreadsheet-safe) and JSON Lines, with a side-car of provenance.

Exports are written from :class:`ScanResult` records, never from table cell text.
``prob_fake`` and ``prob_real`` are fractions in [0, 1]; ``confidence_pct`` is a percentage.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forensics_app import __version__
from forensics_app.core.outputs import (
    AppendOnlyOutput,
    OutputLock,
    OutputWriteError,
    atomic_write,
    overwrite_own_file,
    sidecar_path,
)
from forensics_app.core.results import ScanResult, Verdict
from forensics_app.core.review import Key, Review, review_key
from forensics_app.core.safetext import escape_text, needs_escape, spreadsheet_safe

# Added to the notes of a row whose path had to be escaped (see core.safetext).
ESCAPED_NAME_NOTE = ("file name is not valid UTF-8 or holds control/bidi characters: each such "
                     "byte or character is written as \\xNN or \\uNNNN and its backslashes "
                     "doubled (reversible)")

COLUMNS: tuple[str, ...] = (
    "path", "file_name", "sha256", "bytes", "format", "width", "height", "mode",
    "verdict", "label", "prob_fake", "prob_real", "confidence_pct",
    "prob_trace", "prob_semantic", "threshold", "inconclusive_band", "model_id", "device", "preprocessing",
    "elapsed_ms", "error", "domain_caveat", "notes", "provenance", "declared_generated",
    # the examiner's conclusion (core.review), beside the detector's verdict
    "review_status", "review_note", "review_tags", "bookmarked", "reviewed_by", "reviewed_utc",
)

def escape_cell(value: Any) -> Any:
    """Neutralise spreadsheet formula injection (see :func:`safetext.spreadsheet_safe`)."""
    return spreadsheet_safe(value) if isinstance(value, str) else value


def _escape_strings(value: Any) -> Any:
    """Every string in a row made safe (core.safetext): undecodable bytes, control and bidi
    characters visibly and reversibly escaped."""
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, dict):
        return {k: _escape_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escape_strings(v) for v in value]
    return value


# A row's notes in a report: each note at most MAX_NOTE_CHARS, all of them at most
# MAX_NOTES_CHARS (a file with thousands of bad EXIF tags made a 328 KB cell that Python's csv
# reader and spreadsheets refuse); repeats are counted, the cut is said.
MAX_NOTE_CHARS = 500
MAX_NOTES_CHARS = 4000


def summarise_notes(notes: Sequence[str]) -> list[str]:
    """Notes deduplicated (``(x3)``), each capped, the list capped, with what was cut."""
    counts: dict[str, int] = {}
    for note in notes:
        counts[note] = counts.get(note, 0) + 1
    out: list[str] = []
    used = 0
    items = list(counts.items())
    for i, (note, n) in enumerate(items):
        if len(note) > MAX_NOTE_CHARS:
            keep = MAX_NOTE_CHARS - 40
            note = f"{note[:keep]}… [{len(note) - keep:,} more characters]"
        if n > 1:
            note = f"{note} (x{n})"
        if used + len(note) > MAX_NOTES_CHARS:
            rest = items[i:]
            chars = sum(len(t) * k for t, k in rest)
            out.append(f"… and {sum(k for _, k in rest):,} more notes ({chars:,} characters) "
                       "not shown")
            break
        out.append(note)
        used += len(note) + 2
    return out


def report_notes(r: ScanResult) -> list[str]:
    """The row's notes (summarised), plus the escaping note when its path had to be escaped."""
    notes = summarise_notes(r.notes)
    if r.caveat_note:
        notes.insert(0, r.caveat_note)
    if needs_escape(r.path):
        notes.append(ESCAPED_NAME_NOTE)
    return notes


Reviews = Mapping[Key, Review]


def result_to_row(r: ScanResult, review: Review | None = None) -> dict[str, Any]:
    return _escape_strings(_result_to_row(r, review))


def _result_to_row(r: ScanResult, review: Review | None = None) -> dict[str, Any]:
    prob = r.prob_fake
    error, verdict = r.error, r.verdict
    if prob is not None and not math.isfinite(prob):  # never a bare NaN or a score: an error
        prob, error = None, error or f"non-finite score ({r.prob_fake!r}); no verdict"
        verdict = Verdict.ERROR
    return {
        "path": r.path,
        "file_name": r.file_name,
        "sha256": r.sha256 or "",
        "bytes": r.bytes if r.bytes is not None else "",
        "format": r.format or "",
        "width": r.width if r.width is not None else "",
        "height": r.height if r.height is not None else "",
        "mode": r.mode or "",
        "verdict": verdict.value,
        "label": verdict.label,
        "prob_fake": round(prob, 6) if prob is not None else "",
        "prob_real": round(1.0 - prob, 6) if prob is not None else "",
        "confidence_pct": round(100.0 * max(prob, 1.0 - prob), 2) if prob is not None else "",
        # each branch's own P(generated) (multi-branch detectors; prob_fake is their fusion)
        **{f"prob_{k}": round(r.branch_probs[k], 6) if k in r.branch_probs else ""
           for k in ("trace", "semantic")},
        "threshold": r.threshold,
        "inconclusive_band": r.inconclusive_band,
        "model_id": r.model_id,
        "device": r.device,
        "preprocessing": r.preprocessing,
        "elapsed_ms": r.elapsed_ms,
        "error": error or "",
        # why the verdict is Inconclusive whatever the score (outside the validated domains)
        "domain_caveat": (r.domain_caveat or "") if error is None else "",
        "notes": "; ".join(report_notes(r)),
        # what the file's metadata says, beside (never instead of) the detector's verdict
        "provenance": r.provenance.summary if r.provenance is not None else "",
        "declared_generated": r.provenance.declared_text if r.provenance is not None else "",
        "review_status": review.status.value if review is not None else "unreviewed",
        "review_note": review.note if review is not None else "",
        "review_tags": "; ".join(review.tags) if review is not None else "",
        "bookmarked": ("yes" if review.bookmarked else "") if review is not None else "",
        "reviewed_by": review.examiner if review is not None else "",
        "reviewed_utc": review.updated_utc if review is not None else "",
    }


def report_metadata(results: Sequence[ScanResult], extra: dict[str, Any] | None = None) -> dict:
    import torch  # local: keep this module cheap to import

    models = sorted({r.model_id for r in results if r.model_id})
    meta = {
        "app": "forensics-app",
        "app_version": __version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_ids": models,
        "n_files": len(results),
        "n_errors": sum(1 for r in results if not r.ok),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "columns_note": "prob_fake/prob_real are fractions in [0,1]; confidence_pct is percent",
    }
    if results:  # M5: the operating point(s) the verdicts were taken at, always recorded
        from forensics_app.core.case_threshold import thresholds_of

        meta["thresholds"] = thresholds_of(results)
    meta.update(extra or {})
    return meta


def _write_sidecar(path: Path, results: Sequence[ScanResult], extra: dict | None) -> None:
    meta = report_metadata(results, extra)
    meta["report"] = Path(path).name
    atomic_write(sidecar_path(path), lambda fh: json.dump(meta, fh, indent=2))


def write_csv(path: Path | str, results: Iterable[ScanResult], extra: dict | None = None,
              reviews: Reviews | None = None) -> Path:
    """UTF-8 CSV, one row per file, plus ``<path>.meta.json`` (app version, model, time).

    ``reviews``: the case's examiner conclusions by (path, SHA-256); rows without one read
    "unreviewed"."""
    results = list(results)
    reviews = reviews or {}

    def write(fh) -> None:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for r in results:
            row = result_to_row(r, reviews.get(review_key(r)))
            writer.writerow({k: escape_cell(v) for k, v in row.items()})

    atomic_write(Path(path), write)
    _write_sidecar(Path(path), results, extra)
    return Path(path)


_NUMBER_COLUMNS = ("bytes", "width", "height", "prob_fake", "prob_real", "confidence_pct",
                   "prob_trace", "prob_semantic")


def jsonl_row(r: ScanResult, review: Review | None = None) -> dict[str, Any]:
    """One JSON Lines record: the CSV's fields plus per-tile scores, notes as a list, and the
    examiner's ``review`` as an object (status "unreviewed" when there is none)."""
    row = result_to_row(r, review)
    for key in ("review_status", "review_note", "review_tags", "bookmarked", "reviewed_by",
                "reviewed_utc"):
        del row[key]
    row["review"] = (review or Review(r.path, r.sha256 or "")).to_dict()
    for key in _NUMBER_COLUMNS:  # JSON has null for "no number" (the CSV leaves the cell empty)
        if row[key] == "":
            row[key] = None
    row["notes"] = report_notes(r)
    row["tile_probs"] = r.tile_probs
    row["tile_boxes"] = [list(b) for b in r.tile_boxes]
    row["provenance"] = r.provenance.to_dict() if r.provenance is not None else None
    if r.witnesses:  # only when witnesses were asked for (core.witnesses)
        row["witnesses"] = r.witnesses
    return _json_safe(_escape_strings(row))


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers (and json.dumps would write
    the non-standard bare ``NaN`` token)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _json_line(r: ScanResult, review: Review | None = None) -> str:
    return json.dumps(jsonl_row(r, review), ensure_ascii=False, allow_nan=False) + "\n"


def write_jsonl(path: Path | str, results: Iterable[ScanResult], extra: dict | None = None,
                reviews: Reviews | None = None) -> Path:
    """JSON Lines with the CSV's fields plus per-tile scores, and the same side-car."""
    results = list(results)
    reviews = reviews or {}

    def write(fh) -> None:
        for r in results:
            fh.write(_json_line(r, reviews.get(review_key(r))))

    atomic_write(Path(path), write)
    _write_sidecar(Path(path), results, extra)
    return Path(path)


# A streamed report's side-car is rewritten after the first batch, then at most this often.
SIDECAR_EVERY_S = 1.0


class StreamedReport:
    """A CSV or JSON Lines report written as results arrive, so a killed scan keeps its rows.

    The report is created exclusively (an ``O_EXCL`` temporary file renamed over the name,
    :class:`~forensics_app.core.outputs.AppendOnlyOutput`: whatever the name pointed to is
    never opened) and holds :class:`~forensics_app.core.outputs.OutputLock` from start to
    close, so a second scan writing the same report is refused (``OutputBusy``). Each
    :meth:`write` appends a whole batch, so the file is well formed after every batch (a
    ``kill -9`` loses only rows not yet handed over), and rewrites the side-car
    (``"completed": false`` and the rows so far; after the first batch at most once a
    second). A batch that cannot be written (disk full) is cut back off, so the file still
    ends on a whole row; the error is raised
    (:class:`~forensics_app.core.outputs.OutputWriteError`) and :attr:`failure` says why.
    When the disk has no room even for a new side-car, the side-car this report created is
    overwritten in place with the outcome, so it never stays at "running".
    """

    def __init__(self, path: Path | str, kind: str | None = None, extra: dict | None = None,
                 witness_names: Sequence[str] = ()):
        self.path = Path(path)
        self.witness_names = tuple(witness_names)  # one CSV column each (core.witnesses)
        self.kind = kind or ("jsonl" if self.path.suffix.lower() in (".jsonl", ".json")
                             else "csv")
        if self.kind not in ("csv", "jsonl"):
            raise ValueError(f"unknown report kind {self.kind!r}")
        self.extra = dict(extra or {})
        self.n_rows = 0
        self.failure: str | None = None
        self._models: set[str] = set()
        self._errors = 0
        self._sidecar_at: float | None = None  # the first batch always updates the side-car
        self._created = datetime.now(UTC).isoformat(timespec="seconds")
        self._sidecar_identity: tuple[int, int] | None = None
        self._lock = OutputLock(self.path).acquire()
        try:
            self._out = AppendOnlyOutput(self.path)
            if self.kind == "csv":
                self._out.append(_csv_text(None, self.witness_names).encode("utf-8"))
            self._sidecar(completed=False, status="running")
        except BaseException:
            self._lock.release()
            raise

    def write(self, results: Iterable[ScanResult]) -> None:
        results = list(results)
        if self.failure is not None:
            raise OutputWriteError(self.failure)
        text = (_csv_text(results, self.witness_names) if self.kind == "csv"
                else "".join(_json_line(r) for r in results))
        try:
            self._out.append(text.encode("utf-8"))
        except OutputWriteError as exc:
            self.failure = f"stopped after {self.n_rows} rows: {exc}"
            raise
        self.n_rows += len(results)
        self._errors += sum(0 if r.ok else 1 for r in results)
        self._models.update(r.model_id for r in results if r.model_id)
        now = time.monotonic()
        if self._sidecar_at is not None and now - self._sidecar_at < SIDECAR_EVERY_S:
            return  # at most one side-car rewrite a second (it costs ~10 ms a batch)
        self._sidecar_at = now
        try:
            self._sidecar(completed=False, status="running")
        except OSError as exc:
            self.failure = f"side-car not updated after {self.n_rows} rows: {exc}"
            raise

    __call__ = write  # usable directly as a batch sink

    def close(self, completed: bool, status: str | None = None,
              reason: str | None = None) -> Path:
        """Close the report, record the outcome (and ``reason``, why the scan did not finish,
        when it is not this report's own failure) in the side-car and release the lock."""
        self._reason = reason
        try:
            self._out.close()
            status = status or ("completed" if completed else "interrupted")
            self._sidecar(completed and self.failure is None,
                          "failed" if self.failure is not None else status)
        finally:
            self._lock.release()
        return self.path

    def _sidecar(self, completed: bool, status: str) -> None:
        meta = report_metadata([], self.extra)
        meta.update(report=self.path.name, created_utc=self._created,
                    model_ids=sorted(self._models), n_files=self.n_rows,
                    n_errors=self._errors, completed=completed, status=status,
                    updated_utc=datetime.now(UTC).isoformat(timespec="seconds"))
        failure = self.failure or getattr(self, "_reason", None)
        if failure:
            meta["failure"] = failure
        target = sidecar_path(self.path)
        try:
            atomic_write(target, lambda fh: json.dump(meta, fh, indent=2))
        except OutputWriteError:
            # No room for a new file: overwrite the side-car this report created, in place,
            # with the outcome only (smaller than what it replaces).
            brief = {"report": self.path.name, "completed": completed, "status": status,
                     "failure": failure, "n_files": self.n_rows,
                     "n_errors": self._errors, "updated_utc": meta["updated_utc"],
                     "note": "side-car shortened: the disk was full"}
            if self._sidecar_identity is None or not overwrite_own_file(
                    target, self._sidecar_identity, json.dumps(brief, indent=1).encode()):
                raise
            return
        try:
            st = os.stat(target)
            self._sidecar_identity = (st.st_dev, st.st_ino)
        except OSError:
            self._sidecar_identity = None


def _csv_text(results: Sequence[ScanResult] | None, witness_names: Sequence[str] = ()) -> str:
    """CSV rows as text (the header when ``results`` is None); ``witness_names`` add one
    ``witness_<name>_detected`` column each."""
    import io

    from forensics_app.core.witnesses import csv_cells, csv_columns

    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=COLUMNS + tuple(csv_columns(witness_names)))
    if results is None:
        writer.writeheader()
    for r in results or ():
        row = result_to_row(r)
        if witness_names:
            row.update(csv_cells(r.witnesses, witness_names))
        writer.writerow({k: escape_cell(v) for k, v in row.items()})
    return buf.getvalue()
