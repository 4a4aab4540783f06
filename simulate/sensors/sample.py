"""A realistic sample sensor network for a twin, placed from the twin's own data.

    rain gauges        on building roofs spread over the extent: intensity (mm/h), accumulation (mm)
    river stage        along the ground raster's low band (the Pearl River in Tianhe): stage (m)
    waterlogging       at the ground raster's local low spots off the river, bound to the nearest road:
                       water depth (m)
    pump stations      on the river bank next to each low spot cluster: status (on/off), flow (m³/s),
                       sump level (m)

`plan_network(twin)` is pure (sites with lon/lat, twin bindings, datastreams, thresholds);
`install_network(service, sites)` creates them through the SensorThings service (deep insert) and is
idempotent: sites already present (by `twin:key`) are kept. Both return datastream keys such as
"rain-1/intensity" that the storm replay publishes to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio.transform
from pyproj import Transformer
from scipy import ndimage

from simulate.sensors.model import OM_MEASUREMENT, OM_TRUTH, TWIN_FEATURE, TWIN_LAYER, TWIN_THRESHOLDS
from simulate.sensors.odata import Query
from twin.store.base import TwinStore

KEY = "twin:key"
UNITS = {
    "mm": {"name": "millimetre", "symbol": "mm", "definition": "http://qudt.org/vocab/unit/MilliM"},
    "mm/h": {"name": "millimetre per hour", "symbol": "mm/h", "definition": "http://qudt.org/vocab/unit/MilliM-PER-HR"},
    "m": {"name": "metre", "symbol": "m", "definition": "http://qudt.org/vocab/unit/M"},
    "m3/s": {"name": "cubic metre per second", "symbol": "m³/s", "definition": "http://qudt.org/vocab/unit/M3-PER-SEC"},
    "bool": {"name": "running", "symbol": "", "definition": "http://www.opengis.net/def/uom/OGC/1.0/unity"},
}
# thresholds per datastream kind (direction "above")
THRESHOLDS = {
    "intensity": {"warning": 30.0, "alarm": 50.0, "hysteresis": 5.0},
    "stage": {"warning": 1.8, "alarm": 2.3, "hysteresis": 0.1},
    "depth": {"warning": 0.15, "alarm": 0.30, "hysteresis": 0.03},
    "sump": {"warning": 2.5, "alarm": 3.0, "hysteresis": 0.1},
}


@dataclass(frozen=True)
class StreamPlan:
    key: str                      # "rain-1/intensity"
    name: str
    unit: str                     # a key of UNITS
    observed: str                 # observed property name
    thresholds: dict[str, float] | None = None
    truth: bool = False


@dataclass
class Site:
    key: str                      # "rain-1"
    kind: str                     # rain | stage | waterlogging | pump
    name: str
    lon: float
    lat: float
    x: float                      # project CRS
    y: float
    ground: float                 # ground elevation (m)
    layer: str | None = None
    feature: str | None = None
    streams: list[StreamPlan] = field(default_factory=list)
    group: int = 0                # waterlogging point <-> pump station pairing


def _river_mask(ground: np.ndarray) -> np.ndarray:
    """The largest connected low band: cells at or below the 8th percentile, in rows mostly that low."""
    low = ground <= np.nanpercentile(ground, 8)
    rows = np.nanmean(low, axis=1) >= 0.4
    band = low & rows[:, None]
    labels, n = ndimage.label(band)
    if n == 0:
        return band
    sizes = ndimage.sum(band, labels, range(1, n + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def plan_network(twin: TwinStore, *, rain_gauges: int = 4, stage_gauges: int = 3, low_spots: int = 6,
                 pumps: int = 3) -> list[Site]:
    raster = twin.read_raster("ground")
    ground = raster.array
    t = raster.transform
    to_wgs = Transformer.from_crs(raster.crs, "EPSG:4326", always_xy=True)

    def site(key: str, kind: str, name: str, row: int, col: int, **kw: Any) -> Site:
        x, y = rasterio.transform.xy(t, row, col)
        lon, lat = to_wgs.transform(x, y)
        return Site(key, kind, name, round(lon, 6), round(lat, 6), float(x), float(y),
                    float(ground[row, col]), **kw)

    sites: list[Site] = []
    river = _river_mask(ground)
    h, w = ground.shape
    # stage gauges: the deepest river cell in equal column slices, west to east
    for i, cols in enumerate(np.array_split(np.arange(w), stage_gauges), start=1):
        sub = np.where(river[:, cols], ground[:, cols], np.inf)
        r, c = np.unravel_index(int(np.argmin(sub)), sub.shape)
        sites.append(site(f"stage-{i}", "stage", f"Pearl River stage gauge {i}", int(r), int(cols[c]),
                          streams=[StreamPlan(f"stage-{i}/stage", f"River stage {i}", "m", "water level",
                                              THRESHOLDS["stage"])]))
    # waterlogging points: local minima off the river (and off the raster edge), lowest first, >= 8 cells apart
    filled = np.where(np.isnan(ground), np.inf, ground)
    minima = (filled == ndimage.minimum_filter(filled, size=7)) & ~ndimage.binary_dilation(river, iterations=4)
    minima[:4, :] = minima[-4:, :] = minima[:, :4] = minima[:, -4:] = False
    cand = sorted(zip(*np.nonzero(minima)), key=lambda rc: filled[rc])
    chosen: list[tuple[int, int]] = []
    for r, c in cand:
        if all((r - a) ** 2 + (c - b) ** 2 >= 64 for a, b in chosen):
            chosen.append((int(r), int(c)))
        if len(chosen) == low_spots:
            break
    roads = twin.read_layer("roads", columns=["id"]) if "roads" in twin.layer_names() else None
    river_cells = np.argwhere(river)
    for i, (r, c) in enumerate(chosen, start=1):
        s = site(f"wl-{i}", "waterlogging", f"Waterlogging point {i}", r, c, group=(i - 1) % max(pumps, 1),
                 streams=[StreamPlan(f"wl-{i}/depth", f"Water depth {i}", "m", "water depth", THRESHOLDS["depth"])])
        if roads is not None and len(roads):
            from shapely.geometry import Point

            j = int(roads.geometry.distance(Point(s.x, s.y)).argmin())
            s.layer, s.feature = "roads", str(roads.iloc[j]["id"])
        sites.append(s)
    # pump stations: on the river bank nearest each group's first low spot
    for g in range(min(pumps, len(chosen))):
        r0, c0 = chosen[g]
        d = ((river_cells - [r0, c0]) ** 2).sum(axis=1)
        r, c = river_cells[int(np.argmin(d))]
        r = int(r) - 2 if r0 < r else int(r) + 2          # just off the water, towards the low spot
        r = min(max(r, 0), h - 1)
        sites.append(site(f"pump-{g + 1}", "pump", f"Drainage pump station {g + 1}", r, int(c), group=g, streams=[
            StreamPlan(f"pump-{g + 1}/status", f"Pump {g + 1} running", "bool", "pump status", truth=True),
            StreamPlan(f"pump-{g + 1}/flow", f"Pump {g + 1} flow", "m3/s", "discharge"),
            StreamPlan(f"pump-{g + 1}/sump", f"Pump {g + 1} sump level", "m", "water level", THRESHOLDS["sump"])]))
    # rain gauges: roofs of the buildings nearest to points spread over the extent
    buildings = twin.read_layer("buildings", columns=["id", "name"]) if "buildings" in twin.layer_names() else None
    n_side = int(np.ceil(np.sqrt(rain_gauges)))
    spots = [((a + 0.5) / n_side, (b + 0.5) / n_side) for a in range(n_side) for b in range(n_side)][:rain_gauges]
    for i, (fr, fc) in enumerate(spots, start=1):
        r, c = int(fr * (h - 1)), int(fc * (w - 1))
        s = site(f"rain-{i}", "rain", f"Rain gauge {i}", r, c, streams=[
            StreamPlan(f"rain-{i}/intensity", f"Rain intensity {i}", "mm/h", "precipitation intensity",
                       THRESHOLDS["intensity"]),
            StreamPlan(f"rain-{i}/accumulation", f"Rain accumulation {i}", "mm", "precipitation amount")])
        if buildings is not None and len(buildings):
            from shapely.geometry import Point

            j = int(buildings.geometry.distance(Point(s.x, s.y)).argmin())
            centre = buildings.geometry.iloc[j].representative_point()
            s.x, s.y = float(centre.x), float(centre.y)
            s.lon, s.lat = (round(v, 6) for v in to_wgs.transform(s.x, s.y))
            s.layer, s.feature = "buildings", str(buildings.iloc[j]["id"])
        sites.append(s)
    return sites


def thing_body(s: Site) -> dict[str, Any]:
    props: dict[str, Any] = {KEY: s.key, "kind": s.kind, "ground_m": round(s.ground, 2), "group": s.group}
    if s.layer is not None:
        props[TWIN_LAYER], props[TWIN_FEATURE] = s.layer, s.feature
    return {"name": s.name, "description": f"{s.kind} site {s.key}", "properties": props,
            "Locations": [{"name": s.name, "description": f"location of {s.key}",
                           "encodingType": "application/geo+json",
                           "location": {"type": "Point", "coordinates": [s.lon, s.lat]}}],
            "Datastreams": [{
                "name": p.name, "description": f"{p.observed} at {s.name}",
                "observationType": OM_TRUTH if p.truth else OM_MEASUREMENT,
                "unitOfMeasurement": UNITS[p.unit],
                "properties": {KEY: p.key, **({TWIN_THRESHOLDS: p.thresholds} if p.thresholds else {})},
                "Sensor": {"name": f"{s.kind} sensor", "description": f"{s.kind} sensor of {s.key}",
                           "encodingType": "text/html", "metadata": "https://example.org/sensors/" + s.kind},
                "ObservedProperty": {"name": p.observed, "description": p.observed,
                                     "definition": "https://example.org/def/" + p.observed.replace(" ", "-")}}
                for p in s.streams]}


def install_network(service: Any, sites: list[Site]) -> dict[str, int]:
    """Create the sites that are missing; {datastream key: Datastream id} for all of them."""
    have = datastream_keys(service)
    for s in sites:
        if not all(p.key in have for p in s.streams):
            service.create("Things", thing_body(s))
    return datastream_keys(service)


def datastream_keys(service: Any) -> dict[str, int]:
    q = Query(top=10_000)
    page = service.query("Datastreams", q)
    out = {}
    for row in page.rows:
        import orjson

        props = orjson.loads(row["properties"]) if row.get("properties") else {}
        if KEY in props:
            out[props[KEY]] = row["id"]
    return out
