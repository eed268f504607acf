"""Provenance reading: C2PA, IPTC/XMP, EXIF, generator text, JPEG quality; bad input as notes."""

from __future__ import annotations

import csv
import io
import json
import random
import struct
import time

import pytest
from PIL import Image
from provenance_samples import (
    A1111_PARAMETERS,
    c2pa_signed,
    jpeg_camera,
    jpeg_with_app1,
    jpeg_xmp,
    make_test_ca,
    png_a1111,
    png_chunk,
    png_comfyui,
    png_insert_chunk,
    png_with_text,
    png_zip_bomb_text,
    xmp_packet,
)

from forensics_app.core.provenance import (
    STORED_TEXT_CHARS,
    ProvenanceConfigError,
    disagreement,
    iter_detail_groups,
    load_trust_anchors,
    read_provenance,
)
from forensics_app.core.results import Verdict


@pytest.fixture(scope="module")
def test_ca():
    return make_test_ca()


@pytest.fixture(scope="module")
def signed_jpeg(test_ca):
    return c2pa_signed("jpeg", ca=test_ca)[0]


# ----------------------------------------------------------------------------- generator text
def test_a1111_parameters_are_parsed():
    p = read_provenance(png_a1111())
    g = p.generator_text
    assert g.generator.startswith("Stable Diffusion (A1111")
    assert (g.steps, g.seed, g.sampler, g.cfg_scale) == ("30", "1234", "DPM++ 2M Karras", "7")
    assert g.model == "v1-5-pruned-emaonly" and g.prompt == "a lighthouse at dusk, oil painting"
    assert g.entries[0].source == "PNG tEXt" and g.entries[0].text == A1111_PARAMETERS
    assert p.declared_generated is True
    assert "PNG parameters: Stable Diffusion" in p.summary
    assert "30 steps" in p.summary and "seed 1234" in p.summary


def test_summary_is_one_safe_line():
    p = read_provenance(png_with_text({"parameters": "x\nSteps: 3, Sampler: Euler, Seed: 1\u202e2, Model: a\tb"}))
    assert "\n" not in p.summary and "\u202e" not in p.summary and "seed 1 2" in p.summary and "model a b" in p.summary


def test_comfyui_prompt_and_workflow_are_parsed():
    p = read_provenance(png_comfyui())
    g = p.generator_text
    assert g.generator == "ComfyUI"
    assert (g.seed, g.steps, g.sampler) == ("987654321", "20", "euler")
    assert g.model == "sd_xl_base_1.0.safetensors" and g.prompt == "a red fox in snow"
    assert {e.key for e in g.entries} == {"prompt", "workflow"}
    assert all(e.source == "PNG iTXt" for e in g.entries)
    assert p.declared_generated is True


def test_novelai_software_and_comment():
    comment = json.dumps({"prompt": "1girl, city lights", "steps": 28, "seed": 42, "scale": 5.0,
                          "sampler": "k_euler_ancestral"})
    p = read_provenance(png_with_text({"Software": "NovelAI", "Comment": comment,
                                       "Source": "NovelAI Diffusion V3 4BDE2A90"}))
    g = p.generator_text
    assert g.generator == "NovelAI" and (g.seed, g.steps) == ("42", "28")
    assert g.model == "NovelAI Diffusion V3 4BDE2A90" and p.declared_generated is True


def test_a1111_jpeg_user_comment():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + A1111_PARAMETERS.encode("utf-16-be")
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "JPEG", exif=exif)
    p = read_provenance(buf.getvalue())
    assert p.generator_text.seed == "1234" and p.generator_text.source == "EXIF UserComment"
    assert p.declared_generated is True


# ----------------------------------------------------------------------------- XMP
def test_xmp_digital_source_type_declares_generated():
    p = read_provenance(jpeg_xmp("trainedAlgorithmicMedia"))
    x = p.iptc_xmp
    assert x.digital_source_type == "trainedAlgorithmicMedia"
    assert x.fields["xmp:CreatorTool"] == "Image Generator 3"
    assert x.fields["photoshop:Credit"] == "Made with an AI model"
    assert p.declared_generated is True
    assert "XMP DigitalSourceType trainedAlgorithmicMedia" in p.summary


@pytest.mark.parametrize(("code", "declared"), [
    ("compositeWithTrainedAlgorithmicMedia", True), ("digitalCapture", False),
    ("digitalCreation", None)])
def test_xmp_source_type_codes(code, declared):
    assert read_provenance(jpeg_xmp(code, creator_tool="Some Editor")).declared_generated is declared


def test_xmp_bad_xml_is_a_note():
    data = jpeg_with_app1(b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><rdf:RDF></x:xmpmeta")
    p = read_provenance(data)
    assert p.iptc_xmp.error and any("XMP present but unreadable" in n for n in p.notes)
    assert p.jpeg.quality == 90  # the rest is still read


def test_xmp_entity_bomb_is_refused_quickly():
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i else "&lol;" * 10}">'
                      for i in range(10))
            + ']><x:xmpmeta xmlns:x="adobe:ns:meta/">&lol9;</x:xmpmeta>').encode()
    t0 = time.perf_counter()
    p = read_provenance(jpeg_with_app1(b"http://ns.adobe.com/xap/1.0/\x00" + bomb))
    assert time.perf_counter() - t0 < 1.0
    assert p.iptc_xmp.error and ("DTD" in p.iptc_xmp.error or "Entit" in p.iptc_xmp.error)


def test_png_xmp_itxt():
    p = read_provenance(png_with_text({"XML:com.adobe.xmp": xmp_packet("trainedAlgorithmicMedia")
                                       .decode()}))
    assert p.iptc_xmp.digital_source_type == "trainedAlgorithmicMedia"
    assert p.generator_text.entries == []  # the XMP packet is not "generator text"


# ----------------------------------------------------------------------------- EXIF, JPEG
def test_camera_exif():
    p = read_provenance(jpeg_camera())
    e = p.exif
    assert (e.make, e.model, e.lens) == ("Canon", "Canon EOS 5D Mark IV", "EF24-70mm f/2.8L II USM")
    assert e.datetime_original == "2019:06:01 14:03:22" and e.orientation == 1
    assert e.gps_present is True
    assert p.summary == ("EXIF names a camera: Canon EOS 5D Mark IV, "
                         "DateTimeOriginal (capture) 2019:06:01 14:03:22")
    # a camera named in EXIF is free text: a hint, never a capture declaration
    assert p.declared_generated is None and p.declared_basis == []
    assert p.hints[0].startswith("EXIF names a camera: Canon EOS 5D Mark IV (unsigned")
    # GPS is yes/no only: no coordinate reaches the record
    assert "48.0" not in json.dumps(p.to_dict())


@pytest.mark.parametrize("quality", [30, 50, 75, 90, 95, 100])
def test_jpeg_quality_estimate(quality):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "JPEG", quality=quality)
    j = read_provenance(buf.getvalue()).jpeg
    assert j.is_jpeg and j.quality == quality and j.standard_tables is True and j.tables == 2


def test_no_metadata():
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "PNG")
    p = read_provenance(buf.getvalue())
    assert p.summary == "no provenance metadata" and p.declared_generated is None
    assert p.declared_text == "unknown" and p.notes == []


def test_exif_with_bad_offsets_is_a_note():
    # one IFD entry (Make, ASCII, 1000 bytes) pointing far past the end of the block
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHII", 0x010F, 2, 1000, 0xFFFFFF00) + struct.pack("<I", 0)
    p = read_provenance(jpeg_with_app1(b"Exif\x00\x00" + tiff))
    assert p.exif.present and p.exif.make is None
    assert p.jpeg.quality == 90
    # and an IFD offset beyond the block
    p = read_provenance(jpeg_with_app1(b"Exif\x00\x00II*\x00" + struct.pack("<I", 0x7FFFFFF0)))
    assert p.exif.present and p.exif.make is None


# ----------------------------------------------------------------------------- huge text
def test_zip_bomb_text_chunk_is_bounded():
    data = png_zip_bomb_text(size=16 << 20)
    assert len(data) < 1 << 20
    t0 = time.perf_counter()
    p = read_provenance(data)
    assert time.perf_counter() - t0 < 2.0
    assert any("compression bomb" in n for n in p.notes)
    entry = p.generator_text.entries[0]
    assert entry.length == 1 << 20 and len(entry.text) == STORED_TEXT_CHARS and entry.truncated


def test_many_text_chunks_are_capped():
    png = png_with_text({})
    chunks = b"".join(png_chunk(b"tEXt", f"k{i}".encode() + b"\x00v") for i in range(400))
    p = read_provenance(png_insert_chunk(png, chunks))
    assert len(p.generator_text.entries) == 256 and any("more than 256" in n for n in p.notes)


# ----------------------------------------------------------------------------- C2PA
def test_c2pa_signed_image_without_trust_list(signed_jpeg):
    p = read_provenance(signed_jpeg)
    c = p.c2pa
    assert c.present and c.readable, p.notes
    assert c.claim_generator == "TestGen 1.0" and c.signer == "Test Signer"
    assert c.issuer == "Forensics Test CA"
    assert c.actions[0]["action"] == "c2pa.created"
    assert c.actions[0]["software_agent"] == "TestDiffusion 2"
    assert c.trust == "untrusted" and c.trust_anchors is None
    assert "signingCredential.untrusted" in c.failures
    assert p.declared_generated is True
    assert "signature not verified (untrusted: no trust list loaded)" in p.summary
    # exactly what the library says, and never "valid" where nobody checked trust
    import c2pa

    with c2pa.Reader("image/jpeg", io.BytesIO(signed_jpeg)) as reader:
        assert c.validation_state == reader.get_validation_state()
    assert "valid" not in p.summary.lower()
    panel = dict(next(iter_detail_groups(p))[1])
    assert panel["Signature"].startswith("signature not verified")
    assert panel["Library validation_state"] != "Valid"


def test_c2pa_with_trust_anchor_file(tmp_path, test_ca, signed_jpeg):
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(test_ca[2])
    options = load_trust_anchors(anchors)
    p = read_provenance(signed_jpeg, options)
    assert p.c2pa.trust == "trusted" and p.c2pa.validation_state == "Trusted"
    assert "verified against the loaded trust list" in p.summary
    other = tmp_path / "other.pem"
    other.write_bytes(make_test_ca()[2])
    p = read_provenance(signed_jpeg, load_trust_anchors(other))
    assert p.c2pa.trust == "untrusted" and "signer not on the loaded trust list" in p.summary


def test_trust_anchor_file_errors(tmp_path):
    with pytest.raises(ProvenanceConfigError):
        load_trust_anchors(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ProvenanceConfigError):
        load_trust_anchors(tmp_path / "junk.pem")


def test_c2pa_png_and_capture_source_type(test_ca):
    data, _ = c2pa_signed("png", source_type="digitalCapture", ca=test_ca)
    p = read_provenance(data)
    assert p.c2pa.readable and p.declared_generated is False


def test_c2pa_pixels_changed_after_signing(signed_jpeg):
    sos = signed_jpeg.rfind(b"\xff\xda")
    data = bytearray(signed_jpeg)
    for i in range(sos + 40, len(data) - 4, 7):
        data[i] ^= 0x01  # inside entropy-coded data, away from markers
    data = bytes(data).replace(b"\xff\x00\x01", b"\xff\x00\x00")
    p = read_provenance(data)
    assert p.c2pa.present
    if p.c2pa.readable:
        assert any("mismatch" in code for code in p.c2pa.failures), p.c2pa.failures
    else:
        assert any("C2PA manifest present but unreadable" in n for n in p.notes)


def test_c2pa_truncated_jumbf_is_a_note(signed_jpeg):
    at = signed_jpeg.find(b"jumb")
    data = bytearray(signed_jpeg)
    data[at + 100:at + 400] = b"\xff" * 300  # garbage inside the JUMBF boxes, segment intact
    p = read_provenance(bytes(data))
    assert p.c2pa.present and not p.c2pa.readable
    assert any(n.startswith("C2PA manifest present but unreadable") for n in p.notes)
    assert p.summary.startswith("C2PA manifest present but unreadable")


def test_mutated_files_never_raise(signed_jpeg):
    rng = random.Random(0)
    seeds = [png_a1111(), png_comfyui(), jpeg_xmp(), jpeg_camera(), signed_jpeg[:4000]]
    for _ in range(60):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(8, len(data))]
        read_provenance(bytes(data))  # must not raise


# ----------------------------------------------------------------------------- verdicts
def test_disagreement():
    camera = read_provenance(jpeg_xmp("digitalCapture", creator_tool="Camera Firmware"))
    generated = read_provenance(png_a1111())
    assert "detector says AI-generated" in disagreement(camera, Verdict.AI_GENERATED)
    assert disagreement(camera, Verdict.REAL) is None
    # a camera named in EXIF only is no declaration to disagree with
    assert disagreement(read_provenance(jpeg_camera()), Verdict.AI_GENERATED) is None
    assert "detector says Real" in disagreement(generated, Verdict.REAL)
    assert disagreement(generated, Verdict.INCONCLUSIVE) is None
    assert disagreement(read_provenance(b"\x89PNG\r\n\x1a\n"), Verdict.REAL) is None
    assert disagreement(None, Verdict.REAL) is None


# ----------------------------------------------------------------------------- real files
def test_real_chatgpt_files(shared_data):
    folder = shared_data / "provenance" / "c2pa_chatgpt"
    if not folder.is_dir():
        pytest.skip("../shared/data/provenance/c2pa_chatgpt is absent")
    files = sorted(folder.glob("*.png"))
    assert len(files) == 3
    for f in files:
        p = read_provenance(f.read_bytes())
        c = p.c2pa
        assert c.readable and c.claim_generator.startswith("ChatGPT"), p.notes
        assert {"signingCredential.untrusted", "signingCredential.expired",
                "assertion.action.malformed"} <= set(c.failures)
        assert c.validation_state == "Invalid" and c.trust == "untrusted"
        assert p.declared_generated is True
        # the failures lead; nothing is called verified
        assert p.summary.startswith("C2PA: signature check FAILED (signingCredential.expired")
        assert "claim by ChatGPT" in p.summary and "verified" not in p.summary.replace(
            "not verified", "")
        assert "untrusted: no trust list loaded" in p.summary


# ----------------------------------------------------------------------------- engine, export
def test_scan_attaches_provenance_and_never_changes_scores(tmp_path, tiny_detector):
    from forensics_app.core.export import write_csv, write_jsonl
    from forensics_app.core.scan import ScanOptions, scan_files

    files = []
    for name, data in (("a1111.png", png_a1111()), ("camera.jpg", jpeg_camera()),
                       ("plain.png", png_with_text({})), ("broken.jpg", jpeg_camera()[:300])):
        (tmp_path / name).write_bytes(data)
        files.append(tmp_path / name)
    with_prov = scan_files(files, tiny_detector)
    without = scan_files(files, tiny_detector, ScanOptions(provenance=False))
    assert [r.prob_fake for r in with_prov] == [r.prob_fake for r in without]
    assert [r.verdict for r in with_prov] == [r.verdict for r in without]
    assert all(r.provenance is None for r in without)
    a1111, camera, plain, broken = with_prov
    assert a1111.provenance.declared_generated is True
    assert camera.provenance.exif.camera == "Canon EOS 5D Mark IV"
    assert plain.provenance.summary == "no provenance metadata"
    assert broken.error and broken.provenance is not None  # metadata of an undecodable file
    assert broken.provenance.exif.make == "Canon"

    write_csv(tmp_path / "r.csv", with_prov)
    rows = list(csv.DictReader(open(tmp_path / "r.csv", encoding="utf-8")))
    assert rows[0]["declared_generated"] == "true" and "seed 1234" in rows[0]["provenance"]
    assert rows[1]["declared_generated"] == "unknown" and rows[2]["declared_generated"] == "unknown"
    write_jsonl(tmp_path / "r.jsonl", with_prov)
    records = [json.loads(line) for line in open(tmp_path / "r.jsonl", encoding="utf-8")]
    assert records[0]["provenance"]["generator_text"]["seed"] == "1234"
    assert records[1]["provenance"]["exif"]["camera"] == "Canon EOS 5D Mark IV"
    assert records[0]["provenance"]["declared_generated"] is True


def test_cli_trust_anchor_flag(tmp_path, tiny_checkpoint, test_ca, signed_jpeg):
    from forensics_app.cli import main

    (tmp_path / "signed.jpg").write_bytes(signed_jpeg)
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(test_ca[2])
    out = tmp_path / "r.jsonl"
    rc = main([str(tmp_path / "signed.jpg"), "--model", str(tiny_checkpoint), "--device", "cpu",
               "--jsonl", str(out), "-q", "--c2pa-trust-anchors", str(anchors)])
    assert rc == 0
    record = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert record["provenance"]["c2pa"]["trust"] == "trusted"
    (tmp_path / "bad.pem").write_text("nothing")
    assert main([str(tmp_path / "signed.jpg"), "--model", str(tiny_checkpoint), "-q",
                 "--c2pa-trust-anchors", str(tmp_path / "bad.pem")]) == 2
