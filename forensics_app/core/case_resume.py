"""Resuming a scan into a case: what is still to score, and what changed on disk since.

Kept apart from :mod:`forensics_app.core.case` (which stores) because it reads the evidence
as it is now: hashes, links, files gone or moved.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from forensics_app.core.case_chain import (
    ACTION_EVIDENCE_MOVED,
    absolute_path,
    path_from_key,
)

if TYPE_CHECKING:
    from forensics_app.core.case import Case

ACTION_EVIDENCE_MISSING = "evidence missing"


@dataclass
class ResumePlan:
    """What a scan into the case still has to do.

    ``todo`` are the files to score (absolute paths); ``skipped`` were already scored with
    the same model and their bytes are unchanged; ``changed`` have a row for their path
    whose SHA-256 differs (scored again and flagged); ``moved`` are files whose bytes were
    already scored at another path that no longer exists (recorded once, not scored twice);
    ``missing`` were scored under the scan's sources and are gone; ``relinked`` changed
    between a regular file and a symbolic link (or to another link target).
    """

    todo: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    changed: dict[str, str] = field(default_factory=dict)  # path -> previous SHA-256
    moved: dict[str, str] = field(default_factory=dict)  # new path -> old path
    missing: dict[str, str] = field(default_factory=dict)  # path -> SHA-256 scored
    relinked: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (was, now)


def plan_resume(case: Case, files: Sequence[Path | str], model_id: str,
                sources: Sequence[Path | str] = (),
                not_read: Collection[str] = (), root: Path | None = None) -> ResumePlan:
    """Split ``files`` into what still needs scoring with ``model_id`` and what does not.

    A file is skipped when a row for its path and model exists and its size and SHA-256
    match that row now (mtime is a quick pre-check; the hash decides). Hashing reads only
    files that already have a row, and new files whose size equals that of a scored file
    whose path has gone (a moved file). A move already recorded is not recorded again.
    Files scored before under ``sources`` that are gone now are listed as missing (once).
    Files in ``not_read`` (links out of the evidence folder, core.discovery) are never
    opened here: skipped when their row already says they were not read, else scanned (which
    gives that error row).
    """
    rows = case._read("SELECT path, sha256, record_json FROM results WHERE model_id = ?",
                      (model_id,))
    by_path: dict[str, list[tuple[str, int | None]]] = {}
    for key, sha, rec in rows:
        by_path.setdefault(path_from_key(key), []).append((sha, _json_dict(rec).get("bytes")))
    links = {path_from_key(k): t for k, t in case._read(
        "SELECT path, link_target FROM evidence WHERE link_target IS NOT NULL")}
    recorded_moves: set[tuple[str, str]] = set()
    recorded_missing: set[str] = set()
    for action, params_json in case._read(
            "SELECT action, params_json FROM audit WHERE action IN (?, ?)",
            (ACTION_EVIDENCE_MOVED, ACTION_EVIDENCE_MISSING)):
        p = _json_dict(params_json)
        if action == ACTION_EVIDENCE_MOVED:
            recorded_moves.add((p.get("path", ""), p.get("scored_as", "")))
        else:
            recorded_missing.add(p.get("path", ""))
    gone: dict[tuple[int, str], str] = {}  # (bytes, sha) -> old path, for vanished files
    for path, entries in by_path.items():
        if not os.path.lexists(path):
            for sha, n in entries:
                if sha and n is not None:
                    gone[(int(n), sha)] = path
    gone_sizes = {n for n, _ in gone}
    plan = ResumePlan()
    listed: set[str] = set()
    for f in files:
        key = absolute_path(f)
        p = Path(key)
        listed.add(key)
        entries = by_path.get(key)
        if str(Path(f)) in not_read or key in not_read:
            if entries and any(not sha for sha, _ in entries):
                plan.skipped.append(p)
            else:
                plan.todo.append(p)
            continue
        try:
            size = p.stat().st_size
        except OSError:
            size = None
        if entries:
            now_link = link_target(key)
            if key in links and links[key] != now_link:
                plan.relinked[key] = (links[key], now_link)
            if size is None:
                # Unreadable now; skip when it was unreadable before too.
                if any(not sha for sha, _ in entries):
                    plan.skipped.append(p)
                else:
                    plan.todo.append(p)
                continue
            current = _hash_file(p, root)
            known = {sha for sha, _ in entries}
            if current is not None and current in known:
                plan.skipped.append(p)
            else:
                last = next((sha for sha, _ in reversed(entries) if sha), "")
                if last and current is not None:
                    plan.changed[key] = last
                plan.todo.append(p)
            continue
        if size is not None and size in gone_sizes:
            current = _hash_file(p, root)
            old = gone.get((size, current or ""))
            if old is not None:
                if (key, old) not in recorded_moves:
                    plan.moved[key] = old
                plan.skipped.append(p)
                continue
        plan.todo.append(p)
    roots = [absolute_path(s) for s in sources]
    moved_from = set(plan.moved.values()) | {old for _new, old in recorded_moves}
    for (_size, sha), path in gone.items():
        if (path not in listed and path not in moved_from and path not in recorded_missing
                and any(_within(path, root) for root in roots)):
            plan.missing[path] = sha
    return plan


def files_held(case: Case, sources: Sequence[Path | str], recursive: bool,
               model_id: str) -> int:
    """How many files under ``sources`` the case holds a row for with ``model_id``: what a
    resumed scan of them would skip (the resume prompt's count, D15).

    Counted from the case's rows, not from one scan's record: a scan resumed twice has
    rows from every attempt, and a scan record counts only its own. A file is under a
    source when it is the source, or inside it (directly, unless ``recursive``).
    """
    roots = [absolute_path(s) for s in sources]
    held: set[str] = set()
    for (key,) in case._read("SELECT DISTINCT path FROM results WHERE model_id = ?",
                             (model_id,)):
        path = path_from_key(key)
        for root in roots:
            if path == root or (_within(path, root) and (
                    recursive or os.path.dirname(path) == (root.rstrip(os.sep) or os.sep))):
                held.add(path)
                break
    return len(held)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def link_target(path: str) -> str:
    """'' for a regular file (or none), else where the symbolic link points."""
    try:
        return os.readlink(path) if os.path.islink(path) else ""
    except OSError:
        return ""


def _hash_file(path: Path, root: Path | None = None) -> str | None:
    """SHA-256 of a regular file, or None. Opened the way intake opens evidence (read-only,
    non-blocking, regular files only): a FIFO or device named in a resumed scan is never
    read (a blocking open of a FIFO would hang the resume)."""
    from forensics_app.core.loading import ImageLoadError, open_regular_file

    try:
        fd = open_regular_file(path, root=root)  # never a file outside the scan's root
    except ImageLoadError:
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def _json_dict(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
