"""``python -m model_training {train,evaluate,export} ...``"""

from __future__ import annotations

import multiprocessing
import sys

COMMANDS = {
    "train": "model_training.train",
    "evaluate": "model_training.evaluate",
    "export": "model_training.export",
    "cifake": "model_training.cifake",
}
USAGE = (
    "usage: python -m model_training {train,evaluate,export,cifake} [options]\n"
    "  train     train a detector from a preset/YAML config (resumable)\n"
    "  evaluate  per-set AP/accuracy, baselines, curves, robustness sweep\n"
    "  export    write the app's fp16 checkpoint with threshold, calibration and model card\n"
    "  cifake    train + test on the CIFAKE-style low-resolution protocol (seed study)\n"
    "Run a command with --help for its options."
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib

    module = importlib.import_module(COMMANDS[argv[0]])
    return module.main(argv[1:])


if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
