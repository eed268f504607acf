"""Copy-move: a region of the picture duplicated elsewhere in the same picture.

SIFT keypoints are matched against the image's own keypoints (OpenCV); pairs far apart that
agree on one geometric transform (RANSAC) mark a copied region. Can show: a pasted copy of
a textured region, also moved, slightly rotated or scaled. Cannot show: a copy of a flat or
featureless region (no keypoints), regions under ~32 px, a copy from another picture (a
splice: see ELA and noise); repeated patterns (tiles, windows, fences) can match for real.
"""

from __future__ import annotations

import numpy as np

from forensics_app.core.witnesses.base import Subject, WitnessResult, downscaled, png_bytes

MAX_PIXELS = 2_000_000
MAX_KEYPOINTS = 4000
RATIO = 0.6  # the second-nearest match (the nearest is the point itself) against the third
MIN_SHIFT = 32  # pixels between a point and its match
MIN_INLIERS = 12
RANSAC_PX = 3.0
RULE = (f"detected when at least {MIN_INLIERS} SIFT keypoint pairs, each over {MIN_SHIFT} px "
        f"apart and passing a {RATIO:g} ratio test, agree on one similarity transform "
        f"(RANSAC, {RANSAC_PX:g} px)")


def _pairs(gray: np.ndarray):
    import cv2

    cv2.setRNGSeed(0)
    sift = cv2.SIFT_create(nfeatures=MAX_KEYPOINTS)
    kps, desc = sift.detectAndCompute(gray, None)
    if desc is None or len(kps) < 3:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), len(kps or ())
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    src, dst, seen = [], [], set()
    pts = np.float32([k.pt for k in kps])
    for m in matcher.knnMatch(desc, desc, k=3):
        if len(m) < 3:
            continue
        # m[0] is the point itself; m[1] a candidate copy when clearly nearer than m[2]
        a, b = m[1].queryIdx, m[1].trainIdx
        if m[1].distance >= RATIO * m[2].distance:
            continue
        if np.hypot(*(pts[a] - pts[b])) < MIN_SHIFT:
            continue
        key = (min(a, b), max(a, b))
        if key in seen:
            continue
        seen.add(key)
        src.append(pts[a])
        dst.append(pts[b])
    return np.float32(src).reshape(-1, 2), np.float32(dst).reshape(-1, 2), len(kps)


def _orient(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pair ordered the same way (by the sign of the larger shift component), so one
    transform maps every source to its copy."""
    d = dst - src
    flip = np.where(np.abs(d[:, 0]) >= np.abs(d[:, 1]), d[:, 0] < 0, d[:, 1] < 0)
    s, t = src.copy(), dst.copy()
    s[flip], t[flip] = dst[flip], src[flip]
    return s, t


def analyse(subject: Subject) -> WitnessResult:
    import cv2

    image, scale, notes = downscaled(subject.image, MAX_PIXELS)
    g = np.asarray(image.convert("L"), np.uint8)
    src, dst, n_kp = _pairs(g)
    figures: dict = {"keypoints": n_kp, "candidate_pairs": int(len(src)), "inliers": 0,
                     "boxes": []}
    canvas = np.asarray(image.convert("RGB"), np.uint8).copy()
    detected = False
    if len(src) >= MIN_INLIERS:
        s, t = _orient(src, dst)
        _model, mask = cv2.estimateAffinePartial2D(
            s, t, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000,
            confidence=0.995, refineIters=0)
        inl = mask.ravel().astype(bool) if mask is not None else np.zeros(len(s), bool)
        figures["inliers"] = int(inl.sum())
        detected = bool(inl.sum() >= MIN_INLIERS)
        if detected:
            boxes = []
            for pts in (s[inl], t[inl]):
                x0, y0 = pts.min(axis=0)
                x1, y1 = pts.max(axis=0)
                boxes.append([round(float(v) / scale) for v in (x0, y0, x1 - x0, y1 - y0)])
                cv2.rectangle(canvas, (int(x0), int(y0)), (int(x1), int(y1)), (255, 0, 0), 2)
            for p, q in zip(s[inl], t[inl], strict=True):
                cv2.line(canvas, tuple(int(v) for v in p), tuple(int(v) for v in q),
                         (255, 255, 0), 1)
            figures["boxes"] = boxes
    finding = (f"a region is duplicated: {figures['inliers']} keypoint pairs agree on one "
               "copy transform (boxes in image pixels)" if detected
               else "no duplicated region found among the keypoints")
    return WitnessResult("clone", detected, finding, RULE, figures, notes,
                         map_png=png_bytes(canvas))
