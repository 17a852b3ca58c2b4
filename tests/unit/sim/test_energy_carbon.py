"""Energy and grid-series models of the simulator: TDP lookup, energy arithmetic, hourly series
reading (real files under /work/shared/data when present, small tmp files otherwise), year
alignment of instants outside a series, and messages for bad rows."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hyperion.providers.grid import (
    HourlySeries,
    SeriesError,
    constant,
    read_electricity_prices,
    read_electricitymaps,
    read_letswaitawhile,
    read_series,
)
from hyperion.sim.energy import PowerModel, load_gpu_power, match_gpu, tdp_watts

DATA = Path(os.environ.get("HYPERION_DATA", "/work/shared/data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} not present")
GPUS = DATA / "carbon_static_cloud_regions/mlco2_gpus.csv"
EM_HEADER = "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA)\n"
PRICE_HEADER = "Datetime (UTC),Datetime (Local),Price (USD/MWh)\n"


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ---- TDP table and lookup ------------------------------------------------------------------

@needs_data
@pytest.mark.parametrize("gpu_type, row, watts", [
    ("V100", "Tesla V100-PCIE-16GB", 300), ("v100", "Tesla V100-PCIE-16GB", 300),
    ("V100-SXM2-32GB", "Tesla V100-SXM2-32GB", 300), ("V100M16", "Tesla V100-PCIE-16GB", 300),
    ("P100", "Tesla P100", 250), ("P40", "Tesla P40", 250), ("K80", "Tesla K80", 300),
    ("A100", "A100 SXM4 80 GB", 400), ("A100-80GB", "A100 SXM4 80 GB", 400),
    ("A100-SXM4-80GB", "A100 SXM4 80 GB", 400), ("A100 40GB", "A100 PCIe 40/80GB", 250),
    ("H100", "H100 SXM", 700), ("T4", "T4", 70), ("A10", "A10G", 150), ("L4", "L4", 72),
    ("H800", None, None), ("Tesla", None, None), ("", None, None), ("G2", None, None),
])
def test_tdp_lookup_on_the_mlco2_table(gpu_type: str, row: str | None, watts: float | None) -> None:
    table = load_gpu_power(GPUS)
    assert match_gpu(gpu_type, table) == row
    assert tdp_watts(gpu_type, table) == watts


def test_tdp_match_never_reads_a10_as_a100() -> None:
    assert tdp_watts("A10", {"A100 SXM4": 400.0}) is None
    assert tdp_watts("A10", {"A100 SXM4": 400.0, "A10G": 150.0}) == 150.0


def test_gpu_table_header_is_matched_loosely(tmp_path: Path) -> None:
    p = write(tmp_path / "g.csv", "Name, type , TDP_watts , TFLOPS16\nX1,gpu, 70 ,1\n")
    assert load_gpu_power(p) == {"X1": 70.0}


@pytest.mark.parametrize("body, where", [
    ("A,gpu,seventy\n", ":2: column 'tdp_watts'"),
    ("A,gpu,70\nB,gpu,-5\n", ":3: column 'tdp_watts'"),
    ("A,gpu,70\n,gpu,80\n", ":3: column 'name'"),
    ("A,gpu,70\nA,gpu,80\n", ":3: column 'name'"),
])
def test_bad_gpu_rows_name_line_and_column(tmp_path: Path, body: str, where: str) -> None:
    p = write(tmp_path / "g.csv", "name,type,tdp_watts\n" + body)
    with pytest.raises(ValueError, match=where):
        load_gpu_power(p)


# ---- energy --------------------------------------------------------------------------------

@pytest.mark.parametrize("busy_s, idle_s, kwargs, kwh", [
    (3600, 0, {}, 0.3),                              # 300 W for an hour
    (0, 3600, {}, 0.09),                             # idle at 30 % of TDP
    (7200, 3600, {"pue": 1.5}, (0.6 + 0.09) * 1.5),
    (3600, 3600, {"busy_fraction": 0.5, "idle_fraction": 0.0}, 0.15),
])
def test_energy_arithmetic(busy_s: float, idle_s: float, kwargs: dict, kwh: float) -> None:
    model = PowerModel({"V100": 300.0}, **kwargs)
    assert model.energy_kwh("V100", busy_s, idle_s) == pytest.approx(kwh)


def test_energy_rejects_unknown_types_and_bad_parameters() -> None:
    with pytest.raises(KeyError, match="'H800'"):
        PowerModel({"V100": 300.0}).energy_kwh("H800", 1, 1)
    with pytest.raises(KeyError, match="H800"):
        PowerModel.for_types(["V100", "H800"], {"Tesla V100": 300.0})
    assert PowerModel.for_types(["V100"], {"Tesla V100": 300.0}, pue=1.2).tdp_w == {"V100": 300.0}
    with pytest.raises(ValueError, match="idle_fraction"):
        PowerModel({}, idle_fraction=1.5)
    with pytest.raises(ValueError, match="pue"):
        PowerModel({}, pue=0.9)


# ---- HourlySeries: lookup and year alignment -----------------------------------------------

THREE_YEARS = HourlySeries("t", ts(2021, 1, 1), tuple(float(i) for i in range(26_280)), "gCO2/kWh")


def hour_of(series: HourlySeries, *args: int) -> float:
    """The value a series stores for the given UTC hour (here: its index)."""
    return series.values[int((ts(*args) - series.start) // 3600)]


@pytest.mark.parametrize("instant, expect", [
    ((2021, 1, 1, 0, 0), (2021, 1, 1, 0)),
    ((2022, 6, 15, 13, 59), (2022, 6, 15, 13)),
    ((2023, 12, 31, 23, 30), (2023, 12, 31, 23)),
    ((2017, 9, 4, 10, 30), (2023, 9, 4, 10)),     # Philly: 2021 + (2017 - 2021) mod 3 = 2023
    ((2024, 3, 1, 5, 0), (2021, 3, 1, 5)),
    ((2020, 2, 29, 12, 0), (2023, 2, 28, 12)),    # leap day, mapped into a year without one
    ((2020, 3, 1, 0, 0), (2023, 3, 1, 0)),
])
def test_at_reads_the_same_hour_and_calendar_day(instant: tuple, expect: tuple) -> None:
    assert THREE_YEARS.at(ts(*instant)) == hour_of(THREE_YEARS, *expect)


def test_partial_years_cycle_over_the_full_year_and_clamp_otherwise() -> None:
    # 2019-12-20 .. 2021-01-09 (lets-wait-awhile): every outside instant reads 2020
    start, end = ts(2019, 12, 20), ts(2021, 1, 10)
    s = HourlySeries("lwa", start, tuple(float(i) for i in range(int((end - start) // 3600))), "gCO2/kWh")
    assert s.at(ts(2017, 2, 28, 7)) == hour_of(s, 2020, 2, 28, 7)
    assert s.at(ts(2016, 2, 29, 7)) == hour_of(s, 2020, 2, 29, 7)   # 2020 has a leap day
    assert s.at(ts(2019, 12, 25)) == hour_of(s, 2019, 12, 25)      # inside: read directly
    # no full year: 2021-03-01 .. 2021-04-01; outside instants map into 2021, then clamp
    short = HourlySeries("s", ts(2021, 3, 1), tuple(float(i) for i in range(31 * 24)), "x")
    assert short.at(ts(2017, 1, 5)) == 0.0
    assert short.at(ts(2018, 12, 5)) == 31 * 24 - 1
    assert short.at(ts(2016, 3, 2, 1)) == 25.0


def test_constant_and_mean_and_validation() -> None:
    c = constant(420.0, "gCO2/kWh", "aws us-east-1")
    assert c.at(0) == c.at(ts(2017, 9, 4)) == c.at(ts(2030, 1, 1)) == c.mean() == 420.0
    assert HourlySeries("m", 0.0, (1.0, 2.0, 6.0), "x").mean() == 3.0
    with pytest.raises(ValueError, match="not on the hour"):
        HourlySeries("m", 10.0, (1.0,), "x")
    with pytest.raises(ValueError, match="no values"):
        HourlySeries("m", 0.0, (), "x")


# ---- readers on small files -----------------------------------------------------------------

def em_rows(*stamps: str, ci: str = "100") -> str:
    return "".join(f"{s},Germany,Germany,DE,{ci},120,50,30,src,false,\n" for s in stamps)


@pytest.mark.parametrize("stamps, where, what", [
    (("2021-01-01 00:00:00", "2021-01-01 01:00:00", "2021-01-01 03:00:00"), ":4:", "gap"),
    (("2021-01-01 00:00:00", "2021-01-01 01:00:00", "2021-01-01 01:00:00"), ":4:", "duplicate"),
    (("2021-01-01 00:00:00", "yesterday"), ":3:", "not a date-time"),
])
def test_hourly_rows_must_be_contiguous(tmp_path: Path, stamps: tuple, where: str, what: str) -> None:
    p = write(tmp_path / "DE_x.csv.gz", EM_HEADER + em_rows(*stamps))
    with pytest.raises(SeriesError, match=f"{where} column 'Datetime \\(UTC\\)': .*{what}"):
        read_electricitymaps(p)


@pytest.mark.parametrize("ci", ["n/a", "", "-3", "nan"])
def test_bad_intensity_names_line_and_column(tmp_path: Path, ci: str) -> None:
    p = write(tmp_path / "DE_x.csv", EM_HEADER + em_rows("2021-01-01 00:00:00") + em_rows("2021-01-01 01:00:00", ci=ci))
    with pytest.raises(SeriesError, match=r":3: column 'Carbon Intensity gCO₂eq/kWh \(direct\)'"):
        read_electricitymaps(p)


def test_small_files_of_each_format(tmp_path: Path) -> None:
    em = read_series(write(tmp_path / "DE_x.csv", EM_HEADER + em_rows("2021-01-01 00:00:00", "2021-01-01 01:00:00")))
    assert (em.name, em.start, em.values, em.unit) == ("DE/direct", ts(2021, 1, 1), (100.0, 100.0), "gCO2/kWh")
    assert read_series(tmp_path / "DE_x.csv", column="lca").values == (120.0, 120.0)
    prices = write(tmp_path / "IN-WE_p.csv.gz", PRICE_HEADER + "2020-01-01 00:30:00+00:00,2020-01-01 06:00:00+05:30,29.8\n"
                   "2020-01-01 01:30:00+00:00,2020-01-01 07:00:00+05:30,-4.5\n")
    p = read_series(prices)
    assert (p.name, p.start, p.values, p.unit) == ("IN-WE", ts(2020, 1, 1), (29.8, -4.5), "USD/MWh")
    lwa = write(tmp_path / "ger_ci.csv", "Time,Carbon Intensity\n2020-01-01 00:00:00,10\n2020-01-01 00:15:00,20\n"
                "2020-01-01 00:45:00,30\n2020-01-01 03:30:00,50\n")
    s = read_series(lwa)
    assert (s.name, s.start, s.values) == ("ger", ts(2020, 1, 1), (20.0, 20.0, 20.0, 50.0))  # hours 1-2 carried
    write(lwa, "Time,Carbon Intensity\n2020-01-01 00:15:00,10\n2020-01-01 00:15:00,20\n")
    with pytest.raises(SeriesError, match=":3: column 'Time'"):
        read_letswaitawhile(lwa)


def test_unknown_header_lists_the_supported_formats(tmp_path: Path) -> None:
    with pytest.raises(SeriesError, match="supported: Electricity Maps.*lets-wait-awhile.*prices"):
        read_series(write(tmp_path / "x.csv", "when,what\n1,2\n"))
    with pytest.raises(SeriesError, match="no column 'Price"):
        read_electricity_prices(write(tmp_path / "y.csv", "Datetime (UTC),Cost\n"))


# ---- readers on the real files --------------------------------------------------------------

@needs_data
@pytest.mark.parametrize("rel, name, rows, unit, first", [
    ("carbon_electricitymaps_hourly/DE_2021-2023_hourly.csv.gz", "DE/direct", 26_280, "gCO2/kWh", (2021, 1, 1)),
    ("carbon_electricitymaps_hourly/US-MIDA-PJM_2021-2023_hourly.csv.gz", "US-MIDA-PJM/direct", 26_280, "gCO2/kWh",
     (2021, 1, 1)),
    ("electricity_prices_hourly/DE-LU_2020-2023_hourly_usd.csv.gz", "DE-LU", 35_064, "USD/MWh", (2020, 1, 1)),
    ("electricity_prices_hourly/IN-WE_2020-2023_hourly_usd.csv.gz", "IN-WE", 35_064, "USD/MWh", (2020, 1, 1)),
    ("carbon_letswaitawhile/ger_ci.csv", "ger", 9_288, "gCO2/kWh", (2019, 12, 20)),
    ("carbon_letswaitawhile/fr_ci.csv", "fr", 9_287, "gCO2/kWh", (2019, 12, 20)),
])
def test_real_files(rel: str, name: str, rows: int, unit: str, first: tuple) -> None:
    s = read_series(DATA / rel)
    assert (s.name, len(s.values), s.unit, s.start) == (name, rows, unit, ts(*first))
    assert s.mean() > 0


@needs_data
def test_real_series_details() -> None:
    de = read_electricitymaps(DATA / "carbon_electricitymaps_hourly/DE_2021-2023_hourly.csv.gz")
    assert de.values[:2] == (449.07, 455.08)
    assert read_electricitymaps(DATA / "carbon_electricitymaps_hourly/DE_2021-2023_hourly.csv.gz", "lca").values[0] == 526.77
    assert de.at(ts(2017, 9, 4, 10, 15)) == de.at(ts(2023, 9, 4, 10))
    assert min(read_electricity_prices(DATA / "electricity_prices_hourly/DE-LU_2020-2023_hourly_usd.csv.gz").values) < 0
