"""ONNX Runtime, imported so that it writes nothing under the user's home folder.

Official ONNX Runtime builds for Linux and macOS (1.2x and later) start a telemetry client
when the module is *imported*: it creates ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/``
with a persistent ``deviceid`` and an ``onnxruntime.db`` event store. A forensic tool must not
leave an identifier or anything else on the examiner's machine that the examiner did not ask
for, so ``ORT_DISABLE_TELEMETRY=1`` (the variable those builds read; the decision is latched
once, at import) is set before the first import, and the Python switch is turned off too.
"""

from __future__ import annotations

import os
from types import ModuleType

# Read by ONNX Runtime's native telemetry at initialisation (the import): ORT_DISABLE_TELEMETRY
# in the 1.3x builds this project pins; the later spelling too, for newer ones.
TELEMETRY_OFF = {"ORT_DISABLE_TELEMETRY": "1", "ORT_TELEMETRY_DISABLED": "1"}


def import_onnxruntime() -> ModuleType:
    """``onnxruntime``, with its telemetry off (nothing written to ``~/.cache``)."""
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
    import onnxruntime as ort

    disable = getattr(ort, "disable_telemetry_events", None)
    if disable is not None:
        disable()
    return ort
