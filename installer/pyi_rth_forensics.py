"""PyInstaller run-time hook: settings every frozen copy of the app starts with.

Only matplotlib's Agg backend is bundled (pytorch-grad-cam imports pyplot; the app never
shows a matplotlib window), so pin it instead of letting matplotlib probe for a GUI backend.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
