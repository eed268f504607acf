"""Check report paths before a scan starts: never write over evidence, fail early.

Two rules, applied to every output the scan will write (each report and its ``.meta.json``
side-car, a case folder):

* **evidence is never a target**: an output that is one of the input files (same path, or
  the same file through a link) is refused, always; one that lies inside a folder being
  scanned is refused unless ``force`` (``--force-output``) is given. After discovery the CLI
  also compares every output with every file the scan will read, by device and inode
  (:func:`forensics_app.core.outputs.outputs_over_inputs`);
* **the output must be writable**: not an existing folder, its parent a folder (or
  creatable) that this user may write to. This is checked before any file is read, so a
  mistyped report path costs nothing instead of the whole scan's results.

Only the standard library is imported: the CLI calls this right after parsing arguments.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from forensics_app.core.outputs import identity_of

SIDECAR_SUFFIX = ".meta.json"


class OutputPathError(ValueError):
    """One or more outputs cannot be used; ``problems`` lists them (one message each)."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def same_file_conflict(output: Path, inputs: Iterable[Path]) -> str | None:
    """Why ``output`` *is* an input (same path, or the same file through a link), or None.

    Never overridable: writing there would replace the evidence. (The complete check, by
    device and inode against every file the scan reads, runs after discovery:
    :func:`forensics_app.core.outputs.outputs_over_inputs`.)
    """
    out = _resolved(output)
    for raw in inputs:
        if out == _resolved(raw) or (output.exists() and _same_file(output, raw)):
            return f"{output} is one of the inputs (evidence would be overwritten)"
    return None


def evidence_conflict(output: Path, inputs: Iterable[Path]) -> str | None:
    """Why writing ``output`` would touch evidence, or None."""
    inputs = list(inputs)
    same = same_file_conflict(output, inputs)
    if same:
        return same
    out = _resolved(output)
    for raw in inputs:
        src = _resolved(raw)
        if src.is_dir() and _is_within(out, src):
            return f"{output} is inside the scanned folder {raw}"
    return None


def writability_problem(output: Path, kind: str = "file") -> str | None:
    """Why ``output`` cannot be written, or None (checked without writing anything)."""
    if kind == "file" and output.is_dir():
        return f"{output} is a folder, not a file name"
    if kind == "folder" and output.exists() and not output.is_dir():
        return f"{output} exists and is not a folder"
    parent = output.parent if kind == "file" else output
    probe = parent
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"cannot create {output}: {probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"cannot write {output}: no write permission in {probe}"
    if kind == "file" and output.exists() and not os.access(output, os.W_OK):
        return f"cannot write {output}: the file is read-only"
    return None


def check_outputs(outputs: Mapping[str, Path | None], inputs: Iterable[Path | str],
                  force: bool = False, folders: Iterable[str] = ()) -> None:
    """Raise :class:`OutputPathError` naming every problem with ``outputs``.

    ``outputs`` maps an option name (``"--csv"``) to its path (None: not given); report
    paths bring their side-car along. Names in ``folders`` are folder outputs (a case).
    """
    inputs = [Path(p) for p in inputs]
    folders = set(folders)
    problems: list[str] = []
    targets: list[tuple[str, Path, str]] = []
    for name, path in outputs.items():
        if path is None:
            continue
        path = Path(path)
        if name in folders:
            targets.append((name, path, "folder"))
        else:
            targets.append((name, path, "file"))
            targets.append((f"{name} side-car", Path(f"{path}{SIDECAR_SUFFIX}"), "file"))
    seen: dict[Path, str] = {}
    for name, path, kind in targets:
        key = _resolved(path)
        if key in seen:
            problems.append(f"{name} and {seen[key]} name the same file {path}")
            continue
        seen[key] = name
        same = same_file_conflict(path, inputs)
        conflict = same or evidence_conflict(path, inputs)
        if same:
            problems.append(f"{name}: {same}; refused (choose another path; --force-output "
                            "never allows writing over an input)")
        elif conflict and not force:
            problems.append(f"{name}: {conflict}; refusing to write there "
                            "(choose another path, or --force-output)")
        writable = writability_problem(path, kind)
        if writable:
            problems.append(f"{name}: {writable}")
    if problems:
        raise OutputPathError(problems)




def _ancestors(path: Path) -> list[Path]:
    """``path``'s folders as spelled and as resolved (links followed), nearest first."""
    spelled = Path(os.path.abspath(path)).parent
    resolved = _resolved(path).parent
    out: list[Path] = []
    for start in (spelled, resolved):
        out.extend([start, *start.parents])
    return out


def outputs_inside_roots(outputs: Mapping[str, Path | str | None],
                         roots: Iterable[Path | str]) -> list[str]:
    """One message per output that lies inside a scanned folder (an evidence root).

    Folders are compared by device and inode, not by spelling: every existing folder above
    the output -- as typed and with links resolved -- against every root folder, so a
    symbolic link, a bind mount or ``..`` into the evidence tree is caught as well. Roots
    that are files are not folders to protect (:func:`forensics_app.core.outputs.
    outputs_over_inputs` refuses writing over the file itself).
    """
    root_ids: dict[tuple[int, int], str] = {}
    for root in roots:
        if os.path.isdir(root):
            ident = identity_of(root)
            if ident is not None:
                root_ids.setdefault(ident, str(root))
    if not root_ids:
        return []
    problems: list[str] = []
    for name, path in outputs.items():
        if path is None:
            continue
        for folder in _ancestors(Path(path)):
            root = root_ids.get(identity_of(folder) or (-1, -1))
            if root is not None:
                problems.append(
                    f"{name}: {path} is inside the evidence folder {root} (a scanned folder); "
                    "the application never writes into evidence, so a later scan cannot take "
                    "its own output as evidence -- choose a folder outside it")
                break
    return problems


def refuse_outputs_in_evidence(outputs: Mapping[str, Path | str | None],
                               files: Iterable[Path | str],
                               roots: Iterable[Path | str]) -> None:
    """The one guard every window write passes: raise
    :class:`forensics_app.core.outputs.OutputOverEvidence` (an ``OSError``) when an output,
    its side-car or its lock file *is* a scanned file, or when it lies inside a scanned
    folder; both by device and inode."""
    from forensics_app.core.outputs import OutputOverEvidence, outputs_over_inputs

    # a side-car or lock file lies in its output's folder: checking the output covers them
    problems = outputs_over_inputs(outputs, files) + outputs_inside_roots(outputs, roots)
    if problems:
        raise OutputOverEvidence("; ".join(problems))
