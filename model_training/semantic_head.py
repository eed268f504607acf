"""Train and select the semantic branch's head on cached CLIP embeddings (``embed_cache``).

Selection protocol (the v2.1 lesson, ``../shared/DETECTION_NOTES.md``): candidates are compared
**only** on leave-one-generator-family-out (LOFO) validation inside the training data. The reals
are split into two fixed halves A/B by a hash of the file name; for each held-out family F and
each half H, a head is trained on the other half's reals, the other families' fakes (TAEF2
fakes only of the training half's reals, so no real photo's content sits on both sides) and
scored on the held-out half's reals vs F (TAEF2: the held-out half's own reconstructions). The
AP of the two halves is averaged per family; a candidate is ranked by its LOFO mean, ties by
its worst family. dev_test is scored once, for the chosen candidate only (``--dev``).

The shipped threshold is set on out-of-fold training reals (each real scored by a head that
did not see it) at a target false-positive rate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from forensics_app.core.semantic import LinearHead
from model_training.embed_cache import load_view

REAL_VIEWS = ("train/imagenet_sample/n90", "train/bsds500/n90", "train/synthetic_real/n90")
FAKE_FAMILIES = {
    "sd14": "train/sd14/n90", "sd15": "train/sd15/n90",
    "stylegan2": "train/stylegan2/n90", "taef2": "train/taef2/n90",
}
# Photographic face generators among the StyleGAN2 models: the shared reals hold almost no
# faces, so these teach "a photo of a face = generated" (pilot 4: 94% of real face photos
# flagged). Excluded from training when ``exclude_face_photos`` (painted/anime faces stay).
FACE_PHOTO_MODELS = ("faces__ffhq", "obama")


@dataclass(frozen=True)
class Candidate:
    C: float = 1.0
    use_taef2: bool = True
    exclude_face_photos: bool = True

    @property
    def name(self) -> str:
        return (f"C={self.C:g}" + (" +taef2" if self.use_taef2 else "")
                + (" -facephotos" if self.exclude_face_photos else ""))


@dataclass
class Pool:
    emb: np.ndarray
    label: np.ndarray
    family: np.ndarray  # "real" or a fake family
    half: np.ndarray  # 0/1 split of the reals; TAEF2 fakes inherit their real's half
    face_photo: np.ndarray
    names: list[str]


def _half_of(name: str) -> int:
    return hashlib.sha256(Path(name).name.encode()).digest()[0] & 1


def load_pool(cache: Path) -> Pool:
    embs, labels, fams, halves, faces, names = [], [], [], [], [], []
    for view in REAL_VIEWS:
        got = load_view(cache, view)
        if got is None:
            continue
        paths, e, _ = got
        embs.append(e)
        labels += [0] * len(paths)
        fams += ["real"] * len(paths)
        halves += [_half_of(p) for p in paths]
        faces += [False] * len(paths)
        names += paths
    for fam, view in FAKE_FAMILIES.items():
        got = load_view(cache, view)
        if got is None:
            continue
        paths, e, _ = got
        embs.append(e)
        labels += [1] * len(paths)
        fams += [fam] * len(paths)
        halves += [_half_of(p) if fam == "taef2" else -1 for p in paths]
        faces += [fam == "stylegan2" and Path(p).name.startswith(FACE_PHOTO_MODELS)
                  for p in paths]
        names += paths
    return Pool(np.concatenate(embs), np.array(labels), np.array(fams), np.array(halves),
                np.array(faces), names)


def fit_head(x: np.ndarray, y: np.ndarray, C: float) -> LinearHead:
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    clf.fit((x - mean) / scale, y)
    return LinearHead(clf.coef_[0].astype(np.float32), float(clf.intercept_[0]),
                      mean.astype(np.float32), scale.astype(np.float32))


def _train_mask(pool: Pool, cand: Candidate, held_family: str | None, half: int | None) -> np.ndarray:
    m = np.ones(len(pool.label), bool)
    if held_family is not None:
        m &= pool.family != held_family
    if half is not None:
        # reals and TAEF2 fakes of the held-out half stay out of training
        m &= ~(((pool.family == "real") | (pool.family == "taef2")) & (pool.half == half))
    if not cand.use_taef2:
        m &= pool.family != "taef2"
    if cand.exclude_face_photos:
        m &= ~pool.face_photo
    return m


def lofo(pool: Pool, cand: Candidate) -> dict:
    """Per held-out family AP (mean of the two real halves), plus out-of-fold real scores."""
    per_family: dict[str, float] = {}
    oof_real = np.full(len(pool.label), np.nan)
    oof_fake: list[np.ndarray] = []
    for fam in FAKE_FAMILIES:
        if not (pool.family == fam).any() or (fam == "taef2" and not cand.use_taef2):
            continue
        aps = []
        for half in (0, 1):
            train = _train_mask(pool, cand, fam, half)
            head = fit_head(pool.emb[train], pool.label[train], cand.C)
            test_real = (pool.family == "real") & (pool.half == half)
            test_fake = pool.family == fam
            if fam == "taef2":
                test_fake &= pool.half == half
            test = test_real | test_fake
            s = head.logits(pool.emb[test])
            aps.append(average_precision_score(pool.label[test], s))
            oof_fake.append(head.logits(pool.emb[test_fake]))
            oof = head.logits(pool.emb[test_real])
            idx = np.flatnonzero(test_real)
            oof_real[idx] = np.where(np.isnan(oof_real[idx]), oof, np.fmax(oof_real[idx], oof))
        per_family[fam] = 100 * float(np.mean(aps))
    vals = list(per_family.values())
    return {"candidate": cand.name, "per_family": per_family, "mean": float(np.mean(vals)),
            "worst": float(np.min(vals)), "oof_real_logits": oof_real,
            "oof_fake_logits": np.concatenate(oof_fake)}


def calibrated(head: LinearHead, real: np.ndarray, fake: np.ndarray, fpr: float
               ) -> tuple[LinearHead, dict]:
    """The head rescaled so that logit 0 is the threshold at ``fpr`` on out-of-fold reals and
    the slope is Platt's, fitted on out-of-fold scores (held-out reals vs held-out families)."""
    real = real[np.isfinite(real)]
    thr = threshold_at_fpr(real, fpr)
    x = np.r_[real, fake] - thr
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    platt = LogisticRegression(C=1e4, class_weight="balanced").fit(x[:, None], y)
    a = float(max(platt.coef_[0, 0], 1e-3))
    out = LinearHead(head.weight * a, (head.bias - thr) * a, head.mean, head.scale)
    return out, {"threshold_logit_raw": thr, "platt_slope": a, "target_fpr": fpr,
                 "on": f"{len(real)} out-of-fold training reals, {len(fake)} held-out fakes",
                 "oof_real_fpr": float((real >= thr).mean())}


def final_head(pool: Pool, cand: Candidate) -> LinearHead:
    m = _train_mask(pool, cand, None, None)
    return fit_head(pool.emb[m], pool.label[m], cand.C)


def threshold_at_fpr(real_logits: np.ndarray, fpr: float) -> float:
    r = np.sort(real_logits[np.isfinite(real_logits)])
    return float(np.quantile(r, 1 - fpr))


def dev_report(cache: Path, head: LinearHead, threshold_logit: float) -> dict:
    """Per dev_test set and view: AP, real FPR and fakes caught at the threshold."""
    out: dict = {}
    sets = sorted({p.name.split("__")[1] for p in cache.glob("dev__*__0_real__orig.npz")})
    for s in sets:
        for view in ("orig", "q75", "half"):
            r = load_view(cache, f"dev/{s}/0_real/{view}")
            f = load_view(cache, f"dev/{s}/1_fake/{view}")
            if r is None or f is None:
                continue
            lr, lf = head.logits(r[1]), head.logits(f[1])
            y = np.r_[np.zeros(len(lr)), np.ones(len(lf))]
            out.setdefault(s, {})[view] = {
                "ap": 100 * float(average_precision_score(y, np.r_[lr, lf])),
                "real_fpr": 100 * float((lr >= threshold_logit).mean()),
                "fake_caught": 100 * float((lf >= threshold_logit).mean()),
                "n": [len(lr), len(lf)],
            }
    return out


TIE_AP = 0.5
CANDIDATES = [
    Candidate(C, taef2, faces)
    for C in (0.01, 0.1, 1.0)
    for taef2 in (True, False)
    for faces in (True, False)
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_training.semantic_head")
    ap.add_argument("--cache", type=Path, default=Path("runs/embeddings"))
    ap.add_argument("--out", type=Path, default=Path("runs/semantic_head.json"))
    ap.add_argument("--fpr", type=float, default=0.05)
    ap.add_argument("--dev", action="store_true",
                    help="score the chosen candidate once on dev_test (never used to choose)")
    args = ap.parse_args(argv)
    pool = load_pool(args.cache)
    counts = {f: int((pool.family == f).sum()) for f in np.unique(pool.family)}
    print("pool:", counts, "face-photo fakes:", int(pool.face_photo.sum()))
    results = []
    for cand in CANDIDATES:
        r = lofo(pool, cand)
        results.append((cand, r))
        fams = " ".join(f"{k} {v:.1f}" for k, v in r["per_family"].items())
        print(f"{cand.name:28s} LOFO mean {r['mean']:.1f} worst {r['worst']:.1f} | {fams}")
    # Compare on the families every candidate was scored on (TAEF2 is held out only by those
    # that train on it), mean first, worst family second.
    common = set.intersection(*(set(r["per_family"]) for _, r in results))

    def mean_worst(item):
        vals = [item[1]["per_family"][f] for f in common]
        return float(np.mean(vals)), float(np.min(vals))

    # Candidates within TIE_AP of the best LOFO mean are tied (the split-half noise is about
    # that large); ties go to the one with more content controls, then to the best worst family.
    top = max(mean_worst(item)[0] for item in results)
    tied = [item for item in results if mean_worst(item)[0] >= top - TIE_AP]
    best_cand, best = max(tied, key=lambda item: (
        item[0].exclude_face_photos + item[0].use_taef2, mean_worst(item)[1]))
    head, calib = calibrated(final_head(pool, best_cand), best["oof_real_logits"],
                             best["oof_fake_logits"], args.fpr)
    thr = 0.0  # the calibrated head's own threshold
    report = {
        "pool": counts, "face_photo_fakes": int(pool.face_photo.sum()),
        "selection": ("LOFO mean over " + ", ".join(sorted(common)) + f"; candidates within "
                      f"{TIE_AP} AP of the best are tied, ties go to more content controls, "
                      "then the best worst family"),
        "candidates": [{**asdict(c), "name": c.name, "per_family": r["per_family"],
                        "mean": r["mean"], "worst": r["worst"]} for c, r in results],
        "chosen": {**asdict(best_cand), "name": best_cand.name},
        "threshold_logit": thr, "target_fpr": args.fpr, "calibration": calib,
        "head": head.to_record(),
    }
    if args.dev:
        report["dev_test"] = dev_report(args.cache, head, thr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print("chosen:", best_cand.name, "calibration", calib)
    if args.dev:
        for s, v in report["dev_test"].items():
            print(s, {k: (round(x["ap"], 1), round(x["real_fpr"], 1), round(x["fake_caught"], 1))
                      for k, x in v.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
