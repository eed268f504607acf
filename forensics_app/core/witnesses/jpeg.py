"""JPEG structure: quantisation tables, estimated quality, double compression, ghosts.

Can show: the quality the file was last saved at (exact when its tables are the IJG/libjpeg
standard ones, which Pillow, libjpeg-turbo, GIMP, ImageMagick and many phones use);
that it was compressed twice, the first time at a lower quality (periodic gaps in the DCT
coefficient histograms; a "ghost" minimum when re-saved at the earlier quality). Cannot
show: a second save at the same or a lower quality than the first (no trace is left), a
file that is not a JPEG (a PNG made from a JPEG is not analysed here), or which camera made
it: only the IJG table family is known to this build; other tables read "custom".
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from forensics_app.core.witnesses.base import Subject, WitnessResult

# IJG (libjpeg) standard tables, natural (row-major) order, quality 50.
IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.int32)
IJG_CHROMA = np.full(64, 99, np.int32)
IJG_CHROMA[[0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 24, 25]] = [
    17, 18, 24, 47, 18, 21, 26, 66, 24, 26, 56, 47, 66]

CROP = 1024  # the DCT and ghost analyses read a central crop at most this side
GHOST_QUALITIES = tuple(range(50, 100, 5))
PERIODICITY_THRESHOLD = 0.35
GHOST_DEPTH = 0.85  # a ghost's difference is under this fraction of both neighbours'
# the first AC coefficients in zigzag order (row, column)
AC_POSITIONS = ((0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0))
RULE = (f"detected when the DCT coefficient histograms show periodic gaps (periodicity score "
        f"over {PERIODICITY_THRESHOLD:g}) or re-saving at a lower quality than the file's "
        f"gives a local minimum of difference (a JPEG ghost under {GHOST_DEPTH:g} of its "
        "neighbours)")


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


def estimate_quality(luma: np.ndarray, chroma: np.ndarray | None) -> tuple[int, bool]:
    """The IJG quality whose tables are nearest, and whether they match exactly."""
    best, best_err, exact = 50, None, False
    for q in range(1, 101):
        err = int(np.abs(ijg_table(IJG_LUMA, q) - luma).sum())
        if chroma is not None:
            err += int(np.abs(ijg_table(IJG_CHROMA, q) - chroma).sum())
        if best_err is None or err < best_err:
            best, best_err = q, err
    exact = best_err == 0
    return best, exact


def read_tables(data: bytes) -> dict[int, np.ndarray]:
    """The file's quantisation tables (natural order) by table id; {} when none."""
    with Image.open(io.BytesIO(data), formats=["JPEG", "MPO"]) as im:
        return {int(k): np.asarray(v, np.int32) for k, v in
                (getattr(im, "quantization", None) or {}).items()}


def _luma_crop(data: bytes) -> np.ndarray:
    """The file's own luminance (the decoder's Y, no colour conversion, no EXIF rotation),
    a central crop on the 8x8 grid."""
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as im:
        if im.mode in ("RGB", "YCbCr", "L"):
            im.draft("L", im.size)
        y = np.asarray(im.convert("L"), dtype=np.float32)
    h, w = y.shape
    ch, cw = min(CROP, h // 8 * 8), min(CROP, w // 8 * 8)
    top, left = (h - ch) // 2 // 8 * 8, (w - cw) // 2 // 8 * 8
    return y[top:top + ch, left:left + cw]


def periodicity(y: np.ndarray, q_luma: np.ndarray) -> tuple[float, int]:
    """Median over low AC positions of the mean |log-curvature| of the histogram of
    quantised coefficients: ~0 for one compression, large where a first, coarser one left
    gaps. Also the number of positions with enough distinct values to judge."""
    from scipy.fft import dctn

    hb, wb = y.shape[0] // 8, y.shape[1] // 8
    blocks = (y[:hb * 8, :wb * 8] - 128.0).reshape(hb, 8, wb, 8)
    coef = dctn(blocks, type=2, norm="ortho", axes=(1, 3))
    table = q_luma.reshape(8, 8)
    scores = []
    for u, v in AC_POSITIONS:
        k = np.rint(coef[:, u, :, v] / table[u, v]).astype(np.int64).ravel()
        k = np.abs(k)
        h = np.bincount(k, minlength=2).astype(np.float64)
        last = int(np.nonzero(h >= 20)[0].max()) if (h >= 20).any() else 0
        if last < 5:
            continue
        logs = np.log(h[:last + 1] + 1.0)
        curv = logs[1:-1] - 0.5 * (logs[:-2] + logs[2:])
        scores.append(float(np.abs(curv).mean()))
    return (float(np.median(scores)) if scores else 0.0), len(scores)


def ghosts(y: np.ndarray, below: int) -> tuple[dict[int, float], list[int]]:
    """Mean squared difference after re-saving at each quality; qualities under ``below``
    that are deep local minima."""
    im = Image.fromarray(y.astype(np.uint8), "L")
    curve: dict[int, float] = {}
    for q in GHOST_QUALITIES:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf, formats=["JPEG"]) as again:
            curve[q] = float(np.mean((np.asarray(again, np.float32) - y) ** 2))
    qs = list(curve)
    found = [q for i, q in enumerate(qs[1:-1], 1)
             if q < below and curve[q] < GHOST_DEPTH * min(curve[qs[i - 1]], curve[qs[i + 1]])]
    return curve, found


def analyse(subject: Subject) -> WitnessResult:
    if subject.format not in ("JPEG", "MPO") or not subject.data:
        kind = subject.format or "unknown format"
        return WitnessResult("jpeg", None, f"not a JPEG ({kind}): no quantisation tables; "
                             "double compression and ghosts not analysed", RULE,
                             {"format": kind})
    with Image.open(io.BytesIO(subject.data), formats=["JPEG", "MPO"]) as im:
        tables = {int(k): np.asarray(v, np.int32) for k, v in
                  (getattr(im, "quantization", None) or {}).items()}
        progressive = bool(im.info.get("progressive") or im.info.get("progression"))
        subsampling = _subsampling(im)
    if not tables or 0 not in tables:
        return WitnessResult("jpeg", None, "JPEG without readable quantisation tables", RULE,
                             {"format": subject.format})
    luma, chroma = tables[0], tables.get(1)
    quality, exact = estimate_quality(luma, chroma)
    family = (f"IJG/libjpeg standard tables at quality {quality}" if exact else
              f"custom tables (camera or software specific), nearest IJG quality {quality}")
    figures: dict = {"tables": {str(k): v.tolist() for k, v in tables.items()},
                     "estimated_quality": quality, "standard_tables": exact,
                     "table_family": family, "progressive": progressive,
                     "subsampling": subsampling}
    y = _luma_crop(subject.data)
    notes = [] if y.shape == (CROP, CROP) or max(y.shape) < CROP else [
        f"DCT histograms and ghosts read the central {y.shape[1]}x{y.shape[0]} crop"]
    score, n_pos = periodicity(y, luma)
    curve, found = ghosts(y, below=quality - 5)
    figures.update(periodicity=round(score, 4), periodicity_positions=n_pos,
                   ghost_curve={str(q): round(v, 3) for q, v in curve.items()},
                   ghost_qualities=found)
    double = score > PERIODICITY_THRESHOLD
    detected = double or bool(found)
    parts = [family]
    if double:
        parts.append("DCT histograms show periodic gaps: compressed twice")
    if found:
        parts.append(f"JPEG ghost at quality {', '.join(map(str, found))}: an earlier save at "
                     "a lower quality")
    if not detected:
        parts.append("no sign of an earlier, lower-quality compression")
    return WitnessResult("jpeg", detected, "; ".join(parts), RULE, figures, notes)


def _subsampling(im: Image.Image) -> str:
    try:
        from PIL import JpegImagePlugin

        return {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(JpegImagePlugin.get_sampling(im),
                                                        "other")
    except Exception:  # noqa: BLE001 -- a fact for the analyst, never a failure
        return "unknown"
