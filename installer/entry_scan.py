"""Frozen entry point of the console executable ``forensics-scan`` in the same folder.

The desktop executable is windowed: on Windows it has no console, so nothing it prints can be
seen. This one is a console program: the scanner (``forensics_app.cli``) and, with
``--self-test``, the same self-test as the app, whose one-line report is then visible.
"""

import multiprocessing
import sys


def main() -> int:
    multiprocessing.freeze_support()
    argv = sys.argv[1:]
    if "--self-test" in argv:
        from forensics_app.selftest import run_self_test

        return run_self_test(argv)
    from forensics_app.cli import main as scan_main

    return scan_main(argv)


if __name__ == "__main__":
    sys.exit(main())
