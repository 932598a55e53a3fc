"""Session-wide test set-up that must run before anything imports numba.

The GPU kernels are numba.cuda kernels. Where no CUDA device is meant to be used (CI,
every machine without a GPU), they run on numba's CUDA simulator, which executes the same
kernel source thread by thread on the CPU; tests/gpu_sim checks their results against the
CPU engine that way. numba reads NUMBA_ENABLE_CUDASIM once, when it is first imported, so
it is set here. On a GPU machine run ``NUMBA_ENABLE_CUDASIM=0 pytest tests/gpu`` to use the
real device.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
