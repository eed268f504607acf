"""What the metadata declares, in one word and one line: ``declared_generated`` and the summary.

Only declarations count: an IPTC/C2PA digital source type, a generator named in a software
field (one table: generator_names), or generator metadata a parser recognised. A camera
named in EXIF is free text anyone can write, so it is a hint ("EXIF names a camera") and
never a capture declaration that argues against the detector.

Every declaration carries its strength: signed by a C2PA manifest that passed validation,
claimed by a manifest that failed validation (weaker, and worded so), or unsigned. The
strongest comes first in ``declared_basis`` and names ``declared_strength``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from forensics_app.core.provenance.generator_names import (
    ALGORITHMIC_SOURCE_TYPES,
    CAPTURE_SOURCE_TYPES,
    GENERATED_KIND,
    GENERATED_SOURCE_TYPES,
    match_credit,
    match_generator,
    source_type_code,
)
from forensics_app.core.provenance.limits import SUMMARY_CHARS
from forensics_app.core.provenance.records import DATE_MEANING, FAILED_MANIFEST, Provenance
from forensics_app.core.provenance.text import cap, one_line

SIGNED, FAILED, UNSIGNED = 0, 1, 2
STRENGTH = {SIGNED: "signed", FAILED: FAILED_MANIFEST, UNSIGNED: "unsigned"}


def _failed_words(codes: list[str] | None) -> str:
    if not codes:
        return ""
    shown = ", ".join(codes[:3]) + (f" and {len(codes) - 3} more" if len(codes) > 3 else "")
    return f" — {FAILED_MANIFEST} ({shown})"


def _software_fields(p: Provenance) -> list[tuple[str, str | None, int, str, Callable]]:
    """(where, value, strength, failure words, matcher) of every field that names software,
    signed ones first. A credit line is matched only on the phrase tools write there."""
    c = p.c2pa
    fields: list[tuple[str, str | None, int, str, Callable]] = []
    if c.readable:
        failed = c.manifest_failure(c.active_manifest)
        strength, words = (FAILED if failed else SIGNED), _failed_words(failed)
        fields.append(("C2PA claim generator", c.claim_generator, strength, words,
                       match_generator))
        fields += [("C2PA claim_generator_info", v, strength, words, match_generator)
                   for v in c.claim_generator_info]
        fields += [(f"C2PA {cap(str(a.get('action')))} softwareAgent"
                    + ("" if a.get("active") else " (ingredient's manifest)"),
                    a.get("software_agent"), FAILED if a.get("failed") else SIGNED,
                    _failed_words(a.get("failed")), match_generator) for a in c.actions]
    x = p.iptc_xmp.fields
    fields += [("XMP xmp:CreatorTool", x.get("xmp:CreatorTool"), UNSIGNED, "", match_generator),
               ("XMP stEvt:softwareAgent", x.get("stEvt:softwareAgent"), UNSIGNED, "",
                match_generator),
               ("XMP photoshop:Credit", x.get("photoshop:Credit"), UNSIGNED, "", match_credit),
               ("EXIF Software", p.exif.software, UNSIGNED, "", match_generator),
               ("IPTC-IIM OriginatingProgram", p.iptc_iim.fields.get("OriginatingProgram"),
                UNSIGNED, "", match_generator),
               ("IPTC-IIM Credit", p.iptc_iim.fields.get("Credit"), UNSIGNED, "", match_credit)]
    fields += [(f"{e.source.split()[0]} {e.key}", e.text, UNSIGNED, "", match_generator)
               for e in p.generator_text.entries if e.key in ("Software", "Source", "generator")]
    return fields


def declare(p: Provenance) -> None:
    generated: list[tuple[int, str, str]] = []  # (strength, basis, kind)
    captured: list[tuple[int, str]] = []
    hints: list[str] = []
    for a in p.c2pa.actions:
        code = source_type_code(a.get("digital_source_type"))
        where = "" if a.get("active") else " (in an ingredient's manifest)"
        failed: Any = a.get("failed")
        what = (f"C2PA {cap(str(a.get('action')))} with digitalSourceType {code}{where}"
                + _failed_words(failed))
        strength = FAILED if failed else SIGNED
        if code in GENERATED_SOURCE_TYPES:
            generated.append((strength, what, GENERATED_KIND[code]))
        elif code in CAPTURE_SOURCE_TYPES:
            captured.append((strength, what))
        elif code in ALGORITHMIC_SOURCE_TYPES:
            hints.append(f"{what}: {ALGORITHMIC_SOURCE_TYPES[code]}")
    code = p.iptc_xmp.digital_source_type
    what = f"XMP Iptc4xmpExt:DigitalSourceType {code}"
    if code in GENERATED_SOURCE_TYPES:
        generated.append((UNSIGNED, f"{what}: {GENERATED_SOURCE_TYPES[code]} (unsigned claim)",
                          GENERATED_KIND[code]))
    elif code in CAPTURE_SOURCE_TYPES:
        captured.append((UNSIGNED, f"{what}: unsigned claim of capture "
                                   f"({CAPTURE_SOURCE_TYPES[code]}); free text anyone can "
                                   "write, weak evidence"))
    elif code in ALGORITHMIC_SOURCE_TYPES:
        hints.append(f"{what}: {ALGORITHMIC_SOURCE_TYPES[code]} (unsigned)")
    g = p.generator_text
    if g.generator:
        generated.append((UNSIGNED, f"generator metadata ({g.source}: {cap(g.generator)})",
                          "trained"))
    for where, value, strength, words, matcher in _software_fields(p):
        name = matcher(value)
        if name:
            generated.append((strength, f"{where} names a generator: {name} ({cap(value)})"
                              + words, "trained"))
    for named in p.exif.generator_named_in:
        tag, _, value = named.partition(": ")
        generated.append((UNSIGNED, f"EXIF {tag} names a generator, not a camera: "
                                    f"{match_generator(value)} ({cap(value)})", "trained"))
    if p.exif.camera:
        hints.append(f"EXIF names a camera: {cap(p.exif.camera)} (unsigned free text, not "
                     "proof of capture)")
    if p.exif.generator_text_in:
        hints.append("EXIF " + "/".join(p.exif.generator_text_in)
                     + " hold generator text, not a camera name")
    for a in p.c2pa.cawg:
        hints.append(_cawg_words(a))
    if p.remote_credentials:
        hints.append(f"Content Credentials stored remotely ({cap(p.remote_credentials, 120)}): "
                     "exist, not fetched")
    p.hints = hints
    generated.sort(key=lambda g: g[0])  # stable: strongest first, found order within
    captured.sort(key=lambda c: c[0])
    if generated:
        p.declared_generated = True
        p.declared_basis = list(dict.fromkeys(b for _s, b, _k in generated))
        p.declared_strength, p.generated_kind = STRENGTH[generated[0][0]], generated[0][2]
    elif captured:
        p.declared_generated, p.declared_basis = False, [b for _s, b in captured]
        p.declared_strength, p.generated_kind = STRENGTH[captured[0][0]], None
    else:
        p.declared_generated, p.declared_basis = None, []
        p.declared_strength = p.generated_kind = None


def _cawg_words(a: dict[str, Any]) -> str:
    """A CAWG assertion said as what it is: a named party's statement, not the C2PA claim."""
    label = str(a.get("label") or "cawg")
    where = "" if a.get("active") else " (in an ingredient's manifest)"
    if label.startswith("cawg.identity"):
        named = ", ".join(cap(n) for n in a.get("named") or []) or "an unnamed party"
        how = f", {a['sig_type']}" if a.get("sig_type") else ""
        return (f"CAWG identity assertion{where}: {named} vouches for this content "
                f"(Creator Assertions Working Group{how}); an identity statement, not the "
                "C2PA claim signer's claim")
    return (f"CAWG assertion {cap(label)}{where} (Creator Assertions Working Group): a "
            "statement by the content's creator, not a C2PA claim")


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
    active_failed = c.manifest_failure(c.active_manifest)
    if active_failed:
        claim = f"{FAILED_MANIFEST}: {claim}"
    created = [a for a in c.actions if str(a.get("action", "")).startswith("c2pa.created")]
    created.sort(key=lambda a: not a.get("active"))  # the active manifest's own first
    if created:
        a = created[0]
        agent = a.get("software_agent")
        code = source_type_code(a.get("digital_source_type"))
        claim += " (created" + (f" by {cap(agent)}" if agent else "")
        claim += f"; digitalSourceType {code}" if code else ""
        if not a.get("active"):
            claim += "; in an ingredient's manifest"
            claim += f", {FAILED_MANIFEST}" if a.get("failed") and not active_failed else ""
        claim += ")"
    if c.any_failure:  # the failure leads: nothing signed here can be taken at its word
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
        parts.append(f"XMP DigitalSourceType {cap(x.digital_source_type)} (unsigned claim)")
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
    if e.generator_named_in:
        bits.append("names a generator, not a camera: "
                    + cap(" / ".join(n.partition(": ")[2] for n in e.generator_named_in)))
    elif e.camera:
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
