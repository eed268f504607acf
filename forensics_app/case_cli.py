"""The case side of ``forensics-scan``: ``--case``, ``--report``, ``--verify``, streamed reports.

Kept apart from :mod:`forensics_app.cli` so the scan command stays short: the scan itself
(case, streamed reports) is :class:`forensics_app.core.session.ScanSession`'s; the CLI calls
:func:`run_case_command` when it is asked to report on or verify a case without scanning.
"""

from __future__ import annotations

import argparse
import signal
import sys
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
    g.add_argument("--report-scope", choices=("all", "flagged", "reviewed"), default="all",
                   help="with --report: every file (default), flagged files only, or files "
                        "the examiner reviewed, tagged, noted or bookmarked")
    r = p.add_argument_group("the examiner's review (with --case, without PATHs)")
    r.add_argument("--review", metavar="PATH_OR_SHA256",
                   help="record the examiner's conclusion on a file of the case: its path as "
                        "scanned, or its SHA-256 (which names every copy of those bytes)")
    r.add_argument("--status", choices=("confirmed-generated", "confirmed-real",
                                        "needs-second-opinion", "unreviewed"))
    r.add_argument("--note", metavar="TEXT", help="the examiner's note (replaces the old one; "
                                                  "'' clears it)")
    r.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="add a tag (repeatable)")
    r.add_argument("--untag", action="append", default=[], metavar="TAG",
                   help="remove a tag (repeatable)")
    r.add_argument("--bookmark", action=argparse.BooleanOptionalAction, default=None,
                   help="bookmark the file (--no-bookmark removes it)")
    r.add_argument("--all-copies", action="store_true",
                   help="with a PATH: apply the review to every file with the same SHA-256")
    r.add_argument("--examiner", metavar="NAME",
                   help="who reviewed (default: the operating-system user; the audit log "
                        "records that user too)")


def _review_changes(args: argparse.Namespace) -> bool:
    return bool(args.status or args.note is not None or args.tag or args.untag
                or args.bookmark is not None)


def check_case_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.review is not None:
        if not args.case or args.paths or args.verify:
            parser.error("--review needs --case CASE_DIR and no PATHs or --verify")
        if not _review_changes(args):
            parser.error("--review needs --status, --note, --tag, --untag or --(no-)bookmark")
        return
    if _review_changes(args) or args.all_copies or args.examiner:
        parser.error("--status, --note, --tag, --untag, --bookmark, --all-copies and "
                     "--examiner go with --review PATH_OR_SHA256")
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

    if args.review is not None:
        code = review_file(args)
        if code or not args.report:
            return code
        return write_report(args.case, args.report, quiet=args.quiet, scope=args.report_scope)
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
    return write_report(args.case, args.report, quiet=args.quiet, scope=args.report_scope)


def review_file(args: argparse.Namespace) -> int:
    """``--review PATH_OR_SHA256 --status …``: one audited change per file it names."""
    from forensics_app.core.case import Case, CaseError
    from forensics_app.core.review import ReviewBook, ReviewError, parse_status
    from forensics_app.core.safetext import escape_for_terminal

    try:
        with Case.open(args.case) as case:
            book = ReviewBook(case)
            targets = book.resolve(args.review, all_copies=args.all_copies)
            before = {k: book.get(*k) for k in targets}
            out = book.set(targets, status=parse_status(args.status) if args.status else None,
                           note=args.note, add_tags=args.tag, remove_tags=args.untag,
                           bookmarked=args.bookmark, examiner=args.examiner)
    except (CaseError, ReviewError) as exc:
        _err(escape_for_terminal(str(exc)))
        return 2
    for rev in out:
        changed = rev.state() != before[rev.key].state()
        tags = f" tags: {', '.join(rev.tags)}" if rev.tags else ""
        line = (f"{'reviewed' if changed else 'unchanged'}: {rev.status.value:<21} "
                f"{rev.path}{tags}{' [bookmarked]' if rev.bookmarked else ''}")
        if not args.quiet:
            print(escape_for_terminal(line))
    return 0


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
