"""GPU backend: the reference array kernels run on CuPy device arrays.

CuPy is imported only when this backend is asked for, and is never required:
`gpu_available()` answers False (without raising) when CuPy or a CUDA device is
missing. The state stays on the device between steps; only maxima, sums and
output frames come back to the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simulate.flood.errors import BackendUnavailable
from simulate.flood.kernels_numpy import ArrayKernels


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except (ImportError, RuntimeError, OSError):  # no cupy, CUDARuntimeError, missing driver libraries
        return False


class CupyKernels(ArrayKernels):
    """`ArrayKernels` over `cupy`; arrays live on the current CUDA device."""

    name = "gpu"

    def __init__(self) -> None:
        if not gpu_available():
            raise BackendUnavailable("the gpu backend needs CuPy and a CUDA device (pip install cupy-cuda12x)",
                                     field="backend")
        import cupy

        super().__init__(cupy)

    def asarray(self, a: Any, dtype: Any) -> Any:
        return self.xp.asarray(np.asarray(a), dtype=dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        return self.xp.asnumpy(a)

    def scalar(self, a: Any) -> float:
        return float(a.item()) if hasattr(a, "item") else float(a)
