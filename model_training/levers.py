"""Table of training runs for the model card: one row per ``model_training.bundled`` run folder.

    python -m model_training.levers runs/lever_* runs/bundled > levers.md

Each row says what the run used (data sources, input, trunk, crop, augmentation probability,
steps, training time) and what it measured (dev_test AP per set and their mean, the share of
held-out real photos called generated at the shipped threshold). A last row gives the
smoothness cue on the same sets, the baseline every run must beat.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEV_SETS = ("dalle_mini", "glid3", "latent_diffusion", "sd15_dreamshaper", "sentry_mixed",
            "stylegan2_lsun")


def describe(recipe: dict[str, Any]) -> dict[str, str]:
    fakes = recipe.get("fakes", {})
    aligned = []
    if recipe.get("generators") != []:
        aligned += [f"ae-{a}" for a in fakes.get("autoencoders", ["nearest:2", "transposed:2"])]
        aligned += [f"esrgan-{g}" for g in fakes.get("realesrgan", ["animevideov3"])]
        if fakes.get("x4plus_count", 120):
            aligned.append("esrgan-x4plus")
        if fakes.get("taef2"):
            aligned.append("taef2")
    data = "+".join(aligned) or "-"
    if recipe.get("unaligned"):
        dirs = [Path(d).name for d in recipe["unaligned"].get("fake_dirs", [])]
        per_folder = ", per folder" if recipe.get("unaligned_balance") == "folder" else ""
        data += (f"; unaligned {'+'.join(dirs)} "
                 f"({recipe.get('unaligned_fraction', 0.5):.0%}{per_folder})")
    arch = recipe.get("arch", {})
    width = arch.get("width", 64)
    return {
        "data (aligned fakes; unaligned)": data,
        "network": arch.get("name", "resnet50") + ("" if width == 64 else f" width {width}"),
        "input": arch.get("input_transform", "none"),
        "stages": str(arch.get("stages", 4)),
        "crop": str(recipe.get("crop")),
        "p": f"{recipe.get('blur_prob', 0.5):g}",
        "steps": str(recipe.get("steps")),
    }


def row_for(run: Path) -> dict[str, str] | None:
    res_path, rec_path = run / "results.json", run / "recipe.json"
    if not res_path.is_file() or not rec_path.is_file():
        return None
    res = json.loads(res_path.read_text())
    recipe = json.loads(rec_path.read_text())
    ap = {r["set"]: r["ap"] for r in res["rows"]}
    row = {"run": run.name, **describe(recipe),
           "train s": str(res.get("train", {}).get("seconds", ""))}
    vals = [ap[s] for s in DEV_SETS if s in ap]
    for s in DEV_SETS:
        row[s] = f"{100 * ap[s]:.1f}" if s in ap else ""
    row["mAP"] = f"**{100 * sum(vals) / len(vals):.1f}**" if vals else ""
    row["real FPR"] = f"{100 * res.get('heldout_original_fpr', float('nan')):.1f}"
    return row


def cue_row(run: Path) -> dict[str, str]:
    res = json.loads((run / "results.json").read_text())
    ap = {r["set"]: r["ap"] for r in res["baselines"] if r["method"] == "smoothness"}
    row = {"run": "smoothness cue"}
    for s in DEV_SETS:
        row[s] = f"{100 * ap[s]:.1f}" if s in ap else ""
    vals = [ap[s] for s in DEV_SETS if s in ap]
    row["mAP"] = f"{100 * sum(vals) / len(vals):.1f}" if vals else ""
    return row


def table(runs: list[Path]) -> str:
    rows = [r for r in (row_for(p) for p in runs) if r]
    if not rows:
        return "(no finished runs)\n"
    rows.append(cue_row(next(p for p in runs if (p / "results.json").is_file())))
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(":--" for _ in cols) + "|"]
    lines += ["| " + " | ".join(r.get(c, "") for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def detail(run: Path) -> str:
    """Per dev set: AP, accuracies at the shipped threshold, the cue, and the robustness APs."""
    res = json.loads((run / "results.json").read_text())
    rows = {r["set"]: r for r in res["rows"]}
    cue = {r["set"]: r["ap"] for r in res["baselines"] if r["method"] == "smoothness"}
    rob = {(r["perturbation"], r["set"]): r["ap"] for r in res.get("robustness", [])
           if not r.get("method")}
    kinds = sorted({k for k, _ in rob})
    cols = ["dev_test set", "AP", "acc", "real acc", "fakes caught", "smoothness-cue AP",
            *[f"AP after {k}" for k in kinds]]
    lines = ["| " + " | ".join(cols) + " |", "|:--" + "|--:" * (len(cols) - 1) + "|"]
    sums: dict[str, list[float]] = {c: [] for c in cols[1:]}
    for s in DEV_SETS:
        if s not in rows:
            continue
        r = rows[s]
        vals = [r["ap"], r["acc"], r["real_acc"], r["fake_acc"], cue.get(s, float("nan")),
                *[rob.get((k, s), float("nan")) for k in kinds]]
        for c, v in zip(cols[1:], vals, strict=True):
            sums[c].append(v)
        lines.append(f"| {s} | " + " | ".join(f"{100 * v:.1f}" for v in vals) + " |")
    lines.append("| **mean** | " + " | ".join(
        f"**{100 * sum(v) / len(v):.1f}**" if v else "" for v in sums.values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model_training.levers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--detail", action="store_true",
                   help="per-set table of each run (accuracies, cue, robustness)")
    args = p.parse_args(argv)
    if args.detail:
        for run in args.runs:
            sys.stdout.write(f"{run.name}\n\n{detail(run)}\n")
    else:
        sys.stdout.write(table(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
