"""Prices, power and carbon rates, budgets, and what a job used: the value types of cost accounting.

Glossary:
- *rates* (``Rates``): what one GPU-hour (by GPU type) or one CPU-core-hour costs on nodes that
  carry no price of their own (the on-prem amortised rate), the power a busy GPU draws when no
  telemetry says (by type), the facility's PUE and the grid's carbon intensity. Applied as
  ``kind: Pricing``; the key ``"*"`` is the default for types not listed.
- *usage* (``Usage``): cost (USD), GPU-seconds, energy (kWh at the facility meter) and carbon
  (grams CO2e) accrued by a job or a team.
- *budget* (``BudgetSpec``): a team's allowance per period (UTC ``day``, ``week`` from Monday, or
  calendar ``month``) in USD and/or GPU-hours; ``action`` says what admission does with a job whose
  expected cost does not fit what is left: ``hold`` it pending, or ``reject`` it at submission.
- *budget view* (``BudgetView``): a budget with what its team has spent in the current period: the
  input of the admission gate (``core.budget``), filled by the live accountant and by the simulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_KEY = "*"


@dataclass(frozen=True, slots=True)
class Rates:
    gpu_hour_usd: Mapping[str, float] = field(default_factory=lambda: {DEFAULT_KEY: 1.0})
    cpu_hour_usd: float = 0.0   # per core-hour, for the CPU share of jobs on nodes without a price
    gpu_watts: Mapping[str, float] = field(default_factory=lambda: {DEFAULT_KEY: 300.0})
    busy_fraction: float = 1.0  # share of gpu_watts a busy GPU draws when no telemetry reports its power
    pue: float = 1.0
    carbon_g_per_kwh: float = 400.0

    def gpu_price(self, gpu_type: str) -> float:
        return _lookup(self.gpu_hour_usd, gpu_type, 0.0)

    def watts(self, gpu_type: str) -> float:
        return _lookup(self.gpu_watts, gpu_type, 300.0)


def _lookup(table: Mapping[str, float], key: str, fallback: float) -> float:
    if key in table:
        return table[key]
    lower = {k.lower(): v for k, v in table.items()}
    return lower.get(key.lower(), table.get(DEFAULT_KEY, fallback))


@dataclass(frozen=True, slots=True)
class Usage:
    cost_usd: float = 0.0
    gpu_s: float = 0.0
    energy_kwh: float = 0.0
    carbon_g: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cost_usd + other.cost_usd, self.gpu_s + other.gpu_s,
                     self.energy_kwh + other.energy_kwh, self.carbon_g + other.carbon_g)

    def scaled(self, k: float) -> Usage:
        return Usage(self.cost_usd * k, self.gpu_s * k, self.energy_kwh * k, self.carbon_g * k)

    def as_list(self) -> list[float]:
        return [self.cost_usd, self.gpu_s, self.energy_kwh, self.carbon_g]

    @classmethod
    def from_list(cls, values: list[float]) -> Usage:
        return cls(*(float(v) for v in values[:4]))


PERIODS = ("day", "week", "month")
ACTIONS = ("hold", "reject")


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    name: str
    team: str
    period: str = "month"
    usd: float | None = None
    gpu_hours: float | None = None
    action: str = "hold"


@dataclass(frozen=True, slots=True)
class BudgetView:
    name: str
    team: str
    period: str
    period_start: float
    period_end: float
    usd: float | None = None        # limit
    gpu_hours: float | None = None  # limit
    spent_usd: float = 0.0
    spent_gpu_hours: float = 0.0
    action: str = "hold"
    # epoch seconds of the snapshot clock's 0 (the simulator's clock counts from its trace's start;
    # the live clock is epoch time): messages print period ends as UTC dates with it
    epoch: float = 0.0
