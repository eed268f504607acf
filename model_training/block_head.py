"""Detector v4's semantic head: chosen on cached per-block CLIP features (``block_cache``).

``python -m model_training.block_head --cache runs/blocks --out runs/v4_head.json`` compares
candidate heads and writes the chosen one, calibrated, with every validation figure.

Protocol (issue 38; ``../shared/DETECTION_NOTES.md``, the v2.1 lesson) — fixed before any run:

- **Data:** every real domain (web photos, faces, camera photos, non-photos) and every fake
  family of ``train/`` and ``extra/``, each file as two variants (``n90``, ``aug``: the same
  transforms for both classes). Sample weights give every real domain the same total weight,
  every fake family the same total weight, and the two classes the same total weight.
- **Halves:** files are split into two fixed halves by a hash of the file name (a TAEF2 fake
  inherits its real's half), so no file is on both sides of a fit.
- **LOFO** (leave one fake family out): fit on half H's reals + every other family; score the
  other half's reals against the held-out family (its ``n90`` variant); AP averaged over the
  two halves. Ranked by the LOFO mean, then the worst family.
- **LORDO** (leave one real domain out): fit on half A without domain D; the threshold is the
  rule below computed on half B's reals of the other domains; D's false-positive rate is
  measured on all of D (both variants).
- **Threshold rule:** the largest, over real domains, of the 95th percentile of out-of-fold
  real logits of that domain (both variants): at most 5% of every training domain's reals
  called generated. The shipped head is refitted on everything, and its logit is shifted so
  that 0 is that threshold.
- **Domain check:** a Gaussian per real domain and per fake family in a PCA space of the
  features; an image whose smallest Mahalanobis distance exceeds the 99.5th percentile of the
  training images' own distances is "outside the validated domains" (Inconclusive in the app).
- ``dev_test`` is scored once for the chosen candidate (``--dev``) and never drives a choice.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from model_training.block_cache import FAKE_GROUPS, MODERN, REAL_DOMAIN, REAL_GROUPS, load_view

N_BLOCKS, WIDTH = 12, 768
# Modern families with fewer than 20 files are held out together (an AP on 4 files says little).
SMALL_MODERN = ("imagen", "infinity", "kandinsky", "omnigen", "sdxl")


def family_of(group: str) -> str:
    name = group.split("/", 1)[1]
    if name.startswith("modern_") and name[7:] in SMALL_MODERN:
        return "modern_small"
    return name


@dataclass
class Pool:
    blocks: np.ndarray  # [N, 12*768]
    emb: np.ndarray  # [N, 512]
    y: np.ndarray
    kind: np.ndarray  # real domain (label 0) or fake family (label 1)
    variant: np.ndarray
    half: np.ndarray
    paths: list[str] = field(default_factory=list)

    def take(self, mask: np.ndarray) -> Pool:
        return Pool(self.blocks[mask], self.emb[mask], self.y[mask], self.kind[mask],
                    self.variant[mask], self.half[mask], [p for p, m in zip(self.paths, mask, strict=True)
                                                          if m])


def _half(path: str) -> int:
    return hashlib.sha256(Path(path).name.encode()).digest()[0] & 1


def load_pool(cache: Path, variants: tuple[str, ...] = ("n90", "aug")) -> Pool:
    parts = []
    groups = ([f"real/{g}" for g in REAL_GROUPS] + [f"fake/{g}" for g in FAKE_GROUPS]
              + [f"fake/modern_{m}" for m in MODERN] + ["fake/taef2"])
    for g in groups:
        for v in variants:
            got = load_view(cache, f"{g}/{v}")
            if got is None or not got[0]:
                continue
            paths, emb, blocks, label = got
            kind = REAL_DOMAIN[g.split("/")[1]] if label == 0 else family_of(g)
            parts.append((paths, emb, blocks, label, kind, v))
    if not parts:
        raise SystemExit(f"{cache}: no cached features (run model_training.block_cache)")
    paths = [p for part in parts for p in part[0]]
    return Pool(
        blocks=np.concatenate([p[2] for p in parts]),
        emb=np.concatenate([p[1] for p in parts]),
        y=np.concatenate([np.full(len(p[0]), p[3]) for p in parts]),
        kind=np.concatenate([np.full(len(p[0]), p[4], dtype=object) for p in parts]),
        variant=np.concatenate([np.full(len(p[0]), p[5], dtype=object) for p in parts]),
        half=np.array([_half(p) for p in paths]),
        paths=paths,
    )


def sample_weights(pool: Pool) -> np.ndarray:
    """Every real domain the same total weight, every fake family too, classes balanced."""
    w = np.zeros(len(pool.y), np.float64)
    for label in (0, 1):
        kinds = sorted(set(pool.kind[pool.y == label]))
        for k in kinds:
            m = (pool.y == label) & (pool.kind == k)
            w[m] = 0.5 / len(kinds) / m.sum()
    return w * len(w)


# ---------------------------------------------------------------------------------------------
# Features and heads


def features(pool: Pool, name: str) -> np.ndarray:
    if name == "final":
        return pool.emb
    if name == "blocks":
        return pool.blocks
    if name == "blocks+final":
        return np.concatenate([pool.blocks, pool.emb], axis=1)
    if name.startswith("blocks"):  # e.g. "blocks3-8": CLS of blocks 3..8 (1-based)
        lo, hi = (int(x) for x in name[6:].split("-"))
        return pool.blocks[:, (lo - 1) * WIDTH:hi * WIDTH]
    raise ValueError(name)


@dataclass
class Head:
    """Standardise, then a linear logit (every candidate ships as this form)."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weight + self.bias


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> Head:
    """Weighted L2-regularised logistic regression, full-batch L-BFGS (torch, deterministic)."""
    mean = x.mean(0)
    scale = x.std(0)
    scale = np.where(scale > 1e-6, scale, 1.0)
    z = torch.from_numpy(((x - mean) / scale).astype(np.float32))
    t = torch.from_numpy(y.astype(np.float32))
    sw = torch.from_numpy((w / w.sum()).astype(np.float32))
    torch.manual_seed(0)
    lin = torch.nn.Linear(z.shape[1], 1)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=150, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6)

    def closure():
        opt.zero_grad()
        out = lin(z).squeeze(1)
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(out, t, reduction="none")
                * sw).sum() + 0.5 * l2 * (lin.weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return Head(mean.astype(np.float32), scale.astype(np.float32),
                lin.weight.detach().numpy()[0].astype(np.float32), float(lin.bias.item()))


@dataclass(frozen=True)
class Candidate:
    features: str
    l2: float

    @property
    def name(self) -> str:
        return f"{self.features} l2={self.l2:g}"

    def fit(self, pool: Pool) -> Head:
        return fit_logistic(features(pool, self.features), pool.y, sample_weights(pool), self.l2)

    def score(self, head: Head, pool: Pool) -> np.ndarray:
        return head.logits(features(pool, self.features))


def ap(real: np.ndarray, fake: np.ndarray) -> float:
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    return 100.0 * float(average_precision_score(y, np.r_[real, fake]))


def threshold_rule(real_logits: dict[str, np.ndarray], q: float = 95.0) -> float:
    return max(float(np.percentile(v, q)) for v in real_logits.values() if len(v))


# ---------------------------------------------------------------------------------------------
# Validation


def lofo(pool: Pool, cand: Candidate) -> dict[str, float]:
    out = {}
    for fam in sorted(set(pool.kind[pool.y == 1])):
        aps = []
        for h in (0, 1):
            train = ((pool.y == 0) & (pool.half == h)) | ((pool.y == 1) & (pool.kind != fam))
            head = cand.fit(pool.take(train))
            test_real = (pool.y == 0) & (pool.half != h) & (pool.variant == "n90")
            test_fake = (pool.kind == fam) & (pool.variant == "n90")
            aps.append(ap(cand.score(head, pool.take(test_real)),
                          cand.score(head, pool.take(test_fake))))
        out[fam] = float(np.mean(aps))
    return out


def out_of_fold(pool: Pool, cand: Candidate) -> np.ndarray:
    scores = np.zeros(len(pool.y), np.float64)
    for h in (0, 1):
        head = cand.fit(pool.take(pool.half == h))
        scores[pool.half != h] = cand.score(head, pool.take(pool.half != h))
    return scores


def per_kind_at(pool: Pool, scores: np.ndarray, thr: float) -> dict[str, dict[str, float]]:
    out = {}
    for k in sorted(set(pool.kind)):
        m = pool.kind == k
        called = 100.0 * float((scores[m] >= thr).mean())
        out[k] = {"n": int(m.sum()), "called_generated" if k in REAL_DOMAIN.values()
                  else "caught": round(called, 1)}
    return out


def lordo(pool: Pool, cand: Candidate) -> tuple[dict[str, float], dict[str, float]]:
    """Each real domain held out: its share called generated at the rule's threshold set
    without it, and (second) the share of it the domain check fitted without it would make
    Inconclusive (outside the validated domains) instead."""
    out, flagged = {}, {}
    for dom in sorted(set(pool.kind[pool.y == 0])):
        fprs, outs = [], []
        for h in (0, 1):
            train = (pool.half == h) & (pool.kind != dom)
            head = cand.fit(pool.take(train))
            calib = (pool.half != h) & (pool.y == 0) & (pool.kind != dom)
            s = cand.score(head, pool.take(calib))
            kinds = pool.kind[calib]
            thr = threshold_rule({k: s[kinds == k] for k in set(kinds)})
            held = pool.kind == dom
            called = cand.score(head, pool.take(held)) >= thr
            dm = fit_domain_model(pool.emb[train], pool.kind[train])
            far = dm.distance(pool.emb[held])[0] > dm.limit
            fprs.append(100.0 * float((called & ~far).mean()))
            outs.append(100.0 * float(far.mean()))
        out[dom] = float(np.mean(fprs))
        flagged[dom] = float(np.mean(outs))
    return out, flagged


def face_ap(pool: Pool, cand: Candidate) -> float:
    """Real faces vs GAN faces with the GAN-face family held out (LOFO over the face family)."""
    aps = []
    for h in (0, 1):
        train = ((pool.y == 0) & (pool.half == h)) | ((pool.y == 1) & (pool.kind != "gan_faces"))
        head = cand.fit(pool.take(train))
        real = (pool.kind == "faces") & (pool.half != h) & (pool.variant == "n90")
        fake = (pool.kind == "gan_faces") & (pool.variant == "n90")
        aps.append(ap(cand.score(head, pool.take(real)), cand.score(head, pool.take(fake))))
    return float(np.mean(aps))


# ---------------------------------------------------------------------------------------------
# Domain check


@dataclass
class DomainModel:
    mean: np.ndarray  # feature standardisation
    scale: np.ndarray
    components: np.ndarray  # [k, D] PCA directions
    centres: np.ndarray  # [G, k]
    inv_var: np.ndarray  # [G, k] diagonal inverse variances per group
    names: list[str]
    limit: float

    def distance(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = ((x - self.mean) / self.scale) @ self.components.T
        d = np.sqrt((((z[:, None, :] - self.centres[None]) ** 2) * self.inv_var[None]).mean(-1))
        return d.min(1), d.argmin(1)


def fit_domain_model(x: np.ndarray, kinds: np.ndarray, k: int = 32, q: float = 99.5
                     ) -> DomainModel:
    mean = x.mean(0)
    scale = np.where(x.std(0) > 1e-6, x.std(0), 1.0)
    z = (x - mean) / scale
    _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
    comps = vt[:k]
    p = z @ comps.T
    names = sorted(set(kinds))
    centres = np.stack([p[kinds == n].mean(0) for n in names])
    inv_var = np.stack([1.0 / np.maximum(p[kinds == n].var(0), 1e-3) for n in names])
    dm = DomainModel(mean, scale, comps, centres, inv_var, names, 0.0)
    dm.limit = float(np.percentile(dm.distance(x)[0], q))
    return dm


# ---------------------------------------------------------------------------------------------


def dev_report(cache: Path, cand: Candidate, head: Head, thr: float) -> dict:
    rows = {}
    dev_sets = sorted({p.name.split("__")[1] for p in cache.glob("dev__*.npz")})
    for s in dev_sets:
        for view in ("orig", "q75", "half"):
            r = load_view(cache, f"dev/{s}/0_real/{view}")
            f = load_view(cache, f"dev/{s}/1_fake/{view}")
            if r is None or f is None:
                continue
            rp = Pool(r[2], r[1], np.zeros(len(r[0])), np.array([]), np.array([]), np.array([]))
            fp = Pool(f[2], f[1], np.ones(len(f[0])), np.array([]), np.array([]), np.array([]))
            lr, lf = cand.score(head, rp), cand.score(head, fp)
            rows[f"{s}/{view}"] = {
                "n": [len(lr), len(lf)], "ap": round(ap(lr, lf), 1),
                "real_called_generated": round(100 * float((lr >= thr).mean()), 1),
                "fake_caught": round(100 * float((lf >= thr).mean()), 1)}
    return rows


CANDIDATES = (
    Candidate("final", 1e-3),
    Candidate("blocks", 1e-3),
    Candidate("blocks", 1e-2),
    Candidate("blocks", 1e-1),
)


def main(argv: list[str] | None = None) -> int:
    ap_ = argparse.ArgumentParser(prog="python -m model_training.block_head")
    ap_.add_argument("--cache", type=Path, default=Path("runs/blocks"))
    ap_.add_argument("--out", type=Path, default=Path("runs/v4_head.json"))
    ap_.add_argument("--only", help="comma-separated candidate names to compare")
    ap_.add_argument("--dev", action="store_true", help="score dev_test once for the chosen")
    args = ap_.parse_args(argv)
    t0 = time.time()
    pool = load_pool(args.cache)
    counts = {k: int((pool.kind == k).sum()) for k in sorted(set(pool.kind))}
    print(f"pool: {len(pool.y)} rows {counts}", flush=True)
    cands = [c for c in CANDIDATES if not args.only or c.name in args.only.split(",")]
    report = {"pool": counts, "candidates": []}
    for cand in cands:
        fam = lofo(pool, cand)
        dom, far = lordo(pool, cand)
        entry = {"name": cand.name, "features": cand.features, "l2": cand.l2,
                 "lofo": {k: round(v, 1) for k, v in fam.items()},
                 "lofo_mean": round(float(np.mean(list(fam.values()))), 1),
                 "lofo_worst": round(float(min(fam.values())), 1),
                 "lordo_fpr": {k: round(v, 1) for k, v in dom.items()},
                 "lordo_mean": round(float(np.mean(list(dom.values()))), 1),
                 "lordo_worst": round(float(max(dom.values())), 1),
                 "lordo_outside_domains": {k: round(v, 1) for k, v in far.items()},
                 "face_ap": round(face_ap(pool, cand), 1)}
        report["candidates"].append(entry)
        print(json.dumps(entry), f"{time.time() - t0:.0f}s", flush=True)
    # The choice: LOFO mean, ties (within 0.5 AP) by the LORDO worst FPR.
    best = max(report["candidates"], key=lambda e: (round(e["lofo_mean"] * 2) / 2,
                                                   -e["lordo_worst"], e["lofo_worst"]))
    cand = next(c for c in cands if c.name == best["name"])
    oof = out_of_fold(pool, cand)
    reals = pool.y == 0
    thr = threshold_rule({k: oof[reals & (pool.kind == k)] for k in set(pool.kind[reals])})
    head = cand.fit(pool)
    head.bias -= thr  # logit 0 = the rule's threshold
    dm = fit_domain_model(pool.emb, pool.kind)  # on the final embedding (512-d, small)
    report.update({
        "selection": "LOFO mean (0.5-AP steps), then LORDO worst FPR, then LOFO worst",
        "chosen": best, "threshold_rule": "max over real domains of the 95th percentile of "
                                          "out-of-fold logits", "threshold_logit_raw": thr,
        "oof_at_threshold": per_kind_at(pool, oof, thr),
        "domain_check": {"k": int(dm.components.shape[0]), "limit": dm.limit,
                         "groups": dm.names},
        "head": {"kind": "logistic", "features": cand.features, "mean": head.mean.tolist(),
                 "scale": head.scale.tolist(), "weight": head.weight.tolist(),
                 "bias": head.bias},
        "domain_model": {"mean": dm.mean.tolist(), "scale": dm.scale.tolist(),
                         "components": dm.components.tolist(), "centres": dm.centres.tolist(),
                         "inv_var": dm.inv_var.tolist(), "names": dm.names,
                         "limit": dm.limit},
    })
    if args.dev:
        report["dev"] = dev_report(args.cache, cand, head, 0.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report))
    print(json.dumps({k: v for k, v in report.items()
                      if k not in ("head", "domain_model", "candidates")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
