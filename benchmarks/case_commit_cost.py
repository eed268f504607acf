"""What storing results in a case (one SQLite transaction per batch) costs in scan throughput.

Scans the same generated JPEGs with the same detector, alternating

  (plain) ``scan_files`` with no case, results kept in memory;
  (case)  ``scan_files`` into a case: a :class:`CaseRecorder` commits every batch
          (WAL, ``synchronous=FULL``: an fsync per commit) and streams a CSV as well;

and prints images/s for each (median over repeats), the relative cost (target <= 5 %), and
the time spent inside the commits themselves, which is the part of the cost that does not
depend on how busy the machine is.

Figures, not a test. Example (a few minutes on 2 CPU cores):

    .venv/bin/python benchmarks/case_commit_cost.py --model resources/models/detector.pt
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from forensics_app.core.case import Case, CaseRecorder, detector_facts  # noqa: E402
from forensics_app.core.detector import Detector  # noqa: E402
from forensics_app.core.export import StreamedReport  # noqa: E402
from forensics_app.core.scan import ScanOptions, scan_files  # noqa: E402
from helpers import make_image, save_tiny_checkpoint  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="checkpoint (default: a tiny random network)")
    ap.add_argument("--n", type=int, default=96, help="images per run")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or save_tiny_checkpoint(tmp / "tiny.pt")
        detector = Detector.from_checkpoint(model, device="cpu", threads=args.threads)
        files = []
        for i in range(args.n):
            p = tmp / "img" / f"{i:04d}.jpg"
            p.parent.mkdir(exist_ok=True)
            make_image((args.size, args.size), i).save(p, quality=90)
            files.append(p)
        options = ScanOptions(batch_size=args.batch_size)
        scan_files(files[: args.batch_size], detector, options)  # warm-up

        plain, cased, commit_s, commits = [], [], [], []
        for rep in range(args.repeat):
            t0 = time.perf_counter()
            scan_files(files, detector, options)
            plain.append(args.n / (time.perf_counter() - t0))

            case = Case.create(tmp / f"case{rep}")
            sid = case.begin_scan(detector_facts(detector), {"mode": "full"}, [str(tmp)],
                                  False, len(files))
            spent = [0.0, 0]
            original = case.add_results

            def timed(scan_id, rows, original=original, spent=spent):
                t = time.perf_counter()
                n = original(scan_id, rows)
                spent[0] += time.perf_counter() - t
                spent[1] += 1
                return n

            case.add_results = timed
            stream = StreamedReport(tmp / f"r{rep}.csv", "csv")
            rec = CaseRecorder(case, sid, batch_size=args.batch_size, sinks=[stream])
            t0 = time.perf_counter()
            scan_files(files, detector, options, on_result=rec)
            rec.flush()
            elapsed = time.perf_counter() - t0
            case.finish_scan(sid)
            stream.close(completed=True)
            assert case.count_results() == args.n and case.verify().ok
            case.close()
            cased.append(args.n / elapsed)
            commit_s.append(spent[0] / elapsed)
            commits.append(spent[0] / max(1, spent[1]) * 1000)

    p, c = statistics.median(plain), statistics.median(cased)
    print(f"model {detector.model_id}, {args.n} JPEGs of {args.size}², batch {args.batch_size}, "
          f"{args.threads} torch threads, {args.repeat} repeats (alternating)")
    print(f"  plain scan (no case)              : {p:7.2f} images/s  runs {_fmt(plain)}")
    print(f"  into a case, commit per batch + CSV: {c:7.2f} images/s  runs {_fmt(cased)}")
    print(f"  throughput cost                   : {100 * (1 - c / p):+6.2f} % (target <= 5 %)")
    print(f"  time inside commits               : {100 * statistics.median(commit_s):6.2f} % "
          f"of the scan; {statistics.median(commits):.1f} ms per batch of {args.batch_size}")


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
