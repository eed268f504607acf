"""A scan job's case report as the server's clients see it (D6 of issue 34).

The case stores what the server wrote: uploads under position names (``00000.png``) at
absolute paths of the server's data folder. A client knows its own file names and nothing of
the server's disk, so every report the server hands out shows, in place of each stored name,
the name the client uploaded (escaped) and, in place of every server path, the path relative
to the case (``evidence/00000.png``) or to the operator's scan root (a folder scan). The case
itself is not changed: its rows, hash chains and ``--verify`` stay as recorded; only the
report's text is.

``python -m forensics_app.server.case_report CASE_FOLDER OUT.pdf``: the PDF, laid out in a
process of its own (Qt), as the server asks for it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from forensics_app.core.discovery import OUTSIDE_LINK_REASON
from forensics_app.core.results import ScanResult
from forensics_app.server.jobs import JOB_FILE, ScanJob


@dataclasses.dataclass
class PublicResult(ScanResult):
    """A row as a client sees it: ``path`` relative to the case or the scan root, and the
    name the client uploaded as its file name."""

    shown_name: str = ""

    @property
    def file_name(self) -> str:
        return self.shown_name or Path(self.path).name


class PublicView:
    """Maps a job's server-side names and paths to what its client may see."""

    def __init__(self, job: ScanJob, model_path: Path | str | None = None):
        self.job = job
        folder = str(job.folder.absolute())
        pairs = [(folder + os.sep, ""), (folder, "."),
                 (str(job.folder.parent.parent.absolute()), "(server data folder)")]
        if job.root is not None:
            root = str(job.root)
            pairs[:0] = [(root + os.sep, ""), (root, ".")]
        if model_path is not None:
            pairs.insert(0, (str(Path(model_path).absolute()), Path(model_path).name))
        # Longest first: a path inside the case is made relative, not the data folder's.
        self._pairs = sorted(pairs, key=lambda p: len(p[0]), reverse=True)

    def text(self, value: str) -> str:
        if value.startswith(OUTSIDE_LINK_REASON):  # where a link points out of the root is
            return OUTSIDE_LINK_REASON + "(a path outside the scan root, not shown)"  # private
        for server, shown in self._pairs:
            if server and server in value:
                value = value.replace(server, shown)
        return value

    def value(self, value: Any) -> Any:
        """Every string in a record (dicts and lists walked) with server paths replaced."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value

    def path(self, r: ScanResult) -> str:
        """The row's path relative to the case (an upload) or to the scan root."""
        base = self.job.root if self.job.root is not None else self.job.folder
        try:
            return os.path.relpath(r.path, base)
        except ValueError:  # another drive (Windows): the name only
            return Path(r.path).name

    def row(self, r: ScanResult, name_in_path: bool = False) -> ScanResult:
        """``name_in_path``: the path reads ``NAME (evidence/00000.png)``, for the PDF's
        compact table, which shows a row's path only."""
        fields = {f.name: getattr(r, f.name) for f in dataclasses.fields(ScanResult)}
        shown = self.path(r)
        name = self.job.names.get(Path(r.path).name) if self.job.root is None else None
        name = name or Path(shown).name
        fields.update(path=f"{name} ({shown})" if name_in_path and self.job.root is None
                      else shown, notes=[self.text(n) for n in r.notes],
                      error=self.text(r.error) if r.error else r.error)
        return PublicResult(**fields, shown_name=name)

    def jsonl(self, data: bytes) -> bytes:
        """The case's streamed JSON Lines with each record made public (a line cut by a
        running batch is left out: it is complete once the batch is)."""
        import json

        out = []
        for line in data.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("path"), str):
                fake = ScanResult(path=record["path"])
                record["file_name"] = self.row(fake).file_name
                record["path"] = self.path(fake)
            out.append(json.dumps(self.value(record), ensure_ascii=False))
        return "".join(f"{line}\n" for line in out).encode("utf-8")

    def report_data(self, data: Any, name_in_path: bool = False) -> Any:
        """:class:`~forensics_app.core.report.ReportData` with names and paths made public
        (after its images were read from the real paths, and its chains verified)."""
        rows = [self.row(r, name_in_path) for r in data.rows]
        keyed = {(r.path, r.sha256 or ""): new for r, new in zip(data.rows, rows, strict=True)}
        reviews = {((keyed[k].path, k[1]) if k in keyed else k): v
                   for k, v in data.reviews.items()}
        flagged = [dataclasses.replace(f, result=self.row(f.result, name_in_path),
                                       note=self.text(f.note))
                   for f in data.flagged]
        return dataclasses.replace(
            data, case_folder=f"scan {self.job.id}", rows=rows, reviews=reviews,
            flagged=flagged,
            thumb_notes={k: self.text(v) for k, v in data.thumb_notes.items()},
            models=[dataclasses.replace(m, path=Path(m.path).name if m.path else m.path,
                                        meta=self.value(m.meta)) for m in data.models],
            scans=[dataclasses.replace(s, sources=self.value(list(s.sources)),
                                       settings=self.value(s.settings)) for s in data.scans],
            audit=[dataclasses.replace(a, params=self.value(a.params)) for a in data.audit])


def write_job_report(job: ScanJob, out: Path, model_path: Path | None = None,
                     pdf_in_process: bool = True) -> Path:
    """The job's case report in ``out``'s format (html, pdf, csv, jsonl), made public; the
    export is logged in the case's audit first, as every case report's is."""
    from forensics_app.core.case import ACTION_REPORT_EXPORTED, Case, CaseError
    from forensics_app.core.export import write_csv, write_jsonl
    from forensics_app.core.report import build_report, write_html
    from forensics_app.core.review import ReviewBook, review_key
    from forensics_app.reports import export_params, report_kind, write_anchor, write_pdf

    out = Path(out)
    kind = report_kind(out)
    view = PublicView(job, model_path)
    try:
        case = Case.open(job.folder)
    except CaseError:
        case = Case.open(job.folder, read_only=True)
    with case:
        if not case.read_only:
            case.audit(ACTION_REPORT_EXPORTED, export_params(case, out, None, None, "all", None))
        if kind in ("csv", "jsonl"):
            reviews = ReviewBook(case).all()
            rows = case.results()
            public = [view.row(r) for r in rows]
            reviews = {review_key(new): reviews[review_key(r)]
                       for r, new in zip(rows, public, strict=True) if review_key(r) in reviews}
            extra = {"command": "forensics-serve case report", "case": f"scan {job.id}",
                     "case_id": case.case_id, "scope": "all", "filtered": False}
            (write_csv if kind == "csv" else write_jsonl)(out, public, extra, reviews=reviews)
            verified = case.verify()
        else:
            data = build_report(case, thumbnails=kind != "pdf")
            data = view.report_data(data, name_in_path=kind == "pdf")
            if kind == "html":
                write_html(data, out)
            else:
                write_pdf(data, out, isolated=not pdf_in_process)
            verified = data.verify
        write_anchor(case, verified, out)
    return out


def main(argv: list[str] | None = None) -> int:
    import json

    from forensics_app.server.jobs import _job_from_record

    folder, out = (Path(a) for a in (argv if argv is not None else sys.argv[1:]))
    record = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    write_job_report(_job_from_record(folder.absolute(), record), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
