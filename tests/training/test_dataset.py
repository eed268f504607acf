import shutil

import pytest
import torch
from synthetic_pairs import smooth_image

from model_training.augment import AugmentConfig
from model_training.dataset import (
    ImageFileDataset,
    ResumableSampler,
    TrainTransform,
    folder_samples,
    forensynths_samples,
    label_counts,
    manifest_sha256,
    resize_short_side,
    samples_for_split,
)


def test_forensynths_classes_are_selectable(data_root):
    all_train = forensynths_samples(data_root / "train")
    cat = forensynths_samples(data_root / "train", ["cat"])
    assert label_counts(all_train) == {"real": 24, "fake": 24}
    assert label_counts(cat) == {"real": 12, "fake": 12}
    assert all("/cat/" in s.path for s in cat)
    with pytest.raises(FileNotFoundError, match="horse"):
        forensynths_samples(data_root / "train", ["cat", "horse"])


def test_config_splits_and_folder_lists(data_root, tiny_config):
    cfg = tiny_config(classes=["dog"], val_real_dirs=[str(data_root / "val/cat/0_real")])
    assert len(samples_for_split(cfg, "train")) == 24
    val = samples_for_split(cfg, "val")
    assert label_counts(val) == {"real": 12, "fake": 6}
    flat = folder_samples([data_root / "val/cat/0_real"], [data_root / "val/cat/1_fake"])
    assert [s.label for s in flat] == [0] * 6 + [1] * 6


def test_manifest_hash_is_location_independent(data_root, tmp_path):
    samples = forensynths_samples(data_root / "val")
    copy = tmp_path / "copy"
    shutil.copytree(data_root / "val", copy)
    assert manifest_sha256(forensynths_samples(copy)) == manifest_sha256(samples)
    (copy / "cat/0_real/000.png").write_bytes(b"x" * 10)
    assert manifest_sha256(forensynths_samples(copy)) != manifest_sha256(samples)


def test_samples_depend_only_on_seed_epoch_index(data_root):
    samples = forensynths_samples(data_root / "train")
    ds = ImageFileDataset(samples, TrainTransform(AugmentConfig(), crop_size=32), seed=1)
    x0, y0 = ds[3]
    assert torch.equal(ds[3][0], x0) and y0.dtype == torch.float32
    ds.set_epoch(1)
    assert not torch.equal(ds[3][0], x0)
    ds.set_epoch(0)
    assert torch.equal(ds[3][0], x0)


def test_sampler_order_follows_seed_and_epoch_and_resumes():
    data = list(range(20))
    s = ResumableSampler(data, seed=4)
    s.set_epoch(2)
    order = list(s)
    assert sorted(order) == data and order != data
    s.set_epoch(2)
    s.set_start(8)
    assert len(s) == 12 and list(s) == order[8:]
    assert list(s) == order  # the skip applies to one pass only
    ranks = [ResumableSampler(data, num_replicas=2, rank=r, seed=4) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    assert sorted(list(ranks[0]) + list(ranks[1])) == data


def test_resize_short_side_matches_torchvision_semantics():
    img = smooth_image(48, 0).resize((60, 40))
    assert resize_short_side(img, 20).size == (30, 20)
    assert resize_short_side(img.transpose(2), 20).size == (20, 30)
