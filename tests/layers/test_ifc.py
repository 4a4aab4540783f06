"""IFC driver against independent references: the IFC attributes read directly with
IfcOpenShell, the georeference formulas written out here, pyproj and pyproj.Geod."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import ifcopenshell
import ifcopenshell.api.georeference
import ifcopenshell.geom
import ifcopenshell.util.placement
import ifcopenshell.util.unit
import numpy as np
import pytest
import shapely
from pyproj import CRS, Geod, Transformer
from scipy.spatial import cKDTree

from layers.base import IngestContext
from layers.errors import GeoreferenceError, SourceCorrupt, SourceNotFound
from layers.ifc import IfcDriver
from twin.config import parse_city

BIM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bim"
FZK = BIM / "AC20-FZK-Haus.ifc"
OPEN_HOUSE = BIM / "IfcOpenHouse_IFC4.ifc"
EXCLUDED = ("IfcOpeningElement", "IfcAnnotation", "IfcGrid")
ANCHOR = (113.3245, 23.1190)
GROUND = 7.0

pytestmark = pytest.mark.skipif(not FZK.is_file() or not OPEN_HOUSE.is_file(), reason="shared BIM data missing")


def _read(path: Path, crs: str, placement: dict | None = None, ground_at=None):
    source = {"path": str(path), "licence": "free example", "attribution": "test"}
    if placement is not None:
        source["placement"] = placement
    city = parse_city({"name": "test", "crs": crs, "extent": [0, 0, 1, 1],
                       "layers": {"bim": {"kind": "bim", "sources": [source]}}}, base_dir=path.parent)
    ctx = IngestContext(city=city, crs=CRS.from_user_input(crs), extent=(0, 0, 1, 1), ground_at=ground_at)
    return IfcDriver().read(path, city.layers["bim"].sources[0], "bim", ctx)


def _local_shapes(path: Path) -> dict[str, np.ndarray]:
    """GlobalId -> world-coordinate vertices (m) from IfcOpenShell's default kernel."""
    model = ifcopenshell.open(str(path))
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    products = [p for p in model.by_type("IfcProduct")
                if p.Representation and not any(p.is_a(c) for c in EXCLUDED)]
    iterator = ifcopenshell.geom.iterator(settings, model, 2, include=products)
    out = {}
    assert iterator.initialize()
    while True:
        shape = iterator.get()
        out[shape.guid] = np.asarray(shape.geometry.verts, float).reshape(-1, 3)
        if not iterator.next():
            return out


def _element_vertices(ingested, row: int) -> np.ndarray:
    mesh = ingested.mesh
    return mesh.vertices[np.unique(mesh.faces[mesh.face_feature == row])]


def _longest_edge_deg(footprint) -> float:
    """Angle (deg, CCW from +x, modulo 180) of the longest outline edge: a wall's long side."""
    polygon = max(shapely.get_parts(footprint), key=lambda p: p.area)
    ring = np.asarray(polygon.exterior.coords)
    d = np.diff(ring, axis=0)
    dx, dy = d[np.argmax(np.hypot(d[:, 0], d[:, 1]))]
    return math.degrees(math.atan2(dy, dx)) % 180.0


def _axis_direction_deg(wall) -> float:
    """Wall direction from its 'Axis' polyline and placement, in model coordinates."""
    axis = next(r for r in wall.Representation.Representations if r.RepresentationIdentifier == "Axis")
    points = np.array([p.Coordinates[:2] for p in axis.Items[0].Points], float)
    matrix = ifcopenshell.util.placement.get_local_placement(wall.ObjectPlacement)
    world = (matrix[:2, :2] @ points.T).T
    d = world[-1] - world[0]
    return math.degrees(math.atan2(d[1], d[0])) % 180.0


def _angle_diff(a: float, b: float, period: float = 180.0) -> float:
    d = (a - b) % period
    return min(d, period - d)


@pytest.fixture(scope="module")
def fzk_model():
    return ifcopenshell.open(str(FZK))


@pytest.fixture(scope="module")
def fzk(fzk_model):
    return _read(FZK, "EPSG:25832")


@pytest.fixture(scope="module")
def open_house_placed():
    return _read(OPEN_HOUSE, "EPSG:4547",
                 placement={"anchor": list(ANCHOR), "anchor_crs": "EPSG:4326", "rotation_deg": 30.0},
                 ground_at=lambda x, y: np.full(np.shape(x), GROUND))


@pytest.fixture(scope="module")
def open_house_local():
    return _local_shapes(OPEN_HOUSE)


# --- FZK-Haus: IfcSite reference ----------------------------------------------------


def test_fzk_origin_lands_on_site_reference(fzk):
    # 49°6'1.566" N, 8°26'11.5404" E, as published with the model
    lat = 49 + 6 / 60 + 1.566 / 3600
    lon = 8 + 26 / 60 + 11.5404 / 3600
    x, y, z = fzk.provenance["origin_project"]
    got_lon, got_lat = Transformer.from_crs("EPSG:25832", "EPSG:4326", always_xy=True).transform(x, y)
    _, _, dist = Geod(ellps="WGS84").inv(lon, lat, got_lon, got_lat)
    assert dist < 1.0
    assert z == pytest.approx(110.0, abs=1e-6)
    assert fzk.provenance["georeference"] == "site_reference"


def test_fzk_elements_match_independent_query(fzk, fzk_model):
    expected = {p.GlobalId: p.is_a() for p in fzk_model.by_type("IfcProduct")
                if p.Representation and not any(p.is_a(c) for c in EXCLUDED)}
    frame = fzk.frame
    assert len(frame) == len(expected) == fzk.provenance["elements"]
    assert set(frame["global_id"]) == set(expected)
    assert (frame["source_id"] == frame["global_id"]).all()
    assert all(expected[g] == c for g, c in zip(frame["global_id"], frame["ifc_class"]))
    assert "IfcSpace" in set(frame["ifc_class"])
    assert fzk.provenance["schema"] == fzk_model.schema
    assert (frame["model"] == "AC20-FZK-Haus").all()
    assert frame.crs == CRS.from_epsg(25832)


def test_fzk_true_north_turns_walls(fzk, fzk_model):
    north = fzk_model.by_type("IfcGeometricRepresentationContext")[0].TrueNorth.DirectionRatios
    north_ccw_from_x = math.degrees(math.atan2(north[1], north[0]))
    to_lonlat = Transformer.from_crs("EPSG:25832", "EPSG:4326", always_xy=True)
    geod = Geod(ellps="WGS84")
    rows = {g: i for i, g in enumerate(fzk.frame["global_id"])}
    checked = 0
    for wall in fzk_model.by_type("IfcWall"):
        footprint = fzk.frame.geometry.iloc[rows[wall.GlobalId]]
        d = math.radians(_longest_edge_deg(footprint))
        c = np.array(footprint.centroid.coords[0])
        (lon0, lon1), (lat0, lat1) = to_lonlat.transform([c[0] - 5 * math.cos(d), c[0] + 5 * math.cos(d)],
                                                          [c[1] - 5 * math.sin(d), c[1] + 5 * math.sin(d)])
        azimuth, _, _ = geod.inv(lon0, lat0, lon1, lat1)
        # clockwise bearing from true north of a model direction at angle a (CCW from model +x)
        expected = north_ccw_from_x - _axis_direction_deg(wall)
        assert _angle_diff(azimuth, expected) < 0.05, wall.Name
        checked += 1
    assert checked >= 10


def test_fzk_walls_stand_on_their_storeys(fzk, fzk_model):
    scale = ifcopenshell.util.unit.calculate_unit_scale(fzk_model)
    elevation = {s.Name: s.Elevation * scale + 110.0 for s in fzk_model.by_type("IfcBuildingStorey")}
    walls = fzk.frame[fzk.frame["ifc_class"].str.startswith("IfcWall")]
    assert len(walls) == len(fzk_model.by_type("IfcWall"))
    for _, wall in walls.iterrows():
        assert wall["storey"] in elevation
        assert wall["z_min"] == pytest.approx(elevation[wall["storey"]], abs=0.05)
        assert wall["z_max"] > wall["z_min"] + 0.5


def test_fzk_storeys_and_psets_match_ifc_relations(fzk, fzk_model):
    rows = fzk.frame.set_index("global_id")
    for rel in fzk_model.by_type("IfcRelContainedInSpatialStructure"):
        if rel.RelatingStructure.is_a("IfcBuildingStorey"):
            for e in rel.RelatedElements:
                if e.GlobalId in rows.index:
                    assert rows.loc[e.GlobalId, "storey"] == rel.RelatingStructure.Name
    for space in fzk_model.by_type("IfcSpace"):  # aggregated into storeys, not contained
        assert rows.loc[space.GlobalId, "storey"] == space.Decomposes[0].RelatingObject.Name
    wall = fzk_model.by_type("IfcWall")[0]
    psets = json.loads(rows.loc[wall.GlobalId, "psets"])
    for rel in wall.IsDefinedBy:
        definition = rel.RelatingPropertyDefinition
        if rel.is_a("IfcRelDefinesByProperties") and definition.is_a("IfcPropertySet"):
            for prop in definition.HasProperties:
                if prop.is_a("IfcPropertySingleValue") and prop.NominalValue is not None:
                    assert psets[definition.Name][prop.Name] == prop.NominalValue.wrappedValue


def test_fzk_mesh_is_consistent(fzk):
    mesh, frame = fzk.mesh, fzk.frame
    assert mesh.vertices.dtype == np.float64 and np.isfinite(mesh.vertices).all()
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
    assert mesh.face_feature.min() >= 0 and mesh.face_feature.max() < len(frame)
    assert set(np.unique(mesh.face_feature)) == set(range(len(frame)))
    assert frame.geometry.is_valid.all()
    assert set(frame.geom_type) <= {"Polygon", "MultiPolygon"}
    assert (frame.geometry.area > 0).all()
    tol = 0.01
    for row, footprint in enumerate(frame.geometry):
        xyz = _element_vertices(fzk, row)
        x0, y0, x1, y1 = footprint.bounds
        assert xyz[:, 0].min() >= x0 - tol and xyz[:, 0].max() <= x1 + tol
        assert xyz[:, 1].min() >= y0 - tol and xyz[:, 1].max() <= y1 + tol
        assert frame["z_min"].iloc[row] == pytest.approx(xyz[:, 2].min())
        assert frame["z_max"].iloc[row] == pytest.approx(xyz[:, 2].max())


def test_fzk_faces_wind_outward_and_keep_volume(fzk):
    """Closed wall solids: the divergence-theorem volume is positive (CCW seen from outside)
    and equals the volume of the same wall's triangles in model coordinates."""
    model = ifcopenshell.open(str(FZK))
    rows = {g: i for i, g in enumerate(fzk.frame["global_id"])}
    settings = ifcopenshell.geom.settings()
    for wall in model.by_type("IfcWall")[:4]:
        row = rows[wall.GlobalId]
        faces = fzk.mesh.faces[fzk.mesh.face_feature == row]
        v = fzk.mesh.vertices - fzk.mesh.vertices[faces[0, 0]]
        ours = np.einsum("ij,ij->i", v[faces[:, 0]], np.cross(v[faces[:, 1]], v[faces[:, 2]])).sum() / 6
        shape = ifcopenshell.geom.create_shape(settings, wall)
        lv = np.asarray(shape.geometry.verts, float).reshape(-1, 3)
        lf = np.asarray(shape.geometry.faces).reshape(-1, 3)
        theirs = np.einsum("ij,ij->i", lv[lf[:, 0]], np.cross(lv[lf[:, 1]], lv[lf[:, 2]])).sum() / 6
        assert theirs > 0
        assert ours == pytest.approx(theirs, rel=0.01)


# --- IfcOpenHouse: placement --------------------------------------------------------


def test_open_house_without_placement_names_the_file():
    with pytest.raises(GeoreferenceError) as info:
        _read(OPEN_HOUSE, "EPSG:4547")
    assert OPEN_HOUSE.name in str(info.value)
    assert "placement" in str(info.value)


def test_open_house_placed_at_anchor(open_house_placed, open_house_local):
    ax, ay = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True).transform(*ANCHOR)
    pts = np.concatenate(list(open_house_local.values()))
    half_extent = 0.5 * np.hypot(*(pts[:, :2].max(axis=0) - pts[:, :2].min(axis=0)))
    centroid = shapely.union_all(open_house_placed.frame.geometry.values).centroid
    assert math.hypot(centroid.x - ax, centroid.y - ay) < half_extent
    assert open_house_placed.provenance["georeference"] == "placement"
    assert open_house_placed.provenance["origin_project"][:2] == pytest.approx([ax, ay], abs=1e-6)


def test_open_house_rotation_and_ground(open_house_placed, open_house_local):
    model = ifcopenshell.open(str(OPEN_HOUSE))
    frame = open_house_placed.frame
    rows = {g: i for i, g in enumerate(frame["global_id"])}
    wall = next(w for w in model.by_type("IfcWall") if w.Name == "South wall")
    got = _longest_edge_deg(frame.geometry.iloc[rows[wall.GlobalId]])
    assert _angle_diff(got, _axis_direction_deg(wall) + 30.0) < 0.01
    # the single storey is at 0, so model z = 0 sits on the ground: z shifts by GROUND only
    for guid, verts in open_house_local.items():
        assert frame["z_min"].iloc[rows[guid]] == pytest.approx(verts[:, 2].min() + GROUND, abs=1e-6)
        assert frame["z_max"].iloc[rows[guid]] == pytest.approx(verts[:, 2].max() + GROUND, abs=1e-6)


# --- IfcMapConversion ---------------------------------------------------------------

E, N, H, ANGLE, SCALE = 430_500.0, 2_557_600.0, 15.0, 25.0, 0.001


@pytest.fixture(scope="module")
def georeferenced_house(tmp_path_factory) -> Path:
    model = ifcopenshell.open(str(OPEN_HOUSE))
    ifcopenshell.api.georeference.add_georeferencing(model, name="EPSG:4547")
    metre = model.create_entity("IfcSIUnit", UnitType="LENGTHUNIT", Name="METRE")
    ifcopenshell.api.georeference.edit_georeferencing(
        model,
        projected_crs={"Name": "EPSG:4547", "MapUnit": metre},
        coordinate_operation={"Eastings": E, "Northings": N, "OrthogonalHeight": H,
                              "XAxisAbscissa": 2 * math.cos(math.radians(ANGLE)),  # not normalised on purpose
                              "XAxisOrdinate": 2 * math.sin(math.radians(ANGLE)), "Scale": SCALE},
    )
    path = tmp_path_factory.mktemp("ifc") / "house_georef.ifc"
    model.write(str(path))
    return path


def _helmert(local_m: np.ndarray, unit_scale: float) -> np.ndarray:
    x, y, z = (local_m / unit_scale).T
    a, b = math.cos(math.radians(ANGLE)), math.sin(math.radians(ANGLE))
    return np.column_stack([E + SCALE * (a * x - b * y), N + SCALE * (b * x + a * y), H + SCALE * z])


@pytest.mark.parametrize("crs", ["EPSG:4547", "EPSG:32649"])
def test_map_conversion_follows_helmert_formula(georeferenced_house, open_house_local, crs):
    got = _read(georeferenced_house, crs, placement={"anchor": [0.0, 0.0], "rotation_deg": 90.0})
    assert got.provenance["georeference"] == "map_conversion"
    unit_scale = ifcopenshell.util.unit.calculate_unit_scale(ifcopenshell.open(str(OPEN_HOUSE)))
    to_crs = Transformer.from_crs("EPSG:4547", crs, always_xy=True)
    rows = {g: i for i, g in enumerate(got.frame["global_id"])}
    assert set(rows) == set(open_house_local)
    for guid, local in open_house_local.items():
        expected = _helmert(local, unit_scale)
        expected[:, 0], expected[:, 1] = to_crs.transform(expected[:, 0], expected[:, 1])
        ours = _element_vertices(got, rows[guid])
        d_ours, _ = cKDTree(expected).query(ours)
        d_expected, _ = cKDTree(ours).query(expected)
        assert max(d_ours.max(), d_expected.max()) < 1e-3, guid


def test_placement_override_beats_map_conversion(georeferenced_house):
    got = _read(georeferenced_house, "EPSG:4547",
                placement={"anchor": list(ANCHOR), "rotation_deg": 0.0, "elevation": 3.0, "override": True})
    ax, ay = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True).transform(*ANCHOR)
    assert got.provenance["georeference"] == "placement"
    assert got.provenance["origin_project"] == pytest.approx([ax, ay, 3.0], abs=1e-6)


# --- bad files ----------------------------------------------------------------------


def test_truncated_file_is_corrupt(tmp_path):
    data = OPEN_HOUSE.read_bytes()
    path = tmp_path / "truncated.ifc"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceCorrupt) as info:
        _read(path, "EPSG:4547")
    assert str(path) in str(info.value)


def test_garbage_file_is_corrupt(tmp_path):
    path = tmp_path / "garbage.ifc"
    path.write_text("this is not a STEP file\n")
    with pytest.raises(SourceCorrupt) as info:
        _read(path, "EPSG:4547")
    assert str(path) in str(info.value)


def test_missing_file_is_not_found(tmp_path):
    path = tmp_path / "missing.ifc"
    with pytest.raises(SourceNotFound) as info:
        IfcDriver().read(path, None, "bim", None)  # type: ignore[arg-type]
    assert str(path) in str(info.value)


def test_complete_copy_still_reads(tmp_path, open_house_local):
    """The truncation check must not reject a complete file with trailing whitespace."""
    path = tmp_path / "copy.ifc"
    shutil.copy(OPEN_HOUSE, path)
    with path.open("ab") as fh:
        fh.write(b"\n\n")
    got = _read(path, "EPSG:4547", placement={"anchor": list(ANCHOR), "elevation": 0.0})
    assert got.provenance["elements"] == len(open_house_local)


def test_ground_placement_outside_the_ground_model_is_an_error():
    with pytest.raises(GeoreferenceError) as info:
        _read(OPEN_HOUSE, "EPSG:4547", placement={"anchor": list(ANCHOR)},
              ground_at=lambda x, y: np.full(np.shape(x), np.nan))
    assert OPEN_HOUSE.name in str(info.value) and "ground" in str(info.value)
