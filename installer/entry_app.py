"""Frozen entry point of the desktop app (``ForensicsApp``): ``python -m forensics_app``'s main.

``main`` calls ``multiprocessing.freeze_support()`` first and dispatches ``--self-test``.
"""

import sys

from forensics_app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
