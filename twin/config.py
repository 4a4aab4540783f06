"""`city.toml`: the typed description of a city and the sources of its layers.

Loaded with `load_city(path)`; every error names the file and the field path.
Relative source paths are resolved against the folder of the toml file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from twin.errors import ConfigError

Classification = Literal["public", "internal", "restricted"]
CLASSIFICATION_RANK: dict[str, int] = {"public": 0, "internal": 1, "restricted": 2}

LayerKind = Literal[
    "buildings",   # footprints (+ optional solids) with heights
    "roads",       # centre lines with node topology
    "pois",        # points of interest (schools, shelters, halls...)
    "water",       # rivers, canals, lakes (polygons or lines)
    "landuse",     # any other polygon layer (vegetation, land cover...)
    "surface",     # DSM raster: top of buildings and trees
    "ground",      # DTM raster: bare earth
    "pointcloud",  # LAS/LAZ points, gridded to surface/ground and used for heights
    "bim",         # IFC models, kept per element
]
VECTOR_KINDS = ("buildings", "roads", "pois", "water", "landuse")
RASTER_KINDS = ("surface", "ground")

SourceFormat = Literal[
    "geojson", "gpkg", "shapefile", "flatgeobuf",  # vector through pyogrio
    "osm-pbf",                                     # OpenStreetMap through pyrosm
    "cityjson",                                    # LoD1/LoD2 solids
    "geotiff",                                     # DEM/DSM/DTM
    "las",                                         # LAS/LAZ points
    "ifc",                                         # BIM
]

EXTENSION_FORMATS: dict[str, str] = {
    ".geojson": "geojson", ".json": "geojson", ".gpkg": "gpkg", ".shp": "shapefile",
    ".fgb": "flatgeobuf", ".pbf": "osm-pbf", ".city.json": "cityjson", ".cityjson": "cityjson",
    ".tif": "geotiff", ".tiff": "geotiff", ".las": "las", ".laz": "las", ".ifc": "ifc",
}

HeightRule = Literal["explicit", "levels", "lidar", "dsm_dtm", "solid", "type_default"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMap(_Model):
    """Which source attribute feeds each canonical attribute (None: not present)."""

    id: str | None = None
    name: str | None = None
    height: str | None = None
    levels: str | None = None
    use: str | None = None
    layer: str | None = Field(None, description="vertical layer; negative means underground")
    population: str | None = None
    capacity: str | None = None
    kind: str | None = Field(None, description="POI or water kind")


class SourceFilter(_Model):
    """Keep only features inside `bbox` and/or whose attributes match `tags`."""

    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: str = "EPSG:4326"
    tags: dict[str, str | list[str]] = Field(default_factory=dict,
                                             description="attribute -> allowed value(s); '*' = any non-null")
    exclude_tags: dict[str, str | list[str]] = Field(default_factory=dict)


class Placement(_Model):
    """Where to put a model that has no (or an unwanted) georeference.

    The model's local origin goes to `anchor` (in `anchor_crs`), its +Y axis is
    turned `rotation_deg` degrees counter-clockwise from grid north, and its
    base is set at `elevation` metres, or on the ground when "ground".
    """

    anchor: tuple[float, float]
    anchor_crs: str = "EPSG:4326"
    rotation_deg: float = 0.0
    elevation: float | Literal["ground"] = "ground"
    scale: float = Field(1.0, gt=0)
    override: bool = Field(False, description="use this placement even if the model is georeferenced")


class SourceConfig(_Model):
    path: Path
    format: SourceFormat | None = None
    layer: str | None = Field(None, description="layer inside a multi-layer file (GeoPackage)")
    crs: str | None = Field(None, description="CRS of the file when it declares none")
    fields: FieldMap = Field(default_factory=FieldMap)
    filter: SourceFilter = Field(default_factory=SourceFilter)
    licence: str
    attribution: str
    placement: Placement | None = None
    name: str | None = Field(None, description="short name used in ids and provenance; default: file stem")

    @property
    def resolved_format(self) -> str:
        if self.format:
            return self.format
        name = self.path.name.lower()
        for ext in sorted(EXTENSION_FORMATS, key=len, reverse=True):
            if name.endswith(ext):
                return EXTENSION_FORMATS[ext]
        raise ConfigError("cannot tell the format from the extension; set 'format'", source=str(self.path))

    @property
    def source_name(self) -> str:
        if self.name:
            return self.name
        stem = self.path.name
        for ext in sorted(EXTENSION_FORMATS, key=len, reverse=True):
            if stem.lower().endswith(ext):
                return stem[: -len(ext)]
        return self.path.stem


class LayerConfig(_Model):
    kind: LayerKind
    title: str | None = None
    title_zh: str | None = None
    description: str | None = None
    classification: Classification = "public"
    sources: list[SourceConfig] = Field(min_length=1)


class HeightRules(_Model):
    """The chain of rules that gives every building a height, tried in `order`."""

    order: list[HeightRule] = ["explicit", "levels", "solid", "lidar", "dsm_dtm", "type_default"]
    storey_height: float = Field(3.0, gt=0)
    default: float = Field(10.0, gt=0, description="height when no rule and no type default applies")
    type_defaults: dict[str, float] = Field(default_factory=dict, description="use -> height in metres")
    min_height: float = Field(2.0, ge=0, description="a derived height below this is rejected")
    max_height: float = Field(700.0, gt=0, description="a height above this is rejected as an error")
    dsm_min_cells: int = Field(3, ge=1, description="DSM-DTM needs at least this many cells in the footprint")
    lidar_roof_percentile: float = Field(70.0, gt=0, le=100, description="roof height percentile (3D BAG convention: 70)")
    lidar_min_points: int = Field(10, ge=1)


class TerrainConfig(_Model):
    """How to get the ground under the buildings.

    `surface` / `ground` name raster layers. When only a surface model exists
    and `derive_ground` is true, a bare-earth ground is derived from it.
    """

    surface: str | None = None
    ground: str | None = None
    derive_ground: bool = True
    derive_window_m: float = Field(120.0, gt=0, description="largest object removed by the filter")
    resolution: float | None = Field(None, gt=0, description="resample rasters to this cell size (m)")


Edge = Literal["west", "east", "north", "south"]


class RiverStageConfig(_Model):
    """A river crossing the model edge, held at a water level (a stage boundary)."""

    name: str
    name_zh: str | None = None
    edge: Edge
    span: tuple[float, float] = Field(description="where the river crosses that edge: along-edge coordinates "
                                                  "(project CRS; y for west/east, x for north/south)")
    normal_level_m: float = Field(description="usual water level (m, vertical datum of the terrain)")
    warning_level_m: float | None = None
    gauge: str | None = Field(None, description="name of the stage gauge (sensor Thing) that reads this river")


class FloodDefaults(_Model):
    """What the flood scenarios of this city start from, unless a run says otherwise."""

    drainage_mm_h: float = Field(0.0, ge=0, description="storm sewer capacity, everywhere (mm/h)")
    rivers: list[RiverStageConfig] = Field(default_factory=list)


class ShelterRules(_Model):
    """Which POIs and buildings are shelters, and how many people each takes."""

    poi_kinds: list[str] = ["school", "college", "university", "community_centre", "stadium", "sports_centre",
                            "townhall", "exhibition_centre", "shelter", "library", "government",
                            "public_building"]
    building_uses: list[str] = ["school", "university", "college", "stadium", "civic", "public", "government",
                                "sports_hall"]
    capacity_field: str = Field("capacity", description="attribute giving capacity where the data has one")
    m2_per_person: float = Field(2.0, gt=0, description="usable floor area per sheltered person")
    usable_floor_share: float = Field(0.5, gt=0, le=1, description="share of gross floor area usable for shelter")
    min_capacity: int = Field(50, ge=0, description="smaller places are not used as shelters")


class ExplicitShelter(_Model):
    name: str
    name_zh: str | None = None
    x: float
    y: float
    crs: str = Field("EPSG:4326", description="CRS of x, y")
    capacity: int = Field(gt=0)
    kind: str = "shelter"


class EvacuationDefaults(_Model):
    shelters: ShelterRules = Field(default_factory=ShelterRules)
    extra_shelters: list[ExplicitShelter] = Field(default_factory=list)
    floor_m2_per_person: dict[str, float] = Field(
        default_factory=dict, description="use -> floor area per occupant (overrides the built-in table)")
    day_factor: dict[str, float] = Field(default_factory=dict, description="use -> share present by day")
    night_factor: dict[str, float] = Field(default_factory=dict, description="use -> share present at night")
    vehicle_occupancy: float = Field(2.0, ge=1, description="persons per car when evacuating by car")


class ScenarioDefaults(_Model):
    flood: FloodDefaults = Field(default_factory=FloodDefaults)
    evacuation: EvacuationDefaults = Field(default_factory=EvacuationDefaults)


class CityConfig(_Model):
    name: str
    name_zh: str | None = None
    crs: str | None = Field(None, description="project CRS; must be projected and metric. Default: UTM zone of the extent")
    extent: tuple[float, float, float, float]
    extent_crs: str = "EPSG:4326"
    vertical_datum: str = "EGM2008"
    heights: HeightRules = Field(default_factory=HeightRules)
    terrain: TerrainConfig = Field(default_factory=TerrainConfig)
    layers: dict[str, LayerConfig]
    scenarios: ScenarioDefaults = Field(default_factory=ScenarioDefaults)
    base_dir: Path = Field(Path("."), exclude=True)

    @field_validator("extent")
    @classmethod
    def _extent_ordered(cls, v: tuple[float, float, float, float]):
        if not (v[0] < v[2] and v[1] < v[3]):
            raise ValueError("extent must be [minx, miny, maxx, maxy] with min < max")
        return v

    @field_validator("layers")
    @classmethod
    def _layer_names(cls, v: dict[str, LayerConfig]):
        if not v:
            raise ValueError("a city needs at least one layer")
        for name in v:
            if not name.replace("_", "").isalnum() or not name[0].isalpha() or name != name.lower():
                raise ValueError(f"layer name '{name}' must be lower-case letters, digits and '_'")
        return v

    @model_validator(mode="after")
    def _terrain_refs(self):
        for ref, want in ((self.terrain.surface, "surface"), (self.terrain.ground, "ground")):
            if ref is None:
                continue
            layer = self.layers.get(ref)
            if layer is None:
                raise ValueError(f"terrain.{want} names layer '{ref}', which is not defined")
            if layer.kind not in (want, "pointcloud"):
                raise ValueError(f"terrain.{want} names layer '{ref}' of kind '{layer.kind}'")
        return self

    def source_path(self, source: SourceConfig) -> Path:
        p = source.path.expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    def layers_of(self, *kinds: str) -> dict[str, LayerConfig]:
        return {n: l for n, l in self.layers.items() if l.kind in kinds}


def _field_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def parse_city(data: dict, *, base_dir: Path, origin: str = "city.toml") -> CityConfig:
    try:
        return CityConfig.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        first = exc.errors()[0]
        lines = [f"{_field_path(e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(
            "invalid city config: " + "; ".join(lines),
            source=origin, field=_field_path(first["loc"]) or None,
        ) from None


def load_city(path: str | Path) -> CityConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("city config not found", source=str(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from None
    return parse_city(data, base_dir=path.parent.resolve(), origin=str(path))
