"""GPU power model for the simulator: how many kWh a cluster's GPUs draw while busy and idle.

Glossary:
- *TDP*: thermal design power in watts, the board power a GPU is rated to draw flat out. Read
  from ``carbon_static_cloud_regions/mlco2_gpus.csv`` (mlco2/impact ``data/gpus.csv``), which
  also lists a few TPUs and CPUs.
- *busy / idle GPU-seconds*: seconds a GPU held a job / was powered on with no job.
- *PUE*: power usage effectiveness of the data centre (facility power / IT power, >= 1).
- *GPU type*: the name a cluster file gives its GPUs ("V100", "A100-80GB", ...); ``tdp_watts``
  maps it to a row of the TDP table.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


def load_gpu_power(path: str | Path) -> dict[str, float]:
    """Read an mlco2 ``gpus.csv`` into accelerator name -> TDP in watts, in file order.

    Header names are matched without case or surrounding spaces (the file has " TFLOPS16"); only
    ``name`` and ``tdp_watts`` are used. A row with an empty or duplicate name or a TDP that is not
    a positive number raises ValueError naming file:line and the column."""
    path = Path(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        for col in ("name", "tdp_watts"):
            if col not in header:
                raise ValueError(f"{path}:1: no column {col!r} in the header {header}; expected an mlco2 gpus.csv "
                                 "(name,type,tdp_watts,...)")
        i_name, i_tdp = header.index("name"), header.index("tdp_watts")
        table: dict[str, float] = {}
        for row in reader:
            line = reader.line_num
            if not any(c.strip() for c in row):
                continue
            name = row[i_name].strip() if i_name < len(row) else ""
            if not name:
                raise ValueError(f"{path}:{line}: column 'name' is empty; give the accelerator a name or delete the row")
            if name in table:
                raise ValueError(f"{path}:{line}: column 'name': {name!r} appears twice; keep one row per accelerator")
            text = row[i_tdp].strip() if i_tdp < len(row) else ""
            try:
                watts = float(text)
            except ValueError:
                watts = math.nan
            if not (math.isfinite(watts) and watts > 0):
                raise ValueError(f"{path}:{line}: column 'tdp_watts': {text!r} is not a positive number of watts; "
                                 "fix or delete the row")
            table[name] = watts
    return table


_TOKEN = re.compile(r"[a-z0-9]+")


def _tokens(name: str) -> list[str]:
    """Lower-case alphanumeric runs; a size spelt apart is joined ("80 GB" -> "80gb") and a list of
    sizes spread ("40/80GB" -> "40gb", "80gb")."""
    out: list[str] = []
    for tok in _TOKEN.findall(name.lower()):
        if tok == "gb" and out and out[-1].isdigit():
            out[-1] += "gb"
        else:
            out.append(tok)
    for i in range(len(out) - 1):
        if out[i].isdigit() and out[i + 1].endswith("gb") and out[i + 1][:-2].isdigit():
            out[i] += "gb"
    return out


def _variant(a: str, b: str) -> bool:
    """One token is the other plus a suffix that starts with a letter, the shorter one holding a
    model number: "a10" ~ "a10g", "l40" ~ "l40s", "v100m16" ~ "v100"; never "a10" ~ "a100"."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return (len(long) > len(short) and long.startswith(short) and long[len(short)].isalpha()
            and any(c.isdigit() for c in short))


def match_gpu(gpu_type: str, table: Iterable[str]) -> str | None:
    """The row name of the TDP table (names in file order) that ``gpu_type`` stands for, None when
    no row matches.

    Match rule, first tier that finds a row wins:
    1. exact: the names are equal ignoring case, spaces, dashes and other punctuation
       ("t4" == "T4", "a10g" == "A10G");
    2. tokens: every token of ``gpu_type`` (alphanumeric runs, "80 GB" read as "80gb") is a token of
       the row name ("V100" -> "Tesla V100-PCIE-16GB", "A100-80GB" -> "A100 SXM4 80 GB");
    3. variant: as 2, but a type token may also match a row token that is the same model number with
       a suffix starting with a letter, either way round ("A10" -> "A10G", "L40" -> "L40S",
       "V100M32" -> a V100 row; never "A10" -> "A100").
    Tiers 2 and 3 need a type token with a digit in it, so vendor words alone ("Tesla") match nothing.
    Among several rows of a tier, the one with the fewest tokens not in ``gpu_type`` wins (the most
    generic variant), ties by file order. With the mlco2 table: V100 -> Tesla V100-PCIE-16GB (300 W),
    A100 -> A100 SXM4 80 GB (400 W), H100 -> H100 SXM (700 W)."""
    query = _tokens(gpu_type)
    if not query:
        return None
    flat = "".join(query)
    rows = [(name, _tokens(name)) for name in table]
    for name, toks in rows:
        if "".join(toks) == flat:
            return name
    if not any(c.isdigit() for q in query for c in q):
        return None
    for allow_variant in (False, True):
        best: tuple[int, str] | None = None
        for name, toks in rows:
            used: set[int] = set()
            for q in query:
                hit = next((i for i, t in enumerate(toks) if i not in used and (t == q or (allow_variant and _variant(q, t)))),
                           None)
                if hit is None:
                    break
                used.add(hit)
            else:
                extra = len(toks) - len(used)
                if best is None or extra < best[0]:
                    best = (extra, name)
        if best is not None:
            return best[1]
    return None


def tdp_watts(gpu_type: str, table: Mapping[str, float]) -> float | None:
    """TDP in watts of the row ``match_gpu`` picks for ``gpu_type``; None when none matches."""
    name = match_gpu(gpu_type, table)
    return None if name is None else table[name]


@dataclass(frozen=True)
class PowerModel:
    """Power drawn by a cluster's GPUs, by GPU type.

    ``idle_fraction`` is an assumption, not a measurement from our data: data-centre GPUs that are
    powered on with no work typically draw some 15-30 % of TDP as reported by ``nvidia-smi`` (e.g.
    ~50-70 W on a 300-400 W V100/A100 board); 0.3 sits at the high end, so idle energy is not
    understated. ``busy_fraction`` 1.0 assumes a busy GPU draws its full TDP (an upper bound; real
    training jobs often draw less). Override both per experiment when better numbers exist."""

    tdp_w: dict[str, float]       # GPU type (as the cluster names it) -> watts
    idle_fraction: float = 0.3    # share of TDP an idle GPU draws (assumption, see above)
    busy_fraction: float = 1.0    # share of TDP a busy GPU draws
    pue: float = 1.0              # facility overhead multiplier (1.0: IT power only)

    def __post_init__(self) -> None:
        for key in ("idle_fraction", "busy_fraction"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"PowerModel.{key} must lie in [0, 1], got {value}")
        if not (math.isfinite(self.pue) and self.pue >= 1.0):
            raise ValueError(f"PowerModel.pue must be >= 1, got {self.pue}")
        for gpu_type, watts in self.tdp_w.items():
            if not (math.isfinite(watts) and watts > 0):
                raise ValueError(f"PowerModel.tdp_w[{gpu_type!r}] must be a positive number of watts, got {watts}")

    @classmethod
    def for_types(cls, gpu_types: Iterable[str], table: Mapping[str, float], **kwargs: float) -> PowerModel:
        """A model for the given GPU types, each resolved with ``tdp_watts``; KeyError names every
        type that matches no row of the table."""
        tdp: dict[str, float] = {}
        missing: list[str] = []
        for gpu_type in gpu_types:
            watts = tdp_watts(gpu_type, table)
            if watts is None:
                missing.append(gpu_type)
            else:
                tdp[gpu_type] = watts
        if missing:
            raise KeyError(f"no TDP known for GPU type(s) {sorted(set(missing))}; name a GPU from the TDP table "
                           "(e.g. 'V100', 'A100', 'H100', 'T4') or give its watts explicitly")
        return cls(tdp, **kwargs)

    def watts(self, gpu_type: str) -> float:
        try:
            return self.tdp_w[gpu_type]
        except KeyError:
            raise KeyError(f"no TDP for GPU type {gpu_type!r} in the power model (known: {sorted(self.tdp_w)}); "
                           "validate the cluster's GPU types against the TDP table first") from None

    def energy_kwh(self, gpu_type: str, busy_gpu_s: float, idle_gpu_s: float) -> float:
        """kWh drawn at the facility meter by ``gpu_type`` GPUs over ``busy_gpu_s`` busy and
        ``idle_gpu_s`` idle GPU-seconds: (busy*busy_fraction + idle*idle_fraction) * TDP * PUE / 3.6e6."""
        if busy_gpu_s < 0 or idle_gpu_s < 0:
            raise ValueError(f"GPU-seconds must be >= 0, got busy={busy_gpu_s} idle={idle_gpu_s}")
        tdp = self.watts(gpu_type)
        return (busy_gpu_s * self.busy_fraction + idle_gpu_s * self.idle_fraction) * tdp * self.pue / 3.6e6
