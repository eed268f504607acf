"""PySide6 desktop application on top of :mod:`forensics_app.core`.

The GUI holds no detection logic: it queues work, runs the core engine in background
threads (one ``QObject`` worker moved to a ``QThread`` per task) and shows its records.
Nothing here imports torch at module level, so the window appears before PyTorch loads.
"""
