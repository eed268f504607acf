"""What the metadata declares, in one word and one line: ``declared_generated`` and the summary.

Only declarations count: an IPTC/C2PA digital source type, a generator named in a software
field (one table: generator_names), or generator metadata a parser recognised. A camera
named in EXIF is free text anyone can write, so it is a hint ("EXIF names a camera") and
never a capture declaration that argues against the detector.
"""

from __future__ import annotations

from typing import Any

from forensics_app.core.provenance.generator_names import (
    AI_SOURCE_TYPES,
    ALGORITHMIC_SOURCE_TYPES,
    CAPTURE_SOURCE_TYPES,
    match_generator,
    source_type_code,
)
from forensics_app.core.provenance.limits import SUMMARY_CHARS
from forensics_app.core.provenance.records import DATE_MEANING, Provenance
from forensics_app.core.provenance.text import cap, one_line


def _software_fields(p: Provenance) -> list[tuple[str, str | None]]:
    """(where, value) of every field that names software, signed ones first."""
    c = p.c2pa
    fields: list[tuple[str, str | None]] = []
    if c.readable:
        fields.append(("C2PA claim generator", c.claim_generator))
        fields += [("C2PA claim_generator_info", v) for v in c.claim_generator_info]
        fields += [(f"C2PA {cap(str(a.get('action')))} softwareAgent"
                    + ("" if a.get("active") else " (ingredient's manifest)"),
                    a.get("software_agent")) for a in c.actions]
    x = p.iptc_xmp.fields
    fields += [("XMP xmp:CreatorTool", x.get("xmp:CreatorTool")),
               ("XMP stEvt:softwareAgent", x.get("stEvt:softwareAgent")),
               ("XMP photoshop:Credit", x.get("photoshop:Credit")),
               ("EXIF Software", p.exif.software),
               ("IPTC-IIM OriginatingProgram", p.iptc_iim.fields.get("OriginatingProgram"))]
    fields += [(f"{e.source.split()[0]} {e.key}", e.text) for e in p.generator_text.entries
               if e.key in ("Software", "Source", "generator")]
    return fields


def declare(p: Provenance) -> None:
    generated: list[str] = []
    captured: list[str] = []
    hints: list[str] = []
    for a in p.c2pa.actions:
        code = source_type_code(a.get("digital_source_type"))
        where = "" if a.get("active") else " (in an ingredient's manifest)"
        what = f"C2PA {cap(str(a.get('action')))} with digitalSourceType {code}{where}"
        if code in AI_SOURCE_TYPES:
            generated.append(what)
        elif code in CAPTURE_SOURCE_TYPES:
            captured.append(what)
        elif code in ALGORITHMIC_SOURCE_TYPES:
            hints.append(f"{what}: {ALGORITHMIC_SOURCE_TYPES[code]}")
    code = p.iptc_xmp.digital_source_type
    what = f"XMP Iptc4xmpExt:DigitalSourceType {code}"
    if code in AI_SOURCE_TYPES:
        generated.append(what)
    elif code in CAPTURE_SOURCE_TYPES:
        captured.append(what)
    elif code in ALGORITHMIC_SOURCE_TYPES:
        hints.append(f"{what}: {ALGORITHMIC_SOURCE_TYPES[code]} (unsigned)")
    g = p.generator_text
    if g.generator:
        generated.append(f"generator metadata ({g.source}: {cap(g.generator)})")
    for where, value in _software_fields(p):
        name = match_generator(value)
        if name:
            generated.append(f"{where} names a generator: {name} ({cap(value)})")
    if p.exif.camera:
        hints.append(f"EXIF names a camera: {cap(p.exif.camera)} (unsigned free text, not "
                     "proof of capture)")
    if p.exif.generator_text_in:
        hints.append("EXIF " + "/".join(p.exif.generator_text_in)
                     + " hold generator text, not a camera name")
    if p.remote_credentials:
        hints.append(f"Content Credentials stored remotely ({cap(p.remote_credentials, 120)}): "
                     "exist, not fetched")
    p.hints = hints
    if generated:
        p.declared_generated, p.declared_basis = True, list(dict.fromkeys(generated))
    elif captured:
        p.declared_generated, p.declared_basis = False, captured
    else:
        p.declared_generated, p.declared_basis = None, []


def _c2pa_part(p: Provenance) -> str | None:
    c = p.c2pa
    if c.legacy_cai:
        return "pre-C2PA CAI credentials (early format, not readable by the C2PA library)"
    if c.present and not c.readable:
        if c.remote_manifest_url:
            return None  # said by the remote part
        return f"C2PA manifest present but unreadable ({cap(c.error, 80)})"
    if not c.readable:
        return None
    claim = f"claim by {cap(c.claim_generator) or 'an unnamed generator'}"
    created = next((a for a in c.actions if str(a.get("action", "")).startswith("c2pa.created")),
                   None)
    if created:
        agent = created.get("software_agent")
        code = source_type_code(created.get("digital_source_type"))
        claim += " (created" + (f" by {cap(agent)}" if agent else "")
        claim += f"; digitalSourceType {code})" if code else ")"
    failed = c.check_failures
    if failed:  # the failure leads: nothing signed here can be taken at its word
        return f"C2PA: {c.verification} — {claim}"
    return f"C2PA: {claim} — {c.verification}"


def summarise(p: Provenance) -> str:
    parts: list[str] = []
    if p.remote_credentials:
        parts.append(f"Content Credentials exist at {cap(p.remote_credentials, 80)} "
                     "(remote manifest, not fetched)")
    c2pa = _c2pa_part(p)
    if c2pa:
        parts.append(c2pa)
    x = p.iptc_xmp
    if x.digital_source_type:
        parts.append(f"XMP DigitalSourceType {cap(x.digital_source_type)}")
    elif x.fields.get("xmp:CreatorTool"):
        parts.append(f"XMP CreatorTool {cap(x.fields['xmp:CreatorTool'])}")
    g = p.generator_text
    if g.generator:
        bits = [cap(g.generator)]
        if g.model:
            bits.append(f"model {cap(g.model)}")
        if g.steps:
            bits.append(f"{cap(g.steps, 10)} steps")
        if g.seed:
            bits.append(f"seed {cap(g.seed, 24)}")
        parts.append(f"{cap(g.source)}: " + ", ".join(bits))
    e = p.exif
    bits = []
    if e.camera:
        bits.append(f"names a camera: {cap(e.camera)}")
    elif e.software:
        bits.append(f"software {cap(e.software)}")
    date = e.date
    if date and bits:
        bits.append(f"{date[0]} ({DATE_MEANING[date[0]]}) {cap(date[1], 32)}")
    if bits:
        parts.append("EXIF " + ", ".join(bits))
    if not parts:
        return "no provenance metadata" + (f" (JPEG quality ≈ {p.jpeg.quality})"
                                           if p.jpeg.quality else "")
    return cap(" · ".join(parts), SUMMARY_CHARS)


def finish(p: Provenance) -> None:
    declare(p)
    p.summary = one_line(summarise(p))


def disagreement(provenance: Provenance | None, verdict: Any) -> str | None:
    """A sentence when metadata and detector point opposite ways, else None.

    ``verdict`` is a :class:`~forensics_app.core.results.Verdict` (compared by value so this
    module needs no import of the results module).
    """
    if provenance is None or provenance.declared_generated is None:
        return None
    value = getattr(verdict, "value", verdict)
    basis = provenance.declared_basis[0] if provenance.declared_basis else ""
    if provenance.declared_generated is False and value == "AI-generated":
        return f"metadata declares a capture ({basis}), detector says AI-generated"
    if provenance.declared_generated is True and value == "Real":
        return f"metadata declares AI generation ({basis}), detector says Real"
    return None
