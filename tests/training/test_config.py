import pytest

from model_training.config import (
    FORENSYNTHS_CLASSES,
    TrainConfig,
    list_presets,
    load_config,
    parse_override,
    save_config,
)

PAPER_MODELS = {
    "no_aug": (0.0, 0.0, 20),
    "blur_prob0.5": (0.5, 0.0, 20),
    "jpg_prob0.5": (0.0, 0.5, 20),
    "blur_jpg_prob0.5": (0.5, 0.5, 20),
    "blur_jpg_prob0.1": (0.1, 0.1, 20),
    "2class_blur_jpg_prob0.5": (0.5, 0.5, 2),
    "8class_blur_jpg_prob0.5": (0.5, 0.5, 8),
}


@pytest.mark.parametrize("preset", sorted(PAPER_MODELS))
def test_presets_cover_the_papers_models(preset):
    blur, jpg, n_classes = PAPER_MODELS[preset]
    cfg = load_config(preset)
    assert (cfg.blur_prob, cfg.jpg_prob, len(cfg.classes)) == (blur, jpg, n_classes)
    assert set(cfg.classes) <= set(FORENSYNTHS_CLASSES)
    # the paper's optimisation and augmentation ranges
    assert (cfg.lr, cfg.beta1, cfg.batch_size, cfg.crop_size) == (1e-4, 0.9, 64, 224)
    assert (cfg.patience, cfg.lr_decay, cfg.min_lr) == (5, 10.0, 1e-6)
    assert cfg.blur_sig == (0.0, 3.0) and cfg.jpg_qual == (30, 100)
    assert cfg.jpg_method == ("cv2", "pil") and cfg.arch == "resnet50" and cfg.flip


def test_every_preset_loads():
    assert len(list_presets()) >= 7
    for name in list_presets():
        assert load_config(name).name == name


def test_overrides_and_roundtrip(tmp_path):
    cfg = load_config("blur_jpg_prob0.1", crop_size=112, classes=["cat"], out_dir=None)
    assert cfg.crop_size == 112 and cfg.classes == ["cat"] and cfg.blur_prob == 0.1
    path = save_config(cfg, tmp_path / "config.yaml")
    again = load_config(path)
    assert again == cfg


def test_bad_values_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(None, not_a_field=1)
    with pytest.raises(ValueError):
        TrainConfig(jpg_qual=(10, 101))
    with pytest.raises(ValueError):
        TrainConfig(jpg_method=("imagemagick",))
    with pytest.raises(FileNotFoundError, match="presets"):
        load_config(tmp_path / "missing.yaml")


def test_parse_override_reads_yaml_values():
    assert parse_override("blur_sig=[0, 2]") == ("blur_sig", [0, 2])
    assert parse_override("lr=3e-4")[0] == "lr"
    assert load_config(None, lr=parse_override("lr=3e-4")[1]).lr == 3e-4  # YAML 1.1 string
    with pytest.raises(ValueError):
        parse_override("nope=1")


def test_arch_dict_is_what_the_app_records():
    assert TrainConfig(stages=2, input_transform="npr").arch_dict() == {
        "name": "resnet50", "num_outputs": 1, "input_transform": "npr", "stages": 2}
    assert TrainConfig(arch="efficientnet_b0").arch_dict() == {
        "name": "efficientnet_b0", "num_outputs": 1}
