"""Files with provenance metadata, made by the tests (and the screenshot script).

Every builder returns the bytes of a small, valid image carrying one kind of metadata:
Automatic1111 and ComfyUI PNG text, XMP with an IPTC digital source type, camera EXIF, and a
C2PA manifest signed by ``c2pa-python``'s Builder with a throw-away CA made here.
"""

from __future__ import annotations

import datetime
import io
import json
import struct
import zlib

from PIL import Image, PngImagePlugin

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
A1111_PARAMETERS = (
    "a lighthouse at dusk, oil painting\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 64x64, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.6.0"
)
COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 987654321, "steps": 20, "cfg": 8.0,
                                               "sampler_name": "euler", "model": ["4", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in snow", "clip": ["4", 1]}},
}
COMFY_WORKFLOW = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "version": 0.4}


def _base(size: int = 64, seed: int = 0) -> Image.Image:
    import numpy as np

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def png_with_text(chunks: dict[str, str], compressed: bool = False) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in chunks.items():
        if compressed:
            info.add_itxt(k, v, zip=True)
        else:
            info.add_text(k, v)
    buf = io.BytesIO()
    _base().save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def png_a1111() -> bytes:
    return png_with_text({"parameters": A1111_PARAMETERS})


def png_comfyui() -> bytes:
    return png_with_text({"prompt": json.dumps(COMFY_PROMPT),
                          "workflow": json.dumps(COMFY_WORKFLOW)}, compressed=True)


def xmp_packet(digital_source_type: str, creator_tool: str = "Image Generator 3",
               extra: str = "") -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
        f'Iptc4xmpExt:DigitalSourceType="{IPTC}{digital_source_type}" '
        f'xmp:CreatorTool="{creator_tool}">'
        '<photoshop:Credit>Made with an AI model</photoshop:Credit>'
        f'{extra}</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def jpeg_with_app1(payload: bytes, quality: int = 90) -> bytes:
    """A JPEG with ``payload`` as an extra APP1 segment right after SOI."""
    buf = io.BytesIO()
    _base().save(buf, "JPEG", quality=quality)
    return jpeg_insert_segment(buf.getvalue(), 0xE1, payload)


def jpeg_insert_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """``jpeg`` with one more APPn/COM segment (``marker``) right after SOI."""
    segment = bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def jpeg_xmp(digital_source_type: str = "trainedAlgorithmicMedia", **kw) -> bytes:
    return jpeg_with_app1(b"http://ns.adobe.com/xap/1.0/\x00" + xmp_packet(digital_source_type, **kw))


def camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D Mark IV"
    exif[0x0131] = "Firmware Version 1.0.4"
    exif[0x0112] = 1
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2019:06:01 14:03:22"
    sub[0xA434] = "EF24-70mm f/2.8L II USM"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.0)
    return exif


def jpeg_camera(quality: int = 92) -> bytes:
    buf = io.BytesIO()
    _base(seed=3).save(buf, "JPEG", quality=quality, exif=camera_exif())
    return buf.getvalue()


def jpeg_camera_declared() -> bytes:
    """Camera EXIF plus an IPTC digitalCapture declaration in XMP (a declared capture)."""
    return jpeg_insert_segment(jpeg_camera(), 0xE1, b"http://ns.adobe.com/xap/1.0/\x00"
                               + xmp_packet("digitalCapture", creator_tool="Camera Firmware"))


# ----------------------------------------------------------------------------- C2PA
def make_test_ca():
    """A throw-away root CA and an end-entity signing certificate (ES256) for C2PA tests."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Forensics Test CA")])

    def usage(**on) -> x509.KeyUsage:
        keys = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
        return x509.KeyUsage(**{k: on.get(k, False) for k in keys})

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test Root CA")).issuer_name(name("Test Root CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name("Test Signer")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return chain, key_pem, ca.public_bytes(pem)


def c2pa_signed(fmt: str = "jpeg", source_type: str | None = "trainedAlgorithmicMedia",
                ca=None, manifest: dict | None = None) -> tuple[bytes, bytes]:
    """An image with a C2PA manifest (c2pa.created, ``source_type``); returns (bytes, CA PEM).

    ``manifest`` replaces the default manifest definition entirely.
    """
    import c2pa

    chain, key_pem, ca_pem = ca or make_test_ca()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain,
                                                       key_pem, None))
    action = {"action": "c2pa.created",
              "softwareAgent": {"name": "TestDiffusion", "version": "2"}}
    if source_type:
        action["digitalSourceType"] = IPTC + source_type
    manifest = manifest or {
        "claim_generator_info": [{"name": "TestGen", "version": "1.0"}],
        "title": f"generated.{fmt}",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
    }
    src = io.BytesIO()
    pil_format = {"jpeg": "JPEG", "png": "PNG", "heic": "HEIF", "avif": "AVIF"}[fmt]
    _base(seed=5).save(src, pil_format, **({"quality": 90} if fmt == "jpeg" else {}))
    src.seek(0)
    out = io.BytesIO()
    ctx = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}},
                                  "verify": {"verify_after_sign": False}})
    with c2pa.Builder(manifest, context=ctx) as builder:
        builder.sign(signer, f"image/{fmt}", src, out)
    return out.getvalue(), ca_pem


# ----------------------------------------------------------------------------- malformed
def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + ctype + body
            + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF))


def png_insert_chunk(png: bytes, chunk: bytes) -> bytes:
    """Insert a chunk right after IHDR (PNG signature 8 bytes + IHDR 25 bytes)."""
    return png[:33] + chunk + png[33:]


def png_zip_bomb_text(key: str = "parameters", size: int = 64 << 20) -> bytes:
    """A zTXt chunk that inflates to ``size`` bytes (only ~64 KB on disk)."""
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(b"A" * (1 << 20)) for _ in range(size >> 20)) + comp.flush()
    return png_insert_chunk(png_with_text({}), png_chunk(b"zTXt", key.encode() + b"\x00\x00" + body))


# ----------------------------------------------------------------------------- issue 33
def image_bytes(fmt: str = "JPEG", exif: Image.Exif | None = None, mode: str = "RGB", **kw) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (32, 32), (120, 30, 200, 255)[:len(mode)]).save(
        buf, fmt, **({"exif": exif} if exif is not None else {}), **kw)
    return buf.getvalue()


def bare_xmp(props: str = "", body: str = "") -> bytes:
    """A bare XMP packet: ``props`` as attributes, ``body`` as child elements."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
        'xmlns:exif="http://ns.adobe.com/exif/1.0/" '
        f'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" {props}>'
        f'{body}</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()


def xmp_alt(tag: str, text: str) -> str:
    return f"<{tag}><rdf:Alt><rdf:li xml:lang='x-default'>{text}</rdf:li></rdf:Alt></{tag}>"


def iim_app13(datasets: list[tuple[int, int, bytes]]) -> bytes:
    iim = b"".join(b"\x1c" + bytes([r, d]) + struct.pack(">H", len(v)) + v for r, d, v in datasets)
    res = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim)) + iim
    return b"Photoshop 3.0\x00" + res + (b"\x00" if len(iim) & 1 else b"")


def c2pa_with_failed_ingredient(ca) -> bytes:
    """A manifest (signed here) whose parent ingredient's own manifest fails its data hash."""
    import c2pa

    parent, _ = c2pa_signed("jpeg", ca=ca)
    img = Image.open(io.BytesIO(parent))
    buf = io.BytesIO()
    img.point(lambda v: 255 - v).save(buf, "JPEG", quality=90)
    tampered = parent[:parent.index(b"\xff\xda")] + buf.getvalue()[buf.getvalue().index(b"\xff\xda"):]
    chain, key_pem, _ca_pem = ca
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain,
                                                       key_pem, None))
    manifest = {"claim_generator_info": [{"name": "Editor", "version": "1"}],
                "title": "edited.jpg", "assertions": [{"label": "c2pa.actions", "data": {
                    "actions": [{"action": "c2pa.opened",
                                 "parameters": {"ingredientIds": ["parent-1"]}}]}}]}
    ctx = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}},
                                  "verify": {"verify_after_sign": False}})
    src, out = io.BytesIO(image_bytes("JPEG", quality=90)), io.BytesIO()
    with c2pa.Builder(manifest, context=ctx) as builder:
        builder.add_ingredient({"title": "parent.jpg", "relationship": "parentOf",
                                "label": "parent-1"}, "image/jpeg", io.BytesIO(tampered))
        builder.sign(signer, "image/jpeg", src, out)
    return out.getvalue()
