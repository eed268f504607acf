"""Every file the tool writes (reports, side-cars, rendered case reports) goes through here.

Three rules keep an output from ever reaching evidence or claiming more than it holds:

* **files, not spellings**: an output is refused when it *is* one of the files the scan will
  read, compared by device and inode with links resolved (a hard link or a symbolic link to
  evidence is the same file under another name); :func:`outputs_over_inputs`.
* **created, never truncated**: a new output is an ``O_EXCL`` temporary file in the target's
  folder that is then renamed over the name (:func:`atomic_write` for whole files,
  :class:`AppendOnlyOutput` for streamed reports). Renaming replaces the *name*: whatever
  the name pointed to before (a hard link to a photo, say) keeps its bytes.
* **one writer, whole rows, a clear stop**: a streamed report holds a lock
  (:class:`OutputLock`) for its whole life, so a second scan writing the same report is
  refused instead of interleaving rows; a write that fails (a full disk) rolls the file back
  to its last whole batch and raises :class:`OutputWriteError`, which the CLI turns into its
  own exit code.

Only the standard library is imported.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO

Identity = tuple[int, int]  # (st_dev, st_ino)


class OutputWriteError(OSError):
    """An output could not be written (disk full, I/O error); the message says which and why."""


class OutputOverEvidence(OSError):
    """An output is one of the files being examined (a hard or symbolic link to evidence);
    the message names each such output. Never overridable."""


class OutputBusy(OSError):
    """Another process holds the lock of this output (a second scan writing the same report)."""


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino)


def identity_of(path: Path | str) -> Identity | None:
    """``(st_dev, st_ino)`` of ``path`` (links followed), or None when it cannot be stat'ed."""
    try:
        return _identity(os.stat(path))
    except (OSError, ValueError):
        return None


def file_identities(paths: Iterable[Path | str]) -> dict[Identity, str]:
    """``(st_dev, st_ino)`` of every path that exists (links followed) -> one of its names."""
    found: dict[Identity, str] = {}
    for p in paths:
        try:
            found.setdefault(_identity(os.stat(p)), str(p))
        except (OSError, ValueError):
            continue
    return found


def outputs_over_inputs(outputs: Mapping[str, Path | str | None],
                        inputs: Iterable[Path | str]) -> list[str]:
    """One message per output (or its side-car / lock file) that is one of ``inputs``.

    Compares files, not names: the output's device and inode, links followed, against those
    of every input, so ``ln ev/a.jpg out/r.csv`` and ``--csv`` at a symlink's target are
    both caught. Call it with the files the scan will actually read (after discovery).
    """
    evidence = file_identities(inputs)
    problems: list[str] = []
    for name, path in outputs.items():
        if path is None:
            continue
        for label, candidate in ((name, Path(path)),
                                 (f"{name} side-car", sidecar_path(path)),
                                 (f"{name} lock file", lock_path(path))):
            try:
                ident = _identity(os.stat(candidate))
            except (OSError, ValueError):
                continue
            if ident in evidence:
                problems.append(
                    f"{label}: {candidate} is the same file as the input {evidence[ident]} "
                    "(a hard or symbolic link to it); writing there would destroy evidence, "
                    "refused (choose another path)")
    return problems


def refuse_outputs_over_inputs(outputs: Mapping[str, Path | str | None],
                               inputs: Iterable[Path | str]) -> None:
    """Raise :class:`OutputOverEvidence` when :func:`outputs_over_inputs` finds a problem:
    the one check every front end (CLI, GUI exports, case reports, the server) runs before
    it writes an output next to evidence."""
    problems = outputs_over_inputs(outputs, inputs)
    if problems:
        raise OutputOverEvidence("; ".join(problems))


def sidecar_path(path: Path | str) -> Path:
    return Path(f"{path}.meta.json")


def lock_path(path: Path | str) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def new_file_mode() -> int:
    """0o666 less the process umask, read without changing it (os.umask would, for a moment,
    for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (the one low-level write of this module)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or str(exc)
    return f"{reason} ({name})" if name else reason


def _exclusive_temp(path: Path) -> tuple[int, str]:
    """An ``O_EXCL`` temporary file in ``path``'s folder, with the mode ``open`` would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    if os.name == "posix":  # mkstemp makes 0600; an output gets the mode open() would give
        os.fchmod(fd, new_file_mode())
    return fd, tmp


def atomic_write(path: Path | str, write: Callable[[IO[str]], object] | str | bytes) -> Path:
    """Write a whole file: ``O_EXCL`` temporary file, fsync, rename over ``path``.

    ``write`` is the content (str: UTF-8) or a callable given a text handle. The old file at
    ``path`` (or whatever it linked to) is never opened; on any failure the temporary file
    is removed and an :class:`OutputWriteError` names the file and the reason.
    """
    path = Path(path)
    fd, tmp = _exclusive_temp(path)
    try:
        if callable(write):
            import io

            buf = io.StringIO(newline="")
            write(buf)
            data = buf.getvalue().encode("utf-8")
        else:
            data = write.encode("utf-8") if isinstance(write, str) else bytes(write)
        write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except OSError as exc:
        _discard(fd, tmp)
        if isinstance(exc, OutputWriteError):
            raise
        raise OutputWriteError(exc.errno, f"cannot write {path}: {_describe(exc)}") from exc
    except BaseException:
        _discard(fd, tmp)
        raise
    return path


def _discard(fd: int, tmp: str) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        os.unlink(tmp)
    except OSError:
        pass


class OutputLock:
    """An advisory lock owned by one report for the whole scan (``.<name>.lock`` beside it).

    ``flock`` is released by the kernel when the process dies, so a killed scan leaves no
    stale lock; the lock file is removed on :meth:`release`. Acquiring re-checks that the
    locked file is still the one at the name (the usual guard against a concurrent unlink).
    """

    def __init__(self, path: Path | str):
        self.target = Path(path)
        self.path = lock_path(path)
        self._fd = -1

    def acquire(self) -> OutputLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no advisory locks, no refusal
            return self
        flags = os.O_RDONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
        self.target.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(8):
            try:
                fd = os.open(self.path, flags, 0o644)
            except OSError as exc:
                raise OutputWriteError(exc.errno, f"cannot create the lock file {self.path}: "
                                                  f"{_describe(exc)}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputBusy(
                        exc.errno,
                        f"{self.target} is being written by another scan (lock {self.path} "
                        "is held); refused, so that neither report is torn") from None
                raise
            try:
                same = _identity(os.fstat(fd)) == _identity(os.stat(self.path))
            except OSError:
                same = False
            if same:
                self._fd = fd
                return self
            os.close(fd)  # the holder removed it between our open and our flock: retry
        raise OutputBusy(errno.EAGAIN, f"cannot lock {self.target}: the lock file {self.path} "
                                       "keeps changing")

    def release(self) -> None:
        if self._fd < 0:
            return
        try:
            os.unlink(self.path)  # while still holding it: a waiter re-checks the inode
        except OSError:
            pass
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class AppendOnlyOutput:
    """A file this process created (``O_EXCL`` temporary file renamed to the name) and then
    only appends to, one whole chunk at a time.

    A chunk that cannot be written completely is cut off again (``ftruncate`` of our own file
    to its last whole chunk; shrinking needs no space), so the file never ends in half a row,
    and :class:`OutputWriteError` says why.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._fd, tmp = _exclusive_temp(self.path)
        try:
            os.replace(tmp, self.path)
        except OSError as exc:
            _discard(self._fd, tmp)
            raise OutputWriteError(exc.errno, f"cannot create {self.path}: "
                                              f"{_describe(exc)}") from exc
        self.size = 0
        self.identity = _identity(os.fstat(self._fd))

    def append(self, data: bytes) -> None:
        if not data:
            return
        try:
            write_all(self._fd, data)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self.size)
            except OSError:
                pass
            raise OutputWriteError(exc.errno, f"cannot write {self.path}: {_describe(exc)}; "
                                              "it holds the rows written before") from exc
        self.size += len(data)

    def close(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        try:
            os.fsync(fd)
        except OSError:
            pass
        os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd < 0


def overwrite_own_file(path: Path, identity: Identity, data: bytes) -> bool:
    """Last resort when no new file can be created (disk full): write ``data`` over the start
    of the file at ``path``, padded with spaces to its size, *only* if it is still the file
    this process created (``identity``). Overwriting allocated bytes needs no free space.
    Returns whether it was written."""
    flags = os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if _identity(st) != identity or not stat.S_ISREG(st.st_mode):
            return False
        if len(data) < st.st_size:
            data = data + b" " * (st.st_size - len(data) - 1) + b"\n"
        os.pwrite(fd, data, 0)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
