"""``forensics-scan``: the scan engine without a window.

Exit codes: 0 every file was scored, 1 some files failed (or the scan was interrupted),
2 usage error (bad arguments, no model, unusable checkpoint, unavailable device, an output
that is an input or is being written by another scan), 3 an output could not be written
(disk full, I/O error): the scan stopped, the reports hold whole rows only and their
side-cars say "failed" and why.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from forensics_app import __version__
from forensics_app.case_cli import (
    TerminateAsInterrupt,
    add_case_arguments,
    check_case_arguments,
    run_case_command,
)
from forensics_app.core.output_guard import OutputPathError, check_outputs
from forensics_app.core.outputs import OutputWriteError, outputs_over_inputs
from forensics_app.core.safetext import escape_for_terminal
from forensics_app.engine_cli import add_engine_arguments, engine_settings
from forensics_app.ray_cli import add_ray_arguments, ray_options

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_OUTPUT_FAILED = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="forensics-scan",
        description="Score images for being AI-generated (a CNN detector in the style of Wang et al. 2020).",
    )
    p.add_argument("paths", nargs="*", type=Path, help="image files and/or folders")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--csv", type=Path, help="write a CSV report here")
    p.add_argument("--jsonl", type=Path, help="write a JSON Lines report here")
    p.add_argument("--model", type=Path, help="checkpoint (default: the bundled model)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--mode", choices=("full", "center-crop", "tiles", "sample"), default="full",
                   help="full image without resizing (paper protocol, default), centre 224 "
                        "crop, fixed-size tiles, or sample: triage on a seeded sample of "
                        "full-resolution tiles (--sample-tiles)")
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threshold", type=float, help="P(generated) threshold (default: model's)")
    p.add_argument("--band", type=float, help="inconclusive half-width around the threshold")
    p.add_argument("--fake-index", type=int, default=1, choices=(0, 1),
                   help="for 2-class checkpoints: which output is 'generated' (default 1)")
    p.add_argument("--workers", type=int, default=2, help="decode threads")
    p.add_argument("--c2pa-trust-anchors", type=Path, metavar="FILE",
                   help="PEM root certificates a C2PA signer must chain to (without it, "
                        "Content Credentials signatures are reported as untrusted)")
    p.add_argument("--force-output", action="store_true",
                   help="allow a report (or case) inside a scanned folder or over an input "
                        "file; refused otherwise (exit 2)")
    p.add_argument("--witness", metavar="NAMES",
                   help="second witnesses per scored file, comma-separated: ela, noise, jpeg, "
                        "thumbnail, clone, or all (JSONL 'witnesses', CSV witness_* columns)")
    p.add_argument("--witness-dir", type=Path, metavar="DIR",
                   help="write the witnesses' PNG maps here (named by the file's SHA-256)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no per-file lines")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_case_arguments(p)
    add_engine_arguments(p)
    add_ray_arguments(p)
    return p


def _outputs(args: argparse.Namespace) -> dict[str, Path | None]:
    return {"--csv": args.csv, "--jsonl": args.jsonl,
            "--report": getattr(args, "report", None),
            # reading a case (--verify, --report without PATHs) needs no write access
            "--case": getattr(args, "case", None) if args.paths else None,
            "--witness-dir": getattr(args, "witness_dir", None)}


def _output_problem(args: argparse.Namespace) -> str | None:
    """Every output checked before anything is scanned: None, or why it cannot be used."""
    try:
        check_outputs(_outputs(args), args.paths, force=args.force_output, folders=("--case", "--witness-dir"))
    except OutputPathError as exc:
        return "; ".join(exc.problems)
    return None


def _witness_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple:
    from forensics_app.core.witnesses import parse_witness_names

    if args.witness_dir is not None and not args.witness:
        parser.error("--witness-dir needs --witness")
    try:
        return parse_witness_names(args.witness or "")
    except ValueError as exc:
        parser.error(f"--witness: {exc}")


def main(argv: list[str] | None = None) -> int:
    from forensics_app.core.heap import limit_heap_retention

    parser = build_parser()
    args = parser.parse_args(argv)
    limit_heap_retention()  # before any image is decoded (core/heap.py)
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    for name in ("threshold", "band"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            parser.error(f"--{name} must be between 0 and 1")
    check_case_arguments(parser, args)
    witnesses = _witness_names(parser, args)
    engine = engine_settings(parser, args)
    cluster = ray_options(parser, args)
    problem = _output_problem(args)
    if problem:
        print(escape_for_terminal(f"forensics-scan: {problem}"), file=sys.stderr)
        return EXIT_USAGE
    if args.case and not args.paths:
        return run_case_command(args)

    # Heavy imports after argument parsing so --help is instant.
    from tqdm import tqdm

    from forensics_app.core.case import CaseError
    from forensics_app.core.detector import CheckpointError, Detector
    from forensics_app.core.discovery import skipped_summary
    from forensics_app.core.provenance import ProvenanceConfigError
    from forensics_app.core.ray_scan import ClusterError
    from forensics_app.core.session import ScanSession, ScanSettings
    from forensics_app.paths import bundled_model_path

    settings = ScanSettings(
        mode=args.mode, tile_size=args.tile_size, batch_size=args.batch_size,
        threshold=args.threshold, inconclusive_band=args.band, workers=args.workers,
        c2pa_trust_anchors=str(args.c2pa_trust_anchors or ""), **engine.scan)
    try:
        provenance_options = settings.provenance_options(strict=True)
    except ProvenanceConfigError as exc:
        print(escape_for_terminal(f"forensics-scan: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    model_path = args.model or bundled_model_path()
    if args.model is None and not model_path.is_file():
        print(escape_for_terminal(f"forensics-scan: no model bundled yet (expected {model_path}); "
                                  "pass --model CHECKPOINT"), file=sys.stderr)
        return EXIT_USAGE
    try:
        detector = Detector.from_checkpoint(model_path, device=args.device,
                                            fake_index=args.fake_index, threads=engine.threads,
                                            levers=engine.levers)
    except (CheckpointError, RuntimeError, ValueError) as exc:
        print(escape_for_terminal(f"forensics-scan: {exc}"), file=sys.stderr)
        return EXIT_USAGE

    missing = [p for p in args.paths if not p.exists()]
    # Rows go to the case and the streamed CSV/JSONL per batch, so a kill keeps them.
    session_kwargs = dict(recursive=args.recursive, case=args.case, csv=args.csv,
                          jsonl=args.jsonl, provenance_options=provenance_options,
                          witnesses=witnesses, witness_dir=args.witness_dir)
    if cluster is not None:  # scored on Ray workers, recorded here (core.ray_scan)
        from forensics_app.core.ray_scan import RayScanSession

        session = RayScanSession(detector, settings, args.paths, ray_options=cluster,
                                 model_path=model_path, **session_kwargs)
    else:
        session = ScanSession(detector, settings, args.paths, **session_kwargs)
    found = session.discover()
    if args.case:  # what the case records as its own outputs is not evidence (issue 37, H1)
        from forensics_app.core.own_outputs import case_outputs, skip_own_outputs

        session.skipped.extend(skip_own_outputs(found, case_outputs(args.case)))
    # outputs never reach evidence: compared by device+inode with every input (core.outputs)
    over_evidence = outputs_over_inputs(_outputs(args), found.files)
    if over_evidence:
        print(escape_for_terminal("forensics-scan: " + "; ".join(over_evidence)), file=sys.stderr)
        return EXIT_USAGE
    if not found.files:
        skipped = session.skipped
        extra_note = f" ({skipped_summary(skipped)})" if skipped else ""
        print(f"forensics-scan: no image files found{extra_note}", file=sys.stderr)
        return EXIT_SOME_FAILED if missing else EXIT_USAGE
    bar = tqdm(total=len(found.files), unit="img", file=sys.stderr, disable=args.quiet)
    try:
        with TerminateAsInterrupt():
            outcome = session.run(progress=lambda done, total: (
                setattr(bar, "total", total), bar.update(done - bar.n)))
    except (CaseError, OSError, ClusterError) as exc:
        print(escape_for_terminal(f"forensics-scan: {exc}"), file=sys.stderr)
        return EXIT_OUTPUT_FAILED if isinstance(exc, OutputWriteError) else EXIT_USAGE
    finally:
        bar.close()
    results, failure, elapsed = outcome.results, outcome.message, outcome.elapsed_s
    interrupted, skipped = outcome.interrupted, session.skipped

    if not args.quiet:
        for r in results:
            score = f"{r.prob_fake:.3f}" if r.prob_fake is not None else "  -  "
            if r.branch_probs:
                score += " (" + ", ".join(f"{k} {v:.3f}" for k, v in r.branch_probs.items()) + ")"
            line = f"{r.verdict.value:<13} {score}  {r.path}" + (f"  [{r.error}]" if r.error else "")
            print(escape_for_terminal(line))
    for problem in dict.fromkeys([failure, *outcome.problems]):
        if problem:
            print(escape_for_terminal(f"forensics-scan: {problem}"), file=sys.stderr)

    counts = Counter(r.verdict.value for r in results)
    n_ok = sum(r.ok for r in results)
    rate = n_ok / elapsed if elapsed > 0 else 0.0
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    if skipped:
        summary += f"; not scanned: {skipped_summary(skipped)}"
        summary += " (listed in the report side-car)" if args.csv or args.jsonl else ""
    print(escape_for_terminal(
        f"scanned {len(results)} files in {elapsed:.1f} s ({rate:.1f} images/s) on "
        f"{detector.device_description} with {detector.model_id} -- {summary}"),
        file=sys.stderr,
    )
    if args.case:
        print(escape_for_terminal(
            f"case {args.case}: {outcome.n_new} new rows stored, {outcome.n_already} files "
            "already scored with this model (skipped)"
            + (f"; {len(results) - outcome.n_stored} scored rows were not stored"
               if len(results) > outcome.n_stored else "")), file=sys.stderr)
        if args.report and not interrupted:
            from forensics_app.case_cli import write_report

            if write_report(args.case, args.report, quiet=args.quiet,
                            scope=args.report_scope):
                return EXIT_SOME_FAILED
    if outcome.output_failure:
        print(escape_for_terminal(
            f"forensics-scan: stopped: {outcome.output_failure}"), file=sys.stderr)
        return EXIT_OUTPUT_FAILED
    if interrupted:
        print("forensics-scan: interrupted; report holds the finished files only", file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_OK if n_ok == len(results) else EXIT_SOME_FAILED


if __name__ == "__main__":
    sys.exit(main())
