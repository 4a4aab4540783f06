"""Bare-earth terrain of a synthetic city and the surface model with buildings on it."""

from __future__ import annotations

import numpy as np
import rasterio
from affine import Affine
from rasterio.features import rasterize
from scipy import ndimage

from twin.synth_streets import River

NODATA = -9999.0


def cell_size(side: float) -> float:
    return 5.0 if side <= 6000 else 10.0


def dem(bounds: tuple[float, float, float, float], cell: float, river: River, side: float,
        rng: np.random.Generator) -> tuple[np.ndarray, Affine, np.ndarray]:
    """-> (elevation float32, transform, pit centres (k, 2)), in centre-relative metres.

    Regional slope + a valley along the river + smooth noise + a few closed pits
    (a Gaussian bowl far steeper than the slope, so nothing drains out of it).
    """
    minx, miny, maxx, maxy = bounds
    w, h = int(np.ceil((maxx - minx) / cell)), int(np.ceil((maxy - miny) / cell))
    x = minx + (np.arange(w) + 0.5) * cell
    y = maxy - (np.arange(h) + 0.5) * cell
    gx = x[None, :]
    gy = y[:, None]
    z = 20.0 + 0.003 * gx + 0.0015 * gy
    d = river.distance(gx, gy)
    valley = 3.0 * river.half_width + 150.0
    z = z - 6.0 * np.exp(-(d / valley) ** 2) - 2.5 * (d < river.half_width)

    coarse = rng.normal(0, 1, size=(max(h // 40, 2) + 2, max(w // 40, 2) + 2))
    noise = ndimage.zoom(coarse, (h / coarse.shape[0], w / coarse.shape[1]), order=3)[:h, :w]
    z = z + 0.6 * noise

    n_pits = 3 + int(side * side / 2e6)
    sigma = np.clip(rng.uniform(0.02, 0.04, n_pits) * side, 20.0, 90.0)
    depth = rng.uniform(2.5, 4.5, n_pits)
    margin = min(3 * sigma.max(), 0.25 * (maxx - minx), 0.25 * (maxy - miny))
    cand = rng.uniform([minx + margin, miny + margin], [maxx - margin, maxy - margin], size=(256, 2))
    dist = river.distance(cand[:, 0], cand[:, 1])
    # Away from the valley, where only the gentle regional slope competes with the bowl.
    order = np.concatenate([np.flatnonzero(dist > valley + 3 * sigma.max()), np.argsort(-dist)])
    pits = cand[order[:n_pits]]
    for (px, py), s, dpt in zip(pits, sigma, depth):
        c0, c1 = np.searchsorted(x, [px - 4 * s, px + 4 * s])
        r0, r1 = np.searchsorted(-y, [-(py + 4 * s), -(py - 4 * s)])
        bowl = np.exp(-((x[None, c0:c1] - px) ** 2 + (y[r0:r1, None] - py) ** 2) / (2 * s * s))
        z[r0:r1, c0:c1] -= dpt * bowl
    return z.astype(np.float32), Affine(cell, 0, minx, 0, -cell, maxy), pits


def surface(ground: np.ndarray, transform: Affine, footprints: np.ndarray,
            height: np.ndarray) -> np.ndarray:
    """DSM: the ground plus each building's height over the cells its footprint covers
    (the highest wins where two share a cell)."""
    order = np.argsort(height, kind="stable")  # rasterize keeps the last value drawn
    shapes = ((g, float(v)) for g, v in zip(footprints[order], height[order]))
    burnt = rasterize(shapes, out_shape=ground.shape, transform=transform, fill=0.0,
                      dtype="float32")
    return ground + burnt


def write_tif(path, array: np.ndarray, transform: Affine, crs: str) -> None:
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                   dtype="float32", crs=crs, transform=transform, nodata=NODATA,
                   compress="deflate", predictor=3, tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
