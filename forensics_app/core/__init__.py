"""Qt-free detection engine: intake, preprocessing, detector, scan loop, Grad-CAM, export.

Nothing in this package may import Qt (enforced by tests/core/test_no_qt.py).
"""
