"""Where cloud regions are: the table that maps a provider's region to its electricity grid zone
(an Electricity Maps zone id, the key of the hourly carbon series), its country (for data
residency) and its coordinates (for latency by distance).

The table ships as ``providers/data/regions.csv`` (provider, region, grid_zone, country, latitude,
longitude, city). It is hand-made from the providers' published region locations and the
Electricity Maps zone that contains each one; docs/federation.md shows it and says how it was
made. A region missing from the table is not an error: a ``kind: Cluster`` then names its
``grid_zone``, ``country`` and ``location`` itself.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

COLUMNS = ("provider", "region", "grid_zone", "country", "latitude", "longitude", "city")


@dataclass(frozen=True, slots=True)
class Region:
    provider: str
    region: str
    grid_zone: str
    country: str
    location: tuple[float, float]
    city: str


def read_regions(text: str, name: str = "<regions>") -> dict[tuple[str, str], Region]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = tuple(h.strip() for h in next(reader, ()))
    if header != COLUMNS:
        raise ValueError(f"{name}:1: header is {','.join(header)!r}; expected {','.join(COLUMNS)!r}")
    out: dict[tuple[str, str], Region] = {}
    for row in reader:
        if not row:
            continue
        line = reader.line_num
        if len(row) != len(COLUMNS):
            raise ValueError(f"{name}:{line}: {len(row)} fields; expected {len(COLUMNS)} ({','.join(COLUMNS)})")
        provider, region, zone, country, lat, lon, city = (v.strip() for v in row)
        try:
            location = (float(lat), float(lon))
        except ValueError:
            raise ValueError(f"{name}:{line}: latitude/longitude {lat!r}, {lon!r} are not numbers") from None
        if not (-90 <= location[0] <= 90 and -180 <= location[1] <= 180):
            raise ValueError(f"{name}:{line}: ({lat}, {lon}) is not a latitude in -90..90 and a longitude in -180..180")
        if (provider, region) in out:
            raise ValueError(f"{name}:{line}: {provider} {region} is listed twice; keep one row")
        out[(provider, region)] = Region(provider, region, zone, country, location, city)
    return out


@cache
def shipped_regions() -> dict[tuple[str, str], Region]:
    text = resources.files("hyperion.providers").joinpath("data", "regions.csv").read_text(encoding="utf-8")
    return read_regions(text, "hyperion/providers/data/regions.csv")


def region(provider: str, name: str) -> Region | None:
    """The shipped table's row for a provider's region; ``None`` when it is not listed."""
    return shipped_regions().get((provider, name))
