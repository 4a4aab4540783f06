"""How many people are in each building, by design or at a time of day.

    people_by_building(buildings, *, time_of_day=None | "day" | "night",
                       floor_m2_per_person=None, day_factor=None, night_factor=None,
                       storey_m=3.0) -> (people float64 array, source str array)
    estimate_people(buildings) -> the same at design occupancy (time_of_day=None)
    gross_floor_area(buildings, *, storey_m=3.0) -> footprint area x levels (m2)

People in a building come from one of two sources (the `source` array):

* "population": the building's `population` attribute where given (> 0). It is read as
  the number of residents, the people who sleep there, so its day/night presence follows
  the residential factors whatever the building's use.
* "floor_area": gross floor area (footprint area x levels; levels from height / storey
  when missing, at least 1) over the floor area per occupant of its use class
  (`FLOOR_M2_PER_PERSON`), times the presence factor of its use at that time of day.

Underground buildings (`underground` true) and the use class "structure" (roofs, building
sites) hold nobody: source "uninhabited".

Presence factors (share of the design occupancy present). The commercial, office,
industrial and school figures follow the HAZUS-MH Earthquake Technical Manual's day
(2 pm) / night (2 am) population distribution (FEMA; Table 13.2 logic, as used by USACE
HEC-FIA: commercial workers 0.98 / 0.02, industrial workers 0.80 / 0.10, K-12 pupils
0.80 / 0, hotels full day and night, residents at home 0.99 at night). The daytime
resident share (0.4) is a typical urban figure for residents not away at work or school
(cf. the LandScan USA day/night population model, Bhaduri et al. 2007). "commercial"
here includes hotels, hence a night share above HAZUS' 0.02; health keeps inpatients at
night; religious, public, transport and the unknown class "other" are judgement values.
A city overrides any of them in `[scenarios.evacuation]` of its city.toml.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

TimeOfDay = Literal["day", "night"]

# Floor area per person (m2) by use class, at design (full) occupancy.
FLOOR_M2_PER_PERSON: dict[str, float] = {
    "residential": 35.0, "office": 15.0, "commercial": 20.0, "school": 8.0, "health": 20.0,
    "public": 20.0, "industrial": 60.0, "transport": 40.0, "religious": 10.0, "structure": np.inf,
    "other": 40.0,
}
DAY_FACTOR: dict[str, float] = {
    "residential": 0.4, "office": 0.98, "commercial": 0.8, "school": 0.8, "health": 1.0,
    "public": 0.8, "industrial": 0.8, "transport": 0.8, "religious": 0.3, "structure": 0.0,
    "other": 0.5,
}
NIGHT_FACTOR: dict[str, float] = {
    "residential": 1.0, "office": 0.02, "commercial": 0.1, "school": 0.0, "health": 0.7,
    "public": 0.02, "industrial": 0.1, "transport": 0.1, "religious": 0.02, "structure": 0.0,
    "other": 0.5,
}
STOREY_M = 3.0
UNINHABITED_USES = ("structure",)


def _floats(frame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _uses(frame) -> pd.Series:
    if "use" not in frame:
        return pd.Series("other", index=range(len(frame)), dtype=object)
    return frame["use"].fillna("other").astype(str).reset_index(drop=True)


def _per_use(uses: pd.Series, table: dict[str, float]) -> np.ndarray:
    return uses.map(table).fillna(table["other"]).to_numpy(dtype=float)


def levels_of(buildings, *, storey_m: float = STOREY_M) -> np.ndarray:
    """Storeys per building: `levels` where given (> 0), else round(height / storey_m), at least 1."""
    levels, height = _floats(buildings, "levels"), _floats(buildings, "height")
    from_height = np.where(np.isfinite(height), np.maximum(np.round(height / storey_m), 1.0), 1.0)
    return np.where(np.isfinite(levels) & (levels > 0), levels, from_height)


def gross_floor_area(buildings, *, storey_m: float = STOREY_M) -> np.ndarray:
    """Footprint area (the `area` column, else the geometry's) x storeys, in m2."""
    area = _floats(buildings, "area") if "area" in buildings else buildings.geometry.area.to_numpy()
    return np.nan_to_num(area) * levels_of(buildings, storey_m=storey_m)


def people_by_building(buildings, *, time_of_day: TimeOfDay | None = None,
                       floor_m2_per_person: dict[str, float] | None = None,
                       day_factor: dict[str, float] | None = None,
                       night_factor: dict[str, float] | None = None,
                       storey_m: float = STOREY_M) -> tuple[np.ndarray, np.ndarray]:
    """(people, source) per building row; the dict arguments override the built-in tables
    entry by entry. time_of_day None gives design occupancy (no presence factor)."""
    if time_of_day not in (None, "day", "night"):
        raise ValueError(f"time_of_day must be 'day', 'night' or None, not {time_of_day!r}")
    uses = _uses(buildings)
    per_person = _per_use(uses, {**FLOOR_M2_PER_PERSON, **(floor_m2_per_person or {})})
    by_floor = gross_floor_area(buildings, storey_m=storey_m) / per_person
    residents = _floats(buildings, "population")
    given = np.isfinite(residents) & (residents > 0)
    if time_of_day is not None:
        table = {**(DAY_FACTOR if time_of_day == "day" else NIGHT_FACTOR),
                 **((day_factor if time_of_day == "day" else night_factor) or {})}
        by_floor = by_floor * _per_use(uses, table)
        residents = residents * table["residential"]
    underground = (buildings["underground"].fillna(False).to_numpy(dtype=bool) if "underground" in buildings
                   else np.zeros(len(buildings), bool))
    nobody = underground | uses.isin(UNINHABITED_USES).to_numpy()
    people = np.where(nobody, 0.0, np.where(given, residents, by_floor))
    source = np.where(nobody, "uninhabited", np.where(given, "population", "floor_area")).astype(object)
    return people, source


def estimate_people(buildings) -> tuple[np.ndarray, np.ndarray]:
    """(people, source) per building at design occupancy; see `people_by_building`."""
    return people_by_building(buildings)
