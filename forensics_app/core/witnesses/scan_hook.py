"""The scan's hook: second witnesses for one scored row, from the file as it is now.

The scan loop does not keep decoded images, so the file is read again (read-only, under the
same decode limits) and its SHA-256 compared with the row's: a file changed since it was
scored gets a note and no witnesses. Maps go only into ``witness_dir`` (checked by the
output guard before the scan), named by the file's hash, never by its evidence-controlled
name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from forensics_app.core.results import ScanResult


def add_witnesses(result: ScanResult, names: Sequence[str], limits,
                  witness_dir: Path | str | None = None,
                  should_cancel: Callable[[], bool] | None = None) -> None:
    """Fill ``result.witnesses``; problems become notes, never an exception."""
    from forensics_app.core.loading import ImageLoadError, load_evidence
    from forensics_app.core.witnesses import (
        Subject,
        WitnessCancelled,
        run_witnesses,
        save_maps,
        witness_records,
    )

    if result.sha256 is None or result.width is None or not Path(result.path).is_file():
        return  # not decoded (an error row), or not a file on disk (an upload)
    read: list[bytes] = []  # the bytes of the same single read the image is decoded from
    try:
        evidence, image, err = load_evidence(result.path, limits=limits, on_bytes=read.append)
    except ImageLoadError as exc:
        result.notes.append(f"witnesses not computed: {exc.reason}")
        return
    if err is not None or image is None:
        result.notes.append(f"witnesses not computed: {err.reason if err else 'not decoded'}")
        return
    if evidence.sha256 != result.sha256:
        result.notes.append("witnesses not computed: the file changed after it was scored "
                            "(SHA-256 differs)")
        return
    try:
        found = run_witnesses(Subject(image, read[0], evidence.format or ""), names,
                              should_cancel)
    except WitnessCancelled:
        result.notes.append("witnesses not computed: the scan was cancelled")
        return
    if witness_dir is not None:
        result.notes.extend(save_maps(found, witness_dir, result.sha256[:16]))
    result.witnesses = witness_records(found)

