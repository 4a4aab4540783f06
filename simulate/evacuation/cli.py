"""`twin evacuate` as a function: submit an evacuation job, follow it with a progress bar, print the summary.

The run is a job in the twin's job store (like one started from the viewer or the API), so its
layers are served as Features collections and the viewer can open it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from simulate.process import ProcessError


def hazard_input(text: str, twin_dir: Path, *, crs: str = "EPSG:4326") -> dict:
    """`flood:<job id>`, `flood:latest` (the newest successful flood job) or a GeoJSON file."""
    if text.startswith("flood:"):
        job_id = text.split(":", 1)[1].strip()
        if job_id == "latest":
            from simulate.jobs.model import JobStatus
            from simulate.jobs.store import JobStore

            done, _ = JobStore(twin_dir / "jobs").list(status=[JobStatus.successful], process=["flood"], limit=1)
            if not done:
                raise ProcessError("there is no successful flood job in this twin to take as the hazard",
                                   field="hazard")
            job_id = done[0].id
        return {"flood_job": job_id}
    path = Path(text)
    if not path.is_file():
        raise ProcessError(f"--hazard '{text}' is neither flood:<job> nor a GeoJSON file", field="hazard")
    try:
        polygon = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProcessError(f"{path}: not valid GeoJSON ({exc})", field="hazard") from None
    return {"polygon": polygon, "polygon_crs": crs}


def run_evacuate_cli(twin_dir: Path, hazard: str, *, mode: str = "walk", time_of_day: str = "day",
                     horizon: str = "3h", destinations: str = "shelters", hazard_crs: str = "EPSG:4326",
                     console=None) -> dict:
    """Raises TwinError subclasses for the CLI to report."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from simulate.jobs.manager import JobManager
    from simulate.jobs.results import read_summary
    from twin.store.folder import FolderStore

    console = console or Console()
    twin_dir = Path(twin_dir)
    FolderStore(twin_dir)     # a clear error when DIR is not a twin
    inputs = {"hazard": hazard_input(hazard, twin_dir, crs=hazard_crs), "mode": mode, "time_of_day": time_of_day,
              "horizon": horizon, "destinations": destinations}
    manager = JobManager(twin_dir)
    job = manager.submit("evacuation", inputs, owner="cli", mode="async")
    with Progress(TextColumn("evacuation"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("", total=100)
        while job.status.active:
            time.sleep(0.3)
            job = manager.get(job.id)
            bar.update(task, completed=job.progress or 0, description=job.message or "")
    if job.status.value != "successful":
        raise ProcessError(f"evacuation job {job.id} {job.status.value}: {job.message or ''}", field="hazard")
    job_dir = manager.jobs.job_dir(job.id)
    summary = read_summary(job_dir)
    _print(console, job.id, summary, job_dir, job.results)
    return summary


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _print(console, job_id: str, s: dict, job_dir: Path, index) -> None:
    from rich.table import Table

    t = Table(title=f"Evacuation {job_id} ({s['mode']}, {s['time_of_day']}, hazard: {s['hazard'].get('kind')})")
    t.add_column("")
    t.add_column("", justify="right")
    for label, value in (
            ("people who must leave", f"{s['population']:,.0f}"), ("evacuated", f"{s['evacuated']:,.0f}"),
            ("trapped (no passable route)", f"{s['trapped']:,.0f}"),
            ("outside the road data (not simulated)", f"{s['outside_road_data']['people']:,.0f}"),
            ("still en route / not yet left", f"{s['en_route_at_end']:,.0f} / {s['not_departed_at_end']:,.0f}"),
            ("50 % / 90 % / 100 % out", " / ".join(_minutes(s["clearance_s"][k]) for k in ("50", "90", "100"))),
            ("shelters used / full / total", f"{s['shelters']['used']} / {s['shelters']['full']} / "
                                             f"{s['shelters']['count']}"),
            ("network links (closed)", f"{s['network']['links']:,} ({s['network']['closed_links']})"),
            ("wall time", f"{s['wall_s']:.1f} s")):
        t.add_row(label, value)
    console.print(t)
    if s["bottlenecks"]:
        b = Table(title="Bottlenecks")
        for c in ("road", "class", "peak queue", "peak flow /h", "capacity /h"):
            b.add_column(c)
        for r in s["bottlenecks"][:5]:
            b.add_row(str(r.get("name") or r.get("road_id")), str(r.get("highway")), f"{r['peak_queue']:.0f}",
                      f"{r['peak_flow_per_h']:.0f}", f"{r['capacity_per_h']:.0f}")
        console.print(b)
    files = index.files if index is not None else {}
    for name in ("curve_png", "curve"):
        if name in files:
            console.print(f"{name}: {job_dir / files[name]}")
    console.print(f"layers: /ogc/collections/job-{job_id}-<hazard|links|routes|shelters|trapped>/items")
