"""One command that rebuilds the checkpoint the app bundles.

    python -m model_training.bundled --out runs/bundled [--install]

1. regenerates the content-aligned fakes from ``train/real`` (model_training.fakes; cached);
2. trains the detector on paired real/fake crops with the paper's blur+JPEG augmentation
   (resumable: rerunning the command continues from ``<out>/last.pt``);
3. picks the decision threshold on held-out real photos (the ``calib`` split, original files
   as an analyst would scan them) at a target false-positive rate;
4. evaluates on every dev_test set and on the held-out ``test`` split (paper protocol: full
   image, no resize), with the random/majority/smoothness baselines;
5. exports the fp16 checkpoint in the app's format with its model card, and with
   ``--install`` copies both to ``resources/models/``.

Same command on CPU or GPU (``--device``); seeds fixed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler, WeightedRandomSampler

from forensics_app import __version__
from forensics_app.core.architectures import build_model
from forensics_app.core.detector import Detector
from forensics_app.paths import resources_dir
from model_training.augment import AugmentConfig
from model_training.checkpoint import atomic_torch_save, atomic_write_text, load_torch_file
from model_training.content_probe import run_probe
from model_training.evaluate import (
    TestSet,
    baseline_rows,
    discover_sets,
    downscale_perturbation,
    jpeg_perturbation,
    markdown_table,
    score_folder_sets,
    summarize,
)
from model_training.export import (
    add_int8_calibration,
    calibrate,
    export_checkpoint,
    int8_calibration_tiles,
    write_model_card,
)
from model_training.fakes.cues import audit_pairs
from model_training.fakes.engine import FakeDataConfig, generate, load_manifest, manifest_digest
from model_training.fakes.taef2 import heldout_psnr
from model_training.paired import PairedCrops, collate_pairs, select_pairs
from model_training.train import seed_everything, train_one_epoch
from model_training.unaligned import (
    UnalignedConfig,
    UnalignedPairs,
    audit_files,
    audit_loader,
    list_fakes,
)

log = logging.getLogger("model_training.bundled")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO.parent / "shared" / "data"


@dataclass
class BundledRecipe:
    real_root: str = str(DEFAULT_SHARED / "train" / "real")
    dev_test: str = str(DEFAULT_SHARED / "dev_test")
    seed: int = 0
    arch: dict[str, Any] = field(default_factory=lambda: {
        "name": "resnet18", "num_outputs": 1, "input_transform": "npr", "stages": 2})
    crop: int = 128
    batch_pairs: int = 16  # 32 images a step: 16 reals and their 16 fakes
    steps: int = 800
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1
    blur_prob: float = 0.5
    jpg_prob: float = 0.5
    generators: list[str] | None = None  # None: every generator of the fake engine
    target_fpr: float = 0.05
    inconclusive_band: float = 0.1
    device: str = "auto"
    threads: int | None = None
    loader_workers: int = 1
    checkpoint_every: int = 100
    # FakeDataConfig overrides. v2: TAEF2 reconstructions only (v1's auto-encoders and
    # Real-ESRGAN: {"autoencoders": ["nearest:2", "transposed:2"], "realesrgan": [...]}).
    fakes: dict[str, Any] = field(default_factory=lambda: {
        "autoencoders": [], "realesrgan": [], "x4plus_count": 0, "taef2": True,
        "fakes_per_real": 1})
    # Second source: unaligned real-generator tiles (UnalignedConfig fields); None = off.
    unaligned: dict[str, Any] | None = field(default_factory=lambda: {
        "fake_dirs": [str(DEFAULT_SHARED / "train" / "fake" / d)
                      for d in ("sd14", "sd15", "stylegan2")]})
    unaligned_fraction: float = 0.75  # share of each batch's pairs drawn from that source
    # "tile": every unaligned tile equally likely; "folder": each generator folder (sd14, sd15,
    # stylegan2) gets an equal share of the unaligned draws, whatever its size.
    unaligned_balance: str = "tile"
    robustness: bool = True  # dev_test AP after JPEG q75 and after a 0.5x down-scale


CARD_SECTIONS = {
    "Intended use": """
Triage of still images for traces of CNN generators, as one piece of evidence among others.
The score is P(generated) shifted so that 0.5 is the operating point chosen on held-out real
photos (see *Decision threshold*); it is not a calibrated probability on generators the model
never saw. Not for: deciding a case on its own, localising manipulations (Grad-CAM shows what
raised the score, not what was edited), images heavily re-compressed or resized after
generation, or generator families it measurably misses (see the dev_test table).
""",
    "Training data and licences": """
- Real photos: `train/real` of the team's shared data -- 814 ImageNet sample images (one per
  class; ImageNet terms, research use) and 300 BSDS500 photos (research use). Each photo is
  assigned by a hash of its file name to `train` (~80%), `calib` (~10%, picks the threshold)
  or `test` (~10%, reported below); 37 photos under 192 px are skipped.
- Content-aligned fakes made here from the `train` photos (next section).
- Real generator outputs, unaligned: `train/fake/sd14` (Stable Diffusion 1.4 "style of
  <artist>" tiles; no licence), `train/fake/sd15` (SD 1.5 Deliberate 2.0; MIT) and
  `train/fake/stylegan2` (StyleGAN2 community/NVIDIA models; NVIDIA non-commercial), less the
  13 StyleGAN2 models whose outputs are not photographs and a 10% hold-out per folder.
- No dev_test image was used for training, model selection inside a run or the threshold;
  the choice *between* runs used dev_test (see *Levers measured*), so its figures are slightly
  optimistic. Because the photos and generator tiles are research-use only, so is this
  checkpoint.
""",
    "Generators and shortcut controls": """
- `taef2` (content-aligned): every training photo, shrunk x2 with an area filter and cropped
  to a multiple of 8, is encoded to the FLUX.2 VAE latent space and decoded again by TAEF2
  (madebyollin/taesd, MIT; `model_training/fakes/taef2.py`, written from the published
  architecture and loaded strictly with `weights_only=True`). Real and fake are the same photo
  at the same pixel grid, so only the latent-diffusion decoder's up-sampling traces differ.
  Both stored losslessly; both get the same crop, flip and blur/JPEG draw.
- Unaligned generator tiles (`model_training/unaligned.py`): each generated tile is paired
  with a random training photo; both get a random crop of the training size (size, aspect
  and framing carry nothing), the same flip, one shared fresh JPEG encode at quality
  U{65..100} (overwrites the camera-JPEG vs WebP/PNG history and the grid author's
  quantisation tables), then the same blur/JPEG draw. The audit tables below give the trivial
  cues' ROC AUC on the files as stored and on what the loader feeds.
- Content cannot be processed away (SD tiles are mostly artworks): the *content probe* below
  scores real non-photographic images (screenshots and drawings made here, photos of printed
  or screen content) to show how much "not a photograph" alone raises the score.
""",
}


def _pairs_as_testsets(root: Path, pairs: list[dict]) -> list[TestSet]:
    by_gen: dict[str, list[dict]] = {}
    for p in pairs:
        by_gen.setdefault(p["generator"], []).append(p)
    return [TestSet(f"heldout/{g}", tuple(str(root / p["real"]) for p in ps),
                    tuple(str(root / p["fake"]) for p in ps)) for g, ps in sorted(by_gen.items())]


def training_reals(recipe: BundledRecipe, manifest: dict) -> list[Path]:
    """Original files of the ``train``-split photos (never calib/test, never dev_test)."""
    src = Path(recipe.real_root)
    return [src / s["source"] for s in manifest["sources"]
            if s["split"] == "train" and not s.get("skipped")]


def int8_tiles(recipe: BundledRecipe, root: Path, manifest: dict) -> tuple[torch.Tensor, str]:
    """Training photos and training fakes (aligned and unaligned) for the int8 ranges."""
    fakes = [root / p["fake"] for p in select_pairs(manifest, ["train"])]
    if recipe.unaligned:
        fakes += list_fakes(UnalignedConfig(**recipe.unaligned), "train")
    reals = training_reals(recipe, manifest)
    for side in (256, recipe.crop):  # the dev sets' size; the training crop for tiny data
        try:
            tiles = int8_calibration_tiles(reals, fakes, side=side, seed=recipe.seed)
        except ValueError:
            continue
        return tiles, f"{len(tiles)} training tiles of {side}^2 (half photos, half fakes)"
    raise ValueError(f"no training image is at least {recipe.crop} px for the int8 ranges")


def _min_side(path: Path) -> int:
    with Image.open(path) as im:
        return min(im.size)


def unaligned_weights(ds: UnalignedPairs, recipe: BundledRecipe) -> torch.Tensor:
    """Sampling weights of the unaligned tiles, summing to 1 (see ``unaligned_balance``)."""
    n = len(ds.fakes)
    if recipe.unaligned_balance == "tile":
        return torch.full((n,), 1.0 / n)
    if recipe.unaligned_balance != "folder":
        raise ValueError(f"unaligned_balance must be 'tile' or 'folder', not "
                         f"{recipe.unaligned_balance!r}")
    folders = [p.parent for p in ds.fakes]
    counts = {f: folders.count(f) for f in set(folders)}
    return torch.tensor([1.0 / (len(counts) * counts[f]) for f in folders])


def build_training_set(recipe: BundledRecipe, root: Path, manifest: dict, pairs: list[dict],
                       augment: AugmentConfig) -> tuple[Dataset, Sampler | None]:
    """Aligned pairs, plus the unaligned generator tiles mixed in at ``unaligned_fraction``."""
    sources: list[Dataset] = []
    pairs = [p for p in pairs if _min_side(root / p["real"]) >= recipe.crop]
    if pairs:
        sources.append(PairedCrops(root, pairs, crop=recipe.crop, augment=augment))
    if recipe.unaligned:
        ucfg = UnalignedConfig(**recipe.unaligned)
        reals = [p for p in training_reals(recipe, manifest) if _min_side(p) >= recipe.crop]
        sources.append(UnalignedPairs(list_fakes(ucfg, "train"), reals,
                                      crop=recipe.crop, augment=augment,
                                      norm_q=tuple(ucfg.norm_q)))
    if not sources:
        raise ValueError("the recipe selects no training data")
    if len(sources) == 1:
        if recipe.unaligned and recipe.unaligned_balance == "folder":
            w = unaligned_weights(sources[0], recipe)
            return sources[0], WeightedRandomSampler(
                w, num_samples=len(w), replacement=True,
                generator=torch.Generator().manual_seed(recipe.seed))
        return sources[0], None
    a, u = len(sources[0]), len(sources[1])
    f = recipe.unaligned_fraction
    weights = torch.cat([torch.full((a,), (1 - f) / a), unaligned_weights(sources[1], recipe) * f])
    sampler = WeightedRandomSampler(weights, num_samples=a + u, replacement=True,
                                    generator=torch.Generator().manual_seed(recipe.seed))
    return ConcatDataset(sources), sampler


def audit_training_inputs(recipe: BundledRecipe, root: Path, manifest: dict,
                          n: int = 150) -> dict[str, dict[str, float]]:
    """Cue AUCs of each training source, as stored and after the loader's processing."""
    augment = AugmentConfig(blur_prob=recipe.blur_prob, jpg_prob=recipe.jpg_prob)
    out: dict[str, dict[str, float]] = {}
    pairs = select_pairs(manifest, ["train"], recipe.generators)
    if pairs:
        out["aligned pairs, loader output"] = audit_loader(
            PairedCrops(root, pairs, crop=recipe.crop, augment=augment), n=n, seed=recipe.seed)
    if recipe.unaligned:
        ucfg = UnalignedConfig(**recipe.unaligned)
        reals = training_reals(recipe, manifest)
        for d in ucfg.fake_dirs:
            one = dataclasses.replace(ucfg, fake_dirs=[d])
            fakes = list_fakes(one, "train")
            name = Path(d).name
            out[f"{name} vs photos, files as stored"] = audit_files(reals, fakes, n=n,
                                                                   seed=recipe.seed)
            ds = UnalignedPairs(fakes, reals, crop=recipe.crop, augment=augment,
                                norm_q=tuple(ucfg.norm_q))
            out[f"{name} vs photos, loader output"] = audit_loader(ds, n=n, seed=recipe.seed)
    return out


def train_detector(recipe: BundledRecipe, root: Path, out: Path, device: torch.device
                   ) -> tuple[torch.nn.Module, dict[str, Any]]:
    manifest = load_manifest(root)
    pairs = select_pairs(manifest, ["train"], recipe.generators)
    augment = AugmentConfig(blur_prob=recipe.blur_prob, jpg_prob=recipe.jpg_prob)
    dataset, sampler = build_training_set(recipe, root, manifest, pairs, augment)
    model = build_model(recipe.arch).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.steps,
                                                pct_start=recipe.warmup_fraction)
    state_path = out / "last.pt"
    step, history, seconds = 0, [], 0.0
    if state_path.is_file():
        state = load_torch_file(state_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, history, seconds = state["step"], state["history"], state["seconds"]
        if state["recipe"]["steps"] == recipe.steps:
            sched.load_state_dict(state["scheduler"])
        else:  # a longer/shorter run: re-plan the schedule and fast-forward it to ``step``
            for _ in range(min(step, recipe.steps)):
                sched.step()
        torch.set_rng_state(state["rng"])
        log.info("resumed from %s at step %d", state_path, step)

    def save() -> None:
        atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                           "scheduler": sched.state_dict(), "step": step, "history": history,
                           "seconds": seconds, "rng": torch.get_rng_state(),
                           "recipe": dataclasses.asdict(recipe)}, state_path)

    losses: list[float] = []  # per step
    epoch_sum = 0.0  # train_one_epoch's running loss_sum restarts every epoch

    def on_step(_s: int, global_step: int, totals: dict[str, float]) -> None:
        nonlocal step, epoch_sum
        step = global_step
        sched.step()
        losses.append((totals["loss_sum"] - epoch_sum) / (2 * recipe.batch_pairs))
        epoch_sum = totals["loss_sum"]
        if step % 25 == 0:
            log.info("step %d/%d lr %.2e loss(last 25) %.4f", step, recipe.steps,
                     sched.get_last_lr()[0], float(np.mean(losses[-25:])))
        if step % recipe.checkpoint_every == 0:
            history.append({"step": step, "loss": round(float(np.mean(losses[-25:])), 4)})
            save()

    gen = torch.Generator().manual_seed(recipe.seed)
    epoch = 0
    while step < recipe.steps:
        epoch_sum = 0.0
        loader = DataLoader(dataset, batch_size=recipe.batch_pairs, shuffle=sampler is None,
                            sampler=sampler, drop_last=True,
                            num_workers=recipe.loader_workers, collate_fn=collate_pairs,
                            generator=gen, persistent_workers=False)
        t0 = time.perf_counter()
        stats = train_one_epoch(model, loader, opt, device, log_every=0,
                                max_steps=recipe.steps - step, global_step=step, epoch=epoch,
                                on_step=on_step, channels_last=device.type == "cpu")
        seconds += time.perf_counter() - t0
        step = stats["global_step"]
        epoch += 1
        save()
    model.eval()
    info = {"steps": step, "seconds": round(seconds), "history": history,
            "pairs": len(pairs), "epochs": epoch}
    return model, info


def _shift_calibration(threshold_raw: float) -> dict[str, Any]:
    """Shift logits so the chosen operating point maps to P = 0.5 in the app."""
    t = min(max(threshold_raw, 1e-6), 1 - 1e-6)
    return {"type": "platt", "a": 1.0, "b": -math.log(t / (1 - t))}


def run(recipe: BundledRecipe, out: Path, install: bool = False) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(recipe.seed)
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    device = torch.device("cuda" if recipe.device in ("auto", "cuda") and torch.cuda.is_available()
                          else "cpu")
    atomic_write_text(out / "recipe.json", json.dumps(dataclasses.asdict(recipe), indent=2))
    t_all = time.perf_counter()

    fcfg = FakeDataConfig(real_roots=[recipe.real_root], seed=recipe.seed, **recipe.fakes)
    t0 = time.perf_counter()
    root = generate(fcfg)
    fakes_s = time.perf_counter() - t0
    manifest = load_manifest(root)

    model, train_info = train_detector(recipe, root, out, device)
    model = model.float().cpu().eval()

    # Threshold on held-out real photos as analysts scan them: the original files.
    src_root = Path(recipe.real_root)
    calib_files = [str(src_root / s["source"]) for s in manifest["sources"]
                   if s["split"] == "calib"]
    test_files = [str(src_root / s["source"]) for s in manifest["sources"] if s["split"] == "test"]
    raw_sets = score_folder_sets(model, [TestSet("calib-originals", tuple(calib_files), ())],
                                 with_smoothness=False)
    real_probs = raw_sets[0].scores
    real_logits = np.log(np.clip(real_probs, 1e-7, 1)) - np.log(np.clip(1 - real_probs, 1e-7, 1))
    cal = calibrate(real_logits, None, method="fpr", target_fpr=recipe.target_fpr, platt=False)
    calibration = _shift_calibration(cal["threshold"])
    meta = {
        "version": f"{__version__}+{time.strftime('%Y%m%d')}",
        "threshold": 0.5,
        "inconclusive_band": recipe.inconclusive_band,
        "calibration": calibration,
        "calibration_report": {**cal["report"], "raw_threshold": cal["threshold"],
                               "on": f"{len(calib_files)} held-out real photos (original files)"},
        "training": {
            "recipe": "model_training.bundled", "config": dataclasses.asdict(recipe),
            "init": {"from": "scratch", "why": "no ImageNet weights reachable"},
            "data": {"reals": recipe.real_root, "fake_manifest_sha256": manifest_digest(root),
                     "pairs": train_info["pairs"], "generators": sorted(
                         {p["generator"] for p in manifest["pairs"]})},
            "training_time": f"{train_info['seconds']} s on {device.type}",
            "steps": train_info["steps"], "loss_history": train_info["history"],
            "command": "python -m model_training.bundled --out runs/bundled --install",
        },
    }
    ckpt = export_checkpoint(model, recipe.arch, out / "detector.pt", meta)
    add_int8_calibration(ckpt, *int8_tiles(recipe, root, manifest))
    detector = Detector.from_checkpoint(ckpt, device="cpu")

    # Evaluation: dev_test (never used above) and the held-out test split.
    heldout_sets = _pairs_as_testsets(root, select_pairs(manifest, ["test"]))
    sets = score_folder_sets(detector, recipe.dev_test) + score_folder_sets(detector, heldout_sets)
    test_real = score_folder_sets(detector, [TestSet("heldout/original-real-photos",
                                                     tuple(test_files), ())], with_smoothness=False)
    rows = summarize(sets, threshold=0.5)
    base = baseline_rows(sets, seed=recipe.seed)
    fpr_test = float(np.mean(test_real[0].scores >= 0.5))
    held_out_names = {s["source"] for s in manifest["sources"] if s["split"] != "train"}
    content = run_probe(detector, recipe.real_root, held_out=held_out_names, seed=recipe.seed)
    robust: list[dict[str, Any]] = []
    if recipe.robustness:
        dev_sets = discover_sets(recipe.dev_test)
        for label, perturb in (("JPEG q75", jpeg_perturbation(75)),
                               ("0.5x down-scale", downscale_perturbation(0.5))):
            scored = score_folder_sets(detector, dev_sets, perturb=perturb)
            robust += [{"perturbation": label, **r} for r in summarize(scored, 0.5)]
            robust += [{"perturbation": label, **r} for r in baseline_rows(scored)
                       if r["method"] == "smoothness"]
    cues = audit_pairs(root, select_pairs(manifest, ["test"]))
    loader_cues = audit_training_inputs(recipe, root, manifest)
    taef2_psnr = heldout_psnr(root, select_pairs(manifest, ["test"]))
    results = {"rows": rows, "baselines": base, "heldout_original_fpr": fpr_test,
               "calib_fpr": cal["report"]["fpr_at_threshold"], "cue_auc": cues,
               "loader_cue_auc": loader_cues, "robustness": robust, "content_probe": content,
               "taef2_heldout_psnr": taef2_psnr,
               "train": train_info, "fakes_seconds": round(fakes_s),
               "total_seconds": round(time.perf_counter() - t_all)}
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=float))
    dev_rows = [r for r in rows if not r["set"].startswith("heldout/")]
    smooth = [r for r in base if r["method"] == "smoothness"]
    card = write_model_card(
        out / "MODEL_CARD.md", {**meta, "architecture": recipe.arch, "weights_dtype": "float16"},
        {"dev_test (paper protocol: full image, no resize)": dev_rows,
         "Held-out training photos vs their fakes (never trained on)": [
             r for r in rows if r["set"].startswith("heldout/")],
         "Baseline: smoothness cue (-mean |Laplacian|)": smooth},
        checkpoint=ckpt, title="Bundled detector: model card",
        sections={**CARD_SECTIONS, "False positives on held-out real photos": (
            f"At the shipped threshold, {100 * fpr_test:.1f}% of {len(test_files)} held-out real "
            f"photos (original files, never used for training or for picking the threshold) "
            f"are called AI-generated; on the {len(calib_files)} calibration photos "
            f"{100 * cal['report']['fpr_at_threshold']:.1f}% (target {100 * recipe.target_fpr:.0f}%)."),
            "Trivial-cue audit of the training pairs (ROC AUC, 0.5 = no separation)":
                markdown_table([{"generator": g, **v} for g, v in cues.items()],
                               ["generator", *next(iter(cues.values())).keys()]),
            "Trivial-cue audit of the training inputs (ROC AUC; files as stored vs what the "
            "loader feeds)": markdown_table(
                [{"source": g, **v} for g, v in loader_cues.items()],
                ["source", *next(iter(loader_cues.values())).keys()]),
            "Content probe: real non-photographic images (share called generated)":
                markdown_table(content, ["group", "n", "called generated %",
                                         "median P(generated)"]),
            **({"Robustness: dev_test after JPEG q75 / a 0.5x down-scale of both classes": (
                markdown_table([{**r, "set": f"{r['perturbation']}: {r['set']}"
                                 + (" (smoothness cue)" if r.get("method") else "")}
                                for r in robust]))} if robust else {})},
    )
    if install:
        dest = resources_dir() / "models"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ckpt, dest / "detector.pt")
        shutil.copy2(card, dest / "MODEL_CARD.generated.md")
        log.info("installed into %s", dest)
    log.info("done in %.0f s: dev_test mAP %.1f", time.perf_counter() - t_all,
             100 * float(np.mean([r["ap"] for r in dev_rows])))
    return ckpt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model_training.bundled", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/bundled"))
    p.add_argument("--recipe", type=Path, help="JSON file overriding BundledRecipe fields")
    p.add_argument("--steps", type=int)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--install", action="store_true", help="copy the result into resources/models")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        stream=sys.stderr)
    recipe = BundledRecipe()
    if args.recipe:
        recipe = dataclasses.replace(recipe, **json.loads(args.recipe.read_text()))
    if args.steps:
        recipe.steps = args.steps
    if args.device:
        recipe.device = args.device
    run(recipe, args.out, install=args.install)
    return 0


if __name__ == "__main__":
    sys.exit(main())
