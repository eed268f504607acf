"""dev_test through the app's own scan engine, per branch and fused (scored once per candidate
that is to ship; never used to choose).

``python -m model_training.dev_branches --model runs/v31/detector.pt --dev ../shared/data/dev_test
--out runs/v31/dev.json`` scans every image of every set with ``core.scan.scan_files`` (the same
decode, tiling, branches and fusion as ``forensics-scan``) and reports per set: AP of the
fused score and of each branch, real photos called generated and fakes caught at the shipped
threshold, and AP after JPEG q75 / 0.5× down-scaling of the first ``--robust`` images of each
class (a fixed order), both classes alike.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import average_precision_score

from model_training.embed_cache import list_images


def _perturbed(files: list[Path], kind: str, folder: Path) -> list[Path]:
    out = []
    for i, p in enumerate(files):
        with Image.open(p) as im:
            im = im.convert("RGB")
            if kind == "half":
                im = im.resize((max(1, im.width // 2), max(1, im.height // 2)),
                               Image.Resampling.BICUBIC)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=75 if kind == "q75" else 95)
        dst = folder / f"{i:04d}_{p.stem}.jpg"
        dst.write_bytes(buf.getvalue())
        out.append(dst)
    return out


def _scores(det, files: list[Path]) -> dict[str, np.ndarray]:
    from forensics_app.core.scan import ScanOptions, scan_files

    res = scan_files(files, det, ScanOptions())
    bad = [r for r in res if r.prob_fake is None]
    if bad:
        raise RuntimeError(f"{len(bad)} files not scored, e.g. {bad[0].path}: {bad[0].error}")
    out = {"fused": np.array([r.prob_fake for r in res])}
    for k in res[0].branch_probs:
        out[k] = np.array([r.branch_probs[k] for r in res])
    return out


def _ap(real: np.ndarray, fake: np.ndarray) -> float:
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    return 100 * float(average_precision_score(y, np.r_[real, fake]))


def evaluate(model: Path, dev: Path, robust: int) -> dict:
    from forensics_app.core.detector import Detector

    det = Detector.from_checkpoint(model, device="cpu")
    thr = det.checkpoint.threshold
    report: dict = {"model_id": det.model_id, "threshold": thr, "sets": {}}
    for s in sorted(p for p in dev.iterdir() if p.is_dir()):
        real_f, fake_f = list_images(s / "0_real"), list_images(s / "1_fake")
        r, f = _scores(det, real_f), _scores(det, fake_f)
        row = {"n": [len(real_f), len(fake_f)],
               "ap": {k: _ap(r[k], f[k]) for k in r},
               "real_fpr": 100 * float((r["fused"] >= thr).mean()),
               "fake_caught": 100 * float((f["fused"] >= thr).mean())}
        with tempfile.TemporaryDirectory() as tmp:
            for kind in ("q75", "half"):
                d = Path(tmp) / kind
                (d / "r").mkdir(parents=True)
                (d / "f").mkdir()
                rr = _scores(det, _perturbed(real_f[:robust], kind, d / "r"))
                ff = _scores(det, _perturbed(fake_f[:robust], kind, d / "f"))
                row[f"ap_{kind}"] = _ap(rr["fused"], ff["fused"])
                row[f"real_fpr_{kind}"] = 100 * float((rr["fused"] >= thr).mean())
        report["sets"][s.name] = row
        print(s.name, json.dumps(row), flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_training.dev_branches")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--dev", type=Path, default=Path("../shared/data/dev_test"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--robust", type=int, default=12)
    args = ap.parse_args(argv)
    rep = evaluate(args.model, args.dev, args.robust)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rep, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
