"""Frozen entry point of the console executable ``forensics-serve`` in the same folder.

The local HTTP API and web page (``forensics_app.server.cli``), with the same model, decoders
and evidence rules as the desktop app and the scanner beside it.
"""

import multiprocessing
import sys


def main() -> int:
    multiprocessing.freeze_support()
    from forensics_app.server.cli import main as serve_main

    return serve_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
