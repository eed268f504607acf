"""Read a file's bytes with a time budget, where a stuck read can be abandoned.

A read from a network or FUSE file system, or a never-ending "regular" file (``/proc/kmsg``
behind a symbolic link), can block forever inside the kernel, and no signal gets a thread
out of it. So the read runs on its own daemon thread: the caller waits at most the budget,
then reports the file and moves on. An abandoned thread keeps only its descriptor and what
it has read so far (it stops at the next chunk boundary, or whenever the kernel returns), and
being a daemon it never keeps the process from exiting (a thread-pool worker would: the
interpreter joins those at exit).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

# A file that reports size 0 (/proc files) or keeps growing is read in pieces of this size,
# checking for abandonment between them.
CHUNK_BYTES = 8 * 1024 * 1024

# Readers signal completion here; abandon_pending_reads() bumps the generation so that every
# waiting caller gives up at once.
_changed = threading.Condition()
_generation = 0


class ReadTimedOut(OSError):
    """The read did not finish within its budget (the thread was abandoned)."""


class ReadAbandoned(OSError):
    """The scan stopped while the read was pending (the thread was abandoned)."""


class ReadTooLarge(OSError):
    """The file yielded more than the byte limit."""


def read_fd_within(fd: int, size_hint: int, max_bytes: int, seconds: float | None,
                   head_check: Callable[[bytes], None] | None = None) -> bytes:
    """All bytes of ``fd`` (at most ``max_bytes``), read on a daemon thread that is abandoned
    after ``seconds`` (None: no budget). Takes ownership of ``fd`` (closed by the reader).

    ``head_check`` is called with the first 16 bytes (``pread``) before the rest is read and
    may raise to stop there. A regular file of ``size_hint`` bytes is read with one call into
    one buffer (no copy); raises :class:`ReadTimedOut`, :class:`ReadTooLarge` or the error of
    the read (or of ``head_check``).
    """
    box: dict = {}
    done = threading.Event()
    abandoned = threading.Event()
    generation = _generation

    def reader() -> None:
        try:
            if head_check is not None:
                head_check(os.pread(fd, 16, 0))
            parts: list[bytes] = []
            total = 0
            want = min(size_hint, max_bytes) + 1 if size_hint > 0 else CHUNK_BYTES
            while not abandoned.is_set():
                piece = os.read(fd, want)
                if not piece:
                    break
                parts.append(piece)
                total += len(piece)
                if total > max_bytes:
                    raise ReadTooLarge(f"over the {max_bytes:,}-byte read limit")
                want = CHUNK_BYTES
            box["data"] = parts[0] if len(parts) == 1 else b"".join(parts)
        except BaseException as exc:  # noqa: BLE001 -- handed to the waiting caller
            box["error"] = exc
        finally:
            os.close(fd)
            with _changed:
                done.set()
                _changed.notify_all()

    threading.Thread(target=reader, name="intake-read", daemon=True).start()
    with _changed:
        finished = _changed.wait_for(lambda: done.is_set() or _generation != generation,
                                     timeout=seconds)
    if not done.is_set():
        abandoned.set()
        if finished:  # woken by abandon_pending_reads: the scan is stopping
            raise ReadAbandoned("the scan was stopped while this file was being read")
        raise ReadTimedOut(f"the read did not finish within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["data"]


def abandon_pending_reads() -> None:
    """Every read now waiting returns at once (:class:`ReadAbandoned`): called when a scan
    stops (Ctrl-C, SIGTERM, cancel), so no intake thread keeps it waiting for a stuck read."""
    global _generation
    with _changed:
        _generation += 1
        _changed.notify_all()
