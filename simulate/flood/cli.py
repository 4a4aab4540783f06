"""`twin flood` as a function: run the flood process on a twin folder with a rich progress bar.

Wire it in twin/cli.py with a typer command that passes its options straight through.
"""

from __future__ import annotations

import json
from pathlib import Path

from simulate.flood.errors import FloodInputError
from simulate.process import ProgressReport


def parse_inflow(text: str) -> dict:
    """ "X,Y,Q" (constant m3/s), "X,Y,T:Q;T:Q" (hydrograph, t in s), "EDGE,Q" or "EDGE,T:Q;T:Q"."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if parts[0] in ("west", "east", "north", "south") and len(parts) == 2:
            place, flow = {"edge": parts[0]}, parts[1]
        elif len(parts) == 3:
            place, flow = {"x": float(parts[0]), "y": float(parts[1])}, parts[2]
        else:
            raise ValueError
        return {**place, **_flow(flow, "discharge_m3s")}
    except ValueError:
        raise FloodInputError(f"cannot read --inflow '{text}' (X,Y,Q or EDGE,Q; Q may be T:Q;T:Q)",
                              field="inflows") from None


def parse_stage(text: str) -> dict:
    """ "EDGE,LEVEL" or "EDGE,T:LEVEL;T:LEVEL"."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        return {"edge": parts[0], **_flow(parts[1], "level_m")}
    except ValueError:
        raise FloodInputError(f"cannot read --stage '{text}' (EDGE,LEVEL or EDGE,T:L;T:L)", field="stages") from None


def parse_probe(text: str, index: int = 1) -> dict:
    """ "NAME,X,Y" or "X,Y" (named probe-N) in the project CRS."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) == 2:
            return {"name": f"probe-{index}", "x": float(parts[0]), "y": float(parts[1])}
        if len(parts) == 3 and parts[0]:
            return {"name": parts[0], "x": float(parts[1]), "y": float(parts[2])}
        raise ValueError
    except ValueError:
        raise FloodInputError(f"cannot read --probe '{text}' (NAME,X,Y or X,Y)", field="probes") from None


def _flow(text: str, constant_key: str) -> dict:
    if ":" in text:
        return {"hydrograph": [tuple(float(v) for v in pair.split(":")) for pair in text.split(";")]}
    return {constant_key: float(text)}


def run_flood_cli(twin_dir: Path, out_dir: Path, *, rain_mm: float = 0.0, duration: str = "1h",
                  resolution_m: float = 10.0, inflow: list[str] | None = None, stage: list[str] | None = None,
                  horizon: str | None = None, frame_interval_min: float = 10.0, backend: str = "auto",
                  drainage_mm_h: float | None = None, river_level_m: float | None = None,
                  use_city_rivers: bool = True, probe: list[str] | None = None, console=None) -> dict:
    """Validate, run with a progress bar, print a summary table and the files written; returns the summary.
    `drainage_mm_h` None: the city's sewer capacity; `river_level_m`: raise the city's rivers to this level;
    `use_city_rivers` false: no river boundaries unless a level is given. Raises TwinError subclasses
    (FloodInputError, TwinNotFound) for the CLI to report."""
    from pydantic import ValidationError
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from simulate.flood.process import FloodInputs, FloodProcess
    from twin.store.folder import FolderStore

    console = console or Console()
    try:
        inputs = FloodInputs(rain_mm=rain_mm, duration=duration, resolution_m=resolution_m,
                             inflows=[parse_inflow(s) for s in inflow or []],
                             stages=[parse_stage(s) for s in stage or []], horizon=horizon,
                             frame_interval_min=frame_interval_min, backend=backend, drainage_mm_h=drainage_mm_h,
                             river_level_m=river_level_m, use_city_rivers=use_city_rivers,
                             probes=[parse_probe(s, i) for i, s in enumerate(probe or [], start=1)])
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FloodInputError(first["msg"], field=".".join(str(p) for p in first["loc"])) from None
    store = FolderStore(twin_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn("[bold blue]{task.description:<28}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("flood", total=100)

        def report(p: ProgressReport) -> None:
            bar.update(task, completed=p.percent, description=p.message or "flood")

        result = FloodProcess().execute(store, inputs, out_dir, report)
    s = result.summary
    table = Table(title=f"flood: {rain_mm:g} mm in {duration} at {s['grid']['resolution_m']:g} m ({s['backend']})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    mb = s["mass_balance"]
    bounds = s["boundaries"]
    for name, value in (("grid", f"{s['grid']['rows']} x {s['grid']['cols']}"), ("steps", f"{s['steps']:,}"),
                        ("drainage", f"{bounds['drainage_mm_h']:g} mm/h ({bounds['drainage_source']})"),
                        *((f"stage {st.get('name') or ''} {st['edge']}".replace("  ", " "),
                           f"{st['level_m']:.2f} m ({st['source']}, {st['faces']} faces)") for st in bounds["stages"]),
                        ("wall time", f"{s['wall_s']:.1f} s"), ("max depth", f"{s['max_depth_m']:.2f} m"),
                        ("flooded area", f"{s['flooded_area_m2'] / 1e6:.3f} km²"),
                        ("rain / inflow", f"{mb['rain_m3']:,.0f} / {mb['inflow_m3']:,.0f} m³"),
                        ("outflow / stored", f"{mb['boundary_out_m3']:,.0f} / {mb['storage_m3']:,.0f} m³"),
                        ("mass error", f"{100 * mb['relative_error']:.2e} %"),
                        *((k.replace("_", " "), json.dumps(v) if isinstance(v, dict) else f"{v:,.1f}" if
                           isinstance(v, float) else str(v)) for k, v in s["exposure"].items())):
        table.add_row(name, value)
    console.print(table)
    for name, path in {**result.rasters, **result.files}.items():
        console.print(f"  {name}: {path}")
    (out_dir / "summary.json").write_text(json.dumps(s, indent=2, default=str))
    return s
