"""The `twin` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from twin.errors import TwinError

app = typer.Typer(help="City twin: build, inspect, tile and serve a city information model.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
config_app = typer.Typer(help="Work with city.toml files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
sensors_app = typer.Typer(help="Live sensors: the sample network and storm replays.", no_args_is_help=True)
app.add_typer(sensors_app, name="sensors")

out = Console()
err = Console(stderr=True, soft_wrap=True, highlight=False)


def _fail(exc: TwinError) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def build(city: Path = typer.Argument(..., help="city.toml"),
          out_dir: Path = typer.Option(..., "--out", "-o", help="twin folder to (re)build")) -> None:
    """Build the twin described by CITY into OUT (atomically)."""
    from twin.build import build_twin
    from twin.progress import RichProgress

    try:
        with RichProgress() as progress:
            report = build_twin(city, out_dir, progress=progress)
    except TwinError as exc:
        _fail(exc)
    m = report.manifest
    out.print(f"[green]built[/] {m.city} in {report.seconds:.1f} s -> {out_dir}")
    _print_catalogue(m)
    if len(report.repairs):
        out.print(f"[yellow]{len(report.repairs)} geometry repairs[/] (table 'repairs' in twin.gpkg)")


@app.command()
def info(twin_dir: Path = typer.Argument(..., help="twin folder"),
         as_json: bool = typer.Option(False, "--json", help="machine-readable catalogue")) -> None:
    """Print the catalogue of a twin: layers, counts, CRS, extents, schemas, licences."""
    from twin.catalogue import catalogue
    from twin.store.folder import FolderStore

    try:
        store = FolderStore(twin_dir)
        cat = catalogue(store)
    except TwinError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(cat, indent=2, ensure_ascii=False) + "\n")
        return
    _print_catalogue(store.manifest(), schemas=True)


def _print_catalogue(m, schemas: bool = False) -> None:
    t = Table(title=f"{m.city} ({m.crs}, heights {m.vertical_datum})")
    for c in ("layer", "kind", "features", "class", "bbox (project CRS)", "licence"):
        t.add_column(c)
    for name, layer in m.layers.items():
        bbox = ", ".join(f"{v:.0f}" for v in layer.bbox) if layer.bbox else "-"
        t.add_row(name, layer.kind, str(layer.count), layer.classification, bbox, "; ".join(layer.licences))
    for name, r in m.rasters.items():
        t.add_row(name, f"raster ({r.method})", f"{r.shape[1]}x{r.shape[0]} @ {r.resolution[0]:.1f} m",
                  r.classification, ", ".join(f"{v:.0f}" for v in r.bounds), "; ".join(r.licences))
    out.print(t)
    for name, layer in m.layers.items():
        if layer.kind == "buildings" and layer.stats:
            out.print(f"  {name}: heights by rule {layer.stats.get('height_rules')}, "
                      f"underground {layer.stats.get('underground')}")
        if schemas:
            out.print(f"  [dim]{name} schema: {', '.join(f'{k}:{v}' for k, v in layer.schema_.items())}[/]")


@app.command()
def synth(buildings: int = typer.Option(..., "--buildings", "-n", min=1, help="number of buildings"),
          out_dir: Path = typer.Option(..., "--out", "-o", help="folder for the sources and city.toml"),
          seed: int = typer.Option(0, help="random seed (same seed, same city)")) -> None:
    """Write a realistic synthetic city (footprints, roads, terrain, river, POIs) of any size."""
    from twin.synth import synthesize

    from rich.progress import Progress as _P

    with _P() as p:
        task = p.add_task("synthesising", total=1.0)
        path = synthesize(out_dir, buildings, seed=seed,
                          progress=lambda what, frac: p.update(task, completed=frac, description=what))
    out.print(f"[green]wrote[/] {path}; build it with: twin build {path} --out <twin dir>")


@app.command()
def flood(twin_dir: Path = typer.Argument(..., help="twin folder"),
          rain_mm: float = typer.Option(0.0, "--rain-mm", help="rain depth over the duration (mm)"),
          duration: str = typer.Option("1h", help="rain duration: 2h, 90min or ISO 8601 (PT2H)"),
          resolution: float = typer.Option(10.0, help="grid cell size (m), 2-50"),
          inflow: list[str] = typer.Option(None, help="X,Y,Q | X,Y,T:Q;T:Q | EDGE,Q (m3/s)"),
          stage: list[str] = typer.Option(None, help="EDGE,LEVEL | EDGE,T:L;T:L (m)"),
          horizon: Optional[str] = typer.Option(None, help="simulated time (default: duration + 1h)"),
          drainage: Optional[float] = typer.Option(None, "--drainage-mm-h",
                                                   help="sewer capacity (mm/h); default: the city's"),
          river_level: Optional[float] = typer.Option(None, "--river-level",
                                                      help="raise the city's rivers to this level (m)"),
          city_rivers: bool = typer.Option(True, "--city-rivers/--no-city-rivers",
                                           help="hold the city's rivers at their normal level"),
          probe: list[str] = typer.Option(None, help="NAME,X,Y or X,Y: depth over time (and probes.png)"),
          backend: str = typer.Option("auto", help="auto | numpy | numba | gpu"),
          out_dir: Optional[Path] = typer.Option(None, "--out", help="result folder (default: DIR/flood/<time>)")) -> None:
    """Run a flood scenario on the twin's terrain and buildings and print who and what is affected."""
    from datetime import datetime

    from simulate.flood.cli import run_flood_cli

    target = out_dir or Path(twin_dir) / "flood" / datetime.now().strftime("%Y%m%dT%H%M%S")
    try:
        run_flood_cli(Path(twin_dir), target, rain_mm=rain_mm, duration=duration, resolution_m=resolution,
                      inflow=inflow or [], stage=stage or [], horizon=horizon, backend=backend,
                      drainage_mm_h=drainage, river_level_m=river_level, use_city_rivers=city_rivers,
                      probe=probe or [], console=out)
    except TwinError as exc:
        _fail(exc)


@app.command()
def evacuate(twin_dir: Path = typer.Argument(..., help="twin folder"),
             hazard: str = typer.Option(..., help="flood:<job id> | flood:latest | a GeoJSON polygon file"),
             mode: str = typer.Option("walk", help="walk | drive"),
             time_of_day: str = typer.Option("day", "--time", help="day | night | design (full occupancy)"),
             horizon: str = typer.Option("3h", help="simulated time"),
             exits: bool = typer.Option(False, "--exits", help="leaving the hazard zone also counts as safe"),
             hazard_crs: str = typer.Option("EPSG:4326", help="CRS of the GeoJSON polygon")) -> None:
    """Evacuate a hazard zone over the road network to shelters and print clearance times and bottlenecks."""
    from simulate.evacuation.cli import run_evacuate_cli

    try:
        run_evacuate_cli(Path(twin_dir), hazard, mode=mode, time_of_day=time_of_day, horizon=horizon,
                         destinations="shelters_and_exits" if exits else "shelters", hazard_crs=hazard_crs,
                         console=out)
    except TwinError as exc:
        _fail(exc)


@sensors_app.command("install")
def sensors_install(twin_dir: Path = typer.Argument(..., help="twin folder")) -> None:
    """Install the sample sensor network (rain, river, waterlogging, pumps) into the twin; idempotent."""
    from simulate.sensors.sample import install_network, plan_network
    from simulate.sensors.service import SensorService
    from twin.store.folder import FolderStore

    try:
        sites = plan_network(FolderStore(twin_dir))
        service = SensorService.for_twin(twin_dir)
        try:
            streams = install_network(service, sites)
        finally:
            service.close()
    except TwinError as exc:
        _fail(exc)
    out.print(f"[green]sensor network[/]: {len(sites)} sites, {len(streams)} datastreams")


@sensors_app.command("replay")
def sensors_replay(twin_dir: Path = typer.Argument(..., help="twin folder"),
                   storm: str = typer.Option("tianhe-2h", help="a storm preset (tianhe-2h, burst) or a JSON file"),
                   speed: str = typer.Option("60x", help="replay speed, e.g. 60x"),
                   host: str = typer.Option("127.0.0.1", help="MQTT broker"),
                   port: int = typer.Option(1883, help="MQTT port")) -> None:
    """Publish a storm over MQTT (rain rising, river rising, points flooding, pumps switching)."""
    from rich.progress import Progress as _P

    from simulate.sensors.replay import replay

    try:
        with _P() as p:
            task = p.add_task(f"replaying {storm} at {speed}", total=1)
            report = replay(twin_dir, storm, speed, host=host, port=port,
                            on_step=lambda done, total: p.update(task, completed=done, total=total))
    except TwinError as exc:
        _fail(exc)
    out.print(f"[green]published[/] {report.published} observations in {report.steps} steps "
              f"({report.start} .. {report.end}) in {report.wall_s:.1f} s")


@config_app.command("validate")
def config_validate(city: Path = typer.Argument(..., help="city.toml")) -> None:
    """Validate a city.toml and check that every source file exists."""
    from layers.ingest import check_sources_exist
    from twin.config import load_city

    try:
        cfg = load_city(city)
        check_sources_exist(cfg)
    except TwinError as exc:
        _fail(exc)
    out.print(f"[green]ok[/] {cfg.name}: {len(cfg.layers)} layers, "
              f"{sum(len(l.sources) for l in cfg.layers.values())} sources")


@app.command()
def tiles(twin_dir: Path = typer.Argument(..., help="twin folder"),
          mode: str = typer.Option("1.1", help="3D Tiles version: 1.1 (glb) or 1.0 (b3dm)")) -> None:
    """Write 3D Tiles (buildings, BIM, terrain, point clouds) into TWIN_DIR/tiles."""
    from tiles.build import build_tiles
    from twin.progress import RichProgress
    from twin.store.folder import FolderStore

    try:
        store = FolderStore(twin_dir)
        with RichProgress() as progress:
            report = build_tiles(store, Path(twin_dir) / "tiles", mode=mode, progress=progress.steps())
    except TwinError as exc:
        _fail(exc)
    t = Table(title=f"3D Tiles {report.mode} in {report.out_dir} ({report.seconds:.1f} s)")
    for c in ("tileset", "features", "tiles", "bytes", "written", "unchanged", "removed"):
        t.add_column(c)
    for name, r in report.layers.items():
        t.add_row(r.tileset, str(r.features), str(r.tiles), f"{r.bytes:,}", str(r.written), str(r.unchanged),
                  str(r.removed))
    for name, r in report.external.items():
        if r:
            t.add_row(name, "-", str(r.get("tiles", "-")), f"{r.get('bytes', 0):,}", "-", "-", "-")
    out.print(t)
    for name, why in report.not_built.items():
        out.print(f"[yellow]not built[/] {name}: {why}")


@app.command()
def serve(twin_dir: Path = typer.Argument(..., help="twin folder"),
          host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000),
          workers: int = typer.Option(1, min=1, help="worker processes (each holds its own layer cache)"),
          warm: str = typer.Option("", help="layers to load before serving: comma-separated names or 'all'"),
          access_log: bool = typer.Option(True, help="log every request (costly at high request rates)")) -> None:
    """Serve the twin's APIs and viewer.

    Workers are started by uvicorn from the factory `api.app:app_from_env`, so the settings
    travel as TWIN_* environment variables (TWIN_TWIN_DIR, TWIN_WARM, and any already set)."""
    import os

    import uvicorn

    from api.app import create_app
    from api.settings import Settings

    try:
        create_app(Settings(twin_dir=twin_dir))          # fail here, once, on a bad twin or settings
    except TwinError as exc:
        _fail(exc)
    os.environ["TWIN_TWIN_DIR"] = str(Path(twin_dir).resolve())
    if warm:
        os.environ["TWIN_WARM"] = warm
    out.print(f"viewer: [bold]http://{host}:{port}/[/] ({workers} worker{'s' if workers > 1 else ''})")
    uvicorn.run("api.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="info",
                access_log=access_log)

if __name__ == "__main__":
    app()
