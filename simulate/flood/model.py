"""The 2D inundation component: LISFLOOD-FP's local-inertial scheme (ACC).

Bates, Horritt & Fewtrell (2010) "A simple inertial formulation of the shallow water
equations for efficient two-dimensional flood inundation modelling", J. Hydrol. 387;
de Almeida, Bates, Freer & Souvignet (2012) "Improving the stability of a simple
formulation of the shallow water equations for 2-D flood modeling", WRR 48, W05528.

Per face, with the water surface eta = z + h and the face flow depth
h_f = max(eta_i, eta_j) - max(z_i, z_j):

    q^{n+1} = [theta q^n + (1 - theta) (q_{-1}^n + q_{+1}^n) / 2 - g h_f dt d(eta)/dx]
              / [1 + g dt n^2 |q^n| / h_f^{7/3}]

then h^{n+1} = h^n + dt (sum of face discharges) / dx, with outflow limited so a
cell never sends more than it holds. dt = alpha dx / sqrt(g h_max). The water
budget is kept in float64 (`MassBalance`) whatever the state precision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from simulate.flood.errors import BackendUnavailable, FloodInputError, FloodUnstable
from simulate.flood.forcing import BoundaryFaces, BoundForcing, Forcing
from simulate.flood.grid import FloodGrid
from simulate.flood.kernels_numpy import BLOCK_Z, SEVEN_THIRDS, ArrayKernels

Backend = Literal["auto", "numpy", "numba", "gpu"]
BACKENDS: tuple[str, ...] = ("auto", "numpy", "numba", "gpu")


@dataclass(frozen=True)
class FieldSpec:
    """A declared input or output of the component."""

    name: str
    units: str
    location: Literal["cell", "x face", "y face", "scalar"]
    description: str


@dataclass
class MassBalance:
    """Water budget of a run (m3, float64). Positive closing error: water created by the scheme."""

    initial_m3: float = 0.0
    rain_m3: float = 0.0
    inflow_m3: float = 0.0
    boundary_in_m3: float = 0.0
    boundary_out_m3: float = 0.0
    drained_m3: float = 0.0
    infiltrated_m3: float = 0.0
    storage_m3: float = 0.0

    @property
    def closing_error_m3(self) -> float:
        expected = (self.initial_m3 + self.rain_m3 + self.inflow_m3 + self.boundary_in_m3
                    - self.boundary_out_m3 - self.drained_m3 - self.infiltrated_m3)
        return self.storage_m3 - expected

    @property
    def relative_error(self) -> float:
        """Closing error over the water that entered (or the initial storage when none did)."""
        scale = self.rain_m3 + self.inflow_m3 + self.boundary_in_m3
        scale = scale if scale > 0 else self.initial_m3
        return abs(self.closing_error_m3) / scale if scale > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        out = asdict(self)
        out["closing_error_m3"] = self.closing_error_m3
        out["relative_error"] = self.relative_error
        return out


def make_kernels(backend: str) -> Any:
    """Kernels for `backend`; "auto" picks the GPU when CuPy sees one, else Numba, else NumPy."""
    if backend not in BACKENDS:
        raise FloodInputError(f"unknown backend '{backend}' (use {', '.join(BACKENDS)})", field="backend")
    if backend in ("auto", "gpu"):
        from simulate.flood.kernels_gpu import CupyKernels, gpu_available

        if backend == "gpu" or gpu_available():
            return CupyKernels()
    if backend in ("auto", "numba"):
        try:
            from simulate.flood.kernels_numba import NumbaKernels
        except ImportError as exc:  # numba is a dependency, but keep the reference path usable
            if backend == "numba":
                raise BackendUnavailable("numba is not installed", field="backend", detail=str(exc)) from None
        else:
            return NumbaKernels()
    return ArrayKernels(np)


class FloodModel:
    """Local-inertial 2D flood model on a `FloodGrid`, driven by a `Forcing`.

    Advance with `step()` (one stable step), `run_one_step(dt)` (exactly dt, in stable
    sub-steps) or `run(until)`. State: `h` (cells), `qx`, `qy` (faces), time `t`.
    """

    inputs: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("topographic__elevation", "m", "cell", "bed level z (grid)"),
        FieldSpec("mannings_n", "s m^-1/3", "cell", "Manning's roughness (grid)"),
        FieldSpec("rainfall__intensity", "mm/h", "cell", "rain rate (forcing)"),
        FieldSpec("inflow__discharge", "m3/s", "scalar", "point and edge hydrographs (forcing)"),
        FieldSpec("boundary__stage", "m", "scalar", "water level outside stage edges (forcing)"),
        FieldSpec("sink__capacity", "mm/h", "cell", "drainage and infiltration capacity (forcing)"),
    )
    outputs: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("surface_water__depth", "m", "cell", "h"),
        FieldSpec("surface_water__discharge_x", "m2/s", "x face", "qx, positive east"),
        FieldSpec("surface_water__discharge_y", "m2/s", "y face", "qy, positive south (down the rows)"),
        FieldSpec("surface_water__max_depth", "m", "cell", "running maximum of h"),
        FieldSpec("surface_water__max_speed", "m/s", "cell", "running maximum of |u| where h > 1 cm"),
        FieldSpec("surface_water__time_wet", "s", "cell", "first time h > wet_depth (NaN: never)"),
        FieldSpec("surface_water__time_deep", "s", "cell", "first time h > deep_depth (NaN: never)"),
    )

    def __init__(self, grid: FloodGrid, forcing: Forcing | BoundForcing | None = None, *,
                 theta: float = 0.8, alpha: float = 0.7, g: float = 9.81, dt_max: float = 10.0,
                 h_eps: float = 1e-5, backend: Backend = "auto", dtype: Any = np.float32,
                 initial_level: float | np.ndarray | None = None, initial_depth: np.ndarray | None = None,
                 wet_depth: float = 0.01, deep_depth: float = 0.3, track: bool = True):
        for name, value, lo, hi in (("theta", theta, 0.0, 1.0), ("alpha", alpha, 1e-3, 1.0)):
            if not (lo <= value <= hi):
                raise FloodInputError(f"{name} must be within {lo}..{hi}, got {value}", field=name)
        for name, value in (("g", g), ("dt_max", dt_max), ("h_eps", h_eps), ("wet_depth", wet_depth),
                            ("deep_depth", deep_depth)):
            if not (value > 0 and np.isfinite(value)):
                raise FloodInputError(f"{name} must be positive, got {value}", field=name)
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise FloodInputError("dtype must be float32 or float64", field="dtype")
        self.grid = grid
        self.forcing = (forcing if isinstance(forcing, BoundForcing) else (forcing or Forcing()).bind(grid))
        self.theta, self.alpha, self.g, self.dt_max, self.h_eps = theta, alpha, g, dt_max, h_eps
        self.wet_depth, self.deep_depth = wet_depth, deep_depth
        self.dtype = np.dtype(dtype)
        self.kernels = make_kernels(backend)
        self.backend = self.kernels.name
        k, dt_ = self.kernels, self.dtype
        ny, nx = grid.shape
        z = np.where(grid.blocked, BLOCK_Z, grid.z)
        h0 = np.zeros(grid.shape)
        if initial_level is not None:
            h0 = np.maximum(np.asarray(initial_level, float) - grid.z, 0.0)
        if initial_depth is not None:
            h0 = np.asarray(initial_depth, float) * np.ones(grid.shape)
        if np.any(~np.isfinite(h0)) or np.any(h0 < 0):
            raise FloodInputError("initial depths must be finite and >= 0", field="initial_depth")
        h0 = np.where(grid.blocked, 0.0, h0)
        self.z, self.n2 = k.asarray(z, dt_), k.asarray(grid.n ** 2, dt_)
        self.h = k.asarray(h0, dt_)
        self.qx, self.qy = k.asarray(np.zeros((ny, nx + 1)), dt_), k.asarray(np.zeros((ny + 1, nx)), dt_)
        self._qx_new, self._qy_new = k.asarray(np.zeros((ny, nx + 1)), dt_), k.asarray(np.zeros((ny + 1, nx)), dt_)
        self._drain = k.asarray(self.forcing.drain, dt_)
        self._infil = k.asarray(self.forcing.infil, dt_)
        self._rain = k.asarray(np.zeros(grid.shape), dt_)
        self._rain_sum = 0.0
        self._bnd = {kind: self._upload_faces(b) for kind, b in self.forcing.boundary.items()}
        self._z_host = np.where(grid.blocked, BLOCK_Z, grid.z)
        self.t, self.steps, self.limited_cells = 0.0, 0, 0
        self.h_max_now = float(h0.max())
        self.mass = MassBalance()
        self.mass.initial_m3 = self.mass.storage_m3 = self.storage()
        self.track = track
        if track:
            self.max_depth = k.asarray(h0, dt_)
            self.max_speed = k.asarray(np.zeros(grid.shape), dt_)
            self.time_wet = k.asarray(np.where(h0 > wet_depth, 0.0, np.nan), np.float32)
            self.time_deep = k.asarray(np.where(h0 > deep_depth, 0.0, np.nan), np.float32)

    # -- state
    def storage(self) -> float:
        return float(self.h.sum(dtype=np.float64)) * self.grid.cell_area

    def depth(self) -> np.ndarray:
        """Water depth (m) on the host, NaN in blocked cells."""
        return np.where(self.grid.blocked, np.nan, self.kernels.to_numpy(self.h).astype(np.float64))

    def level(self) -> np.ndarray:
        return self.grid.z + self.depth()

    def host(self, name: str) -> np.ndarray:
        """A tracked array on the host: max_depth, max_speed, time_wet, time_deep."""
        if not self.track:
            raise FloodInputError("this model was built with track=False", field="track")
        return np.asarray(self.kernels.to_numpy(getattr(self, name)), dtype=np.float64)

    def stable_dt(self) -> float:
        h = max(self.h_max_now, self._stage_depth_max(), 1e-6)
        return float(min(self.alpha * min(self.grid.dx, self.grid.dy) / np.sqrt(self.g * h), self.dt_max))

    # -- time stepping
    def step(self, dt: float | None = None) -> float:
        """One step of min(dt, the CFL step); returns the step taken (s)."""
        k, m = self.kernels, self.mass
        rain, changed = self.forcing.rain_at(self.t)
        if changed:
            self._rain = k.asarray(rain, self.dtype)
            self._rain_sum = float(rain.sum())
        dt = self.stable_dt() if dt is None else min(float(dt), self.stable_dt())
        if not dt > 0:
            raise FloodInputError("dt must be positive", field="dt")
        k.flux(self.z, self.h, self.n2, self.qx, self.qy, self._qx_new, self._qy_new, dt, self.grid.dx,
               self.grid.dy, self.theta, self.g, self.h_eps)
        self._boundary_fluxes(dt)
        sums = k.continuity(self.h, self._qx_new, self._qy_new, self._rain, self._drain, self._infil, dt,
                            self.grid.dx, self.grid.dy, self.forcing.has_sink)
        area = self.grid.cell_area
        b_in, b_out = self._boundary_volumes(dt)
        m.boundary_in_m3 += b_in
        m.boundary_out_m3 += b_out
        m.rain_m3 += self._rain_sum * dt * area
        m.drained_m3 += sums.drained_m * area
        m.infiltrated_m3 += sums.infiltrated_m * area
        h_max = sums.h_max
        flat = self.h.reshape(-1)
        for idx, q in self.forcing.sources_at(self.t):
            if q.any():
                add = k.asarray(q * dt / area, self.dtype)
                flat[k.asarray(idx, np.int64)] += add
                m.inflow_m3 += float(q.sum()) * dt
                h_max = max(h_max, k.scalar(flat[k.asarray(idx, np.int64)].max()))
        self.qx, self._qx_new = self._qx_new, self.qx
        self.qy, self._qy_new = self._qy_new, self.qy
        self.t += dt
        self.steps += 1
        self.limited_cells += sums.n_limited
        self.h_max_now = h_max
        if not np.isfinite(h_max):
            raise FloodUnstable(f"non-finite depth at t = {self.t:.1f} s after {self.steps} steps")
        if self.track:
            k.stats(self.h, self.qx, self.qy, self.max_depth, self.max_speed, self.time_wet, self.time_deep,
                    self.t, self.wet_depth, self.deep_depth, 0.01)
        return dt

    def run_one_step(self, dt: float) -> None:
        """Advance exactly `dt` seconds in as many stable steps as needed."""
        self.run(self.t + dt)

    def run(self, until: float, *, callback: Callable[[FloodModel], None] | None = None,
            every_s: float | None = None) -> None:
        """Advance to time `until`; call `callback(model)` at every multiple of `every_s` (and at the end)."""
        next_call = (np.floor(self.t / every_s + 1e-9) + 1) * every_s if every_s else np.inf
        while self.t < until - 1e-9:
            self.step(min(until, next_call) - self.t)
            if callback is not None and self.t >= next_call - 1e-9:
                callback(self)
                next_call += every_s
        self.mass.storage_m3 = self.storage()

    def mass_balance(self) -> MassBalance:
        self.mass.storage_m3 = self.storage()
        return self.mass

    # -- boundaries
    def _upload_faces(self, b: BoundaryFaces) -> dict[str, Any]:
        k = self.kernels
        n2 = self.grid.n.ravel()[b.cell] ** 2 if len(b.cell) else np.zeros(0)
        out: dict[str, Any] = {"faces": b, "n": len(b.cell), "n2": k.asarray(n2, np.float64),
                               "zc": self.grid.z.ravel()[b.cell] if len(b.cell) else np.zeros(0)}
        for axis in (0, 1):
            sel = b.axis == axis
            out[f"sel{axis}"] = k.asarray(sel, bool)
            out[f"face{axis}"] = k.asarray(b.face[sel], np.int64)
        for name in ("cell", "sign", "dist", "width", "slope"):
            out[name] = k.asarray(getattr(b, name), np.int64 if name == "cell" else np.float64)
        return out

    def _stage_depth_max(self) -> float:
        b = self._bnd.get("stage")
        if not b or not b["n"]:
            return 0.0
        return float(np.max(self.forcing.stage_levels(self.t) - b["zc"], initial=0.0))

    def _boundary_fluxes(self, dt: float) -> None:
        """Closed edges get zero discharge; stage and free faces the semi-implicit face update."""
        k, xp = self.kernels, _namespace(self.kernels)
        qxn, qyn = self._qx_new, self._qy_new
        qxn[:, 0] = 0.0
        qxn[:, -1] = 0.0
        qyn[0, :] = 0.0
        qyn[-1, :] = 0.0
        for kind, b in self._bnd.items():
            if not b["n"]:
                continue
            hc = self.h.reshape(-1)[b["cell"]].astype(np.float64)
            zc = self.z.reshape(-1)[b["cell"]].astype(np.float64)
            if kind == "inflow":
                rate = k.asarray(self.forcing.edge_inflow_rates(self.t), np.float64)
                values = (-rate * b["sign"]).astype(self.dtype)
                qxn.reshape(-1)[b["face0"]] = values[b["sel0"]]
                qyn.reshape(-1)[b["face1"]] = values[b["sel1"]]
                self.mass.inflow_m3 += float((rate * b["width"]).sum()) * dt
                continue
            q_old = self._gather(self.qx, self.qy, b) * b["sign"]
            if kind == "stage":
                eg = k.asarray(self.forcing.stage_levels(self.t), np.float64)
                ec = zc + hc
                hf = xp.maximum(ec, eg) - zc
                push = -self.g * hf * dt * (eg - ec) / b["dist"]
                q_out = q_old + push
            else:
                hf = hc
                q_out = xp.maximum(q_old, 0.0) + self.g * hf * dt * b["slope"]
            hs = xp.maximum(hf, self.h_eps)
            q_out = q_out / (1.0 + self.g * dt * b["n2"] * xp.abs(q_old) / hs ** SEVEN_THIRDS)
            q_out = xp.where(hf > self.h_eps, q_out, 0.0)
            if kind == "free":
                q_out = xp.maximum(q_out, 0.0)
            values = (q_out * b["sign"]).astype(self.dtype)
            qxn.reshape(-1)[b["face0"]] = values[b["sel0"]]
            qyn.reshape(-1)[b["face1"]] = values[b["sel1"]]

    def _gather(self, qx, qy, b: dict[str, Any]) -> Any:
        xp = _namespace(self.kernels)
        out = xp.zeros(b["n"], dtype=np.float64)
        out[b["sel0"]] = qx.reshape(-1)[b["face0"]]
        out[b["sel1"]] = qy.reshape(-1)[b["face1"]]
        return out

    def _boundary_volumes(self, dt: float) -> tuple[float, float]:
        """(in, out) m3 through open edges this step, after outflow limiting."""
        xp = _namespace(self.kernels)
        v_in = v_out = 0.0
        for kind, b in self._bnd.items():
            if not b["n"] or kind == "inflow":
                continue
            q_out = self._gather(self._qx_new, self._qy_new, b) * b["sign"] * b["width"] * dt
            v_out += float(xp.maximum(q_out, 0.0).sum())
            v_in += float(xp.maximum(-q_out, 0.0).sum())
        return v_in, v_out


def _namespace(kernels: Any) -> Any:
    return getattr(kernels, "xp", np)
