"""TAEF2 generator (architecture vs the weights' contract, stored reference output) and the
unaligned real-generator source with its shortcut controls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model_training.augment import AugmentConfig
from model_training.fakes.taef2 import TAEF2, load_taef2, psnr, reconstruct_image
from model_training.unaligned import (
    UnalignedConfig,
    UnalignedPairs,
    audit_loader,
    list_fakes,
    tile_split,
)

DATA = Path(__file__).parent / "data"


def _taef2_dir(shared_data: Path) -> Path:
    d = shared_data / "models" / "taef2"
    if not (d / "taef2_encoder.pth").is_file():
        pytest.skip("TAEF2 weights absent")
    return d


def test_taef2_shapes_random_weights():
    torch.manual_seed(0)
    m = TAEF2().eval()
    x = torch.rand(1, 3, 40, 24)
    z = m.encoder(x)
    assert z.shape == (1, 32, 5, 3)
    assert m.reconstruct(x).shape == x.shape
    with pytest.raises(ValueError, match="multiples of 8"):
        m.reconstruct(torch.rand(1, 3, 41, 24))


def test_taef2_weights_match_architecture_and_reference(shared_data):
    d = _taef2_dir(shared_data)
    m = load_taef2(d)  # strict=True: every key name and shape of both files
    ref = np.load(DATA / "taef2_reference.npz")
    out = np.asarray(reconstruct_image(m, Image.fromarray(ref["input"])))
    assert out.shape == ref["output"].shape
    assert np.abs(out.astype(int) - ref["output"].astype(int)).max() <= 1
    # A reconstruction, not a copy and not garbage.
    assert 20 < psnr(Image.fromarray(ref["input"]), Image.fromarray(out)) < 60


def test_taef2_tiled_matches_whole_away_from_seams(shared_data):
    m = load_taef2(_taef2_dir(shared_data))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((128, 96), Image.BILINEAR)
    whole = np.asarray(reconstruct_image(m, img, tile=1024), dtype=int)
    tiled = np.asarray(reconstruct_image(m, img, tile=64), dtype=int)
    assert whole.shape == tiled.shape == (96, 128, 3)
    assert np.abs(whole[:, :48] - tiled[:, :48])[:48].mean() < 8


def test_taef2_missing_weights_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        load_taef2(tmp_path)


def test_taef2_rejects_other_weights(tmp_path):
    m = TAEF2()
    torch.save(m.encoder.state_dict(), tmp_path / "taef2_encoder.pth")
    torch.save(m.decoder.state_dict(), tmp_path / "taef2_decoder.pth")
    with pytest.raises(ValueError, match="SHA-256"):
        load_taef2(tmp_path)
    load_taef2(tmp_path, check_hash=False)  # the architecture itself loads them


def _smooth(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize(
        (w, h), Image.BICUBIC)


def _write_sets(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    fakes = tmp_path / "stylegan2"
    reals = tmp_path / "reals"
    fakes.mkdir()
    reals.mkdir()
    for name in ("doors", "wikiart", "maps", "cakes"):
        for k in range(6):
            _smooth(rng, 64, 64).save(fakes / f"{name}_r0c{k}.png")
    for k in range(5):
        _smooth(rng, 100, 75).save(reals / f"{k}.jpg", quality=95)
    return fakes, reals


def test_list_fakes_excludes_non_photographic_and_splits_deterministically(tmp_path):
    fakes, _ = _write_sets(tmp_path)
    cfg = UnalignedConfig(fake_dirs=[str(fakes)], holdout_fraction=0.3)
    train, test = list_fakes(cfg, "train"), list_fakes(cfg, "test")
    names = {p.name.split("_r")[0] for p in train + test}
    assert names == {"doors", "cakes"}  # wikiart and maps are not photographs
    assert len(train) + len(test) == 12 and not set(train) & set(test)
    assert tile_split("stylegan2/doors_r0c0.png", 0.3) == tile_split("stylegan2/doors_r0c0.png", 0.3)


def test_unaligned_pairs_process_both_classes_identically(tmp_path):
    fakes, reals = _write_sets(tmp_path)
    ds = UnalignedPairs(sorted(fakes.iterdir()), sorted(reals.iterdir()), crop=48,
                        augment=AugmentConfig(blur_prob=0.0, jpg_prob=0.0), norm_q=(90, 90),
                        deterministic_seed=3)
    real, fake = ds.images(0)
    assert real.size == fake.size == (48, 48)
    a, b = ds.images(0)
    assert np.array_equal(np.asarray(a), np.asarray(real))  # seeded: reproducible
    # Both went through the same JPEG encode: re-encoding at q90 changes little for either.
    from model_training.unaligned import jpeg_normalise
    for im in (real, fake):
        again = np.asarray(jpeg_normalise(im, 90), dtype=int)
        assert np.abs(again - np.asarray(im, dtype=int)).mean() < 6
    x, y = ds[0]
    assert x.shape == (2, 3, 48, 48) and y.tolist() == [0.0, 1.0]


def test_audit_loader_reports_every_cue(tmp_path):
    fakes, reals = _write_sets(tmp_path)
    ds = UnalignedPairs(sorted(fakes.iterdir()), sorted(reals.iterdir()), crop=32)
    aucs = audit_loader(ds, n=10)
    assert {"file_size", "smoothness", "jpeg_grid", "mean_saturation"} <= set(aucs)
    assert all(0.0 <= v <= 1.0 for v in aucs.values())


def test_content_probe_scores_every_group(tmp_path, tiny_checkpoint):
    from forensics_app.core.detector import Detector
    from model_training.content_probe import probe_images, run_probe

    reals = tmp_path / "imagenet_sample"
    reals.mkdir()
    for name in ("n06359193_web_site", "n06596364_comic_book", "n01440764_tench"):
        _smooth(np.random.default_rng(2), 300, 260).save(reals / f"{name}.JPEG")
    groups = probe_images(reals, n_synthetic=3, held_out={"imagenet_sample/n06359193_web_site.JPEG"})
    assert [len(v) for v in groups.values()] == [3, 3, 1, 1]  # tench is not a graphic class
    assert all(im.size == (256, 256) for v in groups.values() for im in v)
    rows = run_probe(Detector.from_checkpoint(tiny_checkpoint, device="cpu"), reals)
    assert {r["group"] for r in rows} >= {"screenshots (made here)", "drawings (made here)"}
    assert all(0 <= r["called generated %"] <= 100 for r in rows)


def test_unaligned_folder_balance_gives_each_folder_an_equal_share(tmp_path):
    from model_training.bundled import BundledRecipe, unaligned_weights

    fakes, reals = _write_sets(tmp_path)
    other = tmp_path / "sd15"
    other.mkdir()
    for k in range(2):
        _smooth(np.random.default_rng(k), 64, 64).save(other / f"a_r0c{k}.png")
    ds = UnalignedPairs(sorted(fakes.iterdir()) + sorted(other.iterdir()), sorted(reals.iterdir()))
    w = unaligned_weights(ds, BundledRecipe(unaligned_balance="folder"))
    assert abs(float(w.sum()) - 1) < 1e-6
    assert abs(float(w[-2:].sum()) - 0.5) < 1e-6  # 2 tiles weigh as much as the other 24
    t = unaligned_weights(ds, BundledRecipe(unaligned_balance="tile"))
    assert torch.allclose(t, torch.full_like(t, 1 / 26))
    with pytest.raises(ValueError, match="unaligned_balance"):
        unaligned_weights(ds, BundledRecipe(unaligned_balance="nope"))


def test_heldout_psnr_summarises_only_taef2_pairs(tmp_path):
    from model_training.fakes.taef2 import heldout_psnr

    rng = np.random.default_rng(5)
    real = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    noisy = np.clip(real.astype(int) + rng.integers(-3, 4, real.shape), 0, 255).astype(np.uint8)
    Image.fromarray(real).save(tmp_path / "r.png")
    Image.fromarray(noisy).save(tmp_path / "f.png")
    pairs = [{"generator": "taef2", "real": "r.png", "fake": "f.png"},
             {"generator": "ae-nearest-x2", "real": "r.png", "fake": "r.png"}]
    out = heldout_psnr(tmp_path, pairs)
    assert out["n"] == 1 and 35 < out["median_db"] < 45
    assert heldout_psnr(tmp_path, pairs[1:]) == {}
