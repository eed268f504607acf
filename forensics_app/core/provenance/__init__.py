"""Provenance evidence: what a file says about itself (C2PA, IPTC/XMP/IIM, EXIF, generator text).

Everything here works on the bytes already read at intake (no second open of the evidence
file, nothing ever written). Readers are bounded and defensive: a malformed block (truncated
JUMBF, bad XML, entity bombs, oversized or zip-bombed text chunks, EXIF with bad offsets)
becomes a note on the record, never an exception out of :func:`read_provenance`.

Metadata is a second witness, not a verdict: it never changes the detector's score. A file
whose metadata declares AI generation gets ``declared_generated = True``; an explicit capture
declaration (IPTC/C2PA "digitalCapture" and kin) gets ``False``; otherwise ``None``
(unknown); ``declared_strength`` says whether the strongest declaration is signed, claimed by
a C2PA manifest that failed validation, or unsigned, and ``generated_kind`` whether a trained
model or a plain algorithm made it. A camera named in EXIF is a hint, not a declaration.
:func:`disagreement` names the case where metadata and detector differ.

The package, one room per concern: ``containers`` (find the blocks), ``exif``, ``xmp``,
``iptc_iim``, ``c2pa_reader``, ``generators`` (one parser per generator format),
``stealth`` (text in the alpha channel's low bits),
``generator_names`` (the one table of generator names and source types), ``assessment``
(declared_generated and the summary), ``display`` (the grouped listing front ends show).
"""

from __future__ import annotations

from forensics_app.core.provenance.assessment import disagreement, finish
from forensics_app.core.provenance.c2pa_reader import read_c2pa
from forensics_app.core.provenance.containers import Blocks, find_blocks, sniff
from forensics_app.core.provenance.display import GROUPS, iter_detail_groups
from forensics_app.core.provenance.exif import read_exif
from forensics_app.core.provenance.generator_names import (
    AI_SOURCE_TYPES,
    CAPTURE_SOURCE_TYPES,
    GENERATED_SOURCE_TYPES,
    IPTC_DST,
)
from forensics_app.core.provenance.generators import TextField, read_generator_text
from forensics_app.core.provenance.iptc_iim import read_iim
from forensics_app.core.provenance.jpeg_quality import jpeg_quality
from forensics_app.core.provenance.limits import (
    MAX_TEXT_CHUNK_BYTES,
    MAX_TEXT_CHUNKS,
    MAX_TEXT_TOTAL_BYTES,
    MAX_XMP_BYTES,
    STORED_TEXT_CHARS,
)
from forensics_app.core.provenance.records import (
    C2paFindings,
    ExifFindings,
    GeneratorFindings,
    IptcIimFindings,
    JpegFindings,
    Provenance,
    ProvenanceConfigError,
    ProvenanceOptions,
    TextEntry,
    XmpFindings,
    load_trust_anchors,
)
from forensics_app.core.provenance.stealth import has_alpha, read_stealth
from forensics_app.core.provenance.text import reason
from forensics_app.core.provenance.xmp import TEXT_FIELDS as XMP_TEXT_FIELDS
from forensics_app.core.provenance.xmp import read_xmp, remote_provenance

__all__ = [
    "AI_SOURCE_TYPES", "CAPTURE_SOURCE_TYPES", "GENERATED_SOURCE_TYPES", "GROUPS", "IPTC_DST",
    "MAX_TEXT_CHUNKS", "MAX_TEXT_CHUNK_BYTES", "MAX_TEXT_TOTAL_BYTES", "MAX_XMP_BYTES",
    "STORED_TEXT_CHARS", "C2paFindings", "ExifFindings", "GeneratorFindings", "IptcIimFindings",
    "JpegFindings", "Provenance", "ProvenanceConfigError", "ProvenanceOptions", "TextEntry",
    "XmpFindings", "disagreement", "iter_detail_groups", "load_trust_anchors", "read_provenance",
]

_IIM_TEXT = ("Caption-Abstract", "Headline", "ObjectName", "OriginatingProgram")


def _generator_text(fields: list[TextField], entries: list[TextEntry], notes: list[str]
                    ) -> GeneratorFindings:
    try:
        return read_generator_text(fields, entries, notes)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"generator text not parsed: {reason(exc)}")
        return GeneratorFindings(entries=entries)


def read_provenance(data: bytes, options: ProvenanceOptions | None = None) -> Provenance:
    """Read every provenance source from the file's bytes. Never raises for bad input."""
    options = options or ProvenanceOptions()
    p = Provenance()
    notes = p.notes
    try:
        blocks = find_blocks(data, notes)
    except Exception as exc:  # noqa: BLE001 -- a hostile container is a note
        notes.append(f"metadata not read: {reason(exc)}")
        blocks = Blocks(format=sniff(data[:64]))
    p.container = blocks.format
    if blocks.c2pa:
        p.c2pa = read_c2pa(data, blocks.format, options, notes, blocks.jumbf_label)
    xmp_full: dict[str, str] = {}  # every value uncut, for the generator parsers
    iim_full: dict[str, str] = {}
    if blocks.xmp or blocks.xmp_extended:
        p.iptc_xmp = read_xmp(blocks.xmp, notes, blocks.xmp_extended, xmp_full)
    if blocks.iim:
        p.iptc_iim = read_iim(blocks.iim, notes, iim_full)
    fields = [TextField(source, key, text) for source, key, text in blocks.full_texts]
    entries = list(blocks.texts)
    if blocks.exif:
        p.exif, exif_texts = read_exif(blocks.exif, notes)
        for tag, text in exif_texts:
            fields.append(TextField("EXIF", tag, text))
            if tag != "ImageDescription" or tag in p.exif.generator_text_in:
                entries.append(TextEntry("EXIF", tag, len(text), text[:STORED_TEXT_CHARS],
                                         len(text) > STORED_TEXT_CHARS))
    fields += [TextField("XMP", k, xmp_full[k]) for k in XMP_TEXT_FIELDS if k in xmp_full]
    fields += [TextField("IPTC-IIM", k, iim_full[k]) for k in _IIM_TEXT if k in iim_full]
    p.generator_text = _generator_text(fields, entries, notes)
    if p.generator_text.generator is None and has_alpha(data, blocks.format):
        # text chunks stripped: NovelAI and the stealth-pnginfo extension keep a copy in the
        # alpha channel's low bits (one decode, only for images with alpha and no text found)
        hidden = read_stealth(data, blocks.format, notes)
        if hidden:
            entries.append(TextEntry("alpha-channel", "stealth", len(hidden),
                                     hidden[:STORED_TEXT_CHARS], len(hidden) > STORED_TEXT_CHARS))
            fields.append(TextField("alpha-channel", "stealth", hidden))
            p.generator_text = _generator_text(fields, entries, notes)
    if blocks.format == "JPEG":
        q, std = jpeg_quality(blocks.dqt)
        p.jpeg = JpegFindings(True, q, std, len(blocks.dqt), blocks.comments)
    p.remote_credentials = p.c2pa.remote_manifest_url or remote_provenance(p.iptc_xmp)
    finish(p)
    return p

