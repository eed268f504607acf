"""Where Export report and Save overlay open, and what they may never be written over.

The dialog opens on the open case's folder first, then the folder the user last saved an
output to, then the user's documents folder, then home -- the first that is not a scanned
folder, inside one, or the folder of a scanned file. (A save dialog that opens on the evidence
invites writing there.)

Wherever the user then points it, every GUI output (table export, case report, overlay PNG)
passes :func:`refuse_over_evidence` first: by device and inode, it is never a scanned file (a
hard link or a symbolic link to one, whatever its name) and never inside a scanned folder.
Once written it is noted (:func:`note_output`), so no later scan takes it in as evidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs

from forensics_app.core.output_guard import evidence_conflict, refuse_outputs_in_evidence


def evidence_folders(window: Any) -> list[Path]:
    """Scanned folders and the folders of scanned files, as far as the window knows them."""
    folders: set[Path] = set()
    for job in getattr(window.queue, "jobs", []):
        for src in job.sources:
            p = Path(src)
            folders.add(p if p.is_dir() else p.parent)
    for record in window.results.records():
        folders.add(Path(record.path).parent)
    return sorted(folders)


def output_folder(window: Any) -> Path:
    case = getattr(getattr(window, "cases", None), "case", None)
    candidates = [getattr(case, "folder", None), getattr(window, "last_output_folder", None),
                  platformdirs.user_documents_dir(), Path.home()]
    evidence = evidence_folders(window)
    for c in candidates:
        if c and Path(c).is_dir() and evidence_conflict(Path(c) / "x", evidence) is None:
            return Path(c)
    return Path(platformdirs.user_data_dir("forensics-app", ensure_exists=True))


def remember_output_folder(window: Any, path: str | Path) -> None:
    window.last_output_folder = str(Path(path).parent)


def evidence_files(window: Any) -> list[str]:
    """Every file the window has scanned (the table's rows, and the open case's files)."""
    files = [record.path for record in window.results.records()]
    case = getattr(getattr(window, "cases", None), "case", None)
    if case is not None:
        files.extend(case.evidence_paths())
    return files


def evidence_roots(window: Any) -> list[str]:
    """Every folder or file the window was asked to scan (the queue's jobs, whatever their
    state, and every scan the open case records): the roots no output may be written in."""
    roots = [str(src) for job in getattr(window.queue, "jobs", []) for src in job.sources]
    case = getattr(getattr(window, "cases", None), "case", None)
    if case is not None:
        for scan in case.scans():
            roots.extend(str(s) for s in scan.sources)
    return list(dict.fromkeys(roots))


def refuse_over_evidence(window: Any, outputs: dict[str, str | Path | None]) -> None:
    """Raise :class:`forensics_app.core.outputs.OutputOverEvidence` (an OSError) when an
    output is one of the scanned files or lies inside a scanned folder (or one the open
    case scanned), compared as files and folders (device and inode, links followed): the
    one guard of every window write (:func:`forensics_app.core.output_guard.
    refuse_outputs_in_evidence`)."""
    refuse_outputs_in_evidence(outputs, evidence_files(window), evidence_roots(window))


def note_output(window: Any, path: str | Path, what: str) -> None:
    """A file the window wrote: never scanned as evidence later (this session, and through
    the open case's audit log, in later ones)."""
    from forensics_app.core.case import CaseError
    from forensics_app.core.own_outputs import record_output

    window.own_outputs.note(path, what)
    case = getattr(getattr(window, "cases", None), "case", None)
    try:
        record_output(case, path, what)
    except CaseError as exc:  # the output is written; only its record in the case failed
        window._flash(f"{path} written, but not recorded in the case: {exc}")
