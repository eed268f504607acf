"""The model card's run table is built from the run folders' recipe.json and results.json."""

from __future__ import annotations

import json

from model_training.levers import DEV_SETS, detail, table


def _run(tmp_path, name, ap, recipe):
    run = tmp_path / name
    run.mkdir()
    rows = [{"set": s, "ap": ap, "acc": 0.6, "real_acc": 0.9, "fake_acc": 0.3} for s in DEV_SETS]
    base = [{"method": "smoothness", "set": s, "ap": 0.5} for s in DEV_SETS]
    rob = [{"perturbation": "JPEG q75", "set": s, "ap": ap - 0.1} for s in DEV_SETS]
    (run / "results.json").write_text(json.dumps({
        "rows": rows, "baselines": base, "robustness": rob, "heldout_original_fpr": 0.04,
        "train": {"seconds": 123}}))
    (run / "recipe.json").write_text(json.dumps(recipe))
    return run


def test_table_has_one_row_per_run_and_the_cue_row(tmp_path):
    a = _run(tmp_path, "a", 0.8, {"arch": {"input_transform": "npr", "stages": 2}, "crop": 128,
                                  "steps": 200, "fakes": {"taef2": True, "autoencoders": [],
                                                          "realesrgan": [], "x4plus_count": 0},
                                  "unaligned": {"fake_dirs": ["x/sd14"]}})
    b = _run(tmp_path, "b", 0.6, {"arch": {}, "crop": 96, "steps": 50, "generators": []})
    (tmp_path / "unfinished").mkdir()
    text = table([a, b, tmp_path / "unfinished"])
    lines = text.strip().splitlines()
    assert len(lines) == 2 + 3  # header, rule, two runs, the cue
    assert "**80.0**" in lines[2] and "taef2; unaligned sd14 (50%)" in lines[2]
    assert "**60.0**" in lines[3] and lines[4].startswith("| smoothness cue")
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_detail_lists_every_set_with_robustness(tmp_path):
    run = _run(tmp_path, "a", 0.8, {"arch": {}, "crop": 128, "steps": 1})
    text = detail(run)
    assert "AP after JPEG q75" in text
    assert text.count("\n") == 2 + len(DEV_SETS) + 1
    assert "| **mean** | **80.0** |" in text
