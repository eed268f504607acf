"""Core tests run the tiny networks on one intra-op thread.

Tiny inputs gain nothing from a second thread, and on a busy 2-core machine an OpenMP barrier
waiting for a descheduled thread makes each forward pass up to 100x slower.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
