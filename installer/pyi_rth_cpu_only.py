"""PyInstaller run-time hook of the ``--cuda cpu`` bundle: hide every GPU from torch.

That bundle keeps only the CUDA libraries torch links against (so ``import torch`` works)
and drops the ones it opens on demand for GPU work (cuDNN engines, cuSOLVER, ...). With the
GPU hidden, ``torch.cuda.is_available()`` is False and "auto" picks the CPU instead of
failing half-way through a GPU forward pass.
"""

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""
