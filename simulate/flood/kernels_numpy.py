"""Reference kernels of the local-inertial scheme, written once for any array namespace.

`ArrayKernels(numpy)` is the readable reference the compiled kernels are tested
against; `kernels_gpu` runs the very same code with CuPy arrays. Every function
works on whole arrays (no Python loops over cells).

Grid conventions (shared by every backend):
    h, z, n2, rain, drain, infil : (ny, nx) cell arrays, row 0 at the top (north)
    qx : (ny, nx + 1) unit discharge on x faces (m2/s), positive towards +column (east)
    qy : (ny + 1, nx) unit discharge on y faces (m2/s), positive towards +row (south)
Blocked cells (buildings, no data) carry a very high bed (`BLOCK_Z`) and no water,
so the face depth max(eta) - max(z) is never positive there and no flux passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

BLOCK_Z = 1.0e5          # bed level of blocked cells (m): above any real terrain
SEVEN_THIRDS = 7.0 / 3.0


@dataclass(frozen=True)
class StepSums:
    """What one continuity update removed or found (depths summed over cells, metres)."""

    drained_m: float
    infiltrated_m: float
    h_max: float
    n_limited: int


class ArrayKernels:
    """The scheme on whole arrays of namespace `xp` (numpy or cupy)."""

    name = "numpy"

    def __init__(self, xp: ModuleType = np):
        self.xp = xp

    # -- array movement (identity for numpy, host<->device for cupy)
    def asarray(self, a: Any, dtype: Any) -> Any:
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def scalar(self, a: Any) -> float:
        return float(a)

    # -- momentum: interior faces only (boundary faces are set by the model)
    def flux(self, z, h, n2, qx, qy, qx_new, qy_new, dt: float, dx: float, dy: float,
             theta: float, g: float, h_eps: float) -> None:
        xp = self.xp
        eta = z + h
        # x faces 1..nx-1 between cells (i, j-1) and (i, j)
        hf = xp.maximum(eta[:, :-1], eta[:, 1:]) - xp.maximum(z[:, :-1], z[:, 1:])
        q0 = qx[:, 1:-1]
        num = (theta * q0 + (1.0 - theta) * 0.5 * (qx[:, :-2] + qx[:, 2:])
               - g * hf * dt * (eta[:, 1:] - eta[:, :-1]) / dx)
        hs = xp.maximum(hf, h_eps)
        den = 1.0 + g * dt * 0.5 * (n2[:, :-1] + n2[:, 1:]) * xp.abs(q0) / hs ** SEVEN_THIRDS
        qx_new[:, 1:-1] = xp.where(hf > h_eps, num / den, 0.0)
        # y faces 1..ny-1 between cells (i-1, j) and (i, j)
        hf = xp.maximum(eta[:-1, :], eta[1:, :]) - xp.maximum(z[:-1, :], z[1:, :])
        q0 = qy[1:-1, :]
        num = (theta * q0 + (1.0 - theta) * 0.5 * (qy[:-2, :] + qy[2:, :])
               - g * hf * dt * (eta[1:, :] - eta[:-1, :]) / dy)
        hs = xp.maximum(hf, h_eps)
        den = 1.0 + g * dt * 0.5 * (n2[:-1, :] + n2[1:, :]) * xp.abs(q0) / hs ** SEVEN_THIRDS
        qy_new[1:-1, :] = xp.where(hf > h_eps, num / den, 0.0)

    # -- outflow limiting, continuity, rain and capacity sinks (in place on h, qx, qy)
    def continuity(self, h, qx, qy, rain, drain, infil, dt: float, dx: float, dy: float,
                   has_sink: bool) -> StepSums:
        xp = self.xp
        out = dt * ((xp.maximum(qx[:, 1:], 0.0) + xp.maximum(-qx[:, :-1], 0.0)) / dx
                    + (xp.maximum(qy[1:, :], 0.0) + xp.maximum(-qy[:-1, :], 0.0)) / dy)
        over = out > h
        n_limited = int(over.sum())
        if n_limited:
            # a cell never sends more than it holds: scale its outgoing faces by h / out
            r = xp.where(over, h / xp.where(over, out, 1.0), 1.0).astype(h.dtype)
            rx = xp.pad(r, ((0, 0), (1, 1)), constant_values=1.0)
            ry = xp.pad(r, ((1, 1), (0, 0)), constant_values=1.0)
            qx *= xp.where(qx > 0, rx[:, :-1], rx[:, 1:])
            qy *= xp.where(qy > 0, ry[:-1, :], ry[1:, :])
        h += dt * ((qx[:, :-1] - qx[:, 1:]) / dx + (qy[:-1, :] - qy[1:, :]) / dy)
        xp.maximum(h, 0.0, out=h)           # round-off only: outflow was limited above
        h += rain * dt
        drained = infiltrated = 0.0
        if has_sink:
            cap = (drain + infil) * dt
            taken = xp.minimum(h, cap)
            share = xp.where(cap > 0, drain * dt / xp.where(cap > 0, cap, 1.0), 0.0)
            h -= taken
            drained = float((taken * share).sum(dtype=xp.float64))
            infiltrated = float(taken.sum(dtype=xp.float64)) - drained
        return StepSums(drained, infiltrated, float(h.max()), n_limited)

    # -- running maxima and first-exceedance times
    def stats(self, h, qx, qy, h_max, v_max, t_wet, t_deep, t: float, wet_depth: float,
              deep_depth: float, h_vel: float) -> None:
        xp = self.xp
        xp.maximum(h_max, h, out=h_max)
        u = 0.5 * (qx[:, :-1] + qx[:, 1:])
        v = 0.5 * (qy[:-1, :] + qy[1:, :])
        speed = xp.where(h > h_vel, xp.sqrt(u * u + v * v) / xp.maximum(h, h_vel), 0.0)
        xp.maximum(v_max, speed, out=v_max)
        t_wet[xp.isnan(t_wet) & (h > wet_depth)] = t
        t_deep[xp.isnan(t_deep) & (h > deep_depth)] = t
