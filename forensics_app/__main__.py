"""``forensics-app`` / ``python -m forensics_app``: the desktop window (or ``--self-test``)."""

from __future__ import annotations

import multiprocessing
import sys


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    argv = sys.argv[1:] if argv is None else argv
    if "--self-test" in argv:
        from forensics_app.selftest import run_self_test

        return run_self_test(argv)
    from forensics_app.gui.app import run_app

    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
