"""Reader for the SkyPilot spot availability / preemption traces ("Can't Be Late", NSDI'24).

Format: one JSON file per series, ``{"metadata": {"gap_seconds": g}, "data": [v0, v1, ...]}``:
one value per tick, ticks ``g`` seconds apart, tick 0 at the start of the measurement; may be
gzip-compressed (``.json.gz``). The origin names files ``<zone>_<device>_<n>.json`` (e.g.
``us-east-1c_v100_1.json``: zone us-east-1c, one V100 per instance), but not always (the GCP
series are ``us-central1-a_c3-88.json``), so we do not parse the name: the series is named by
the file's stem and the name is not checked.

Origin: ``skypilot-org/spot-traces`` (Wu et al., "Can't Be Late: Optimizing Spot Instance Savings
under Deadlines", NSDI'24): spot instances of AWS and GCP, requested or kept running and polled,
for 2 to 45 days. ``availability/`` series record whether a spot instance could be obtained,
``preemption/`` series whether a running one was taken away. Only dates are known for the start
(the directory names), so times here are relative to tick 0.

Polarity, and why we chose it: the origin README says each value is "the number of available
instances at a specific tick", but the authors' own simulator reads the files the other way
round: ``sky_spot/env.py`` has ``TraceEnv.spot_available() = not self.trace[tick]``, i.e. 0 means
the spot instance is there and any non-zero value means it is unavailable (or was preempted).
We follow the simulator, since it is what produced the paper's results from these very files:
``unavailable[i] = (data[i] != 0)``, for any value, counts above 1 (multi-node series) too.
Should a series turn out to count available instances, invert it before drawing conclusions
(``SpotSeries(s.name, s.gap_s, tuple(not u for u in s.unavailable))``). A warning sign: every
published preemption series starts with a 0, and three GCP ``c3-88`` series are a 0 and then
46 h of 1s, i.e. under our polarity no capacity for two days after one available tick, under
the README's a VM obtained at tick 1 and never preempted.

Our interpretation: tick ``i`` covers ``[i * g, (i + 1) * g)``; a run of unavailable ticks
``i .. j - 1`` is one outage ``(i * g, j * g)``; the series lasts ``len(data) * g`` seconds.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import PurePath

from hyperion.sim.traces.base import TraceError


@dataclass(frozen=True, slots=True)
class SpotSeries:
    """One spot series: whether the spot capacity was unavailable, tick by tick."""

    name: str                       # the file's stem, e.g. "us-east-1c_v100_1"
    gap_s: float                    # seconds between ticks
    unavailable: tuple[bool, ...]   # per tick: True = no spot capacity / preempted

    @property
    def duration_s(self) -> float:
        """Seconds the series covers: ticks x gap."""
        return len(self.unavailable) * self.gap_s

    def outages(self) -> list[tuple[float, float]]:
        """(start_s, end_s) of each run of unavailable ticks, relative to tick 0, in time order;
        consecutive unavailable ticks are merged; the last ends at most at ``duration_s``."""
        spans: list[tuple[float, float]] = []
        begin: int | None = None
        for tick, down in enumerate(self.unavailable):
            if down and begin is None:
                begin = tick
            elif not down and begin is not None:
                spans.append((begin * self.gap_s, tick * self.gap_s))
                begin = None
        if begin is not None:
            spans.append((begin * self.gap_s, len(self.unavailable) * self.gap_s))
        return spans


def read(path: str) -> SpotSeries:
    """Read one series file; its name (without ``.json``) becomes the series' name."""
    stem = PurePath(path).name.removesuffix(".gz").removesuffix(".json")
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as text:
            document = json.load(text)
    except FileNotFoundError as error:
        raise TraceError(f"trace file not found: {path}") from error
    except json.JSONDecodeError as error:
        what = "empty file" if not error.doc.strip() else f"line {error.lineno} column {error.colno}: {error.msg}"
        raise TraceError(f"{path}: not valid JSON ({what}); expected "
                         '{"metadata": {"gap_seconds": g}, "data": [v0, v1, ...]}') from error
    except (UnicodeDecodeError, OSError) as error:
        raise TraceError(f"{path}: unreadable ({error}); expected UTF-8 JSON text") from error
    if not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
        raise TraceError(f"{path}: metadata: expected an object {{\"gap_seconds\": g}} at the top level, "
                         f"got {_kind(document.get('metadata') if isinstance(document, dict) else document)}; "
                         "is this a SkyPilot spot trace?")
    gap = document["metadata"].get("gap_seconds")
    if not (_is_number(gap) and gap > 0):
        raise TraceError(f"{path}: metadata.gap_seconds: expected seconds between ticks (a number > 0), got {gap!r}; "
                         "fix the metadata")
    data = document.get("data")
    if not isinstance(data, list) or not data:
        raise TraceError(f"{path}: data: expected a non-empty list of numbers, one per tick, got {_kind(data)}; "
                         "fix the file")
    for index, value in enumerate(data):
        if not (_is_number(value) and value >= 0):
            raise TraceError(f"{path}: data[{index}]: expected a number >= 0 (0 = spot available), got {value!r}; "
                             "fix the value")
    return SpotSeries(name=stem, gap_s=float(gap), unavailable=tuple(value != 0 for value in data))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    return f"{type(value).__name__} {value!r}"[:80]
