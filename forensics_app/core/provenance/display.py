"""The grouped listing every front end shows: the GUI details panel and the HTML/PDF report.

One group per top-level part of :meth:`Provenance.to_dict` (the JSONL), in the same order, so
what an analyst reads on screen, on paper and in the export is the same set of fields.
"""

from __future__ import annotations

from collections.abc import Iterator

from forensics_app.core.provenance.generator_names import source_type_code, source_type_words
from forensics_app.core.provenance.records import DATE_MEANING, FAILED_MANIFEST, Provenance
from forensics_app.core.provenance.text import cap

DISPLAY_VALUE_CHARS = 2000  # a metadata value shown in a row (the record keeps more)

# (key in Provenance.to_dict(), group title); "assessment" gathers the top-level fields
GROUPS: tuple[tuple[str, str], ...] = (
    ("c2pa", "C2PA Content Credentials"),
    ("iptc_xmp", "IPTC / XMP"),
    ("iptc_iim", "IPTC-IIM"),
    ("exif", "EXIF"),
    ("generator_text", "Generator text"),
    ("jpeg", "JPEG"),
    ("assessment", "Assessment"),
)


def _c2pa_rows(p: Provenance) -> list[tuple[str, str]]:
    c = p.c2pa
    rows: list[tuple[str, str]] = []
    if not c.present:
        rows.append(("Present", "no" if not c.remote_manifest_url else
                     "stored remotely (not fetched)"))
    else:
        rows.append(("Present", "yes" if c.readable else
                     "yes, pre-C2PA CAI format" if c.legacy_cai else "yes, but unreadable"))
        if c.error:
            rows.append(("Error", c.error))
    if c.readable:
        rows += [("Signature", c.verification),
                 ("Claim generator", c.claim_generator or "")]
        rows += [("claim_generator_info", v) for v in c.claim_generator_info]
        rows += [("Title", c.title or ""), ("Signer", c.signer or ""), ("Issuer", c.issuer or ""),
                 ("Signed", c.signing_time or "(no trusted time stamp)"),
                 ("Library validation_state",
                  (c.validation_state or "") + ("" if c.trust == "trusted" or
                                                c.validation_state != "Valid" else
                                                " (intact, but signer not trusted)")),
                 ("Trust anchors", c.trust_anchors or "none loaded")]
        for a in c.actions:
            code = source_type_code(a.get("digital_source_type"))
            words = source_type_words(code)
            desc = ", ".join(x for x in (
                f"softwareAgent {a['software_agent']}" if a.get("software_agent") else None,
                f"digitalSourceType {code}" + (f" ({words})" if words else "") if code else None,
                None if a.get("active") else "ingredient manifest",
                f"{FAILED_MANIFEST} ({', '.join(a['failed'][:4])})" if a.get("failed")
                else None) if x)
            rows.append(("Action", f"{a.get('action')}" + (f": {desc}" if desc else "")))
        for ing in c.ingredients:
            rows.append(("Ingredient", f"{ing.get('title')} ({ing.get('relationship')})"
                         + (f": its manifest FAILED validation ({', '.join(ing['failed'][:4])})"
                            if ing.get("failed") else "")))
        for s in c.validation_status:
            rows.append((f"Status: {s['kind']}", f"{s['code']} — {s['explanation']}"))
        for s in c.ingredient_status:
            rows.append((f"Ingredient status: {s['kind']}",
                         f"'{s.get('ingredient')}': {s['code']} — {s['explanation']} "
                         f"({s.get('origin')})"))
        for a in c.cawg:
            named = ", ".join(a.get("named") or []) or "no named party read"
            rows.append(("CAWG assertion (not a C2PA claim)",
                         f"{a.get('label')}: {named}"
                         + (f" ({a['sig_type']})" if a.get("sig_type") else "")
                         + ("" if a.get("active") else " — in an ingredient's manifest")))
    if c.remote_manifest_url:
        rows.append(("Remote manifest", f"{c.remote_manifest_url} (exists; not fetched)"))
    return rows


def _exif_rows(p: Provenance) -> list[tuple[str, str]]:
    e = p.exif
    rows = [("Present", "yes" if e.present else "no")]
    if not e.present:
        return rows
    date_rows = [(f"{tag} ({DATE_MEANING[tag]})", value + (f" {offset}" if offset else ""))
                 for tag, value, offset in (
                     ("DateTimeOriginal", e.datetime_original, e.offset_time_original),
                     ("DateTimeDigitized", e.datetime_digitized, e.offset_time_digitized),
                     ("DateTime", e.datetime, e.offset_time)) if value]
    rows += [(k, v) for k, v in (
        ("Camera named (unsigned)", e.camera), ("Make", e.make), ("Model", e.model),
        ("Software", e.software)) if v]
    rows += date_rows
    rows += [(k, v) for k, v in (
        ("Lens", e.lens), ("GPS present", "yes" if e.gps_present else "no"),
        ("Orientation", None if e.orientation is None else str(e.orientation)),
        ("Thumbnail present", "yes" if e.thumbnail_present else "no"),
        ("Artist", e.artist), ("ImageDescription", e.image_description),
        ("Generator text in", ", ".join(e.generator_text_in)),
        ("Generator named in (not a camera)", ", ".join(e.generator_named_in)),
        ("Error", e.error)) if v]
    return rows


def _generator_rows(p: Provenance) -> list[tuple[str, str]]:
    g = p.generator_text
    rows = [(k, v) for k, v in (
        ("Generator", g.generator), ("Read from", g.source), ("Model", g.model),
        ("Seed", g.seed), ("Steps", g.steps), ("Sampler", g.sampler), ("CFG scale", g.cfg_scale),
        ("Size", g.size), ("Prompt", g.prompt)) if v]
    for t in g.entries:
        preview = t.text[:300].replace("\n", " ⏎ ")
        rows.append((f"{t.source} '{t.key}'",
                     f"{t.length:,} characters{' (stored truncated)' if t.truncated else ''}: "
                     f"{preview}{'…' if t.length > 300 else ''}"))
    return rows or [("Text", "none")]


def iter_detail_groups(p: Provenance) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """(group title, [(field, value), ...]) for display: the details panel and reports."""
    titles = dict(GROUPS)
    yield titles["c2pa"], _c2pa_rows(p)
    x = p.iptc_xmp
    rows = [("Present", "yes" if x.present else "no")]
    if x.encoding and x.encoding != "utf-8":
        rows.append(("Encoding", x.encoding))
    if x.extended_merged:
        rows.append(("Extended XMP", "merged"))
    if x.error:
        rows.append(("Error", x.error))
    rows += [(k, cap(v, DISPLAY_VALUE_CHARS)) for k, v in x.fields.items()]
    yield titles["iptc_xmp"], rows
    i = p.iptc_iim
    rows = [("Present", "yes" if i.present else "no")]
    rows += [(k, cap(v, DISPLAY_VALUE_CHARS)) for k, v in i.fields.items()]
    if i.error:
        rows.append(("Error", i.error))
    yield titles["iptc_iim"], rows
    yield titles["exif"], _exif_rows(p)
    yield titles["generator_text"], _generator_rows(p)
    j = p.jpeg
    if j.is_jpeg:
        rows = [("Estimated quality", "unknown" if j.quality is None else f"≈ {j.quality}"),
                ("Tables", (f"{j.tables}, " if j.tables else "")
                 + ("standard libjpeg tables" if j.standard_tables else
                    "non-standard (camera/app-specific) tables" if j.standard_tables is False
                    else "")),
                ("Comments", str(j.comment_count))]
        yield titles["jpeg"], rows
    rows = [("Declared generated", p.declared_text
             + (f" ({p.declared_strength})" if p.declared_strength else ""))]
    if p.generated_kind:
        rows.append(("Generated by", {"trained": "a trained model (AI)",
                                      "algorithmic": "an algorithm without a trained model",
                                      "synthetic": "a composite with synthetic content"}.get(
                                          p.generated_kind, p.generated_kind)))
    if p.container:
        rows.append(("Container", p.container))
    if p.remote_credentials:
        rows.append(("Remote Content Credentials", f"{p.remote_credentials} (exist; not fetched)"))
    rows += [("Basis", b) for b in p.declared_basis]
    rows += [("Hint", h) for h in p.hints]
    rows += [("Note", n) for n in p.notes]
    yield titles["assessment"], rows
