"""Evidence intake: read each file once (read-only), hash its bytes, decode it with PIL.

The file is opened once in ``rb`` mode and never written to; its bytes are hashed and decoded
from memory, so the hash always describes exactly what was analysed.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

# Refuse to decode images beyond this many pixels (decompression-bomb guard). The header is
# checked before any pixel is decoded.
DEFAULT_MAX_DECODE_PIXELS = 200_000_000

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
     ".jp2", ".j2k", ".ppm", ".pgm", ".pbm", ".tga", ".qoi"}
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


def sniff_format(head: bytes) -> str | None:
    """Image format from magic bytes, or None; used to find images by content, not name."""
    for magic, offset, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            if name == "WEBP" and head[:4] != b"RIFF":
                continue
            return name
    return None


def looks_like_image(path: Path) -> bool:
    """True when the file's extension or its first bytes say it is an image."""
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as fh:
            return sniff_format(fh.read(16)) is not None
    except OSError:
        return False


def read_bytes_and_hash(path: Path) -> tuple[bytes, str]:
    """Read the file once, read-only, and return its bytes with their SHA-256."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except IsADirectoryError as exc:
        raise ImageLoadError(path, "is a directory, not a file") from exc
    except FileNotFoundError as exc:
        raise ImageLoadError(path, "file not found") from exc
    except PermissionError as exc:
        raise ImageLoadError(path, "permission denied (file is not readable)") from exc
    except OSError as exc:
        raise ImageLoadError(path, f"cannot read file: {exc.strerror or exc}") from exc
    return data, hashlib.sha256(data).hexdigest()


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
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "F" and arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        elif arr.size and np.nanmax(arr) > 255.0:
            arr = arr / 257.0 if np.nanmax(arr) <= 65535 else arr * (255.0 / np.nanmax(arr))
        arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    return img.convert("RGB")


def decode_image(
    data: bytes, path: Path | str, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS
) -> tuple[Image.Image, dict]:
    """Decode bytes to an upright RGB image; return it with format facts of the original."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise ImageLoadError(
                    path,
                    f"image header declares {width}x{height} = {width * height:,} pixels, over the "
                    f"{max_pixels:,}-pixel limit (possible decompression bomb); not decoded",
                )
            facts = {
                "format": img.format,
                "width": width,
                "height": height,
                "mode": img.mode,
                "n_frames": int(getattr(img, "n_frames", 1) or 1),
            }
            if facts["n_frames"] > 1:
                img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return to_rgb(img), facts
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(path, f"refused as a possible decompression bomb: {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        kind = "empty file (0 bytes)" if not data else "not an image PIL can identify"
        raise ImageLoadError(path, kind) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(path, f"corrupt or truncated image: {exc}") from exc


def load_evidence(
    path: Path | str, max_pixels: int = DEFAULT_MAX_DECODE_PIXELS, *,
    on_bytes: Callable[[bytes], None] | None = None,
) -> tuple[Evidence, Image.Image | None, ImageLoadError | None]:
    """Read, hash and decode one file. Decode errors keep the hash (the bytes were read).

    ``on_bytes`` is handed the bytes read (before decoding), so metadata readers such as
    core.provenance work on the same single read.
    """
    path = Path(path)
    data, digest = read_bytes_and_hash(path)
    if on_bytes is not None:
        on_bytes(data)
    try:
        img, facts = decode_image(data, path, max_pixels)
    except ImageLoadError as exc:
        evidence = Evidence(str(path), digest, len(data), format=sniff_format(data[:16]))
        return evidence, None, exc
    evidence = Evidence(str(path), digest, len(data), **facts)
    return evidence, img, None
