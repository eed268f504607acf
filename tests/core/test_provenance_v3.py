"""Provenance v3 (issue 33): one fixture per defect, built here (and the real C2PA files under
../shared/data/provenance, skipped cleanly when absent)."""

from __future__ import annotations

import gzip
import io
import json
import struct
from pathlib import Path

import pytest
from PIL import Image
from provenance_samples import (
    A1111_PARAMETERS,
    IPTC,
    bare_xmp,
    c2pa_signed,
    c2pa_with_failed_ingredient,
    iim_app13,
    image_bytes,
    jpeg_insert_segment,
    jpeg_with_app1,
    make_test_ca,
    png_with_text,
    xmp_alt,
    xmp_packet,
)

from forensics_app.core.provenance import (
    Provenance,
    ProvenanceOptions,
    iter_detail_groups,
    read_provenance,
)
from forensics_app.core.provenance.assessment import finish
from forensics_app.core.provenance.c2pa_reader import fill_from_store
from forensics_app.core.provenance.display import DISPLAY_VALUE_CHARS
from forensics_app.core.provenance.generator_names import match_credit, match_generator
from forensics_app.core.provenance.limits import STORED_TEXT_CHARS
from forensics_app.core.provenance.records import FAILED_MANIFEST, C2paFindings
from forensics_app.core.provenance.text import decode_text, utf16_order

XMP_SIG = b"http://ns.adobe.com/xap/1.0/\x00"
SHARED_C2PA = Path(__file__).resolve().parents[3] / "shared" / "data" / "provenance"
if not SHARED_C2PA.is_dir():
    SHARED_C2PA = Path("/work/shared/data/provenance")
ACTIVE, PARENT = "urn:c2pa:active-1111", "urn:c2pa:parent-2222"


def _from_store(store: dict) -> Provenance:
    """A record filled from a manifest-store JSON shaped as c2pa-python's Reader returns it."""
    p = Provenance()
    p.c2pa = C2paFindings(present=True, readable=True)
    fill_from_store(p.c2pa, store)
    finish(p)
    return p


def _status(code: str, manifest: str, part: str = "c2pa.signature", explanation: str = "x"):
    return {"code": code, "url": f"self#jumbf=/c2pa/{manifest}/{part}",
            "explanation": explanation}


def _manifest(generator: str, source_type: str | None = None, ingredients=None) -> dict:
    action = {"action": "c2pa.created", "softwareAgent": {"name": "Gen", "version": "1"}}
    if source_type:
        action["digitalSourceType"] = IPTC + source_type
    return {"claim_generator_info": [{"name": generator}], "title": "x.jpg",
            "signature_info": {"common_name": "Signer", "issuer": "CA"},
            "ingredients": ingredients or [],
            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [action]}}]}


@pytest.fixture(scope="module")
def test_ca():
    return make_test_ca()


# ----------------------------------------------------------------------------- 1. ingredients
def test_failed_ingredient_made_here_is_never_verified(test_ca):
    data = c2pa_with_failed_ingredient(test_ca)
    options = ProvenanceOptions(trust_anchors_pem=test_ca[2].decode(), trust_anchors_source="t")
    p = read_provenance(data, options)
    c = p.c2pa
    assert c.readable and c.trust == "trusted" and c.check_failures == []
    assert "assertion.dataHash.mismatch" in [s["code"] for s in c.ingredient_status]
    assert "ingredient validation FAILED ('parent.jpg': " in c.verification
    assert "verified" not in c.verification and "verified" not in p.summary
    assert "assertion.dataHash.mismatch" in p.summary
    # the ingredient's own c2pa.created claim is worded as a failed manifest's claim
    assert any(FAILED_MANIFEST in b for b in p.declared_basis)
    rows = dict(next(iter_detail_groups(p))[1])
    assert rows["Ingredient status: failure"].startswith("'parent.jpg': ")
    assert "FAILED validation" in rows["Ingredient"]


def test_ingredient_delta_failure_from_the_library_json():
    """The structure c2pa-python returns for CIE-sig-CA.jpg-like files: the active manifest's
    signature is fine and trusted; an ingredient's validation fails now (ingredientDeltas),
    so the library calls the store Invalid."""
    store = {
        "active_manifest": ACTIVE, "validation_state": "Invalid",
        "manifests": {
            ACTIVE: _manifest("Editor", ingredients=[{
                "title": "CA.jpg", "relationship": "parentOf", "active_manifest": PARENT,
                "label": "c2pa.ingredient"}]),
            PARENT: _manifest("Generator", "trainedAlgorithmicMedia"),
        },
        "validation_results": {
            "activeManifest": {"success": [_status("claimSignature.validated", ACTIVE),
                                           _status("signingCredential.trusted", ACTIVE)],
                               "informational": [], "failure": []},
            "ingredientDeltas": [{
                "ingredientAssertionURI": f"self#jumbf=/c2pa/{ACTIVE}/c2pa.assertions/c2pa.ingredient",
                "validationDeltas": {"success": [], "informational": [], "failure": [
                    _status("assertion.hashedURI.mismatch", PARENT,
                            "c2pa.assertions/c2pa.actions")]}}],
        },
    }
    p = _from_store(store)
    c = p.c2pa
    assert c.trust == "trusted" and c.failed_manifests == {PARENT: ["assertion.hashedURI.mismatch"]}
    assert c.verification.startswith("ingredient validation FAILED ('CA.jpg': "
                                     "assertion.hashedURI.mismatch)")
    assert "verified" not in p.summary and "FAILED" in p.summary
    assert p.declared_generated is True and p.declared_strength == FAILED_MANIFEST
    assert FAILED_MANIFEST in p.declared_basis[0]


def test_v1_ingredient_validation_status_list_and_bare_invalid_state():
    ingredient = {"title": "old.jpg", "relationship": "componentOf", "active_manifest": PARENT,
                  "validation_status": [_status("claimSignature.mismatch", PARENT)]}
    store = {"active_manifest": ACTIVE, "validation_state": "Valid",
             "manifests": {ACTIVE: _manifest("Editor", ingredients=[ingredient]),
                           PARENT: _manifest("Old")},
             "validation_status": []}
    p = _from_store(store)
    assert "'old.jpg': claimSignature.mismatch" in p.c2pa.verification
    assert "verified" not in p.summary
    # Invalid with no code the reader could place: still never verified, and said so
    p = _from_store({"active_manifest": ACTIVE, "validation_state": "Invalid",
                     "manifests": {ACTIVE: _manifest("Editor")},
                     "validation_results": {"activeManifest": {
                         "success": [_status("signingCredential.trusted", ACTIVE)]}}})
    assert "FAILED" in p.c2pa.verification and "Invalid" in p.c2pa.verification
    assert "verified" not in p.summary
    assert p.c2pa.failed_manifests == {ACTIVE: ["validation_state Invalid"]}


def test_invalid_because_of_an_untrusted_ingredient_is_worded_failed():
    """The library calls a store Invalid for any ingredient delta failure, trust included."""
    store = {"active_manifest": ACTIVE, "validation_state": "Invalid",
             "manifests": {ACTIVE: _manifest("Editor"), PARENT: _manifest("Gen")},
             "validation_results": {
                 "activeManifest": {"success": [_status("signingCredential.trusted", ACTIVE)]},
                 "ingredientDeltas": [{"ingredientAssertionURI": "x", "validationDeltas": {
                     "failure": [_status("signingCredential.untrusted", PARENT)]}}]}}
    c = _from_store(store).c2pa
    assert "ingredient signer untrusted ('x': signingCredential.untrusted)" in c.verification
    assert "FAILED" in c.verification and "Invalid" in c.verification
    assert "verified" not in c.verification
    assert c.failed_manifests == {}  # the active manifest itself did not fail


def test_valid_trusted_store_is_still_verified():
    p = _from_store({"active_manifest": ACTIVE, "validation_state": "Trusted",
                     "manifests": {ACTIVE: _manifest("Gen", "trainedAlgorithmicMedia")},
                     "validation_results": {"activeManifest": {
                         "success": [_status("signingCredential.trusted", ACTIVE)]}}})
    assert p.c2pa.verification == "signature verified against the loaded trust list"
    assert p.declared_strength == "signed" and p.generated_kind == "trained"


# ----------------------------------------------------------------------------- 2. failed claims
def test_claims_of_a_tampered_manifest_are_weaker(test_ca):
    data, ca_pem = c2pa_signed("jpeg", ca=test_ca)
    img = Image.open(io.BytesIO(data))
    buf = io.BytesIO()
    img.point(lambda v: 255 - v).save(buf, "JPEG", quality=90)
    tampered = data[:data.index(b"\xff\xda")] + buf.getvalue()[buf.getvalue().index(b"\xff\xda"):]
    # plus an unsigned XMP declaration: the failed manifest still outranks it, worded weaker
    tampered = jpeg_insert_segment(tampered, 0xE1, XMP_SIG + xmp_packet("digitalCapture"))
    options = ProvenanceOptions(trust_anchors_pem=ca_pem.decode(), trust_anchors_source="t")
    p = read_provenance(tampered, options)
    assert p.declared_generated is True and p.declared_strength == FAILED_MANIFEST
    assert p.declared_basis[0].startswith(
        "C2PA c2pa.created with digitalSourceType trainedAlgorithmicMedia — " + FAILED_MANIFEST)
    assert f"{FAILED_MANIFEST}: claim by TestGen" in p.summary
    assert "verified" not in p.summary
    rows = [v for k, v in next(iter_detail_groups(p))[1] if k == "Action"]
    assert FAILED_MANIFEST in rows[0]
    assert "(signed by a manifest" not in " ".join(p.declared_basis)


@pytest.mark.skipif(not (SHARED_C2PA / "c2pa_chatgpt").is_dir(),
                    reason="../shared/data/provenance not present")
def test_real_chatgpt_manifests_that_fail_are_worded_so():
    for path in sorted((SHARED_C2PA / "c2pa_chatgpt").glob("*.png")):
        p = read_provenance(path.read_bytes())
        c = p.c2pa
        assert c.readable, path.name
        assert "verified" not in p.summary, path.name
        for code in c.check_failures:
            assert code in c.verification
        if c.failed_manifests:
            assert "FAILED" in p.summary and p.declared_strength == FAILED_MANIFEST, path.name


# ----------------------------------------------------------------------------- 3. algorithmic
@pytest.mark.parametrize(("code", "kind"), [("algorithmicMedia", "algorithmic"),
                                            ("trainedAlgorithmicMedia", "trained"),
                                            ("compositeSynthetic", "synthetic")])
def test_xmp_generated_kinds(code, kind):
    p = read_provenance(jpeg_with_app1(XMP_SIG + bare_xmp(
        f'Iptc4xmpExt:DigitalSourceType="{IPTC}{code}"')))
    assert p.declared_generated is True and p.generated_kind == kind
    rows = dict(list(iter_detail_groups(p))[-1][1])
    assert rows["Declared generated"] == "true (unsigned)"


def test_c2pa_algorithmic_media_is_generated(test_ca):
    p = read_provenance(c2pa_signed("jpeg", "algorithmicMedia", ca=test_ca)[0])
    assert p.declared_generated is True and p.generated_kind == "algorithmic"
    assert p.declared_strength == "signed"


# ----------------------------------------------------------------------------- 4. structure
@pytest.mark.parametrize("caption", [
    "Lake at dawn. Seed: 42 (a variety of barley), photographed by J. Doe",
    "Steps: 3 to the summit, Seed: 7",  # no Sampler
    "Steps: 20, Sampler: Euler, Seed: 5\nmore caption text after it",  # not the last line
])
def test_caption_with_seed_is_not_a1111(caption):
    app13 = iim_app13([(1, 90, b"\x1b%G"), (2, 120, caption.encode())])
    p = read_provenance(jpeg_insert_segment(image_bytes(), 0xED, app13))
    assert p.generator_text.generator is None and p.declared_generated is None


def test_a1111_structure_still_matched_everywhere_it_is_written():
    p = read_provenance(png_with_text({"parameters": A1111_PARAMETERS}))
    assert p.generator_text.seed == "1234" and p.generator_text.sampler == "DPM++ 2M Karras"
    # empty prompt: A1111 writes the Steps line alone
    p = read_provenance(png_with_text({"parameters": "Steps: 4, Sampler: Euler a, Seed: 9"}))
    assert p.generator_text.seed == "9"


@pytest.mark.parametrize(("credit", "generator"), [
    ("Gemini Collection Image Ltd", None), ("Photo: Imagen Studio / Gemini Collection", None),
    ("Made with Google AI", "Google Imagen / Gemini"),
    ("Generated with Adobe Firefly", "Adobe Firefly"), ("Reuters", None)])
def test_credit_names_a_generator_only_in_the_phrase_tools_write(credit, generator):
    assert match_credit(credit) == generator
    for data in (jpeg_with_app1(XMP_SIG + bare_xmp(body=f"<photoshop:Credit>{credit}"
                                                    "</photoshop:Credit>")),
                 jpeg_insert_segment(image_bytes(), 0xED, iim_app13([(1, 90, b"\x1b%G"),
                                                                 (2, 110, credit.encode())]))):
        p = read_provenance(data)
        assert p.declared_generated is (True if generator else None), credit


def test_generator_names_are_whole_tokens():
    assert match_generator("Imagenomic Portraiture") is None
    assert match_generator("Visor de imagen") is None
    assert match_generator("Google Imagen 3") == "Google Imagen / Gemini"
    assert match_generator("Gemini 2.5 Flash Image") == "Google Imagen / Gemini"


# ----------------------------------------------------------------------------- 5. every field
def _a1111_comment(text: str = A1111_PARAMETERS) -> bytes:
    return b"UNICODE\x00" + text.encode("utf-16-be")


def test_user_comment_in_ifd0_is_read():
    exif = Image.Exif()
    exif[0x9286] = _a1111_comment()  # in IFD0, where the standard does not put it
    p = read_provenance(image_bytes("JPEG", exif))
    g = p.generator_text
    assert g.seed == "1234" and g.source == "EXIF IFD0 UserComment"
    assert p.declared_generated is True


def test_xmp_exif_user_comment_is_read():
    p = read_provenance(jpeg_with_app1(XMP_SIG + bare_xmp(body=xmp_alt(
        "exif:UserComment", A1111_PARAMETERS.replace("\n", "&#10;")))))
    assert p.generator_text.source == "XMP exif:UserComment" and p.generator_text.seed == "1234"


MJ_ID = "Job ID: 0123abcd-4567-89ab-cdef-0123456789ab"


def test_long_xmp_and_iim_values_are_parsed_whole():
    prompt = "a very long prompt, " * 600  # 12,000 characters: the Job ID comes after 4,096
    p = read_provenance(jpeg_with_app1(XMP_SIG + bare_xmp(body=xmp_alt("dc:description",
                                                                f"{prompt}{MJ_ID}"))))
    assert p.generator_text.generator == "Midjourney", "XMP value cut before parsing"
    assert len(p.iptc_xmp.fields["dc:description"]) == STORED_TEXT_CHARS
    rows = dict(list(iter_detail_groups(p))[1][1])
    assert len(rows["dc:description"]) == DISPLAY_VALUE_CHARS
    app13 = iim_app13([(1, 90, b"\x1b%G"), (2, 120, f"{prompt}{MJ_ID}".encode())])
    p = read_provenance(jpeg_insert_segment(image_bytes(), 0xED, app13))
    assert p.generator_text.generator == "Midjourney", "IIM value cut before parsing"
    # an A1111 parameter line after 4,096 characters of prompt, in a caption
    app13 = iim_app13([(1, 90, b"\x1b%G"),
                        (2, 120, ("x" * 5000 + "\nSteps: 2, Sampler: Euler, Seed: 77").encode())])
    assert read_provenance(jpeg_insert_segment(image_bytes(), 0xED, app13)).generator_text.seed == "77"


# ----------------------------------------------------------------------------- 6. UTF-16
CJK = "夕暮れの灯台、油絵"  # no NUL byte in either byte order


@pytest.mark.parametrize("enc", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("text", [CJK, "a lighthouse", "Ünïcödé ÿ"])
def test_bom_less_utf16_byte_order_comes_from_the_bytes(enc, text):
    raw = text.encode(enc)
    assert utf16_order(raw) == enc
    # the EXIF byte order (II: little-endian) must not override what the bytes say
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + raw
    p = read_provenance(image_bytes("JPEG", exif))
    assert p.exif.user_comment == text


def test_utf16_jpeg_comment_is_decoded():
    assert decode_text("a lighthouse, steps".encode("utf-16-le")) == "a lighthouse, steps"
    assert decode_text(b"plain ascii") == "plain ascii"


# ----------------------------------------------------------------------------- 7. weak capture
def test_unsigned_digital_capture_is_a_weak_claim():
    p = read_provenance(jpeg_with_app1(XMP_SIG + xmp_packet("digitalCapture", "Cam")))
    assert p.declared_generated is False and p.declared_strength == "unsigned"
    assert "unsigned claim of capture" in p.declared_basis[0]
    assert "weak evidence" in p.declared_basis[0]
    assert "digitalCapture (unsigned claim)" in p.summary
    rows = dict(list(iter_detail_groups(p))[-1][1])
    assert rows["Declared generated"] == "false (unsigned)"


# ----------------------------------------------------------------------------- 8. EXIF names
def test_exif_make_model_naming_a_generator_is_not_a_camera():
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "OpenAI", "DALL-E 3"
    p = read_provenance(image_bytes("JPEG", exif))
    assert p.exif.camera is None
    assert p.exif.generator_named_in == ["Make: OpenAI", "Model: DALL-E 3"]
    assert p.declared_generated is True and p.generated_kind == "trained"
    assert "names a camera" not in p.summary and not any("camera" in h for h in p.hints)
    assert "names a generator, not a camera: OpenAI / DALL-E 3" in p.summary
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R5"
    assert read_provenance(image_bytes("JPEG", exif)).exif.camera == "Canon EOS R5"


# ----------------------------------------------------------------------------- 9. CAWG
def test_cawg_identity_assertion_is_said_as_what_it_is():
    m = _manifest("Editor")
    m["assertions"].append({"label": "cawg.identity", "data": {
        "signer_payload": {"sig_type": "cawg.identity_claims_aggregation",
                           "referenced_assertions": []},
        "verifiedIdentities": [{"type": "cawg.social_media", "username": "jdoe",
                                "provider": {"id": "https://instagram.com", "name": "Instagram"}}]}})
    store = {"active_manifest": ACTIVE, "validation_state": "Invalid",
             "manifests": {ACTIVE: m},
             "validation_results": {"activeManifest": {
                 "success": [_status("signingCredential.trusted", ACTIVE)],
                 "failure": [_status("cawg.ica.credential_invalid", ACTIVE,
                                     "c2pa.assertions/cawg.identity")]}}}
    p = _from_store(store)
    c = p.c2pa
    assert c.cawg[0]["named"] == ["jdoe (Instagram)"]
    hint = next(h for h in p.hints if h.startswith("CAWG identity assertion"))
    assert "jdoe (Instagram) vouches" in hint and "not the C2PA claim signer's claim" in hint
    # its failure is a CAWG check, not the C2PA signature; and never "verified"
    assert c.check_failures == [] and c.cawg_failures == ["cawg.ica.credential_invalid"]
    assert "CAWG identity assertion check FAILED (cawg.ica.credential_invalid)" in c.verification
    assert "signature check FAILED" not in c.verification and "verified" not in p.summary
    rows = next(iter_detail_groups(p))[1]
    assert ("CAWG assertion (not a C2PA claim)",
            "cawg.identity: jdoe (Instagram) (cawg.identity_claims_aggregation)") in rows


# ----------------------------------------------------------------------------- 10. NovelAI
NAI_COMMENT = {"prompt": "1girl, lighthouse", "steps": 28, "height": 64, "width": 64,
               "scale": 5.0, "seed": 4242, "sampler": "k_euler_ancestral", "uc": "lowres",
               "n_samples": 1}
NAI_CHUNKS = {"Title": "NovelAI generated image", "Description": "1girl, lighthouse",
              "Software": "NovelAI", "Source": "NovelAI Diffusion V4.5 4BDE2A90",
              "Generation time": "3.1", "Comment": json.dumps(NAI_COMMENT)}


@pytest.mark.parametrize("fmt", ["WEBP", "JPEG"])
def test_novelai_webp_and_jpeg_exif_user_comment(fmt):
    exif = Image.Exif()
    exif[0x010E] = "1girl, lighthouse"
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + json.dumps(NAI_CHUNKS).encode("utf-16-be")
    p = read_provenance(image_bytes(fmt, exif))
    g = p.generator_text
    assert (g.generator, g.source, g.seed, g.steps) == ("NovelAI", "EXIF UserComment", "4242",
                                                        "28")
    assert g.model == "NovelAI Diffusion V4.5 4BDE2A90" and p.declared_generated is True


def test_novelai_v4_prompt_in_png():
    comment = {**NAI_COMMENT, "v4_prompt": {"caption": {"base_caption": "a v4 prompt"}}}
    del comment["prompt"]
    p = read_provenance(png_with_text({**NAI_CHUNKS, "Description": "",
                                       "Comment": json.dumps(comment)}))
    assert p.generator_text.generator == "NovelAI" and p.generator_text.prompt == "a v4 prompt"


def _stealth_rgba(payload: bytes, signature: bytes, w: int = 64):
    import numpy as np

    bits = np.unpackbits(np.frombuffer(signature + struct.pack(">I", len(payload) * 8) + payload,
                                       dtype=np.uint8))
    h = max(-(-len(bits) // w) + 1, 8)
    alpha = np.full(w * h, 254, dtype=np.uint8)
    alpha[:len(bits)] |= bits
    rgba = np.zeros((h, w, 4), dtype=np.uint8)
    rgba[..., 0] = np.arange(w, dtype=np.uint8)[None, :] * 7  # something for the filters
    rgba[..., 1] = (np.arange(h, dtype=np.uint8)[:, None] * 3)
    rgba[..., 2] = 90
    rgba[..., 3] = alpha.reshape(w, h).T  # column by column: x outer, y inner
    return rgba


def _png_with_filters(rgba) -> bytes:
    """A PNG whose rows cycle through the five filter types (None, Sub, Up, Average, Paeth)."""
    import zlib

    h, w, _ = rgba.shape
    raw, prev = bytearray(), bytes(w * 4)
    for y in range(h):
        row, f, out = rgba[y].tobytes(), y % 5, bytearray()
        for i, x in enumerate(row):
            a = row[i - 4] if i >= 4 else 0
            b, c = prev[i], (prev[i - 4] if i >= 4 else 0)
            if f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            else:
                pred = (0, a, b, (a + b) // 2)[f]
            out.append((x - pred) & 0xFF)
        raw += bytes([f]) + out
        prev = row

    def chunk(t: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    idat = zlib.compress(bytes(raw))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat[:50])
            + chunk(b"IDAT", idat[50:]) + chunk(b"IEND", b""))


def _stealth_png(payload: bytes, signature: bytes, fmt: str = "PNG", w: int = 64) -> bytes:
    import numpy as np

    bits = np.unpackbits(np.frombuffer(signature + struct.pack(">I", len(payload) * 8) + payload,
                                       dtype=np.uint8))
    h = -(-len(bits) // w) + 1
    alpha = np.full(w * h, 254, dtype=np.uint8)
    alpha[:len(bits)] |= bits
    rgba = np.zeros((h, w, 4), dtype=np.uint8)
    rgba[..., :3] = 90
    rgba[..., 3] = alpha.reshape(w, h).T  # column by column: x outer, y inner
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_novelai_stealth_alpha_copy_is_read(fmt):
    data = _stealth_png(gzip.compress(json.dumps(NAI_CHUNKS).encode()), b"stealth_pngcomp", fmt)
    p = read_provenance(data)
    g = p.generator_text
    assert (g.generator, g.source, g.seed) == ("NovelAI", "alpha-channel stealth", "4242")
    assert p.declared_generated is True


def test_stealth_signature_check_reads_the_first_column_of_every_filter_type():
    """Tall images take the cheap path (first column only); it must agree with a decode."""
    from forensics_app.core.provenance.stealth import _png_signature_present

    payload = gzip.compress(json.dumps(NAI_CHUNKS).encode())
    data = _png_with_filters(_stealth_rgba(payload, b"stealth_pngcomp", w=8))
    assert Image.open(io.BytesIO(data)).size[1] >= 152
    assert _png_signature_present(data) is True
    assert _png_signature_present(_stealth_png(payload, b"stealth_pngcomp", w=8)) is True
    p = read_provenance(data)
    assert (p.generator_text.generator, p.generator_text.seed) == ("NovelAI", "4242")
    # and the same image with a wrong signature: the check says no without a decode
    plain = _png_with_filters(_stealth_rgba(payload, b"stealth_pngXXXX", w=8))
    assert _png_signature_present(plain) is False
    assert read_provenance(plain).generator_text.generator is None


def test_stealth_pnginfo_with_a1111_text_and_no_false_signature():
    p = read_provenance(_stealth_png(A1111_PARAMETERS.encode(), b"stealth_pnginfo"))
    assert p.generator_text.seed == "1234" and p.generator_text.source == "alpha-channel stealth"
    plain = image_bytes("PNG", mode="RGBA")
    p = read_provenance(plain)
    assert p.generator_text.generator is None and p.notes == []


def test_stealth_with_a_lying_length_is_a_note():
    data = _stealth_png(b"x" * 10, b"stealth_pngcomp")
    p = read_provenance(data)  # gzip of 10 bytes of "x" is not gzip: a note, no raise
    assert p.generator_text.generator is None
    assert any("alpha-channel metadata" in n for n in p.notes)


def _ingredient_store() -> dict:
    return {"active_manifest": ACTIVE, "validation_state": "Invalid",
            "manifests": {ACTIVE: _manifest("Editor", ingredients=[{
                "title": "CA.jpg", "active_manifest": PARENT, "label": "c2pa.ingredient",
                "validation_status": [_status("claimSignature.mismatch", PARENT)]}]),
                PARENT: _manifest("Generator", "trainedAlgorithmicMedia")},
            "validation_results": {"activeManifest": {
                "success": [_status("signingCredential.trusted", ACTIVE)], "failure": []},
                "ingredientDeltas": [{"ingredientAssertionURI": "x", "validationDeltas": {
                    "failure": [_status("assertion.dataHash.mismatch", PARENT)]}}]}}


def test_store_of_unexpected_shape_never_raises_and_is_never_verified():
    """Every value of the library's JSON replaced by a wrong type, one at a time."""
    import copy

    def paths(node, prefix=()):
        if isinstance(node, dict):
            for k, v in node.items():
                yield prefix + (k,)
                yield from paths(v, prefix + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield prefix + (i,)
                yield from paths(v, prefix + (i,))

    base = _ingredient_store()
    for path in list(paths(base)):
        for junk in (None, 7, "x", [], {}, [1, "a"], {"a": [None]}):
            store = copy.deepcopy(base)
            node = store
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = junk
            p = _from_store(store)  # must not raise
            assert "signature verified" not in p.c2pa.verification or not p.c2pa.any_failure


def test_reader_wraps_a_store_it_cannot_follow(monkeypatch, test_ca):
    from forensics_app.core.provenance import c2pa_reader

    def broken(found, store):
        found.trust = "trusted"
        raise TypeError("unexpected structure")

    monkeypatch.setattr(c2pa_reader, "fill_from_store", broken)
    p = read_provenance(c2pa_signed("jpeg", ca=test_ca)[0])
    assert p.c2pa.readable and "not understood" in p.c2pa.error
    assert "FAILED" in p.c2pa.verification and "verified" not in p.summary
    assert any("not understood" in n for n in p.notes)


def test_stealth_check_of_a_lying_png_header_is_bounded():
    """A header claiming 2^31 x 2^31 pixels over an IDAT bomb: no inflate, a note."""
    import zlib

    from forensics_app.core.provenance.stealth import _png_signature_present

    def chunk(t: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))

    bomb = zlib.compress(b"\x00" * (32 << 20), 9)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1 << 31, 1 << 31, 8, 6,
                                                              0, 0, 0))
            + chunk(b"IDAT", bomb) + chunk(b"IEND", b""))
    assert _png_signature_present(data) is None
    p = read_provenance(data)
    assert p.generator_text.generator is None
    assert any("alpha-channel metadata" in n for n in p.notes)
