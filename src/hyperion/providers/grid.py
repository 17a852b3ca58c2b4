"""Hourly grid series (carbon intensity gCO2/kWh, electricity price USD/MWh): their readers and
year alignment. Shared by the simulator and the live federation (which forecasts from them).

Glossary:
- *hourly series* (``HourlySeries``): one value per UTC hour over a contiguous span of hours.
- *carbon intensity*: grams of CO2(-equivalent) emitted per kWh drawn from the grid. Electricity
  Maps gives "direct" (operational, GHG-Protocol Scope 2) and "LCA" (life-cycle) values.
- *year alignment*: how an instant outside the series is read (see ``HourlySeries.hour_index``).

Readers, one per format under /work/shared/data (see its README); ``read_series`` picks one by
the header. Gzip files (``.gz``) are read transparently. Bad rows raise ``SeriesError`` (a
ValueError) naming file:line (the header is line 1), the column and what to do.
- ``read_electricitymaps``: ``carbon_electricitymaps_hourly/<ZONE>_2021-2023_hourly.csv.gz``
- ``read_letswaitawhile``: ``carbon_letswaitawhile/{ger,gb,fr}_ci.csv`` (15/30 min, averaged to hours)
- ``read_electricity_prices``: ``electricity_prices_hourly/<REGION>_2020-2023_hourly_usd.csv.gz``
"""

from __future__ import annotations

import calendar
import csv
import gzip
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HOUR = 3600


class SeriesError(ValueError):
    """A series file that cannot be read: names file:line, the column, and what to do."""


@dataclass(frozen=True)
class HourlySeries:
    name: str                  # e.g. "DE/direct", "DE-LU", "ger"
    start: float               # epoch seconds (UTC) of the first hour; a multiple of 3600
    values: tuple[float, ...]  # one per hour, contiguous
    unit: str                  # "gCO2/kWh" or "USD/MWh"
    # years an out-of-range instant is mapped into: (first year, number of years)
    _cycle: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError(f"series {self.name!r} has no values")
        if self.start % HOUR:
            raise ValueError(f"series {self.name!r}: start {self.start} is not on the hour")
        first = datetime.fromtimestamp(self.start, UTC).year
        last = datetime.fromtimestamp(self.end - 1, UTC).year
        full = [y for y in range(first, last + 1)
                if self.start <= _year_start(y) and _year_start(y + 1) <= self.end]
        cycle = (full[0], len(full)) if full else (first, last - first + 1)
        object.__setattr__(self, "_cycle", cycle)

    @property
    def end(self) -> float:
        """Epoch seconds just after the last hour."""
        return self.start + HOUR * len(self.values)

    def hour_index(self, epoch_s: float) -> int:
        """Index into ``values`` of the hour whose value holds at ``epoch_s``. O(1).

        Inside [start, end) it is the hour containing the instant. Outside, the instant is read as
        the same UTC hour of the same calendar day in a year the series covers: traces are older
        than the grid data (Philly ran in 2017, Electricity Maps here is 2021-2023), so a run reads
        the intensity of that hour and day, keeping daily and seasonal patterns. The year is chosen
        by cycling over the years the series covers completely (all years it touches when it
        covers none): ``year = first + (year - first) mod n`` (2017 -> 2023 for 2021-2023; any year
        -> 2020 for lets-wait-awhile's 2019-12-20..2021-01-09). Feb 29 reads Feb 28 in a year
        without one. What is still outside (a partial year) reads the nearest end. Local-time
        effects of DST dates differing between years are ignored. A one-value series (``constant``)
        holds everywhere."""
        n = len(self.values)
        offset = epoch_s - self.start
        if 0 <= offset < HOUR * n:
            return int(offset // HOUR)
        if n == 1:
            return 0
        t = datetime.fromtimestamp(epoch_s, UTC)
        first, years = self._cycle
        year = first + (t.year - first) % years
        day = 28 if t.month == 2 and t.day == 29 and not calendar.isleap(year) else t.day
        mapped = datetime(year, t.month, day, t.hour, tzinfo=UTC).timestamp()
        return min(max(int((mapped - self.start) // HOUR), 0), n - 1)

    def at(self, epoch_s: float) -> float:
        """The value of the hour containing ``epoch_s`` (year alignment as in ``hour_index``)."""
        return self.values[self.hour_index(epoch_s)]

    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)


def constant(value: float, unit: str, name: str = "constant") -> HourlySeries:
    """A series that reads ``value`` at every instant (e.g. a static region intensity)."""
    if not math.isfinite(value):
        raise ValueError(f"constant series {name!r}: value {value} is not a finite number")
    return HourlySeries(name, 0.0, (float(value),), unit)


def _year_start(year: int) -> float:
    return datetime(year, 1, 1, tzinfo=UTC).timestamp()


# ---- reading ---------------------------------------------------------------------------------

def _open(path: Path):
    """Text handle, UTF-8 (a BOM is dropped), gunzipped when the name ends in .gz."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _norm(header: str) -> str:
    return header.strip().lower().replace("₂", "2")


def _rows(path: Path, wanted: dict[str, str]) -> Iterator[tuple[int, list[str]]]:
    """(line, [cell per wanted column]) for each non-empty data row; ``wanted`` maps a normalised
    header name to the label used in messages. A missing column raises at line 1."""
    with _open(path) as f:
        reader = csv.reader(f)
        header = [_norm(h) for h in next(reader, [])]
        idx = []
        for key, label in wanted.items():
            if key not in header:
                raise SeriesError(f"{path}:1: no column {label!r} in the header; is this the right file/format?")
            idx.append(header.index(key))
        for row in reader:
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) < len(header):
                raise SeriesError(f"{path}:{reader.line_num}: {len(row)} fields, the header has {len(header)}; "
                                  "repair or delete the row")
            yield reader.line_num, [row[i] for i in idx]


def _epoch(text: str, path: Path, line: int, column: str) -> float:
    """Epoch seconds of an ISO date-time; one without a UTC offset is read as UTC."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SeriesError(f"{path}:{line}: column {column!r}: {text!r} is not a date-time like "
                          "'2021-01-01 00:00:00'; fix or delete the row") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _number(text: str, path: Path, line: int, column: str, negative_ok: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (value < 0 and not negative_ok):
        what = "a finite number" if negative_ok else "a finite number >= 0"
        raise SeriesError(f"{path}:{line}: column {column!r}: {text!r} is not {what}; fix or delete the row")
    return value


def _hourly(path: Path, time_col: str, name: str, unit: str,
            rows: Iterator[tuple[int, float, float]]) -> HourlySeries:
    """A series from (line, epoch, value) rows that must fall one per hour, contiguous (the epoch
    is floored to the hour, so half-hour stamps such as IN-WE prices read as their hour)."""
    start: float | None = None
    prev = prev_line = 0
    values: list[float] = []
    for line, epoch, value in rows:
        hour = epoch - epoch % HOUR
        if start is None:
            start = hour
        elif hour != prev + HOUR:
            at = datetime.fromtimestamp(hour, UTC).isoformat(sep=" ")
            if hour <= prev:
                problem = f"{at} does not come after line {prev_line} (duplicate or out of order)"
            else:
                problem = f"{at} leaves a gap of {int((hour - prev) // HOUR) - 1} missing hour(s) after line {prev_line}"
            raise SeriesError(f"{path}:{line}: column {time_col!r}: {problem}; hourly rows must be contiguous and "
                              "in order — repair the file or cut the series at the gap")
        prev, prev_line = hour, line
        values.append(value)
    if start is None:
        raise SeriesError(f"{path}: no data rows")
    return HourlySeries(name, start, tuple(values), unit)


EM_TIME = "Datetime (UTC)"
EM_CI = {"direct": "Carbon Intensity gCO₂eq/kWh (direct)", "lca": "Carbon Intensity gCO₂eq/kWh (LCA)"}
PRICE_COL = "Price (USD/MWh)"
LWA_TIME, LWA_CI = "Time", "Carbon Intensity"


def read_electricitymaps(path: str | Path, column: str = "direct") -> HourlySeries:
    """An Electricity Maps hourly export; ``column`` "direct" or "lca". Name: "<zone>/<column>",
    the zone taken from the file name ("DE_2021-2023_hourly.csv.gz" -> "DE/direct")."""
    path = Path(path)
    if column not in EM_CI:
        raise ValueError(f"column must be one of {sorted(EM_CI)}, got {column!r}")
    label = EM_CI[column]
    wanted = {_norm(EM_TIME): EM_TIME, _norm(label): label}
    rows = ((line, _epoch(when, path, line, EM_TIME), _number(ci, path, line, label, negative_ok=False))
            for line, (when, ci) in _rows(path, wanted))
    return _hourly(path, EM_TIME, f"{path.name.split('_')[0]}/{column}", "gCO2/kWh", rows)


def read_electricity_prices(path: str | Path) -> HourlySeries:
    """A green-dcc standardised price file; negative prices are kept. Name: the region of the file
    name ("DE-LU_2020-2023_hourly_usd.csv.gz" -> "DE-LU")."""
    path = Path(path)
    wanted = {_norm(EM_TIME): EM_TIME, _norm(PRICE_COL): PRICE_COL}
    rows = ((line, _epoch(when, path, line, EM_TIME), _number(price, path, line, PRICE_COL, negative_ok=True))
            for line, (when, price) in _rows(path, wanted))
    return _hourly(path, EM_TIME, path.name.split("_")[0], "USD/MWh", rows)


def read_letswaitawhile(path: str | Path) -> HourlySeries:
    """A lets-wait-awhile ``*_ci.csv`` (15 or 30 min readings, mixed). ``Time`` carries no zone
    and is read as UTC. Each hour is the mean of its readings; an hour without readings carries
    the previous hour's value. Rows must be in strictly increasing time. Name: the file name up to
    "_" ("ger_ci.csv" -> "ger")."""
    path = Path(path)
    wanted = {_norm(LWA_TIME): LWA_TIME, _norm(LWA_CI): LWA_CI}
    start: float | None = None
    prev = -math.inf
    prev_line = 0
    sums: list[float] = []
    counts: list[int] = []
    for line, (when, ci) in _rows(path, wanted):
        epoch = _epoch(when, path, line, LWA_TIME)
        if epoch <= prev:
            raise SeriesError(f"{path}:{line}: column {LWA_TIME!r}: {when.strip()!r} does not come after line "
                              f"{prev_line} (duplicate or out of order); sort the file or drop the duplicate")
        prev, prev_line = epoch, line
        value = _number(ci, path, line, LWA_CI, negative_ok=False)
        if start is None:
            start = epoch - epoch % HOUR
        i = int((epoch - start) // HOUR)
        while len(sums) <= i:
            sums.append(0.0)
            counts.append(0)
        sums[i] += value
        counts[i] += 1
    if start is None:
        raise SeriesError(f"{path}: no data rows")
    values: list[float] = []
    for s, c in zip(sums, counts, strict=True):
        values.append(s / c if c else values[-1])  # hour 0 always has a reading
    return HourlySeries(path.name.split("_")[0], start, tuple(values), "gCO2/kWh")


FORMATS = (
    f"Electricity Maps hourly ({EM_TIME!r}, {EM_CI['direct']!r}, ...)",
    f"lets-wait-awhile ({LWA_TIME!r}, {LWA_CI!r})",
    f"green-dcc electricity prices ({EM_TIME!r}, 'Datetime (Local)', {PRICE_COL!r})",
)


def read_series(path: str | Path, column: str = "direct") -> HourlySeries:
    """Read any supported series file, picking the reader by its header (``column`` applies to
    Electricity Maps files only)."""
    path = Path(path)
    with _open(path) as f:
        header = {_norm(h) for h in next(csv.reader(f), [])}
    if {_norm(EM_TIME), _norm(EM_CI["direct"])} <= header:
        return read_electricitymaps(path, column)
    if {_norm(EM_TIME), _norm(PRICE_COL)} <= header:
        return read_electricity_prices(path)
    if {_norm(LWA_TIME), _norm(LWA_CI)} <= header:
        return read_letswaitawhile(path)
    raise SeriesError(f"{path}:1: unknown series format (header {sorted(header)}); supported: " + "; ".join(FORMATS))
