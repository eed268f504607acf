"""The case side of ``forensics-scan``: ``--case``, ``--report``, ``--verify``, streamed reports.

Kept apart from :mod:`forensics_app.cli` so the scan command stays short: the CLI builds a
:class:`ScanRecording` around its scan, and calls :func:`run_case_command` when it is asked
to report on or verify a case without scanning.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forensics_app.core.safetext import escape_for_terminal

REPORT_SUFFIXES = (".html", ".htm", ".pdf", ".csv", ".jsonl")


def add_case_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cases")
    g.add_argument("--case", type=Path, metavar="CASE_DIR",
                   help="scan into this case folder (created when new or empty); finished "
                        "files are skipped, so an interrupted scan resumes")
    g.add_argument("--report", type=Path, metavar="OUT",
                   help="with --case: write the case report (.html, .pdf, .csv or .jsonl); "
                        "without PATHs nothing is scanned")
    g.add_argument("--verify", action="store_true",
                   help="with --case: check both hash chains and every fact a report prints; "
                        "exit 0 intact, 1 broken (naming the first broken entry)")
    g.add_argument("--anchor", type=Path, metavar="FILE",
                   help="with --verify: the anchor a report wrote (REPORT.anchor.json); also "
                        "proves nothing was removed from the end of the case since then")


def check_case_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.report or args.verify) and not args.case:
        parser.error("--report and --verify need --case CASE_DIR")
    if args.anchor and not args.verify:
        parser.error("--anchor is checked by --verify (add --verify)")
    if args.verify and args.paths:
        parser.error("--verify checks a case; it does not scan (drop the PATHs)")
    if args.report and args.report.suffix.lower() not in REPORT_SUFFIXES:
        parser.error(f"--report must end in one of {', '.join(REPORT_SUFFIXES)}")
    if not args.paths and not args.case:
        parser.error("give image files or folders to scan (or --case with --report/--verify)")
    if not args.paths and not (args.report or args.verify):
        parser.error("--case without PATHs needs --report OUT or --verify")


def _err(message: str) -> None:
    print(escape_for_terminal(f"forensics-scan: {message}"), file=sys.stderr)


def run_case_command(args: argparse.Namespace) -> int:
    """``--case DIR --verify [--anchor FILE]`` or ``--case DIR --report OUT``, no scan.

    Reading needs no write access: the case is opened read-only (the report is logged in
    the case only when it can be written).
    """
    from forensics_app.core.case import Case, CaseError
    from forensics_app.core.case_chain import AnchorError, read_anchor

    if args.verify:
        anchor = None
        if args.anchor:
            try:
                anchor = read_anchor(args.anchor)
            except AnchorError as exc:
                _err(str(exc))
                return 2
        try:
            case = Case.open(args.case, read_only=True)
        except CaseError as exc:
            _err(str(exc))
            return 2
        with case:
            try:
                return verify_case(case, anchor, str(args.anchor) if args.anchor else None)
            except CaseError as exc:  # the database itself cannot be read
                print(escape_for_terminal(f"case {case.folder}: BROKEN -- {exc}"))
                return 1
    return write_report(args.case, args.report, quiet=args.quiet)


def verify_case(case: Any, anchor: dict[str, Any] | None = None,
                anchor_name: str | None = None) -> int:
    """Print the verdict on ``case`` with both full heads; 0 intact, 1 broken."""
    report = case.verify(anchor, anchor_name)
    out = escape_for_terminal
    if report.ok:
        print(out(f"case {case.folder}: intact ({report.n_audit} audit entries, "
                  f"{report.n_results} results"
                  + (f"; matches the anchor {anchor_name}" if anchor_name else "") + ")"))
        print(f"  audit head   #{report.audit_seq} {report.audit_head}")
        print(f"  results head #{report.results_seq} {report.results_head}")
        for note in report.notes:
            print(out(f"  note: {note}"))
        return 0
    print(out(f"case {case.folder}: BROKEN -- first broken entry: {report.first_problem}"))
    for extra in report.problems[1:10]:
        print(out(f"  also: {extra}"))
    if len(report.problems) > 10:
        print(f"  … and {len(report.problems) - 10} more")
    return 1


def write_report(case_dir: Path, out: Path, quiet: bool = False, **kwargs: Any) -> int:
    from forensics_app.core.case import CaseError
    from forensics_app.reports import export_case_report

    try:
        path = export_case_report(case_dir, out, **kwargs)
    except (CaseError, OSError, ValueError) as exc:
        _err(f"cannot write the report {out}: {exc}")
        return 1
    if not quiet:
        from forensics_app.core.case_chain import anchor_path

        print(escape_for_terminal(f"report written to {path}; its anchor (keep it apart from "
                                  f"the case) is {anchor_path(path)}"), file=sys.stderr)
    return 0


class ScanRecording:
    """Records one CLI scan as it happens: rows into the case and into streamed reports.

    ``start`` opens (or creates) the case, skips what it already holds and records the scan;
    ``on_result`` is the scan's per-file callback (committed per batch); ``finish`` closes
    the streamed reports and the scan's audit entry with the outcome.
    """

    def __init__(self, args: argparse.Namespace, detector: Any, extra: dict[str, Any]):
        self.args, self.detector, self.extra = args, detector, extra
        self.case = None
        self.scan_id: int | None = None
        self.plan = None
        self.streams: list[Any] = []
        self.recorder = None
        self.n_skipped = 0
        self.output_failure = ""  # why a report could not be written (core.outputs), if so

    def start(self, files: Sequence[Path], options_summary: dict[str, Any]) -> list[Path]:
        """Return the files still to score; raises ``CaseError`` with a clear message."""
        from forensics_app.core.case import Case, CaseRecorder, detector_facts
        from forensics_app.core.export import StreamedReport

        args = self.args
        todo = list(files)
        earlier: list[Any] = []
        if args.case:
            self.case = Case.open_or_create(args.case)
            self.plan = self.case.plan_resume(files, self.detector.model_id, args.paths)
            todo = self.plan.todo
            self.n_skipped = len(self.plan.skipped)
            skipped = {str(p) for p in self.plan.skipped}
            earlier = [r for r in self.case.results(self.detector.model_id) if r.path in skipped]
            self.scan_id = self.case.begin_scan(
                detector_facts(self.detector), options_summary,
                [str(p) for p in args.paths], args.recursive, n_files=len(files),
                plan=self.plan)
        if args.csv:
            self.streams.append(StreamedReport(args.csv, "csv", self.extra))
        if args.jsonl:
            self.streams.append(StreamedReport(args.jsonl, "jsonl", self.extra))
        for stream in self.streams:
            stream.write(earlier)  # rows the case already held: the report is the union
        self.recorder = CaseRecorder(self.case, self.scan_id, batch_size=args.batch_size,
                                     sinks=self.streams)
        return todo

    @property
    def n_new(self) -> int:
        """Rows the case stored as new."""
        return self.recorder.n_new if self.recorder is not None else 0

    @property
    def n_stored(self) -> int:
        """Rows handed to the case (and the streamed reports) so far."""
        return self.recorder.n_committed if self.recorder is not None else 0

    def on_result(self, result: Any) -> None:
        self.recorder(result)

    def finish(self, status: str, message: str = "") -> list[str]:
        """Flush and close everything; return problems met while doing so (as messages)."""
        from forensics_app.core.case import CaseError

        problems: list[str] = []
        if self.recorder is not None:
            try:
                self.recorder.flush()
            except (CaseError, OSError) as exc:
                problems.append(str(exc))
                status, message = "failed", str(exc)
        for stream in self.streams:
            try:
                stream.close(completed=status == "finished", status=status,
                             reason=message if status != "finished" else None)
            except OSError as exc:
                problems.append(f"cannot finish {stream.path}: {exc}")
            if stream.failure and status == "finished":
                status, message = "failed", f"{stream.path}: {stream.failure}"
        # a report that could not be written (disk full): the CLI's exit 3 (core.outputs)
        self.output_failure = next(
            (f"{s.path}: {s.failure}" for s in self.streams if s.failure), "")
        if self.case is not None:
            try:
                if self.scan_id is not None:
                    self.case.finish_scan(self.scan_id, status, message)
            except CaseError as exc:
                problems.append(str(exc))
            finally:
                self.case.close()
        return problems


class TerminateAsInterrupt:
    """Turn SIGTERM (logout, ``kill``) and SIGINT into KeyboardInterrupt so the scan ends
    cleanly -- after the batch being recorded reached the case and every report
    (:mod:`forensics_app.core.interrupts`)."""

    def __enter__(self) -> TerminateAsInterrupt:
        self._previous: dict[int, Any] = {}
        for name in ("SIGTERM", "SIGINT"):
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                self._previous[signum] = signal.signal(signum, self._raise)
            except ValueError:  # not the main thread
                pass
        return self

    @staticmethod
    def _raise(_signum, _frame) -> None:
        from forensics_app.core.interrupts import request_stop

        request_stop()

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
