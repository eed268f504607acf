"""Issue 22, item 17: an option that cannot work is a usage error (exit 2) naming it, before
any file is read, instead of an error row per file or a silently disabled rule."""

from __future__ import annotations

import pytest

from forensics_app.cli import EXIT_USAGE, main
from forensics_app.core.bomb_guard import DecodeLimits
from forensics_app.core.preprocess import PreprocessConfig
from helpers import make_image


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--tile-size", "0", "--tile-size must be >= 32"),
    ("--tile-size", "-512", "--tile-size must be >= 32"),
    ("--sample-seed", "-1", "--sample-seed must be between 0"),
    ("--max-compression-ratio", "nan", "--max-compression-ratio must be a finite number"),
    ("--max-compression-ratio", "inf", "--max-compression-ratio must be a finite number"),
    ("--max-compression-ratio", "0", "--max-compression-ratio must be a finite number"),
    ("--workers", "0", "--workers must be >= 1"),
])
def test_unusable_option_exits_2_with_its_name(tmp_path, tiny_checkpoint, capsys, flag, value,
                                                says):
    make_image((40, 40), 0).save(tmp_path / "a.png")
    csv_out = tmp_path / "r.csv"
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "a.png"), "--model", str(tiny_checkpoint), "--csv", str(csv_out),
              flag, value])
    assert exc.value.code == EXIT_USAGE
    assert says in capsys.readouterr().err
    assert not csv_out.exists()


def test_core_settings_refuse_the_same_values():
    with pytest.raises(ValueError, match="finite"):
        DecodeLimits(max_compression_ratio=float("nan"))
    with pytest.raises(ValueError, match="tile_size"):
        PreprocessConfig(mode="tiles", tile_size=0)
    with pytest.raises(ValueError, match="sample_seed"):
        PreprocessConfig(mode="sample", sample_seed=-1)
