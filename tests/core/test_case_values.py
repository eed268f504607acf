"""Evidence-controlled integers (mtime, size) in a case: any value is stored exactly, a scan
with a file dated 2446 completes and resumes, and a case that cannot store a row exits 3."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from forensics_app.cli import EXIT_OK, EXIT_OUTPUT_FAILED, main
from forensics_app.core.case_values import INT64_MAX, INT64_MIN, storable_int, stored_int
from helpers import make_images

S = 10 ** 9
# requested mtimes in ns: 1901, 0, 2262-04-12 (just past int64 ns), 2446, 1500 (pre-1677)
MTIMES = {"y1901": -2_177_452_800 * S, "epoch": 0, "y2262": (9_223_372_036 + 86_400) * S,
          "y2446": 15_000_000_000 * S, "y1500": -14_831_769_600 * S}


def run_cli(argv: list) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code)


@pytest.mark.parametrize("value", [*MTIMES.values(), INT64_MAX, INT64_MIN, INT64_MAX + 1,
                                   INT64_MIN - 1, 2 ** 80, -(2 ** 80), None])
def test_storable_int_round_trips_exactly(value):
    stored = storable_int(value)
    assert stored_int(stored) == value
    if value is not None and INT64_MIN <= value <= INT64_MAX:
        assert stored == value  # the form every earlier case used
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (v INTEGER)")
    con.execute("INSERT INTO t VALUES (?)", (stored,))
    (back,) = con.execute("SELECT v FROM t").fetchone()
    assert stored_int(back) == value  # INTEGER affinity did not turn it into a REAL


def _set_mtimes(folder: Path) -> dict[str, int]:
    """Each file of ``folder`` gets one of MTIMES; returns name -> mtime the filesystem kept
    (a value it refuses or clamps is left out: that file keeps a clamped date)."""
    files = sorted(folder.iterdir())
    kept: dict[str, int] = {}
    for f, (label, ns) in zip(files, MTIMES.items(), strict=False):
        try:
            os.utime(f, ns=(ns, ns))
        except (OSError, OverflowError, ValueError):
            continue
        if os.stat(f).st_mtime_ns == ns:
            kept[f.name] = ns
        else:
            print(f"filesystem stored {label} as {os.stat(f).st_mtime_ns}")
    return kept


def test_hostile_mtimes_scan_into_a_case_and_resume(tmp_path, tiny_checkpoint, capsys):
    ev = tmp_path / "ev"
    make_images(ev, len(MTIMES))
    kept = _set_mtimes(ev)
    if not any(abs(ns) > INT64_MAX for ns in kept.values()):
        pytest.skip("this filesystem keeps no mtime outside 1677..2262")
    case = tmp_path / "case"
    argv = [ev, "--model", tiny_checkpoint, "--device", "cpu", "-q", "--case", case]
    assert run_cli(argv) == EXIT_OK, capsys.readouterr().err
    err = capsys.readouterr().err
    assert f"{len(MTIMES)} new rows stored" in err and "Traceback" not in err

    con = sqlite3.connect(case / "case.sqlite3")
    stored = {Path(p).name: stored_int(m)
              for p, m in con.execute("SELECT path, mtime_ns FROM results")}
    evidence = {Path(p).name: stored_int(m)
                for p, m in con.execute("SELECT path, mtime_ns FROM evidence")}
    con.close()
    for name, ns in kept.items():  # exact, whatever the year
        assert stored[name] == ns and evidence[name] == ns

    # resume: nothing left to score, nothing crashes; the chains still verify
    assert run_cli(argv) == EXIT_OK
    assert f"0 new rows stored, {len(MTIMES)} files already scored" in capsys.readouterr().err
    assert run_cli(["--case", case, "--verify"]) == EXIT_OK


def test_a_row_the_case_cannot_store_exits_3(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """Without the storage rule the 2446 mtime reaches SQLite raw: the scan stops with the
    README's write-failure code 3 and a message, not a traceback and exit 1."""
    import forensics_app.core.case as case_module

    ev = tmp_path / "ev"
    make_images(ev, 2)
    kept = _set_mtimes(ev)
    if not any(abs(ns) > INT64_MAX for ns in kept.values()):
        # any file will do: force a value over 64 bits through the old code path
        monkeypatch.setattr(case_module, "_mtime_ns", lambda _p: 2 ** 64)
    else:
        monkeypatch.setattr(case_module, "storable_int", lambda v: v)
    code = run_cli([ev, "--model", tiny_checkpoint, "--device", "cpu", "-q",
                    "--case", tmp_path / "case"])
    err = capsys.readouterr().err
    assert code == EXIT_OUTPUT_FAILED
    assert "Traceback" not in err and "stopped:" in err and "Everything committed" in err
