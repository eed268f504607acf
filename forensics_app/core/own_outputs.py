"""Files the application wrote itself, so that no scan takes them in as evidence.

An overlay PNG saved next to the evidence and scanned again became a case row -- forever in
the hash-chained case (issue 37, H1). The output guard now refuses writing inside a scanned
folder, but the folder scanned next may be one the examiner saved outputs to before. So every
output the window writes is noted here (path, and device + inode once it exists), recorded in
the open case as an ``output written`` audit entry, and a scan skips such a file *with a
reason* (:func:`skip_own_outputs`), as discovery skips hidden files.

Recognition is by where the file is (its path, resolved) or which file it is (device and
inode), never by its content: a PNG text chunk saying "made by this tool" is something
evidence could carry to hide from the scan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensics_app.core.discovery import Discovery, Skipped
from forensics_app.core.outputs import identity_of

ACTION_OUTPUT_WRITTEN = "output written"
SKIP_KIND = "own-output"
# audit actions whose "path" parameter is a file the application wrote
_OUTPUT_ACTIONS = (ACTION_OUTPUT_WRITTEN, "report exported")


@dataclass(frozen=True)
class OwnOutput:
    path: str  # absolute, links resolved
    what: str  # "overlay PNG", "CSV export", "case report"...
    identity: tuple[int, int] | None = None


def _resolved(path: Path | str) -> str:
    return os.path.realpath(os.path.abspath(path))




class OwnOutputs:
    """The outputs known to this window (this session's, and those the open case records)."""

    def __init__(self) -> None:
        self._by_path: dict[str, OwnOutput] = {}
        self._by_identity: dict[tuple[int, int], OwnOutput] = {}

    def __len__(self) -> int:
        return len(self._by_path)

    def note(self, path: Path | str, what: str) -> OwnOutput:
        """Remember ``path`` (call after writing it; its side-car is noted with it)."""
        entry = OwnOutput(_resolved(path), what, identity_of(path))
        self._by_path[entry.path] = entry
        if entry.identity is not None:
            self._by_identity[entry.identity] = entry
        side = Path(f"{path}.meta.json")
        if side.exists():
            self.note_plain(side, f"{what} side-car")
        return entry

    def note_plain(self, path: Path | str, what: str) -> None:
        entry = OwnOutput(_resolved(path), what, identity_of(path))
        self._by_path[entry.path] = entry
        if entry.identity is not None:
            self._by_identity[entry.identity] = entry

    def load_case(self, case: Any) -> int:
        """Take in every output the case's audit log records; returns how many."""
        n = 0
        for entry in case.audit_entries():
            if entry.action in _OUTPUT_ACTIONS and entry.params.get("path"):
                params = entry.params
                what = params.get("what") or f"{params.get('format', '')} case report".strip()
                ident = params.get("identity")
                out = OwnOutput(_resolved(params["path"]), what,
                                tuple(ident) if isinstance(ident, list) and len(ident) == 2
                                else None)
                self._by_path[out.path] = out
                if out.identity is not None:
                    self._by_identity[out.identity] = out  # type: ignore[index]
                n += 1
        return n

    def reason(self, path: Path | str) -> str | None:
        """Why ``path`` must not be scanned (it is one of our outputs), or None."""
        hit = self._by_path.get(_resolved(path))
        if hit is None:
            ident = identity_of(path)
            hit = self._by_identity.get(ident) if ident is not None else None
        if hit is None:
            return None
        return f"written by this application ({hit.what}), not evidence"


def record_output(case: Any, path: Path | str, what: str) -> None:
    """The case's ``output written`` audit entry for a file the window wrote (no-op when no
    case is open or it is read-only)."""
    if case is None or getattr(case, "read_only", False):
        return
    ident = identity_of(path)
    case.audit(ACTION_OUTPUT_WRITTEN, {"path": _resolved(path), "what": what,
                                       "identity": list(ident) if ident else None})


def skip_own_outputs(found: Discovery, outputs: OwnOutputs) -> list[Skipped]:
    """Move every discovered file that is one of ``outputs`` to ``found.skipped``."""
    if not len(outputs):
        return []
    keep, skipped = [], []
    for f in found.files:
        reason = outputs.reason(f) if isinstance(f, (str, Path)) else None
        if reason is None:
            keep.append(f)
        else:
            skipped.append(Skipped(str(f), reason, SKIP_KIND))
            found.sniff.discard(f)
    found.files[:] = keep
    found.skipped.extend(skipped)
    return skipped



def case_outputs(case_dir: Path | str | None) -> OwnOutputs:
    """The outputs a case folder's audit log records (none when there is no case yet): the
    CLI's ``--case`` scan skips them as the window does."""
    outputs = OwnOutputs()
    if case_dir is None:
        return outputs
    from forensics_app.core.case import CASE_DB_NAME, Case, CaseError

    if not (Path(case_dir) / CASE_DB_NAME).is_file():
        return outputs
    try:
        with Case.open(case_dir, read_only=True) as case:
            outputs.load_case(case)
    except CaseError:
        pass  # the scan itself opens the case and reports what is wrong with it
    return outputs
