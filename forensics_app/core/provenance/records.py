"""The provenance record: what each metadata source said, grouped as the JSONL exports it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# C2PA failure codes that are about trust in the signer only; every other failure code
# (claimSignature.mismatch, assertion.dataHash.mismatch, signingCredential.expired, ...)
# means the signature, the credential or the signed content did not check out.
UNTRUSTED_ONLY = frozenset({"signingCredential.untrusted"})
FAILED_MANIFEST = "claimed by a manifest that failed validation"


def _shown(codes: list[str], limit: int = 4) -> str:
    return ", ".join(codes[:limit]) + (f" and {len(codes) - limit} more" if len(codes) > limit
                                        else "")


@dataclass
class C2paFindings:
    """Content Credentials as the c2pa library reads them; empty when none are present."""

    present: bool = False  # a C2PA/JUMBF block was found in the bytes
    readable: bool = False  # the library read a manifest store from it
    active_manifest: str | None = None
    claim_generator: str | None = None
    # every claim_generator_info entry of the active manifest ("name version")
    claim_generator_info: list[str] = field(default_factory=list)
    title: str | None = None
    signer: str | None = None  # signing certificate's common name
    issuer: str | None = None
    signing_time: str | None = None
    signature_alg: str | None = None
    # every action of every manifest in the store (the active one first)
    actions: list[dict[str, Any]] = field(default_factory=list)
    ingredients: list[dict[str, Any]] = field(default_factory=list)
    validation_state: str | None = None  # exactly as the library reports it
    # active manifest's statuses as the library reports them: code, explanation, url, kind
    validation_status: list[dict[str, str]] = field(default_factory=list)
    # ingredients' statuses as the library reports them: found now (validation_results
    # ingredientDeltas, origin "validated now") or recorded in the ingredient when it was added
    # (origin "recorded at signing"); code, explanation, url, kind, ingredient, origin
    ingredient_status: list[dict[str, str]] = field(default_factory=list)
    # manifest label -> its failure codes, for every manifest (active or an ingredient's) that
    # failed validation: the claims inside it are worded as FAILED_MANIFEST, never verified
    failed_manifests: dict[str, list[str]] = field(default_factory=dict)
    # Creator Assertions Working Group assertions (identity, training-and-mining): statements
    # by a named party inside the manifest, not the C2PA claim signer's own claim
    cawg: list[dict[str, Any]] = field(default_factory=list)
    trust: str = "not evaluated"  # trusted | untrusted | not evaluated
    trust_anchors: str | None = None  # where the trust anchors came from; None: none loaded
    remote_manifest_url: str | None = None  # a manifest stored elsewhere (never fetched)
    legacy_cai: bool = False  # a pre-C2PA CAI JUMBF block (2020-21 format), not C2PA
    error: str | None = None

    @property
    def failures(self) -> list[str]:
        """Failure codes of the active manifest, exactly as the library reports them."""
        return [s["code"] for s in self.validation_status if s.get("kind") == "failure"]

    @property
    def check_failures(self) -> list[str]:
        """Signature, credential or hash failures (not "the signer is not on a trust list",
        not a CAWG identity assertion's own check)."""
        return list(dict.fromkeys(f for f in self.failures
                                  if f not in UNTRUSTED_ONLY and not f.startswith("cawg.")))

    @property
    def cawg_failures(self) -> list[str]:
        return list(dict.fromkeys(f for f in self.failures if f.startswith("cawg.")))

    def _ingredient_codes(self, untrusted: bool | None) -> list[str]:
        by_title: dict[str, list[str]] = {}
        for s in self.ingredient_status:
            if s.get("kind") == "failure" and (untrusted is None
                                               or (s["code"] in UNTRUSTED_ONLY) == untrusted):
                by_title.setdefault(s.get("ingredient") or "untitled", []).append(s["code"])
        return [f"'{t}': {', '.join(dict.fromkeys(codes))}" for t, codes in by_title.items()]

    @property
    def ingredient_failures(self) -> list[str]:
        """Every ingredient failure code the library reports, as "'title': code, code"."""
        return self._ingredient_codes(None)

    @property
    def any_failure(self) -> bool:
        """The library reports a failure code somewhere, or calls the store Invalid."""
        return bool(self.failures or self.ingredient_failures or (self.readable and self.error)
                    or (self.validation_state or "").lower() == "invalid")

    def manifest_failure(self, label: str | None) -> list[str] | None:
        """The failure codes of manifest ``label`` when it failed validation, else None."""
        return self.failed_manifests.get(label or "")

    @property
    def verification(self) -> str:
        """What the signature check means, in words an analyst cannot misread.

        "Verified" is said only when the library reports no failure code at all (on the
        active manifest or any ingredient), does not call the store Invalid, and the signer
        chains to the loaded trust list; any failure leads, with its code.
        """
        if not self.readable:
            return "not read"
        why = ("no trust list loaded" if self.trust_anchors is None
               else "signer not on the loaded trust list")
        failed = self.check_failures
        extra = []
        checks, untrusted = self._ingredient_codes(False), self._ingredient_codes(True)
        if checks:
            extra.append(f"ingredient validation FAILED ({_shown(checks)})")
        if untrusted:  # a failure code too, though about trust only: never "verified"
            extra.append(f"ingredient signer untrusted ({_shown(untrusted)})")
        if self.cawg_failures:
            extra.append(f"CAWG identity assertion check FAILED ({_shown(self.cawg_failures)})")
        if failed:
            lead = (f"signature check FAILED ({_shown(failed)})"
                    + (f"; signer untrusted: {why}" if self.trust == "untrusted" else ""))
            return "; ".join([lead] + extra)
        invalid = (self.validation_state or "").lower() == "invalid"
        if self.error:  # a store the reader could not follow: nothing in it is taken as checked
            extra.insert(0, f"validation results FAILED to read ({self.error})")
        if extra or invalid:
            if invalid and not any("FAILED" in e for e in extra):
                extra.append("validation FAILED: the c2pa library reports the manifest store "
                             "Invalid")
            state = ("active manifest's signature intact, signer on the loaded trust list"
                     if self.trust == "trusted" else
                     f"active manifest's signature intact, signer untrusted ({why})"
                     if self.trust == "untrusted" else
                     "active manifest's signer trust not evaluated")
            return "; ".join(extra + [state])
        if self.trust == "trusted":
            return "signature verified against the loaded trust list"
        if self.trust == "untrusted":
            return f"signature not verified (untrusted: {why})"
        return "signature trust not evaluated by the library"


@dataclass
class XmpFindings:
    present: bool = False
    fields: dict[str, str] = field(default_factory=dict)  # "prefix:name" -> value
    digital_source_type: str | None = None  # IPTC code (last path part), e.g. trainedAlgorithmicMedia
    encoding: str | None = None  # of the main packet: utf-8, utf-16-be, ...
    extended_merged: bool = False  # JPEG extended XMP segments were joined and read
    error: str | None = None


@dataclass
class IptcIimFindings:
    """IPTC-IIM (the 1990s binary records, JPEG APP13 "Photoshop 3.0"): free text."""

    present: bool = False
    fields: dict[str, str] = field(default_factory=dict)  # dataset name -> value
    error: str | None = None


@dataclass
class ExifFindings:
    present: bool = False
    make: str | None = None
    model: str | None = None
    software: str | None = None
    datetime_original: str | None = None  # 0x9003: when the picture was taken
    datetime_digitized: str | None = None  # 0x9004: when it was stored digitally
    datetime: str | None = None  # 0x0132: when the file was last changed
    offset_time_original: str | None = None  # 0x9011
    offset_time_digitized: str | None = None  # 0x9012
    offset_time: str | None = None  # 0x9010
    lens: str | None = None
    gps_present: bool = False  # yes/no only: coordinates are never copied into the record
    orientation: int | None = None
    thumbnail_present: bool = False
    artist: str | None = None
    image_description: str | None = None
    user_comment: str | None = None
    # IFD0 strings that hold generator metadata instead of what the tag is for (ComfyUI
    # writes its workflow JSON into Make/Model/ImageDescription): tag names, never a camera
    generator_text_in: list[str] = field(default_factory=list)
    # Make/Model that name a generator, not a camera ("OpenAI" / "DALL-E 3"): "Make: OpenAI"
    generator_named_in: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def camera(self) -> str | None:
        """The camera EXIF names (free text anyone can write; not proof of capture).

        None when Make or Model names a generator: that is a generator name, not a camera."""
        if self.generator_named_in:
            return None
        make, model = (self.make or "").strip(), (self.model or "").strip()
        if model and make and model.lower().startswith(make.split()[0].lower()):
            return model
        return " ".join(p for p in (make, model) if p) or None

    @property
    def date(self) -> tuple[str, str] | None:
        """(tag, value with its offset) of the best date, capture first; None when none.

        DateTime (0x0132) is the last-modified date: it is reported under its own name and
        never as a capture date.
        """
        for tag, value, offset in (("DateTimeOriginal", self.datetime_original,
                                    self.offset_time_original),
                                   ("DateTimeDigitized", self.datetime_digitized,
                                    self.offset_time_digitized),
                                   ("DateTime", self.datetime, self.offset_time)):
            if value:
                return tag, value + (f" {offset}" if offset else "")
        return None


DATE_MEANING = {"DateTimeOriginal": "capture", "DateTimeDigitized": "digitized",
                "DateTime": "last modified"}


@dataclass
class TextEntry:
    """One piece of embedded text: PNG tEXt/zTXt/iTXt, JPEG COM, EXIF UserComment, ..."""

    source: str  # e.g. "PNG tEXt", "PNG iTXt", "JPEG COM", "EXIF UserComment"
    key: str
    length: int  # characters of the full text (before STORED_TEXT_CHARS truncation)
    text: str
    truncated: bool = False


@dataclass
class GeneratorFindings:
    entries: list[TextEntry] = field(default_factory=list)
    generator: str | None = None  # e.g. "Stable Diffusion (A1111 parameters)", "ComfyUI"
    source: str | None = None  # the entry it was parsed from, e.g. "PNG parameters"
    model: str | None = None
    seed: str | None = None
    steps: str | None = None
    sampler: str | None = None
    cfg_scale: str | None = None
    size: str | None = None
    prompt: str | None = None  # first 500 characters


@dataclass
class JpegFindings:
    is_jpeg: bool = False
    quality: int | None = None  # estimated IJG quality (1-100) from the quantisation tables
    standard_tables: bool | None = None  # tables exactly those of libjpeg at that quality
    tables: int = 0
    comment_count: int = 0


@dataclass
class Provenance:
    """Everything read from a file's metadata, grouped; ``summary`` is the one-line version."""

    c2pa: C2paFindings = field(default_factory=C2paFindings)
    iptc_xmp: XmpFindings = field(default_factory=XmpFindings)
    iptc_iim: IptcIimFindings = field(default_factory=IptcIimFindings)
    exif: ExifFindings = field(default_factory=ExifFindings)
    generator_text: GeneratorFindings = field(default_factory=GeneratorFindings)
    jpeg: JpegFindings = field(default_factory=JpegFindings)
    container: str | None = None  # the format the bytes announce (JPEG, PNG, HEIC, JXL, ...)
    # Content Credentials stored elsewhere (C2PA remote reference, XMP dcterms:provenance):
    # they exist, and were not fetched (no network access from a scan)
    remote_credentials: str | None = None
    notes: list[str] = field(default_factory=list)
    summary: str = "no provenance metadata"
    declared_generated: bool | None = None
    declared_basis: list[str] = field(default_factory=list)  # why declared_generated is what it is
    # how strong the strongest declaration is: "signed" (a C2PA manifest that passed
    # validation, trusted or not), FAILED_MANIFEST, or "unsigned" (free text anyone can write)
    declared_strength: str | None = None
    # what made it, when generated: "trained" (a model: AI), "algorithmic" (IPTC
    # algorithmicMedia: an algorithm without a trained model), "synthetic" (compositeSynthetic)
    generated_kind: str | None = None
    # unsigned, weak indications that never set declared_generated ("EXIF names a camera")
    hints: list[str] = field(default_factory=list)

    @property
    def declared_text(self) -> str:
        return {True: "true", False: "false", None: "unknown"}[self.declared_generated]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict with every field read (JSONL export, case reports)."""
        d = dataclasses.asdict(self)
        d["c2pa"]["verification"] = self.c2pa.verification
        d["exif"]["camera"] = self.exif.camera
        date = self.exif.date
        d["exif"]["date"] = ({"tag": date[0], "value": date[1], "meaning": DATE_MEANING[date[0]]}
                             if date else None)
        return d


@dataclass(frozen=True)
class ProvenanceOptions:
    """How provenance is read. ``trust_anchors_pem``: PEM roots the C2PA signer must chain to."""

    trust_anchors_pem: str | None = None
    trust_anchors_source: str | None = None  # shown to the analyst (the file it came from)


class ProvenanceConfigError(ValueError):
    """A provenance setting (such as a trust-anchor file) that cannot be used."""


def load_trust_anchors(path: str | Path) -> ProvenanceOptions:
    """Options with the PEM trust anchors in ``path`` (a settings file, not evidence)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvenanceConfigError(f"cannot read trust-anchor file {path}: {exc}") from exc
    n = text.count("-----BEGIN CERTIFICATE-----")
    if n == 0:
        raise ProvenanceConfigError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return ProvenanceOptions(trust_anchors_pem=text, trust_anchors_source=f"{path} ({n} certificates)")
