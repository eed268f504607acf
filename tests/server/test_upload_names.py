"""forensics-serve names uploads as the CLI names files: undecodable bytes escaped reversibly
(\\xff\\xfe, not the Latin-1 'ÿþ'), and Pillow's warnings about an upload name it."""

from __future__ import annotations

import io
import logging
import struct

from PIL import Image

from helpers import make_image

BOUNDARY = b"forensics-test-boundary"


def _multipart(filename: bytes, data: bytes) -> tuple[bytes, dict[str, str]]:
    body = (b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"image\"; "
            b"filename=\"" + filename + b"\"\r\nContent-Type: image/png\r\n\r\n" + data
            + b"\r\n--" + BOUNDARY + b"--\r\n")
    return body, {"content-type": "multipart/form-data; boundary=" + BOUNDARY.decode()}


def _png() -> bytes:
    buf = io.BytesIO()
    make_image((80, 72), 3).save(buf, "PNG")
    return buf.getvalue()


def test_non_utf8_upload_name_is_escaped_reversibly(make_client):
    client, _ = make_client()
    body, headers = _multipart(b"\xff\xfe-caf\xc3\xa9.png", _png())
    r = client.post("/api/v1/analyze?thumbnail=false", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["filename"] == "\\xff\\xfe-café.png"  # as forensics-scan prints it
    body, headers = _multipart("photo-é.png".encode(), _png())  # valid UTF-8: unchanged
    r = client.post("/api/v1/analyze?thumbnail=false", content=body, headers=headers)
    assert r.json()["filename"] == "photo-é.png"


def _jpeg_with_exif_pointing_past_its_end() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "A" * 40  # Make: stored at an offset, which is then pointed past the end
    raw = bytearray(exif.tobytes())
    t = 6 if raw.startswith(b"Exif") else 0
    order = "<" if raw[t:t + 2] == b"II" else ">"
    ifd = t + struct.unpack_from(order + "I", raw, t + 4)[0]
    for e in range(struct.unpack_from(order + "H", raw, ifd)[0]):
        pos = ifd + 2 + 12 * e
        if struct.unpack_from(order + "H", raw, pos)[0] == 0x010F:
            struct.pack_into(order + "I", raw, pos + 8, 5000)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 8, 7)).save(buf, "JPEG", exif=bytes(raw))
    return buf.getvalue()


def test_pillow_warnings_about_an_upload_name_it(make_client, caplog, capfd):
    client, _ = make_client()
    data = _jpeg_with_exif_pointing_past_its_end()
    with caplog.at_level(logging.DEBUG, logger="forensics_app.server.api"):
        r = client.post("/api/v1/analyze",
                        files={"image": ("odd-exif.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["thumbnail"].startswith("data:image/jpeg;base64,")
    logged = [rec.getMessage() for rec in caplog.records
              if rec.name == "forensics_app.server.api" and "decoder warning" in rec.getMessage()]
    assert logged and all(m.startswith("upload odd-exif.jpg: decoder warning: ") for m in logged)
    assert "Truncated File Read" not in capfd.readouterr().err  # never bare on stderr
