"""Evidence intake: read each file once (read-only), hash its bytes, decode it with PIL.

The file is opened once, read-only and without blocking, checked to be a regular file on the
opened descriptor (so a FIFO or device swapped in after discovery cannot hang the scan), read
up to :data:`MAX_FILE_BYTES` and never written to; its bytes are hashed and decoded from
memory, so the hash always describes exactly what was analysed. Only the Pillow formats in
:data:`DECODE_FORMATS` are decoded: none of them runs an external program (Pillow's EPS
reader, for one, runs Ghostscript; it is not on the list).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

from forensics_app.core.bomb_guard import (
    DEFAULT_MAX_PIXELS,
    BombRefused,
    DecodeLimits,
    check_declared_image,
    check_decode_memory,
    check_structure,
    count_tiff_pages,
    declared_bytes,
)
from forensics_app.core.failure_text import DAMAGED_STRUCTURE_ERRORS, damaged_structure
from forensics_app.core.image_formats import (
    container_kind,
    missing_decoder_reason,
    pillow_format,
    register_decoders,
    structure_error,
)
from forensics_app.core.padding import (
    MAX_PADDED_FRACTION,
    padded_rows,
    padded_rows_before_decode,
    padding_note,
)
from forensics_app.core.png_chunks import METADATA_CHUNKS, count_png_chunks, strip_png_chunks
from forensics_app.core.read_budget import (
    ReadAbandoned,
    ReadTimedOut,
    ReadTooLarge,
    read_fd_within,
)

# The decompression-bomb guard (core.bomb_guard) checks every header before any pixel is
# decoded, on the compression ratio and a configurable pixel cap; Pillow's own pixel limit
# (89.5 MP warning, 179 MP error) is switched off so that it is never the real limit.
DEFAULT_MAX_DECODE_PIXELS = DEFAULT_MAX_PIXELS
Image.MAX_IMAGE_PIXELS = None

ImageFile.LOAD_TRUNCATED_IMAGES = False

_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"WEBP", 8, "WEBP"),
    (b"\x00\x00\x00\x0cjP  ", 0, "JPEG2000"),
    (b"qoif", 0, "QOI"),
)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp",
     ".jp2", ".j2k", ".ppm", ".pgm", ".pbm", ".tga", ".qoi", ".heic", ".heif", ".hif", ".avif",
     ".jxl"}
)

# The only Pillow readers used on evidence: in-process decoders (libjpeg, zlib, libwebp,
# libtiff, OpenJPEG, pure Python) that run no external program (the JPEG reader also
# returns multi-picture JPEGs, as MPO), plus HEIF/HEIC (pillow-heif: libheif, libde265) and
# AVIF (Pillow's libavif) where installed (core.image_formats). Anything else is an error row
# naming the format.
DECODE_FORMATS: tuple[str, ...] = (
    "JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "JPEG2000", "PPM", "TGA", "QOI",
) + register_decoders()

# Files larger than this are not read (an error row); no genuine image this tool decodes
# within its pixel cap needs more.
MAX_FILE_BYTES = 1024 * 1024 * 1024

# Formats recognised only to name them in the error row (never decoded).
_UNDECODED_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"%!PS", 0, "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", 0, "EPS (DOS binary)"),
    (b"%PDF", 0, "PDF"),
    (b"8BPS", 0, "PSD"),
    (b"icns", 0, "ICNS"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"SIMPLE  =", 0, "FITS"),
    (b"\xd7\xcd\xc6\x9a", 0, "WMF"),
    (b"\x01\x00\x00\x00", 0, "EMF/WMF"),
    (b"<?xml", 0, "XML/SVG"),
    (b"<svg", 0, "SVG"),
    (b"PK\x03\x04", 0, "ZIP archive"),
    (b"\x7fELF", 0, "ELF executable"),
    (b"MZ", 0, "Windows executable"),
)


class ImageLoadError(Exception):
    """A file that could not be taken in as an image; the message says why."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class Evidence:
    """What was read from disk: identity of the bytes and facts about the image."""

    path: str
    sha256: str
    n_bytes: int
    format: str | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    n_frames: int = 1
    notes: tuple[str, ...] = ()  # intake findings for the result's notes (e.g. padding)


@dataclass(frozen=True, repr=False)
class InMemoryImage:
    """Evidence that is already in memory (an upload to the server): scanned from these
    bytes, exactly as a file's single read would be, and never written anywhere. ``name`` is
    only a label for the row; nothing opens it."""

    name: str
    data: bytes

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"InMemoryImage({self.name!r}, {len(self.data):,} bytes)"


class NotAnImage(ImageLoadError):
    """A file found inside a folder whose name and first bytes both say "not an image":
    skipped (listed with its reason), not an error row."""


def sniff_format(head: bytes) -> str | None:
    """Image format from magic bytes, or None; used to find images by content, not name."""
    for magic, offset, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            if name == "WEBP" and head[:4] != b"RIFF":
                continue
            return name
    return container_kind(head)  # HEIC/HEIF/AVIF/JXL: images, decoded or not


def describe_format(head: bytes) -> str | None:
    """Name of the format the first bytes announce, decoded or not (for error rows)."""
    name = sniff_format(head)
    if name is not None:
        return name
    for magic, offset, other in _UNDECODED_SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return other
    return None


def looks_like_image(path: Path) -> bool:
    """True when the file's extension or its first bytes say it is an image.

    Opens the file a first time (safely, 16 bytes); the scan itself does not use this, it
    sniffs from its single read (``load_evidence(..., images_only=True)``).
    """
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        fd = open_regular_file(path)
    except ImageLoadError:
        return False
    with os.fdopen(fd, "rb") as fh:
        return sniff_format(fh.read(16)) is not None


_FILE_KINDS = ((stat.S_ISDIR, "is a directory, not a file"),
               (stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file"),
               (stat.S_ISCHR, "is a character device, not a regular file"),
               (stat.S_ISBLK, "is a block device, not a regular file"),
               (stat.S_ISSOCK, "is a socket, not a regular file"))


OUTSIDE_ROOT = ("outside the scan root: a link to a file outside the folder this scan may "
                "read; not read")


def open_regular_file(path: Path | str, max_bytes: int = MAX_FILE_BYTES, *,
                      root: Path | None = None) -> int:
    """Open read-only without blocking and return the descriptor, or raise ImageLoadError
    unless the *opened* file is a regular file of at most ``max_bytes``.

    ``O_NONBLOCK`` makes opening a FIFO return at once; the check is on the descriptor
    (``fstat``), so a file swapped for a FIFO or device after discovery is caught too.
    ``root`` (a resolved folder): the file's links are resolved first and a file that lies
    outside ``root`` is refused unopened (the server's ``--scan-root``); the resolved path is
    opened without following a last link, and on Linux the opened file is checked again.
    """
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
             | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    target: Path | str = path
    if root is not None:
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(root):
            raise ImageLoadError(path, OUTSIDE_ROOT)
        target, flags = real, flags | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags)
    except IsADirectoryError as exc:
        raise ImageLoadError(path, "is a directory, not a file") from exc
    except FileNotFoundError as exc:
        reason = "broken symbolic link" if os.path.islink(path) else "file not found"
        raise ImageLoadError(path, reason) from exc
    except PermissionError as exc:
        raise ImageLoadError(path, "permission denied (file is not readable)") from exc
    except OSError as exc:
        raise ImageLoadError(path, f"cannot open file: {exc.strerror or exc}") from exc
    try:
        if root is not None and os.path.isdir("/proc/self/fd"):
            opened = os.readlink(f"/proc/self/fd/{fd}")  # what was opened, after any swap
            if not Path(opened).is_relative_to(root):
                raise ImageLoadError(path, OUTSIDE_ROOT)
        st = os.fstat(fd)
        for test, reason in _FILE_KINDS:
            if test(st.st_mode):
                raise ImageLoadError(path, reason)
        if not stat.S_ISREG(st.st_mode):
            raise ImageLoadError(path, "is not a regular file")
        if st.st_size > max_bytes:
            raise ImageLoadError(path, f"file is {st.st_size:,} bytes, over the "
                                       f"{max_bytes:,}-byte read limit; not read")
        if getattr(os, "O_NONBLOCK", 0):  # a regular file: reads block normally again
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes_and_hash(path: Path, max_bytes: int = MAX_FILE_BYTES, *,
                        images_only: bool = False, seconds: float | None = None,
                        root: Path | None = None, digest: bool = True) -> tuple[bytes, str]:
    """Read the file once, read-only, and return its bytes with their SHA-256 (``""``
    with ``digest=False``: a cluster head that sends the bytes to a worker, which hashes them).

    ``images_only``: the first bytes are sniffed first; a file that does not start like an
    image raises :class:`NotAnImage` after reading only those bytes. ``seconds``: the read's
    time budget (core.read_budget): a read still blocked after it is abandoned and the file
    reported, so a stuck or never-ending file cannot hang the scan.
    """
    fd = open_regular_file(path, max_bytes, root=root)
    try:
        size = os.fstat(fd).st_size
    except OSError:
        size = 0

    def head_check(head: bytes) -> None:
        if images_only and sniff_format(head) is None:
            kind = describe_format(head)
            raise NotAnImage(path, "not an image (no image extension, and its first bytes "
                                   + (f"are {kind})" if kind else "are no image format)"))

    try:
        data = read_fd_within(fd, size, max_bytes, seconds, head_check)
    except ImageLoadError:
        raise
    except ReadTimedOut as exc:
        raise ImageLoadError(
            path, f"reading stopped: {exc}, the per-file time budget (a stuck or never-ending "
                  "file: network or FUSE mount, /proc file?); abandoned, not scored (raise it "
                  "with --max-seconds-per-file)") from None
    except ReadAbandoned as exc:
        raise ImageLoadError(path, f"not read: {exc}") from None
    except ReadTooLarge as exc:  # grew while being read, or a never-ending file
        raise ImageLoadError(path, f"file is {exc}; not read") from None
    except OSError as exc:
        raise ImageLoadError(path, f"cannot read file: {exc.strerror or exc}") from exc
    return data, hashlib.sha256(data).hexdigest() if digest else ""


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB deterministically.

    Transparency is composited on white; 16/32-bit and float images are scaled to 8 bits.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        # Scaled on the finite samples only; NaN and -inf become black, +inf white (the
        # defined treatment of samples that are not numbers, noted on the row: see
        # nonfinite_note). All-NaN is a black image, which is scored like any other.
        finite = np.isfinite(arr)
        top = float(arr[finite].max()) if arr.size and finite.any() else 0.0
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "F" and arr.size and top <= 1.0:
            arr = arr * 255.0
        elif arr.size and top > 255.0:
            arr = arr / 257.0 if top <= 65535 else arr * (255.0 / top)
        if not finite.all():
            arr = np.where(finite, arr, np.where(arr == np.inf, 255.0, 0.0))
        arr = np.clip(arr, 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    return img.convert("RGB")


def nonfinite_note(img: Image.Image) -> str | None:
    """The row note of a float image holding samples that are not numbers (NaN, inf)."""
    if img.mode != "F":
        return None
    arr = np.asarray(img)
    nan, inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
    if not nan and not inf:
        return None
    parts = [f"{n:,} {what}" for n, what in ((nan, "NaN"), (inf, "infinite")) if n]
    return (f"float image: {' and '.join(parts)} of {arr.size:,} samples are not numbers; "
            "scored with NaN and -inf as black, +inf as white"
            + (" (the whole image is black)" if nan + inf == arr.size else ""))


def decode_image(
    data: bytes, path: Path | str, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS, *,
    limits: DecodeLimits | None = None, reserve: Callable[[int], None] | None = None,
    deadline: float | None = None,
) -> tuple[Image.Image, dict]:
    """Decode bytes to an upright RGB image; return it with format facts of the original.

    Every budget of ``limits`` (default: ``max_pixels`` as the pixel cap) is checked from
    the header and the bytes before a pixel is decoded (core.bomb_guard: pixels, compression
    ratio, memory, JPEG scans, TIFF pages); ``reserve``, when given, is then called with the
    bytes the decode will hold (the scan's memory window blocks there until there is room).
    ``deadline`` (``time.monotonic()``) is the file's time budget, checked between stages.
    The image is decoded once.
    """
    limits = limits or DecodeLimits(max_pixels=max_pixels)
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _open_dropping_metadata_bombs(data, notes)
            width, height = img.size
            try:
                check_declared_image(width, height, img.mode, len(data), limits)
                cost = check_decode_memory(width, height, img.mode, limits)
                check_structure(data, img.format, limits)
            except BombRefused as exc:
                raise ImageLoadError(path, str(exc)) from None
            facts = {
                "format": img.format,
                "width": width,
                "height": height,
                "mode": img.mode,
                "n_frames": _frame_count(img, data, limits),
            }
            padded = None
            if img.format in ("JPEG", "MPO"):  # a padded bomb is refused before its decode
                padded = padded_rows_before_decode(
                    data, width, height, declared_bytes(width, height, img.mode))
                if padded:
                    notes.extend(_padding_notes(padded, height, path))
            _check_deadline(deadline, path, "before decoding")
            if reserve is not None:  # the pixels, and the file's bytes held while decoding
                waited = time.monotonic()
                reserve(cost + len(data))
                if deadline is not None:  # queueing for memory is not the file's time
                    deadline += time.monotonic() - waited
            if facts["n_frames"] > 1:
                img.seek(0)
            img.load()
            _check_deadline(deadline, path, "after decoding")
            if padded is None:
                notes.extend(_padding_notes(padded_rows(img, data, facts["format"]), height,
                                            path))
            nonfinite = nonfinite_note(img)
            if nonfinite:
                notes.append(nonfinite)
            facts["notes"] = tuple(notes)
            ImageOps.exif_transpose(img, in_place=True)  # no second copy of a large image
            return to_rgb(img), facts
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(path, f"refused as a possible decompression bomb: {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageLoadError(path, _unidentified_reason(data)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(path, _corrupt_reason(data, exc)) from exc
    except DAMAGED_STRUCTURE_ERRORS as exc:  # a parser tripped over its own tables
        raise ImageLoadError(path, damaged_structure(describe_format(data[:16]), exc)) from exc


def _check_deadline(deadline: float | None, path: Path | str, stage: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise ImageLoadError(path, f"over the per-file time budget {stage} (raise it with "
                                   "--max-seconds-per-file); not scored")


def _open_dropping_metadata_bombs(data: bytes, notes: list[str]) -> Image.Image:
    """Open the image; a PNG whose text or ICC chunk inflates past Pillow's limit (a zlib
    bomb in metadata) is opened again without its metadata chunks, with a note: metadata
    limits cost the metadata, never the pixels' score."""
    try:
        return Image.open(io.BytesIO(data), formats=DECODE_FORMATS)
    except ValueError as exc:
        if not data.startswith(b"\x89PNG") or "MAX_TEXT_CHUNK" not in str(exc):
            raise
    stripped, dropped = strip_png_chunks(data, METADATA_CHUNKS)
    notes.append(f"PNG metadata not read: {', '.join(sorted(set(dropped)))} chunk(s) inflate "
                 "beyond Pillow's safety limit (a zlib bomb?); dropped, the pixels are scored")
    return Image.open(io.BytesIO(stripped), formats=["PNG"])


def _frame_count(img: Image.Image, data: bytes, limits: DecodeLimits) -> int:
    """Frames actually in the file (never only what a header claims)."""
    if img.format == "TIFF":  # counted linearly (and bounded) instead of seeking through
        return max(1, count_tiff_pages(data, limits.max_tiff_pages))
    if img.format == "PNG":  # an APNG's acTL is a claim; frames are its fcTL chunks
        return max(1, min(int(getattr(img, "n_frames", 1) or 1), count_png_chunks(data, b"fcTL")))
    return int(getattr(img, "n_frames", 1) or 1)


def _unidentified_reason(data: bytes) -> str:
    if not data:
        return "empty file (0 bytes)"
    kind = describe_format(data[:16])
    allowed = ", ".join(DECODE_FORMATS)
    if kind is None:
        return f"not an image in a format this tool decodes ({allowed})"
    if kind == "BMP" and _looks_like_text(data):
        return ("a text file that happens to start with 'BM', not a BMP image "
                "(no BMP header follows)")
    if pillow_format(kind) in DECODE_FORMATS:  # ours, but its reader refused the structure
        why = structure_error(data, pillow_format(kind) or kind)
        return f"{kind} structure not readable: {why or 'not recognised by its decoder'}"
    if container_kind(data[:64]):
        return missing_decoder_reason(kind)
    return (f"detected format {kind} is not decoded (only {allowed}); "
            "not opened with any other reader")


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return printable >= 0.95 * len(head)


def _corrupt_reason(data: bytes, exc: BaseException) -> str:
    kind = describe_format(data[:16])
    if kind == "BMP" and _looks_like_text(data):
        return _unidentified_reason(data)
    what = f"corrupt or truncated {kind}" if kind else "corrupt or truncated image"
    return f"{what}: {exc}"


def _padding_notes(rows: int, height: int, path: Path | str) -> tuple[str, ...]:
    """A note when the decoder filled missing data; an error when filler is most of it."""
    if not rows:
        return ()
    if rows > MAX_PADDED_FRACTION * height:
        raise ImageLoadError(
            path, f"mostly decoder padding: {padding_note(rows, height)}; not scored")
    return (padding_note(rows, height),)


def load_evidence(
    path: Path | str | InMemoryImage, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS, *,
    limits: DecodeLimits | None = None, reserve: Callable[[int], None] | None = None,
    images_only: bool = False, on_bytes: Callable[[bytes], None] | None = None,
    root: Path | None = None,
) -> tuple[Evidence, Image.Image | None, ImageLoadError | None]:
    """Read, hash and decode one file. Decode errors keep the hash (the bytes were read).

    Unreadable files raise :class:`ImageLoadError`; with ``images_only`` a file whose first
    bytes are no image raises :class:`NotAnImage` (sniffed from the same, single read).
    ``on_bytes`` is handed the bytes read (before decoding), so metadata readers such as
    core.provenance work on the same single read. An :class:`InMemoryImage` is taken in
    from its bytes (no file is opened).
    """
    limits = limits or DecodeLimits(max_pixels=max_pixels)
    budget = limits.max_seconds_per_file
    deadline = time.monotonic() + budget
    if isinstance(path, InMemoryImage):
        data, path = path.data, path.name
        if len(data) > MAX_FILE_BYTES:
            raise ImageLoadError(path, f"{len(data):,} bytes, over the {MAX_FILE_BYTES:,}-byte "
                                       "read limit; not read")
        digest = hashlib.sha256(data).hexdigest()
    else:
        path = Path(path)
        data, digest = read_bytes_and_hash(path, images_only=images_only, seconds=budget,
                                           root=root)
    if on_bytes is not None:
        on_bytes(data)
    try:
        img, facts = decode_image(data, path, max_pixels, limits=limits, reserve=reserve,
                                  deadline=deadline)
    except ImageLoadError as exc:
        evidence = Evidence(str(path), digest, len(data), format=describe_format(data[:16]))
        return evidence, None, exc
    evidence = Evidence(str(path), digest, len(data), **facts)
    return evidence, img, None
