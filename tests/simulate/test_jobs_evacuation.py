"""Integration: a flood job on the Tianhe twin feeds an evacuation job (the production registry),
through the job machinery, the Features catalogue and `twin evacuate`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from simulate.jobs import JobManager, JobStatus, result_layers
from simulate.jobs.results import read_layer, read_summary
from simulate.process import ProcessError
from twin.cli import app as cli

HUACHENG_SQUARE = {"type": "Polygon", "coordinates": [[[113.318, 23.114], [113.326, 23.114], [113.326, 23.122],
                                                      [113.318, 23.122], [113.318, 23.114]]]}


@pytest.fixture(scope="module")
def flooded(tianhe_twin, tmp_path_factory):
    """A twin copy holding one finished flood job: (twin dir, manager, flood job)."""
    twin = tmp_path_factory.mktemp("evac") / "twin"
    shutil.copytree(tianhe_twin.store.root, twin, ignore=shutil.ignore_patterns("jobs", "tiles"))
    manager = JobManager(twin)
    job = manager.submit("flood", {"rain_mm": 100, "duration": "30min", "horizon": "45min", "resolution_m": 20,
                                   "frame_interval_min": 0, "drainage_mm_h": 0}, owner="ops", mode="sync")
    assert job.status is JobStatus.successful, job.error
    return twin, manager, job


@pytest.mark.slow
def test_a_flood_job_feeds_an_evacuation_job(flooded):
    twin, manager, flood = flooded
    job = manager.submit("evacuation", {"hazard": {"flood_job": flood.id}, "mode": "walk", "horizon": "3h"},
                         owner="ops", mode="sync")
    assert job.status is JobStatus.successful, job.error
    job_dir = manager.jobs.job_dir(job.id)
    summary = read_summary(job_dir)
    flood_dir = manager.jobs.job_dir(flood.id)

    # who leaves: exactly the buildings the flood job reported flooded
    flooded_buildings = read_layer(flood_dir, "buildings")
    assert summary["hazard"] == {"kind": "flood", "job": flood.id, "buildings": len(flooded_buildings)}

    # conservation at every sample of the curve the job wrote
    curve = pd.read_csv(job_dir / job.results.files["curve"])
    totals = curve[["not_departed", "en_route", "evacuated", "trapped"]].sum(axis=1)
    assert np.allclose(totals, summary["population"], atol=0.05)
    assert curve["evacuated"].is_monotonic_increasing
    assert summary["population"] > 0 and summary["evacuated"] > 0

    # roads close when the flood makes them impassable: the links layer carries the flood's times
    links = read_layer(job_dir, "links")
    impassable = read_layer(flood_dir, "roads").set_index("id")["impassable_at_s"]
    closed = links[links["closed_at_s"].notna()]
    assert len(closed) > 0
    assert set(closed["road_id"]) <= set(impassable.index)
    assert np.allclose(closed["closed_at_s"].to_numpy(), impassable.loc[closed["road_id"]].to_numpy())
    open_ = links[links["closed_at_s"].isna()]
    assert not set(open_["road_id"]) & set(impassable.dropna().index)

    # shelters never over capacity, and every route ends at one of them
    shelters = read_layer(job_dir, "shelters")
    assert (shelters["occupancy"] <= shelters["capacity"] + 1e-6).all()
    occupancy = pd.read_csv(job_dir / job.results.files["shelter_occupancy"])
    assert (occupancy.drop(columns="t_s").to_numpy() <= shelters["capacity"].to_numpy() + 1e-6).all()
    assert np.isclose(shelters["occupancy"].sum(), summary["evacuated"], atol=0.5)
    routes = read_layer(job_dir, "routes")
    assert set(routes["shelter"]) <= set(shelters["shelter"])
    assert np.isclose(routes["persons"].sum(), summary["evacuated"], atol=0.5)

    # trapped people are located, and add up; nobody is refused for want of space while a shelter has room
    trapped = read_layer(job_dir, "trapped")
    assert np.isclose(trapped["persons"].sum(), summary["trapped"], atol=0.5)
    if (trapped["reason"] == "no_shelter_space").any():
        assert shelters["full_at_s"].notna().all()
        assert (shelters["capacity"] - shelters["occupancy"] < 1.0).all()

    # every layer is a Features collection of the twin
    served = {name for name, layer in result_layers(twin).items() if layer.job_id == job.id}
    assert served == {f"job-{job.id}-{name}" for name in ("hazard", "links", "routes", "shelters", "trapped")}
    loads = json.loads((job_dir / job.results.files["link_loads"]).read_text())
    assert loads["links"] == links["link"].tolist()
    assert len(loads["loads"]) == len(loads["times_s"]) == len(curve)


def test_bad_hazards_are_refused_naming_the_field(flooded):
    twin, manager, flood = flooded
    with pytest.raises(ProcessError) as unknown:
        manager.submit("evacuation", {"hazard": {"flood_job": "0123456789abcdef"}}, owner="ops", mode="sync")
    assert unknown.value.field == "hazard" and "0123456789abcdef" in unknown.value.message
    polygon = manager.submit("evacuation", {"hazard": {"polygon": HUACHENG_SQUARE}, "horizon": "20min"},
                             owner="ops", mode="sync")
    with pytest.raises(ProcessError) as not_flood:
        manager.submit("evacuation", {"hazard": {"flood_job": polygon.id}}, owner="ops", mode="sync")
    assert not_flood.value.field == "hazard" and "flood" in not_flood.value.message
    with pytest.raises(ProcessError) as both:
        manager.submit("evacuation", {"hazard": {"flood_job": flood.id, "polygon": HUACHENG_SQUARE}},
                       owner="ops", mode="sync")
    assert both.value.field.startswith("hazard")


@pytest.mark.slow
def test_twin_evacuate_command(flooded, tmp_path):
    twin, manager, flood = flooded
    zone = tmp_path / "zone.geojson"
    zone.write_text(json.dumps(HUACHENG_SQUARE))
    run = CliRunner().invoke(cli, ["evacuate", str(twin), "--hazard", str(zone), "--mode", "drive",
                                   "--horizon", "1h"])
    assert run.exit_code == 0, run.output
    assert "people who must leave" in run.output and "90 %" in run.output
    newest = manager.list(process=["evacuation"], limit=1)[0][0]
    assert newest.status is JobStatus.successful and newest.inputs["mode"] == "drive"

    chained = CliRunner().invoke(cli, ["evacuate", str(twin), "--hazard", "flood:latest", "--horizon", "30min"])
    assert chained.exit_code == 0, chained.output
    assert read_summary(manager.jobs.job_dir(manager.list(process=["evacuation"], limit=1)[0][0].id)
                        )["hazard"]["job"] == flood.id

    missing = CliRunner().invoke(cli, ["evacuate", str(twin), "--hazard", str(tmp_path / "nowhere.geojson")])
    assert missing.exit_code == 2 and "nowhere.geojson" in missing.output


@pytest.mark.slow
def test_a_warning_lead_time_delays_the_closures_and_gets_more_people_out(flooded):
    twin, manager, flood = flooded
    runs = {}
    for lead in (0, 45):
        job = manager.submit("evacuation", {"hazard": {"flood_job": flood.id, "lead_time_min": lead},
                                            "response": {"distribution": "immediate"}, "horizon": "2h"},
                             owner="ops", mode="sync")
        job_dir = manager.jobs.job_dir(job.id)
        runs[lead] = (read_summary(job_dir), read_layer(job_dir, "links").set_index("link"))
    (early, early_links), (warned, warned_links) = runs[0], runs[45]
    both = early_links.index.intersection(warned_links.index)
    closed = both[early_links.loc[both, "closed_at_s"].notna().to_numpy()]
    assert len(closed) and np.allclose(warned_links.loc[closed, "closed_at_s"],
                                       early_links.loc[closed, "closed_at_s"] + 45 * 60)
    assert warned["population"] == early["population"]
    assert warned["evacuated"] >= early["evacuated"] and warned["trapped"] <= early["trapped"]
