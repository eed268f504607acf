"""libtiff's error and warning messages go to the row of the file being decoded.

libtiff (Pillow's decoder for compressed TIFF) prints its complaints with ``fprintf(stderr)``
from C: they bypass :mod:`warnings`, name no file, and spam the terminal and the GUI log.
Redirecting file descriptor 2 around a decode is not safe in a threaded scan (fd 2 belongs to
the whole process: another thread's traceback or log line would land in a file's notes, and
two decodes would capture each other's lines). libtiff instead lets a program replace its
process-wide message handlers; libtiff calls them synchronously on the thread that decodes,
so a handler that hands the formatted message to the thread-local sink of
:mod:`forensics_app.core.warning_capture` attributes each line to its file. Messages raised
outside any file (no sink on that thread) go to :mod:`logging` instead of raw stderr.

The handlers are set through ``ctypes`` on the libtiff Pillow already loaded (``RTLD_NOLOAD``:
a second copy is never loaded). Where that library cannot be found (a Pillow built with
libtiff linked into ``_imaging`` without exported symbols) nothing changes and
:func:`install` returns False: the messages then still reach stderr unattributed.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_MAX_MESSAGE = 1024
_lock = threading.Lock()
_state: dict[str, object] = {}  # "installed": bool, and the ctypes objects kept alive

# void (*TIFFErrorHandler)(const char* module, const char* fmt, va_list ap). va_list is passed
# as a pointer on every ABI Pillow ships for (x86-64 and AArch64 SysV: an array / a large
# struct passed by reference; Windows and Apple arm64: a char*), so c_void_p carries it.
_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)


def _libtiff_candidates() -> Iterator[str]:
    """Files that may hold the libtiff Pillow uses, most specific first; produced lazily, so
    the last resort (a system library lookup by name, which runs ``ldconfig -p`` and more on
    Linux) is reached only when nothing this process already mapped holds libtiff -- and on
    Linux not at all: a system libtiff Pillow uses is in ``/proc/self/maps`` already."""
    found: list[str] = []
    try:  # Linux: the libraries this process has mapped, whatever their mangled names
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.rstrip("\n").split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
                if Path(path).name.startswith("libtiff") and path not in found:
                    found.append(path)
    except OSError:
        pass
    yield from found
    try:
        import PIL

        pil_dir = Path(PIL.__file__).parent
        for pattern in ("../pillow.libs/libtiff*", ".dylibs/libtiff*", "../Pillow.libs/libtiff*"):
            for p in sorted(glob.glob(str(pil_dir / pattern))):
                if p not in found:
                    found.append(p)
                    yield p
        from PIL import _imaging

        yield _imaging.__file__  # libtiff linked in statically, symbols exported
    except (ImportError, AttributeError, OSError):
        pass
    if sys.platform != "linux":
        import ctypes.util

        system = ctypes.util.find_library("tiff")
        if system:
            yield system


def _open_loaded(path: str) -> ctypes.CDLL | None:
    mode = getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_LOCAL", 0)
    try:
        lib = ctypes.CDLL(path, mode=mode) if mode else None
    except OSError:
        return None
    if lib is None:
        return None
    try:
        lib.TIFFSetErrorHandler  # noqa: B018 - probing the symbol
        lib.TIFFSetWarningHandler  # noqa: B018
    except AttributeError:
        return None
    return lib


def _vsnprintf() -> Callable[..., int] | None:
    try:
        # POSIX: the symbols already loaded into this process (libc among them) -- a direct
        # dlopen(NULL), no library lookup by name (which runs ``ldconfig -p`` on Linux)
        libc = ctypes.cdll.msvcrt if sys.platform == "win32" else ctypes.CDLL(None)
        fn = libc._vsnprintf if sys.platform == "win32" else libc.vsnprintf
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


def _make_handler(kind: str, deliver: Callable[[str], bool],
                  vsnprintf: Callable[..., int] | None) -> object:
    def handler(module: bytes | None, fmt: bytes | None, ap: int | None) -> None:
        try:
            text = ""
            if fmt is not None:
                if vsnprintf is not None and ap is not None:
                    buf = ctypes.create_string_buffer(_MAX_MESSAGE)
                    vsnprintf(buf, _MAX_MESSAGE, fmt, ap)
                    text = buf.value.decode("utf-8", "backslashreplace")
                else:
                    text = fmt.decode("utf-8", "backslashreplace")
            where = module.decode("utf-8", "backslashreplace") if module else ""
            message = f"libtiff {kind}: {where}: {text}" if where else f"libtiff {kind}: {text}"
            if not deliver(message):
                log.warning("%s (not while reading a file)", message)
        except Exception:  # noqa: BLE001 - an exception must never cross back into C
            pass

    return _HANDLER(handler)


def install(deliver: Callable[[str], bool]) -> bool:
    """Route libtiff's messages to ``deliver(message)`` (returns False when no file is being
    read on this thread). Idempotent; returns whether libtiff's handlers are ours."""
    with _lock:
        if "installed" in _state:
            return bool(_state["installed"])
        try:
            from PIL import Image  # noqa: F401 - loads _imaging, and with it libtiff
        except ImportError:
            _state["installed"] = False
            return False
        lib = None
        for candidate in _libtiff_candidates():
            lib = _open_loaded(candidate)
            if lib is not None:
                break
        if lib is None:
            _state["installed"] = False
            return False
        vsnprintf = _vsnprintf()
        error = _make_handler("error", deliver, vsnprintf)
        warning = _make_handler("warning", deliver, vsnprintf)
        lib.TIFFSetErrorHandler.argtypes = [_HANDLER]
        lib.TIFFSetErrorHandler.restype = ctypes.c_void_p
        lib.TIFFSetWarningHandler.argtypes = [_HANDLER]
        lib.TIFFSetWarningHandler.restype = ctypes.c_void_p
        lib.TIFFSetErrorHandler(error)
        lib.TIFFSetWarningHandler(warning)
        # Kept for the life of the process: libtiff holds raw pointers to the callbacks.
        _state.update(installed=True, lib=lib, error=error, warning=warning)
        return True


def installed() -> bool:
    return bool(_state.get("installed"))
