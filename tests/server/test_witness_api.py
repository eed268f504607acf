"""forensics-serve: ``/api/v1/analyze?witness=...`` adds the second witnesses' records."""

from __future__ import annotations

import io

from PIL import Image


def _double_jpeg() -> bytes:
    import numpy as np

    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).resize((256, 192))
    first = io.BytesIO()
    im.save(first, "JPEG", quality=60)
    again = io.BytesIO()
    Image.open(io.BytesIO(first.getvalue())).save(again, "JPEG", quality=90)
    return again.getvalue()


def test_analyze_with_witnesses(make_client):
    client, _service = make_client()
    data = _double_jpeg()
    r = client.post("/api/v1/analyze?witness=jpeg,thumbnail&thumbnail=false",
                    files={"image": ("x.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    w = r.json()["witnesses"]
    assert set(w) == {"jpeg", "thumbnail"}
    assert w["jpeg"]["detected"] is True and w["jpeg"]["figures"]["estimated_quality"] == 90
    assert w["thumbnail"]["detected"] is None and "map_png" not in w["thumbnail"]
    plain = client.post("/api/v1/analyze", files={"image": ("x.jpg", data, "image/jpeg")})
    assert "witnesses" not in plain.json()
    bad = client.post("/api/v1/analyze?witness=bogus",
                      files={"image": ("x.jpg", data, "image/jpeg")})
    assert bad.status_code == 400 and "unknown witness bogus" in bad.text
