"""Image formats beyond Pillow's classic set: HEIC/HEIF (pillow-heif), AVIF, JPEG XL.

All of these decoders run in-process (libheif + libde265 inside pillow-heif; libavif inside
Pillow); none runs an external program, so they belong on the intake allow-list. A format
whose decoder is not installed is still recognised, so its row says exactly that
("HEIC: decoder not installed") and its provenance is still read from the bytes.
"""

from __future__ import annotations

import io
import warnings

# ISOBMFF brands (ftyp major or compatible brand) -> the name analysts know
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}
_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"

# Pillow's format name for each container this module names
_PILLOW_NAME = {"HEIC": "HEIF", "HEIF": "HEIF", "AVIF": "AVIF", "JXL": "JXL"}
_INSTALL = {"HEIC": "pillow-heif", "HEIF": "pillow-heif", "AVIF": "Pillow built with libavif",
            "JXL": "no JPEG XL decoder on the allow-list"}


def container_kind(head: bytes) -> str | None:
    """HEIC / HEIF / AVIF / JXL from the first bytes (at least 32), or None."""
    if head.startswith(_JXL_CONTAINER) or head[:2] == b"\xff\x0a":
        return "JXL"
    if head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    brands = {head[8:12]} | {head[i:i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
    major = head[8:12]
    if major in _AVIF_BRANDS or (major in _HEIF_BRANDS and brands & _AVIF_BRANDS
                                 and not brands & _HEIC_BRANDS):
        return "AVIF"
    if major in _HEIC_BRANDS or brands & _HEIC_BRANDS:
        return "HEIC"
    if major in _HEIF_BRANDS:
        return "HEIF"
    return None


def pillow_format(kind: str | None) -> str | None:
    """Pillow's name of the reader for ``kind`` (HEIC -> HEIF); other names unchanged."""
    return _PILLOW_NAME.get(kind or "", kind)


def register_decoders() -> tuple[str, ...]:
    """Register the optional in-process decoders; return the Pillow formats now available."""
    from PIL import Image, features

    available: list[str] = []
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        available.append("HEIF")
    except ImportError:
        pass
    Image.init()
    if features.check("avif") and "AVIF" in Image.OPEN:
        available.append("AVIF")
    return tuple(available)


def missing_decoder_reason(kind: str | None) -> str:
    """"HEIC: decoder not installed (pillow-heif)" and the like."""
    return f"{kind}: decoder not installed ({_INSTALL.get(kind or '', 'none on the allow-list')})"


def structure_error(data: bytes, pillow_name: str) -> str | None:
    """The allow-listed reader's own complaint about bytes it refused to identify.

    Pillow's ``Image.open`` hides the plugin's reason behind "cannot identify image file
    <_io.BytesIO object at 0x…>"; opening with the one plugin directly gives the real one.
    """
    from PIL import Image

    Image.init()
    factory = Image.OPEN.get(pillow_name)
    if factory is None:
        return None
    cls = factory[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with cls(io.BytesIO(data)):
                return None
    except Exception as exc:  # noqa: BLE001 -- the message is what is wanted
        from forensics_app.core.provenance.text import reason

        return reason(exc)
