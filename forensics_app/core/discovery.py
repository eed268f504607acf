"""Which files a scan takes in, and the one rule for everything it does not.

* A path **named explicitly** (command line, drop, queue) is always taken in: a folder is
  expanded, anything else becomes a scored row or an error row that says why (missing, broken
  link, FIFO, device, not an image...).
* **Inside a folder**, each entry is either taken in or *skipped with a reason*; nothing is
  dropped silently. Taken in: regular files (or links to regular files) with an image
  extension, and regular files without one, which are kept only if the first bytes of their
  single read are an image (see :func:`forensics_app.core.loading.read_bytes_and_hash`).
  Skipped: hidden entries (name starting with ``.``; a hidden folder is not entered), FIFOs,
  sockets and devices, broken or looping links, links to folders (never followed, so a scan
  cannot loop or leave the tree), sub-folders when not recursive, folders that cannot be
  listed, folders deeper than the depth limit (:data:`DEFAULT_MAX_DEPTH` levels below the
  folder given; not entered, listed as ``too-deep``), and (at intake) files that are not
  images. Folders are walked iteratively, so no depth can exhaust the call stack.
* **Links to files** are resolved (every hop) against the *evidence root*: the folder given,
  or the folder holding a file named explicitly. A link whose target lies inside the root is
  taken in and its row says it is a link and where it points. A link whose target lies
  outside is **not read** (the examiner's own system is not evidence): it becomes an error
  row "link to a file outside the evidence folder: <target>", unless
  ``follow_links_outside`` (``--follow-links-outside``) is set, when it is read and its row
  says so. Every such fact is a :class:`LinkFact` in :attr:`Discovery.links`.

Every skipped entry is a :class:`Skipped` record: counted in the summary and listed in the
report side-car.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from forensics_app.core.loading import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Skipped:
    """An entry found inside a scanned folder and not scanned, with the reason."""

    path: str
    reason: str
    kind: str  # short category for counts: hidden, not-regular, link, folder, not-image...

    def record(self) -> dict:
        from forensics_app.core.safetext import escape_undecodable

        record = {"path": escape_undecodable(self.path), "reason": self.reason,
                  "kind": self.kind}
        if record["path"] != self.path:
            # escaped (\xNN for the undecodable bytes, backslashes doubled): says so, so
            # that byte 0xFF and a name spelled with a literal "\xff" can be told apart
            record["path_escaped"] = True
        return record


OUTSIDE_LINK_REASON = "link to a file outside the evidence folder: "


@dataclass(frozen=True)
class LinkFact:
    """A file taken in through a symbolic link: where it points and whether it is read."""

    target: str  # the final target, every hop resolved (os.path.realpath)
    outside: bool  # the target lies outside the evidence root
    followed: bool  # read (inside the root, or outside with follow_links_outside)

    def refusal(self) -> str | None:
        """The error row's text for a link that is not read, else None."""
        return None if self.followed else OUTSIDE_LINK_REASON + self.target

    def note(self) -> str:
        """The row note of a link that was read."""
        where = ("outside the evidence folder, followed because --follow-links-outside was "
                 "given" if self.outside else "inside the evidence folder")
        return f"symbolic link to {self.target} ({where})"


@dataclass
class Discovery:
    """Result of :func:`discover`: files to take in, which of them to sniff, what was skipped."""

    files: list[Path] = field(default_factory=list)
    sniff: set[Path] = field(default_factory=set)  # kept only if their bytes are an image
    skipped: list[Skipped] = field(default_factory=list)
    links: dict[Path, LinkFact] = field(default_factory=dict)  # files that are links


# Sub-folder levels entered below a scanned folder; deeper folders are listed, not entered.
DEFAULT_MAX_DEPTH = 256

_SPECIAL = ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"),
            (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def _special_kind(mode: int) -> str:
    for test, name in _SPECIAL:
        if test(mode):
            return name
    return "not a regular file"


def discover(paths: Iterable[Path | str], recursive: bool = False,
             max_depth: int = DEFAULT_MAX_DEPTH, *,
             follow_links_outside: bool = False) -> Discovery:
    """Expand ``paths`` by the rule in the module docstring; no file is opened here."""
    found = Discovery()
    seen: set[Path] = set()

    def add(p: Path, sniff: bool, root: str) -> None:
        key = p.absolute()
        if key not in seen:
            seen.add(key)
            found.files.append(p)
            if sniff:
                found.sniff.add(p)
            fact = link_fact(p, root, follow_links_outside)
            if fact is not None:
                found.links[p] = fact

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            entries: list[tuple[Path, bool]] = []
            _walk(p, recursive, entries, found.skipped, max_depth)
            root = os.path.realpath(p)
            for child, sniff in sorted(entries, key=lambda e: str(e[0])):
                add(child, sniff, root)
        else:
            add(p, False, os.path.realpath(p.absolute().parent))
    found.skipped.sort(key=lambda s: s.path)
    return found


def link_fact(path: Path, root: str, follow_links_outside: bool = False) -> LinkFact | None:
    """None for a path that is not a symbolic link, else where it leads against ``root``."""
    try:
        if not os.path.islink(path) or not os.path.exists(path):
            return None  # not a link; or a broken one, which intake reports as such
        target = os.path.realpath(path)
    except (OSError, ValueError):
        return None
    try:
        outside = os.path.commonpath([root, target]) != root
    except ValueError:  # another drive (Windows)
        outside = True
    return LinkFact(target, outside, followed=follow_links_outside or not outside)


def _walk(top: Path, recursive: bool, out: list[tuple[Path, bool]],
          skipped: list[Skipped], max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Every entry under ``top`` by the module's rule; an explicit stack, not recursion."""
    stack: list[tuple[Path, int]] = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            skipped.append(Skipped(str(folder), f"cannot list folder: {exc.strerror or exc}",
                                   "unlistable-folder"))
            continue
        for entry in entries:
            sub = _take_entry(folder, entry, recursive, out, skipped)
            if sub is None:
                continue
            if depth + 1 > max_depth:
                skipped.append(Skipped(str(sub), f"folder {depth + 1} levels deep, over the "
                                                 f"depth limit of {max_depth}; not entered",
                                       "too-deep"))
            else:
                stack.append((sub, depth + 1))


def _take_entry(folder: Path, entry: os.DirEntry, recursive: bool,
                out: list[tuple[Path, bool]], skipped: list[Skipped]) -> Path | None:
    """File it (taken in or skipped); return the path when it is a sub-folder to enter."""
    path = Path(folder, entry.name)
    if entry.name.startswith("."):
        what = "folder, not entered" if _is_dir_no_follow(entry) else "file"
        skipped.append(Skipped(str(path), f"hidden (name starts with '.'): {what}", "hidden"))
        return None
    try:
        is_link = entry.is_symlink()
        st = os.stat(entry.path)  # follows links
    except OSError as exc:
        reason = ("broken or looping symbolic link" if entry.is_symlink()
                  else f"cannot stat: {exc.strerror or exc}")
        skipped.append(Skipped(str(path), reason, "link" if entry.is_symlink() else "error"))
        return None
    if stat.S_ISDIR(st.st_mode):
        if is_link:
            skipped.append(Skipped(str(path), "symbolic link to a folder (not followed)", "link"))
        elif recursive:
            return path
        else:
            skipped.append(Skipped(str(path), "sub-folder (not entered: not recursive)",
                                   "folder"))
    elif stat.S_ISREG(st.st_mode):
        out.append((path, path.suffix.lower() not in IMAGE_EXTENSIONS))
    else:
        kind = _special_kind(st.st_mode)
        skipped.append(Skipped(str(path), f"{kind}, not a regular file", "not-regular"))
    return None


def _is_dir_no_follow(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def skipped_summary(skipped: Iterable[Skipped]) -> str:
    """``"3 skipped (hidden 2, not-image 1)"``, or ``""`` when nothing was skipped."""
    counts: dict[str, int] = {}
    for s in skipped:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    if not counts:
        return ""
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{sum(counts.values())} skipped ({detail})"
