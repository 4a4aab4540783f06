"""Where an IFC model sits in the world: IfcMapConversion, IfcSite reference or a placement.

Each method becomes a `Georeference`: a function taking model coordinates
(metres, the IFC world coordinate system) to project-CRS coordinates with z in
metres above the vertical datum. `resolve_georeference` picks the method in
the order map conversion, site reference, placement (a placement with
`override` wins over both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

import ifcopenshell
import ifcopenshell.util.element
import ifcopenshell.util.unit
import numpy as np
from pyproj import CRS, Transformer

from layers.crs import parse_crs
from layers.errors import CRSError, GeoreferenceError
from tiles.geodesy import ECEF, GEOGRAPHIC_3D, enu_to_ecef_matrix

if TYPE_CHECKING:
    from layers.base import IngestContext
    from twin.config import Placement

Method = Literal["map_conversion", "site_reference", "placement"]
ToProject = Callable[[np.ndarray], np.ndarray]


@dataclass
class Georeference:
    """How model coordinates (metres) become project coordinates."""

    method: Method
    to_project: ToProject          # (N, 3) model metres -> (N, 3) project x, y, z
    rotation_deg: float            # counter-clockwise turn of the model's +Y from north
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MapConversion:
    """IfcMapConversion (or IFC2X3 ePSet_MapConversion) parameters, as stored."""

    eastings: float
    northings: float
    orthogonal_height: float
    x_axis_abscissa: float
    x_axis_ordinate: float
    scale: float | None
    crs_name: str
    map_unit_m: float | None      # metres per map unit; None when IfcProjectedCRS.MapUnit is absent
    factors: tuple[float, float, float] = (1.0, 1.0, 1.0)  # IfcMapConversionScaled (IFC4X3)


@dataclass(frozen=True)
class SiteReference:
    latitude: float
    longitude: float
    elevation_m: float
    true_north_deg: float          # counter-clockwise turn from model +Y to true north


# --- reading the IFC ----------------------------------------------------------------


def model_context(model: ifcopenshell.file) -> ifcopenshell.entity_instance | None:
    """The 3D 'Model' representation context (not a sub-context)."""
    contexts = model.by_type("IfcGeometricRepresentationContext", include_subtypes=False)
    for ctx in contexts:
        if ctx.ContextType == "Model":
            return ctx
    return contexts[0] if contexts else None


def read_map_conversion(model: ifcopenshell.file) -> MapConversion | None:
    if model.schema == "IFC2X3":
        return _map_conversion_ifc2x3(model)
    contexts = model.by_type("IfcGeometricRepresentationContext", include_subtypes=False)
    # The Model context's own operation first; another context's is still a georeference.
    contexts = sorted(contexts, key=lambda c: c.ContextType != "Model")
    for op in (op for c in contexts for op in (c.HasCoordinateOperation or ())):
        if not op.is_a("IfcMapConversion"):
            continue
        crs = op.TargetCRS
        factors = (1.0, 1.0, 1.0)
        if op.is_a("IfcMapConversionScaled"):
            factors = (float(op.FactorX), float(op.FactorY), float(op.FactorZ))
        map_unit = getattr(crs, "MapUnit", None)
        return MapConversion(
            eastings=float(op.Eastings or 0.0),
            northings=float(op.Northings or 0.0),
            orthogonal_height=float(op.OrthogonalHeight or 0.0),
            x_axis_abscissa=float(op.XAxisAbscissa) if op.XAxisAbscissa is not None else 1.0,
            x_axis_ordinate=float(op.XAxisOrdinate) if op.XAxisOrdinate is not None else 0.0,
            scale=float(op.Scale) if op.Scale is not None else None,
            crs_name=str(crs.Name) if crs is not None and crs.Name else "",
            map_unit_m=_unit_metres(map_unit),
            factors=factors,
        )
    return None


def _map_conversion_ifc2x3(model: ifcopenshell.file) -> MapConversion | None:
    projects = model.by_type("IfcProject")
    if not projects:
        return None
    conv = ifcopenshell.util.element.get_pset(projects[0], "ePSet_MapConversion")
    crs = ifcopenshell.util.element.get_pset(projects[0], "ePSet_ProjectedCRS")
    if not conv or not crs:
        return None
    return MapConversion(
        eastings=float(conv.get("Eastings") or 0.0),
        northings=float(conv.get("Northings") or 0.0),
        orthogonal_height=float(conv.get("OrthogonalHeight") or 0.0),
        x_axis_abscissa=float(conv.get("XAxisAbscissa") if conv.get("XAxisAbscissa") is not None else 1.0),
        x_axis_ordinate=float(conv.get("XAxisOrdinate") or 0.0),
        scale=float(conv["Scale"]) if conv.get("Scale") is not None else None,
        crs_name=str(crs.get("Name") or ""),
        map_unit_m=None,
    )


def _unit_metres(unit: ifcopenshell.entity_instance | None) -> float | None:
    """Metres per unit of an IfcNamedUnit (SI prefix or conversion-based), None if absent."""
    if unit is None:
        return None
    if unit.is_a("IfcSIUnit"):
        return ifcopenshell.util.unit.get_prefix_multiplier(unit.Prefix)
    if unit.is_a("IfcConversionBasedUnit"):
        factor = unit.ConversionFactor
        return float(factor.ValueComponent.wrappedValue) * (_unit_metres(factor.UnitComponent) or 1.0)
    return None


def read_site_reference(model: ifcopenshell.file, path: Path) -> SiteReference | None:
    for site in model.by_type("IfcSite"):
        lat, lon = site.RefLatitude, site.RefLongitude
        if lat is None or lon is None:
            continue
        lat_deg = _compound_degrees(lat, path, "IfcSite.RefLatitude")
        lon_deg = _compound_degrees(lon, path, "IfcSite.RefLongitude")
        # Many exporters write (0, 0) for "not set"; a building at Null Island is not credible.
        if lat_deg == 0.0 and lon_deg == 0.0:
            continue
        if not (-90.0 <= lat_deg <= 90.0 and -180.0 <= lon_deg <= 180.0):
            raise GeoreferenceError(f"IfcSite reference {lat_deg}, {lon_deg} is not a valid latitude/longitude",
                                    source=str(path), field="IfcSite.RefLatitude")
        unit = ifcopenshell.util.unit.calculate_unit_scale(model)
        return SiteReference(
            latitude=lat_deg,
            longitude=lon_deg,
            elevation_m=float(site.RefElevation or 0.0) * unit,
            true_north_deg=true_north_deg(model),
        )
    return None


def _compound_degrees(value: tuple, path: Path, field_name: str) -> float:
    """IfcCompoundPlaneAngleMeasure (deg, min, sec[, millionths of sec]) -> decimal degrees."""
    parts = [int(v) for v in value] + [0] * (4 - len(value))
    if len(value) < 3 or len(value) > 4 or not (all(p >= 0 for p in parts) or all(p <= 0 for p in parts)):
        raise GeoreferenceError(f"{tuple(value)} is not a valid compound angle (degrees, minutes, seconds"
                                f"[, millionths]) with one sign", source=str(path), field=field_name)
    d, m, s, us = parts
    return d + m / 60.0 + s / 3600.0 + us / 3.6e9


def true_north_deg(model: ifcopenshell.file) -> float:
    """Counter-clockwise angle that turns the model's +Y onto true north.

    IfcGeometricRepresentationContext.TrueNorth is the direction of true north
    expressed in model coordinates; (0, 1) means the model's +Y is north.
    """
    context = model_context(model)
    if context is None or context.TrueNorth is None:
        return 0.0
    x, y = (list(context.TrueNorth.DirectionRatios) + [0.0, 0.0])[:2]
    if x == 0.0 and y == 0.0:
        return 0.0
    return 90.0 - math.degrees(math.atan2(y, x))


# --- transforms -------------------------------------------------------------------


def _rotate(xy: np.ndarray, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.column_stack([c * xy[:, 0] - s * xy[:, 1], s * xy[:, 0] + c * xy[:, 1]])


def map_conversion_transform(conv: MapConversion, unit_scale: float, project_crs: CRS,
                             path: Path) -> Georeference:
    """Helmert transform into the target CRS, then pyproj into the project CRS.

    The IFC formula works on coordinates in project length units:
    E' = E + s (a x - b y), N' = N + s (b x + a y), H' = H + s z, with (a, b)
    the normalised XAxisAbscissa/Ordinate. The result is in map units.
    """
    target = parse_crs(conv.crs_name, source=str(path), field="IfcProjectedCRS.Name") if conv.crs_name else None
    if target is None:
        raise CRSError("IfcMapConversion has a target CRS without a name (expected like 'EPSG:4547')",
                       source=str(path), field="IfcProjectedCRS.Name")
    if not target.is_projected:
        raise CRSError(f"IfcMapConversion target CRS '{conv.crs_name}' is not a projected CRS",
                       source=str(path), field="IfcProjectedCRS.Name")
    # IFC4: without MapUnit the map unit is the project length unit.
    map_unit_m = conv.map_unit_m or unit_scale
    # Scale omitted with differing units (mm model, metre map) is a common export; a
    # literal 1.0 would blow the model up a thousandfold, so derive it from the units.
    scale = conv.scale if conv.scale is not None else unit_scale / map_unit_m
    norm = math.hypot(conv.x_axis_abscissa, conv.x_axis_ordinate)
    if norm == 0.0:
        a, b = 1.0, 0.0
    else:
        a, b = conv.x_axis_abscissa / norm, conv.x_axis_ordinate / norm
    fx, fy, fz = conv.factors
    horizontal = target.sub_crs_list[0] if target.is_compound else target
    crs_unit_m = horizontal.axis_info[0].unit_conversion_factor
    to_project_crs = Transformer.from_crs(target, project_crs, always_xy=True)

    def to_project(xyz: np.ndarray) -> np.ndarray:
        local = np.asarray(xyz, dtype=np.float64) / unit_scale
        e = conv.eastings + scale * (a * fx * local[:, 0] - b * fy * local[:, 1])
        n = conv.northings + scale * (b * fx * local[:, 0] + a * fy * local[:, 1])
        h = (conv.orthogonal_height + scale * fz * local[:, 2]) * map_unit_m
        k = map_unit_m / crs_unit_m
        x, y = to_project_crs.transform(e * k, n * k)
        return np.column_stack([x, y, h])

    return Georeference(
        method="map_conversion", to_project=to_project,
        rotation_deg=math.degrees(math.atan2(b, a)),
        details={"target_crs": conv.crs_name, "scale": scale},
    )


def site_reference_transform(site: SiteReference, project_crs: CRS) -> Georeference:
    """Model axes as a local east-north-up frame at the IfcSite reference point."""
    enu_to_ecef = enu_to_ecef_matrix(site.longitude, site.latitude, site.elevation_m)
    ecef_to_geographic = Transformer.from_crs(ECEF, GEOGRAPHIC_3D, always_xy=True)
    geographic_to_project = Transformer.from_crs(CRS.from_epsg(4326), project_crs, always_xy=True)

    def to_project(xyz: np.ndarray) -> np.ndarray:
        xyz = np.asarray(xyz, dtype=np.float64)
        enu = np.column_stack([_rotate(xyz[:, :2], site.true_north_deg), xyz[:, 2], np.ones(len(xyz))])
        ecef = enu @ enu_to_ecef.T
        lon, lat, h = ecef_to_geographic.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
        x, y = geographic_to_project.transform(lon, lat)
        return np.column_stack([x, y, h])

    return Georeference(
        method="site_reference", to_project=to_project, rotation_deg=site.true_north_deg,
        details={"latitude": site.latitude, "longitude": site.longitude, "elevation": site.elevation_m},
    )


def placement_transform(placement: "Placement", ctx: "IngestContext", base_z: float,
                        path: Path) -> Georeference:
    """Model origin at the anchor, turned counter-clockwise, base at a height or on the ground.

    `base_z` is the model height (metres) that is put at the placement elevation.
    """
    anchor_crs = parse_crs(placement.anchor_crs, source=str(path), field="placement.anchor_crs")
    ax, ay = Transformer.from_crs(anchor_crs, ctx.crs, always_xy=True).transform(*placement.anchor)
    if not (math.isfinite(ax) and math.isfinite(ay)):
        raise GeoreferenceError(f"placement anchor {placement.anchor} cannot be projected from "
                                f"{placement.anchor_crs} to the project CRS", source=str(path),
                                field="placement.anchor")
    notes: list[str] = []
    if placement.elevation == "ground":
        if ctx.ground_at is None:
            elevation = 0.0
            notes.append(f"{path.name}: placement elevation is 'ground' but the city has no ground "
                         f"model; the model base is put at 0 m")
        else:
            elevation = float(np.asarray(ctx.ground_at(np.array([ax]), np.array([ay])), float).reshape(-1)[0])
            if not math.isfinite(elevation):
                raise GeoreferenceError(f"placement elevation is 'ground' but the ground model has no "
                                        f"height at the anchor {placement.anchor}; set a number",
                                        source=str(path), field="placement.elevation")
    else:
        elevation = float(placement.elevation)

    s = placement.scale

    def to_project(xyz: np.ndarray) -> np.ndarray:
        xyz = np.asarray(xyz, dtype=np.float64)
        xy = _rotate(xyz[:, :2] * s, placement.rotation_deg)
        return np.column_stack([xy[:, 0] + ax, xy[:, 1] + ay, elevation + s * (xyz[:, 2] - base_z)])

    return Georeference(
        method="placement", to_project=to_project, rotation_deg=placement.rotation_deg,
        notes=notes, details={"anchor": [ax, ay], "elevation": elevation, "scale": placement.scale},
    )


def resolve_georeference(model: ifcopenshell.file, path: Path, placement: "Placement | None",
                         ctx: "IngestContext", base_z: float) -> Georeference:
    """The model's georeference, tried in the order: placement override, IfcMapConversion,
    IfcSite reference, placement; a model with none of these is an error."""
    if placement is not None and placement.override:
        return placement_transform(placement, ctx, base_z, path)
    conv = read_map_conversion(model)
    if conv is not None:
        unit_scale = ifcopenshell.util.unit.calculate_unit_scale(model)
        return map_conversion_transform(conv, unit_scale, ctx.crs, path)
    site = read_site_reference(model, path)
    if site is not None:
        return site_reference_transform(site, ctx.crs)
    if placement is not None:
        return placement_transform(placement, ctx, base_z, path)
    raise GeoreferenceError(
        "the model has no IfcMapConversion, no IfcSite reference (RefLatitude/RefLongitude) and no "
        "placement in city.toml; add a 'placement' (anchor, rotation_deg, elevation) to its source",
        source=str(path), field="placement",
    )
