"""Provenance v2 (issue 23): each class of real-world input, built here from the formats' specs."""

from __future__ import annotations

import io
import json
import re
import struct

import pytest
from PIL import Image
from provenance_samples import (
    COMFY_PROMPT,
    COMFY_WORKFLOW,
    IPTC,
    c2pa_signed,
    jpeg_insert_segment,
    jpeg_with_app1,
    make_test_ca,
    png_with_text,
    xmp_packet,
)

from forensics_app.core import loading
from forensics_app.core.provenance import (
    GROUPS,
    ProvenanceOptions,
    iter_detail_groups,
    read_provenance,
)
from forensics_app.core.provenance.limits import SUMMARY_CHARS, SUMMARY_FIELD_CHARS

XMP_SIG = b"http://ns.adobe.com/xap/1.0/\x00"


def _image(fmt: str, exif: Image.Exif | None = None, **kw) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 30, 200)).save(buf, fmt, **({"exif": exif} if exif is not None else {}),
                                                     **kw)
    return buf.getvalue()


def _exif(**tags) -> Image.Exif:
    names = {"Make": 0x010F, "Model": 0x0110, "ImageDescription": 0x010E, "Software": 0x0131,
             "DateTime": 0x0132}
    sub_names = {"DateTimeOriginal": 0x9003, "DateTimeDigitized": 0x9004, "OffsetTime": 0x9010,
                 "OffsetTimeOriginal": 0x9011, "UserComment": 0x9286}
    exif = Image.Exif()
    for k, v in tags.items():
        if k in names:
            exif[names[k]] = v
        else:
            exif.get_ifd(0x8769)[sub_names[k]] = v
    return exif


def _user_comment(obj) -> bytes:
    return b"UNICODE\x00" + json.dumps(obj).encode("utf-16-be")


# ----------------------------------------------------------------------------- 1. EXIF free text
@pytest.mark.parametrize("fmt", ["WEBP", "JPEG"])
def test_comfyui_json_in_exif_make_model_is_generator_not_camera(fmt):
    exif = _exif(Make="workflow:" + json.dumps(COMFY_WORKFLOW),
                 Model="prompt:" + json.dumps(COMFY_PROMPT))
    p = read_provenance(_image(fmt, exif))
    assert p.exif.camera is None and p.exif.generator_text_in == ["Make", "Model"]
    g = p.generator_text
    assert g.generator == "ComfyUI" and g.source == "EXIF Model"
    assert (g.seed, g.steps, g.model) == ("987654321", "20", "sd_xl_base_1.0.safetensors")
    assert p.declared_generated is True
    assert "{" not in p.summary and len(p.summary) <= SUMMARY_CHARS
    assert "names a camera" not in p.summary


def test_comfyui_prompt_in_image_description():
    exif = _exif(ImageDescription="Prompt: " + json.dumps(COMFY_PROMPT))
    p = read_provenance(_image("JPEG", exif))
    assert p.generator_text.generator == "ComfyUI" and p.declared_generated is True
    assert p.exif.image_description is None  # not reported as a description


def test_game_photo_mode_camera_is_a_hint_not_capture():
    p = read_provenance(_image("JPEG", _exif(Make="Polyphony Digital Inc.", Model="Gran Turismo 5")))
    assert p.exif.camera == "Polyphony Digital Inc. Gran Turismo 5"
    assert p.declared_generated is None and p.declared_basis == []
    assert any(h.startswith("EXIF names a camera") for h in p.hints)


def test_every_summary_field_is_capped():
    long_model = "M" * 2000
    p = read_provenance(png_with_text({"parameters": f"x\nSteps: 3, Sampler: Euler, Seed: {'9' * 900}, "
                                                     f"Model: {long_model}"}))
    assert p.generator_text.generator and len(p.summary) <= SUMMARY_CHARS
    assert max(len(w) for w in re.split(r"[ ,:]", p.summary)) <= SUMMARY_FIELD_CHARS


# ----------------------------------------------------------------------------- 2. signature words
@pytest.fixture(scope="module")
def test_ca():
    return make_test_ca()


def test_changed_after_signing_with_trust_list_is_not_verified(test_ca, tmp_path):
    data, ca_pem = c2pa_signed("jpeg", ca=test_ca)
    options = ProvenanceOptions(trust_anchors_pem=ca_pem.decode(), trust_anchors_source="t.pem")
    assert read_provenance(data, options).c2pa.verification.startswith("signature verified")
    # change pixels after signing: the data hash no longer matches
    img = Image.open(io.BytesIO(data))
    buf = io.BytesIO()
    img.point(lambda v: 255 - v).save(buf, "JPEG", quality=90)
    tampered = data[:data.index(b"\xff\xda")] + buf.getvalue()[buf.getvalue().index(b"\xff\xda"):]
    p = read_provenance(tampered, options)
    assert p.c2pa.readable and p.c2pa.trust == "trusted"
    assert any("mismatch" in f for f in p.c2pa.check_failures)
    assert p.summary.startswith("C2PA: signature check FAILED (")
    assert "verified" not in p.summary
    rows = dict(next(iter_detail_groups(p))[1])
    assert rows["Signature"].startswith("signature check FAILED")


def _end_of_last_app11(jpeg: bytes) -> int:
    pos, end = 2, 0
    while jpeg[pos] == 0xFF and jpeg[pos + 1] not in (0xDA, 0xD9):
        (length,) = struct.unpack(">H", jpeg[pos + 2:pos + 4])
        if jpeg[pos + 1] == 0xEB:
            end = pos + 2 + length
        pos += 2 + length
    return end


def test_claim_signature_mismatch_with_trust_list_leads(test_ca):
    data, ca_pem = c2pa_signed("jpeg", ca=test_ca)
    options = ProvenanceOptions(trust_anchors_pem=ca_pem.decode(), trust_anchors_source="t.pem")
    forged = bytearray(data)
    forged[_end_of_last_app11(data) - 30] ^= 0xFF  # a byte of the COSE signature itself
    p = read_provenance(bytes(forged), options)
    assert "claimSignature.mismatch" in p.c2pa.failures
    assert p.summary.startswith("C2PA: signature check FAILED (claimSignature.mismatch)")
    assert "verified" not in p.summary


# ----------------------------------------------------------------------------- 3. C2PA generators
def test_c2pa_software_agent_names_generator_without_source_type(test_ca):
    manifest = {
        "claim_generator_info": [{"name": "Microsoft_Responsible_AI", "version": "1.0"}],
        "title": "bing.jpeg",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
            "action": "c2pa.created", "softwareAgent": {"name": "Image Creator from Designer"}}]}}],
    }
    p = read_provenance(c2pa_signed("jpeg", ca=test_ca, manifest=manifest)[0])
    assert p.c2pa.readable and p.declared_generated is True
    assert any("softwareAgent names a generator: Microsoft Bing Image Creator" in b
               for b in p.declared_basis)


@pytest.mark.parametrize(("code", "declared"), [
    ("trainedAlgorithmicMedia", True), ("compositeSynthetic", True),
    ("compositeWithTrainedAlgorithmicMedia", True), ("algorithmicMedia", True),
    ("digitalCapture", False)])
def test_c2pa_source_types(test_ca, code, declared):
    manifest = {"claim_generator_info": [{"name": "Some Editor", "version": "3"}],
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
                    "action": "c2pa.created", "digitalSourceType": IPTC + code,
                    "softwareAgent": {"name": "Renderer"}}]}}]}
    p = read_provenance(c2pa_signed("jpeg", ca=test_ca, manifest=manifest)[0])
    assert p.declared_generated is declared
    # a source-type code is never printed as if it were the creator
    assert not re.search(r"created by \w*(Media|Synthetic|Capture)", p.summary)
    assert "created by Renderer; digitalSourceType " + code in p.summary


def test_xmp_algorithmic_media_is_generated_of_kind_algorithmic():
    # issue 33 item 3: algorithmicMedia means generated (by an algorithm, not a trained model)
    p = read_provenance(jpeg_with_app1(XMP_SIG + xmp_packet("algorithmicMedia", "Fractal Tool")))
    assert p.declared_generated is True and p.generated_kind == "algorithmic"
    assert p.declared_strength == "unsigned"


# ----------------------------------------------------------------------------- 4. generator JSON
def _jpeg_comment(obj) -> bytes:
    return _image("JPEG", _exif(UserComment=_user_comment(obj)))


SWARM = {"sui_image_params": {"prompt": "a cat", "model": "OfficialStableDiffusion/sd_xl_base",
                              "seed": 77, "steps": 25, "cfgscale": 6, "width": 64, "height": 64,
                              "swarm_version": "0.9.2"}}
CIVITAI = {"resource-stack": {"class_type": "CheckpointLoaderSimple",
                              "inputs": {"ckpt_name": "urn:air:sdxl:checkpoint:civitai:1@2"}},
           "6": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 30}},
           "extraMetadata": json.dumps({"prompt": "a dog", "seed": 5, "steps": 30})}


@pytest.mark.parametrize(("data", "generator", "source", "seed"), [
    (lambda: _jpeg_comment(SWARM), "SwarmUI 0.9.2", "EXIF UserComment", "77"),
    (lambda: _jpeg_comment({"prompt": COMFY_PROMPT}), "ComfyUI", "EXIF UserComment", "987654321"),
    (lambda: _jpeg_comment(CIVITAI), "Civitai generator", "EXIF UserComment", "5"),
    (lambda: png_with_text({"parameters": json.dumps({
        "Prompt": "a hill", "Base Model": "juggernautXL.safetensors", "Seed": 11,
        "Version": "Fooocus v2.5.5"})}), "Fooocus (Fooocus v2.5.5)", "PNG parameters", "11"),
    (lambda: png_with_text({"parameters": json.dumps({
        "prompt": "a hill", "base_model": "x.safetensors", "seed": 12}),
        "fooocus_scheme": "fooocus"}), "Fooocus", "PNG parameters", "12"),
    (lambda: png_with_text({"parameters": json.dumps({
        "Prompt": "a sea", "software": "RuinedFooocus", "base_model_name": "y", "seed": 13})}),
     "RuinedFooocus", "PNG parameters", "13"),
    (lambda: png_with_text({"parameters": json.dumps({
        "prompt": "a tree", "negative_prompt": "", "seed": 14, "num_inference_steps": 4,
        "guidance_scale": 0, "model": "black-forest-labs/FLUX.1-schnell"})}),
     "FLUX", "PNG parameters", "14"),
    (lambda: png_with_text({"Dream": '"a castle [ugly]" -s 50 -S 3456 -W 512 -H 512 -C 7.5 '
                                     '-A k_lms'}), "InvokeAI (2.x Dream)", "PNG Dream", "3456"),
    (lambda: png_with_text({"Comment": json.dumps({
        "prompt": "1girl", "steps": 28, "seed": 42, "scale": 5.0, "uc": "lowres",
        "n_samples": 1})}), "NovelAI", "PNG Comment", "42"),
])
def test_generator_json_parsers(data, generator, source, seed):
    p = read_provenance(data())
    g = p.generator_text
    assert (g.generator, g.source, g.seed) == (generator, source, seed)
    assert p.declared_generated is True


def test_invokeai_dream_parameters():
    g = read_provenance(png_with_text({"Dream": '"a castle [ugly]" -s 50 -S 3456 -W 512 -H 512 '
                                                '-C 7.5 -A k_lms'})).generator_text
    assert (g.prompt, g.steps, g.cfg_scale, g.sampler, g.size) == (
        "a castle [ugly]", "50", "7.5", "k_lms", "512x512")


MJ = ("a lighthouse in fog --ar 16:9 --v 6.1 Job ID: 0123abcd-4567-89ab-cdef-0123456789ab")


def _iim_app13(datasets: list[tuple[int, int, bytes]]) -> bytes:
    iim = b"".join(b"\x1c" + bytes([r, d]) + struct.pack(">H", len(v)) + v for r, d, v in datasets)
    res = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim)) + iim
    return b"Photoshop 3.0\x00" + res + (b"\x00" if len(iim) & 1 else b"")


def test_midjourney_iptc_iim_caption():
    app13 = _iim_app13([(1, 90, b"\x1b%G"), (2, 120, MJ.encode()), (2, 80, b"someone")])
    p = read_provenance(jpeg_insert_segment(_image("JPEG"), 0xED, app13))
    assert p.iptc_iim.fields["Caption-Abstract"] == MJ and p.iptc_iim.fields["By-line"] == "someone"
    g = p.generator_text
    assert g.generator == "Midjourney (v6.1)" and g.source == "IPTC-IIM Caption-Abstract"
    assert g.prompt == "a lighthouse in fog --ar 16:9 --v 6.1" and p.declared_generated is True


def test_midjourney_xmp_description():
    extra = f"<dc:description><rdf:Alt><rdf:li xml:lang='x-default'>{MJ}</rdf:li></rdf:Alt>" \
            "</dc:description>"
    packet = xmp_packet("trainedAlgorithmicMedia", "", extra=extra).replace(
        b"xmlns:photoshop=", b"xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:photoshop=")
    p = read_provenance(jpeg_with_app1(XMP_SIG + packet))
    assert p.generator_text.generator.startswith("Midjourney")
    assert p.generator_text.source == "XMP dc:description"


def test_a_prompt_naming_a_generator_is_not_a_declaration():
    p = read_provenance(_image("JPEG", _exif(ImageDescription="my midjourney-style painting")))
    assert p.declared_generated is None and p.generator_text.generator is None


def test_unreadable_generator_json_is_a_note_not_a_repr():
    p = read_provenance(png_with_text({"parameters": '{"sui_image_params": {"prompt": '}))
    assert any("PNG parameters looks like generator metadata but is unreadable: invalid JSON"
               in n for n in p.notes)
    assert not any("object at 0x" in n for n in p.notes)


# ----------------------------------------------------------------------------- 5. HEIC/AVIF/JXL
def _xmp_bytes(code: str) -> bytes:
    return xmp_packet(code, "Phone Camera App")


@pytest.mark.parametrize(("fmt", "kind"), [("HEIF", "HEIC"), ("AVIF", "AVIF")])
def test_heic_and_avif_are_decoded_and_their_metadata_read(tmp_path, fmt, kind):
    if fmt not in loading.DECODE_FORMATS:
        pytest.skip(f"{fmt} decoder not installed")
    exif = _exif(Make="Apple", Model="iPhone 15", DateTimeOriginal="2024:05:01 10:00:00",
                 OffsetTimeOriginal="+02:00")
    data = _image(fmt, exif, xmp=_xmp_bytes("digitalCapture"))
    p = read_provenance(data)
    assert p.container == kind and p.exif.camera == "Apple iPhone 15"
    assert p.exif.date == ("DateTimeOriginal", "2024:05:01 10:00:00 +02:00")
    assert p.iptc_xmp.digital_source_type == "digitalCapture" and p.declared_generated is False
    f = tmp_path / f"photo.{kind.lower()}"
    f.write_bytes(data)
    evidence, img, error = loading.load_evidence(f, images_only=True)
    assert error is None and img.size == (32, 32) and evidence.format in ("HEIF", "AVIF")


@pytest.mark.parametrize(("fmt", "kind", "suffix"), [("HEIF", "HEIC", "HEIC"),
                                                      ("AVIF", "AVIF", "avif")])
def test_without_decoder_says_so_and_still_reads_provenance(monkeypatch, tmp_path, fmt, kind,
                                                            suffix):
    if fmt not in loading.DECODE_FORMATS:
        pytest.skip(f"no {fmt} encoder here to make the test file")
    data = _image(fmt, _exif(Make="Apple", Model="iPhone 15"), xmp=_xmp_bytes("digitalCapture"))
    monkeypatch.setattr(loading, "DECODE_FORMATS",
                        tuple(f for f in loading.DECODE_FORMATS if f != fmt))
    f = tmp_path / f"IMG_0001.{suffix}"
    f.write_bytes(data)
    _evidence, img, error = loading.load_evidence(f, images_only=True)
    assert img is None and error.reason.startswith(f"{kind}: decoder not installed")
    assert "not an image" not in error.reason
    # the metadata items are read from the container's own tables: no decoder needed
    p = read_provenance(data)
    assert p.container == kind and p.notes == []
    assert p.exif.camera == "Apple iPhone 15" and p.declared_generated is False


@pytest.mark.parametrize(("fmt", "pil", "kind"), [("heic", "HEIF", "HEIC"), ("avif", "AVIF", "AVIF")])
def test_c2pa_in_heic_and_avif(test_ca, fmt, pil, kind):
    if pil not in loading.DECODE_FORMATS:
        pytest.skip(f"no {pil} encoder here to make the test file")
    p = read_provenance(c2pa_signed(fmt, ca=test_ca)[0])
    assert p.container == kind and p.c2pa.readable and p.declared_generated is True
    assert p.c2pa.claim_generator == "TestGen 1.0"


def _box(btype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + btype + body


def test_jxl_provenance_read_and_decoder_named(tmp_path):
    tiff = _exif(Make="Canon", Model="Canon EOS R5", DateTimeOriginal="2023:01:02 03:04:05") \
        .tobytes()
    data = (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + _box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")
            + _box(b"Exif", b"\x00\x00\x00\x00" + tiff)
            + _box(b"xml ", _xmp_bytes("trainedAlgorithmicMedia"))
            + _box(b"jxlc", b"\xff\x0a" + b"\x00" * 16))
    p = read_provenance(data)
    assert p.container == "JXL" and p.exif.camera == "Canon EOS R5"
    assert p.iptc_xmp.digital_source_type == "trainedAlgorithmicMedia"
    assert p.declared_generated is True
    f = tmp_path / "x.jxl"
    f.write_bytes(data)
    _evidence, img, error = loading.load_evidence(f, images_only=True)
    assert img is None and error.reason.startswith("JXL: decoder not installed")


# ----------------------------------------------------------------------------- 6. dates
def test_modify_date_is_never_called_capture():
    p = read_provenance(_image("JPEG", _exif(Make="Canon", Model="Canon EOS 5D",
                                             DateTime="2021:02:03 04:05:06")))
    assert p.exif.datetime_original is None and p.exif.date == ("DateTime", "2021:02:03 04:05:06")
    assert "DateTime (last modified) 2021:02:03 04:05:06" in p.summary
    assert "capture" not in p.summary
    assert p.to_dict()["exif"]["date"]["meaning"] == "last modified"


def test_capture_date_with_offset_and_all_dates_listed():
    p = read_provenance(_image("JPEG", _exif(
        Make="Nikon", DateTime="2021:02:03 04:05:06", DateTimeOriginal="2020:01:01 10:00:00",
        DateTimeDigitized="2020:01:01 10:00:01", OffsetTimeOriginal="-05:00")))
    assert p.exif.date == ("DateTimeOriginal", "2020:01:01 10:00:00 -05:00")
    rows = dict(dict(iter_detail_groups(p))["EXIF"])
    assert rows["DateTimeOriginal (capture)"] == "2020:01:01 10:00:00 -05:00"
    assert rows["DateTime (last modified)"] == "2021:02:03 04:05:06"
    assert rows["DateTimeDigitized (digitized)"] == "2020:01:01 10:00:01"


# ----------------------------------------------------------------------------- 7. remote manifests
def test_xmp_dcterms_provenance_url_is_reported_not_fetched():
    extra = "<dcterms:provenance>https://cr.example.org/m/123.c2pa</dcterms:provenance>"
    packet = xmp_packet("digitalCreation", "Editor", extra=extra).replace(
        b"xmlns:photoshop=", b"xmlns:dcterms=\"http://purl.org/dc/terms/\" xmlns:photoshop=")
    p = read_provenance(jpeg_with_app1(XMP_SIG + packet))
    assert p.remote_credentials == "https://cr.example.org/m/123.c2pa"
    assert p.summary.startswith("Content Credentials exist at https://cr.example.org/m/123.c2pa "
                                "(remote manifest, not fetched)")
    assessment = dict(dict(iter_detail_groups(p))["Assessment"])
    assert "not fetched" in assessment["Remote Content Credentials"]


# ----------------------------------------------------------------------------- 8. encodings
@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-16-le", "utf-16"])
def test_utf16_xmp_packets(encoding):
    packet = xmp_packet("trainedAlgorithmicMedia").decode().replace("\ufeff", "")
    p = read_provenance(jpeg_with_app1(XMP_SIG + packet.encode(encoding)))
    assert p.iptc_xmp.digital_source_type == "trainedAlgorithmicMedia", p.notes
    assert p.iptc_xmp.encoding.startswith("utf-16")


def test_nul_inside_exif_string_ends_it():
    p = read_provenance(_image("JPEG", _exif(Make="Canon\x00\x00junk", Software="Tool\x00x")))
    assert p.exif.make == "Canon" and p.exif.software == "Tool"


def test_gif_xmp_application_extension():
    gif = _image("GIF")
    packet = xmp_packet("trainedAlgorithmicMedia")
    trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"  # the XMP "magic trailer"
    ext = b"\x21\xff\x0bXMP DataXMP" + packet + trailer
    flags = gif[10]
    start = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    p = read_provenance(gif[:start] + ext + gif[start:])
    assert p.iptc_xmp.digital_source_type == "trainedAlgorithmicMedia", p.notes
    assert p.declared_generated is True


def test_extended_xmp_is_merged():
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    main = xmp_packet("digitalCreation", "Editor", extra=(
        f"<xmpNote:HasExtendedXMP>{guid.decode()}</xmpNote:HasExtendedXMP>")).replace(
        b"xmlns:photoshop=", b"xmlns:xmpNote=\"http://ns.adobe.com/xmp/note/\" xmlns:photoshop=")
    ext = xmp_packet("trainedAlgorithmicMedia", "Generator X")
    half = len(ext) // 2
    parts = [ext[:half], ext[half:]]
    data = jpeg_with_app1(XMP_SIG + main)
    offset = 0
    segments = []
    for part in parts:
        segments.append(b"http://ns.adobe.com/xmp/extension/\x00" + guid
                        + struct.pack(">II", len(ext), offset) + part)
        offset += len(part)
    for seg in reversed(segments):
        data = jpeg_insert_segment(data, 0xE1, seg)
    p = read_provenance(data)
    assert p.iptc_xmp.extended_merged is True
    assert "trainedAlgorithmicMedia" in p.iptc_xmp.fields["Iptc4xmpExt:DigitalSourceType"]
    assert p.declared_generated is True


def _jumbf(label: bytes, uuid4: bytes) -> bytes:
    jumd = b"jumd" + uuid4 + b"\x00\x11\x00\x10\x80\x00\x00\xaa\x00\x38\x9b\x71" + b"\x03" \
        + label + b"\x00"
    jumd = struct.pack(">I", 4 + len(jumd)) + jumd
    return struct.pack(">I", 8 + len(jumd)) + b"jumb" + jumd


def test_pre_c2pa_cai_block_is_named():
    app11 = b"JP" + b"\x00\x01" + b"\x00\x00\x00\x01" + _jumbf(b"cai", b"cai ")
    p = read_provenance(jpeg_insert_segment(_image("JPEG"), 0xEB, app11))
    assert p.c2pa.present and p.c2pa.legacy_cai and not p.c2pa.readable
    assert p.summary.startswith("pre-C2PA CAI credentials")
    assert "no JUMBF data" not in p.summary


# ----------------------------------------------------------------------------- 9. error texts
def test_unreadable_tiff_error_names_reason_without_repr(tmp_path):
    # a TIFF whose first IFD says it has 4,990 entries but ends after a few
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 4990) + b"\x00" * 40
    f = tmp_path / "many.tif"
    f.write_bytes(tiff)
    _evidence, img, error = loading.load_evidence(f)
    assert img is None and "object at 0x" not in error.reason
    assert "is not decoded (only" not in error.reason and error.reason.startswith("TIFF")
    assert error.reason == "TIFF structure not readable: Missing dimensions"
    p = read_provenance(tiff)
    assert p.notes == ["TIFF metadata unreadable: Missing dimensions"]


# ----------------------------------------------------------------------------- display = JSONL
def test_display_groups_follow_the_jsonl():
    p = read_provenance(_jpeg_comment(SWARM))
    d = p.to_dict()
    shown = [t for t, _ in iter_detail_groups(p)]
    # every group is a top-level part of the JSONL object, in the JSONL's order
    assert all(k in d for k, _ in GROUPS if k != "assessment")
    assert shown == [t for _k, t in GROUPS]  # a JPEG: every group is shown
    for k in ("declared_generated", "declared_basis", "hints", "notes", "container",
              "remote_credentials"):
        assert k in d  # the assessment group's fields
    groups = dict(iter_detail_groups(p))
    assert dict(groups["Generator text"])["Seed"] == d["generator_text"]["seed"] == "77"
    assert dict(groups["Assessment"])["Container"] == d["container"] == "JPEG"
    assert dict(groups["EXIF"])["Present"] == "yes" and d["exif"]["present"] is True


def test_c2pa_remote_manifest_reference_from_the_library(test_ca):
    """c2pa-python's own "no embed + remote URL" output: XMP dcterms:provenance only."""
    import c2pa
    from provenance_samples import _base

    chain, key_pem, _ca = test_ca
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain,
                                                       key_pem, None))
    manifest = {"claim_generator_info": [{"name": "T", "version": "1"}],
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
                    "action": "c2pa.created", "digitalSourceType": IPTC + "digitalCapture"}]}}]}
    src, out = io.BytesIO(), io.BytesIO()
    _base().save(src, "JPEG")
    src.seek(0)
    ctx = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}},
                                  "verify": {"verify_after_sign": False}})
    with c2pa.Builder(manifest, context=ctx) as builder:
        builder.set_no_embed()
        builder.set_remote_url("https://cr.example.org/abc.c2pa")
        builder.sign(signer, "image/jpeg", src, out)
    p = read_provenance(out.getvalue())
    assert p.remote_credentials == "https://cr.example.org/abc.c2pa"
    assert "Content Credentials exist at https://cr.example.org/abc.c2pa" in p.summary
    assert "not fetched" in p.summary
    assert p.declared_generated is None  # what the remote manifest says is unknown here


# ----------------------------------------------------------------------------- the corpus
def _corpus(ca) -> list[tuple[str, bytes, bool | None]]:
    """(name, file, what its metadata truly declares): every class above plus controls."""
    comfy_make = _exif(Make="workflow:" + json.dumps(COMFY_WORKFLOW),
                       Model="prompt:" + json.dumps(COMFY_PROMPT))
    bing = {"claim_generator_info": [{"name": "Microsoft_Responsible_AI", "version": "1.0"}],
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created",
                "softwareAgent": {"name": "Image Creator from Designer"}}]}}]}
    return [
        ("comfy-webp-exif", _image("WEBP", comfy_make), True),
        ("comfy-jpeg-exif", _image("JPEG", comfy_make), True),
        ("comfy-description", _image("JPEG", _exif(
            ImageDescription="Prompt: " + json.dumps(COMFY_PROMPT))), True),
        ("swarm", _jpeg_comment(SWARM), True),
        ("comfy-usercomment", _jpeg_comment({"prompt": COMFY_PROMPT}), True),
        ("civitai", _jpeg_comment(CIVITAI), True),
        ("fooocus", png_with_text({"parameters": json.dumps({
            "Prompt": "a", "Seed": 1, "Version": "Fooocus v2.5.5"})}), True),
        ("novelai", png_with_text({"Comment": json.dumps({"prompt": "a", "steps": 28,
                                                          "uc": "b", "seed": 1})}), True),
        ("invokeai-dream", png_with_text({"Dream": '"a" -s 5 -S 1'}), True),
        ("midjourney-iim", jpeg_insert_segment(_image("JPEG"), 0xED, _iim_app13(
            [(2, 120, MJ.encode())])), True),
        ("bing-c2pa", c2pa_signed("jpeg", ca=ca, manifest=bing)[0], True),
        ("c2pa-trained", c2pa_signed("png", ca=ca)[0], True),
        ("xmp-utf16", jpeg_with_app1(XMP_SIG + xmp_packet("trainedAlgorithmicMedia").decode()
                                     .replace("\ufeff", "").encode("utf-16-be")), True),
        ("c2pa-capture", c2pa_signed("jpeg", "digitalCapture", ca=ca)[0], False),
        ("xmp-capture", jpeg_with_app1(XMP_SIG + xmp_packet("digitalCapture", "Cam")), False),
        # controls: nothing declared either way
        ("camera-exif", _image("JPEG", _exif(Make="Canon", Model="Canon EOS R5")), None),
        ("game-photo-mode", _image("JPEG", _exif(Make="Polyphony Digital Inc.",
                                                 Model="Gran Turismo 5")), None),
        ("prompt-word", _image("JPEG", _exif(ImageDescription="midjourney-like sky")), None),
        ("algorithmic", jpeg_with_app1(XMP_SIG + xmp_packet("algorithmicMedia", "Fractals")),
         True),  # issue 33: generated, of kind "algorithmic"
        ("digital-creation", jpeg_with_app1(XMP_SIG + xmp_packet("digitalCreation", "Paint")),
         None),
        ("plain", _image("PNG"), None),
        ("modified-date", _image("JPEG", _exif(Software="Photo Editor 2",
                                               DateTime="2020:01:01 00:00:00")), None),
    ]


def test_declared_generated_on_the_fixture_corpus(test_ca):
    false_captured, false_generated, wrong = [], [], []
    for name, data, truth in _corpus(test_ca):
        got = read_provenance(data).declared_generated
        if got is False and truth is not False:
            false_captured.append(name)
        if got is True and truth is not True:
            false_generated.append(name)
        if got is not truth:
            wrong.append((name, got, truth))
    assert false_captured == [] and false_generated == []
    assert wrong == []


# ----------------------------------------------------------------------------- case report
def test_case_report_shows_the_same_groups_as_the_panel(tmp_path, tiny_detector):
    from forensics_app.core.case import Case, CaseRecorder, detector_facts
    from forensics_app.core.report import build_report, render_html
    from forensics_app.core.scan import ScanOptions, scan_files

    f = tmp_path / "swarm.jpg"
    f.write_bytes(_jpeg_comment(SWARM))
    with Case.create(tmp_path / "case", name="Prov") as case:
        scan_id = case.begin_scan(detector_facts(tiny_detector), {"mode": "full"}, [str(f)],
                                  False, 1)
        rec = CaseRecorder(case, scan_id, batch_size=1)
        scan_files([f], tiny_detector, ScanOptions(batch_size=1), on_result=rec)
        rec.flush()
        case.finish_scan(scan_id)
        stored = case.results()[0].provenance
        # the record rebuilt from the case database is the same provenance, every group
        assert stored.to_dict() == read_provenance(f.read_bytes()).to_dict()
        data = build_report(case, threshold=0.0, band=0.0, gradcam=False, thumbnails=False)
    html = render_html(data)
    for title, _rows in iter_detail_groups(stored):
        assert f"Provenance: {title}" in html
    assert "<td>Seed</td><td><bdi>77</bdi></td>" in html and "SwarmUI 0.9.2" in html


@pytest.mark.parametrize(("software", "generator"), [
    ("Adobe Firefly", "Adobe Firefly"), ("Image Creator from Designer", "Microsoft Bing Image Creator"),
    ("Microsoft_Responsible_AI/1.0", "Microsoft Responsible AI signing (Bing / Designer / Copilot)"),
    ("ChatGPT", "OpenAI (ChatGPT / GPT-4o / API)"), ("DALL-E 3", "OpenAI DALL·E"),
    ("ComfyUI", "ComfyUI"), ("Adobe Photoshop 25.0 (Windows)", None), ("GIMP 2.10.34", None),
    ("HDR+ 1.0.540104767zd", None), ("FIREFLY 8SE V1.0", None), ("Imagenomic Portraiture", None),
    ("Picasa", None), ("G998BXXU5CVDD", None), ("17.1.2", None)])
def test_generator_table(software, generator):
    from forensics_app.core.provenance.generator_names import match_generator

    assert match_generator(software) == generator


def test_mutated_new_containers_never_raise(test_ca):
    """Random byte flips and cuts in every new reader's input: a note at most, never a raise."""
    import random

    seeds = [data for name, data, _truth in _corpus(test_ca)
             if name in ("midjourney-iim", "xmp-utf16", "swarm", "comfy-webp-exif")]
    tiff = _exif(Make="Canon").tobytes()
    seeds.append(b"\x00\x00\x00\x0cJXL \r\n\x87\n" + _box(b"Exif", b"\x00" * 4 + tiff)
                 + _box(b"xml ", _xmp_bytes("digitalCapture")))
    if "HEIF" in loading.DECODE_FORMATS:
        seeds.append(_image("HEIF", _exif(Make="Apple"), xmp=_xmp_bytes("digitalCapture")))
    gif = _image("GIF")
    seeds.append(gif[:13] + b"\x21\xff\x0bXMP DataXMP" + xmp_packet("algorithmicMedia")
                 + b"\x01" + bytes(range(255, -1, -1)) + b"\x00" + gif[13:])
    rng = random.Random(23)
    for seed in seeds:
        for _ in range(40):
            data = bytearray(seed)
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.3:
                data = data[: rng.randrange(8, len(data))]
            p = read_provenance(bytes(data))  # must not raise
            assert not any("object at 0x" in n for n in p.notes)
