"""Compiled, threaded kernels of the local-inertial scheme (the default CPU backend).

The same four passes as `kernels_numpy.ArrayKernels`, as explicit loops that Numba
compiles and runs row-parallel (`prange`). Each pass touches every cell once, so
the cost of a step is close to the memory traffic of reading the state twice and
writing it once. Thread count follows `numba.set_num_threads` / NUMBA_NUM_THREADS.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from simulate.flood.kernels_numpy import StepSums


@intrinsic
def _f32_bits(typingctx, x):  # pragma: no cover - compiled
    """Reinterpret a float32 as its int32 bit pattern (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@intrinsic
def _bits_f32(typingctx, i):  # pragma: no cover - compiled
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(fastmath=True, inline="always", cache=True)
def inv_pow73(x):  # pragma: no cover - compiled
    """x ** (-7/3) for x > 0 without libm's pow: a bit-level first guess of x ** (-1/3)
    refined by four Newton steps (relative error < 1e-7 in float32, ~1e-15 in float64),
    so the friction term costs a few multiplications instead of two pow calls per cell."""
    y = _bits_f32(np.int32(0x54A2FA8C) - _f32_bits(np.float32(x)) // np.int32(3))
    third = 1.0 / 3.0
    y = y * (4.0 - x * y * y * y) * third
    y = y * (4.0 - x * y * y * y) * third
    y = y * (4.0 - x * y * y * y) * third
    y = y * (4.0 - x * y * y * y) * third
    y2 = y * y
    return y2 * y2 * y2 * y


@njit(parallel=True, fastmath=True, cache=True)
def _flux(z, h, n2, qx, qy, qxn, qyn, dt, dx, dy, theta, g, h_eps, half, one):  # pragma: no cover - compiled
    ny, nx = h.shape
    for i in prange(ny):
        for j in range(1, nx):
            zl = z[i, j - 1]
            zr = z[i, j]
            el = zl + h[i, j - 1]
            er = zr + h[i, j]
            hf = max(el, er) - max(zl, zr)
            if hf > h_eps:
                q0 = qx[i, j]
                num = theta * q0 + (one - theta) * half * (qx[i, j - 1] + qx[i, j + 1]) - g * hf * dt * (er - el) / dx
                den = one + g * dt * half * (n2[i, j - 1] + n2[i, j]) * abs(q0) * inv_pow73(hf)
                qxn[i, j] = num / den
            else:
                qxn[i, j] = 0.0
        if i > 0:
            for j in range(nx):
                zu = z[i - 1, j]
                zd = z[i, j]
                eu = zu + h[i - 1, j]
                ed = zd + h[i, j]
                hf = max(eu, ed) - max(zu, zd)
                if hf > h_eps:
                    q0 = qy[i, j]
                    num = theta * q0 + (one - theta) * half * (qy[i - 1, j] + qy[i + 1, j]) - g * hf * dt * (ed - eu) / dy
                    den = one + g * dt * half * (n2[i - 1, j] + n2[i, j]) * abs(q0) * inv_pow73(hf)
                    qyn[i, j] = num / den
                else:
                    qyn[i, j] = 0.0


@njit(parallel=True, fastmath=True, cache=True)
def _factors(h, qx, qy, r, dt, dx, dy):  # pragma: no cover - compiled
    ny, nx = h.shape
    counts = np.zeros(ny, dtype=np.int64)
    for i in prange(ny):
        c = 0
        for j in range(nx):
            out = dt * ((max(qx[i, j + 1], 0.0) + max(-qx[i, j], 0.0)) / dx
                        + (max(qy[i + 1, j], 0.0) + max(-qy[i, j], 0.0)) / dy)
            hc = h[i, j]
            if out > hc:
                r[i, j] = hc / out
                c += 1
            else:
                r[i, j] = 1.0
        counts[i] = c
    return counts.sum()


@njit(parallel=True, fastmath=True, cache=True)
def _scale(qx, qy, r):  # pragma: no cover - compiled
    ny, nx = r.shape
    for i in prange(ny):
        for j in range(nx + 1):
            q = qx[i, j]
            if q > 0.0 and j > 0:
                qx[i, j] = q * r[i, j - 1]
            elif q < 0.0 and j < nx:
                qx[i, j] = q * r[i, j]
        for j in range(nx):
            q = qy[i, j]                      # north face of row i
            if q > 0.0 and i > 0:
                qy[i, j] = q * r[i - 1, j]
            elif q < 0.0:
                qy[i, j] = q * r[i, j]
            if i == ny - 1:                   # the south edge belongs to the last row
                q = qy[ny, j]
                if q > 0.0:
                    qy[ny, j] = q * r[i, j]


@njit(parallel=True, fastmath=True, cache=True)
def _continuity(h, qx, qy, rain, drain, infil, dt, dx, dy, has_sink):  # pragma: no cover - compiled
    ny, nx = h.shape
    drained = np.zeros(ny)
    infiltrated = np.zeros(ny)
    hmax = np.zeros(ny)
    for i in prange(ny):
        d_row = 0.0
        f_row = 0.0
        m_row = 0.0
        for j in range(nx):
            hn = h[i, j] + dt * ((qx[i, j] - qx[i, j + 1]) / dx + (qy[i, j] - qy[i + 1, j]) / dy)
            hn = max(hn, 0.0)
            hn += rain[i, j] * dt
            if has_sink:
                dc = drain[i, j] * dt
                fc = infil[i, j] * dt
                cap = dc + fc
                if cap > 0.0:
                    taken = min(hn, cap)
                    hn -= taken
                    d_row += taken * (dc / cap)
                    f_row += taken * (fc / cap)
            h[i, j] = hn
            m_row = max(m_row, hn)
        drained[i] = d_row
        infiltrated[i] = f_row
        hmax[i] = m_row
    return drained.sum(), infiltrated.sum(), hmax.max()


@njit(parallel=True, cache=True)   # no fastmath: it would assume no NaN and drop the isnan tests
def _stats(h, qx, qy, h_max, v_max, t_wet, t_deep, t, wet_depth, deep_depth, h_vel):  # pragma: no cover
    ny, nx = h.shape
    for i in prange(ny):
        for j in range(nx):
            hc = h[i, j]
            h_max[i, j] = max(h_max[i, j], hc)
            if hc > h_vel:
                u = 0.5 * (qx[i, j] + qx[i, j + 1])
                v = 0.5 * (qy[i, j] + qy[i + 1, j])
                s = np.sqrt(u * u + v * v) / hc
                v_max[i, j] = max(v_max[i, j], s)
            if hc > wet_depth and np.isnan(t_wet[i, j]):
                t_wet[i, j] = t
            if hc > deep_depth and np.isnan(t_deep[i, j]):
                t_deep[i, j] = t


class NumbaKernels:
    """Row-parallel compiled kernels on NumPy arrays."""

    name = "numba"

    def __init__(self) -> None:
        self._r: np.ndarray | None = None

    def asarray(self, a: Any, dtype: Any) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype)

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return a

    def scalar(self, a: Any) -> float:
        return float(a)

    def flux(self, z, h, n2, qx, qy, qx_new, qy_new, dt, dx, dy, theta, g, h_eps) -> None:
        f = h.dtype.type        # scalars in the state precision keep float32 runs in single precision
        _flux(z, h, n2, qx, qy, qx_new, qy_new, f(dt), f(dx), f(dy), f(theta), f(g), f(h_eps), f(0.5), f(1.0))

    def continuity(self, h, qx, qy, rain, drain, infil, dt, dx, dy, has_sink) -> StepSums:
        if self._r is None or self._r.shape != h.shape or self._r.dtype != h.dtype:
            self._r = np.empty_like(h)
        n_limited = int(_factors(h, qx, qy, self._r, float(dt), float(dx), float(dy)))
        if n_limited:
            _scale(qx, qy, self._r)
        d, f, m = _continuity(h, qx, qy, rain, drain, infil, float(dt), float(dx), float(dy), bool(has_sink))
        return StepSums(float(d), float(f), float(m), n_limited)

    def stats(self, h, qx, qy, h_max, v_max, t_wet, t_deep, t, wet_depth, deep_depth, h_vel) -> None:
        _stats(h, qx, qy, h_max, v_max, t_wet, t_deep, float(t), float(wet_depth), float(deep_depth),
               float(h_vel))
