"""Golden regression tests of the simulator on small slices of real traces.

Each case replays one slice (``data/``, cut by ``scripts/make_sim_slices.py``; origins and
licences in ``data/README.md``) on a small cluster (``clusters/``) under each of its policies
(``Case.policies``, by default all of ``POLICIES``) with seed 0, and compares every metric of
``PolicyResult.metrics`` with ``expected.json`` (floats to a relative tolerance of 1e-9; NaN,
stored as ``null``, equals NaN).
A change of scheduling decisions, of the world model or of a metric's definition shows up here
as a changed number.

When a change is *meant* to move the numbers, regenerate the golden file and review its diff::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/sim_golden

(the golden tests then write ``expected.json`` and are skipped; run again without the variable
to check). The invariant tests below hold whatever the golden numbers are: every job finishes
or is counted unplaceable, no job completes before it starts, utilisation and fairness stay in
range, capacity cost and carbon follow from the cluster file, SJF with oracle runtimes beats
FIFO on mean JCT on the Philly slice, and LAS preempts there.

The cases are sized to run in seconds (all of ``tests/sim_golden`` in about 15 s on a 2-core
machine); each (case, policy) is simulated once per session and shared by the tests. To re-cut
the slices from the shared data folder: ``.venv/bin/python scripts/make_sim_slices.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from hyperion.sim.cluster import ClusterModel, load_cluster
from hyperion.sim.experiment import run
from hyperion.sim.policies import policy
from hyperion.sim.result import FEDERATION_ONLY, METRICS, PolicyResult
from hyperion.sim.traces import Trace, TraceJob, read_trace

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
CLUSTERS = HERE / "clusters"
EXPECTED = HERE / "expected.json"
UPDATE = os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")
REL_TOL = 1e-9
ABS_TOL = 1e-12  # only for values that should be exactly 0
POLICIES = ("fifo", "sjf", "las", "drf", "default")
SEED = 0
CARBON_INTENSITY = 300.0  # gCO2/kWh, `carbon.intensity` of every cluster file here


@dataclass(frozen=True)
class Case:
    name: str
    trace: str    # FORMAT:file under data/
    cluster: str  # file under clusters/
    teams: int    # distinct teams in the slice (fairness metrics need two or more)
    failures: bool = False  # the cluster has a pool with `mtbf`
    policies: tuple[str, ...] = POLICIES


CASES = (
    Case("philly", "philly:philly_first600.csv", "philly.yaml", teams=10, failures=True),
    # the same slice with quotas for two VCs in a cohort (borrowing and reclaim)
    Case("philly-vc", "philly:philly_first600.csv", "philly_vc.yaml", teams=10, failures=True),
    Case("alibaba", "alibaba:openb_pod_list_first150.csv", "alibaba.yaml", teams=1),
    Case("azure-llm", "azure-llm:AzureLLMInferenceTrace_conv_first1000.csv", "azure_llm.yaml", teams=1),
)
BY_NAME = {c.name: c for c in CASES}
PAIRS = [(c.name, p) for c in CASES for p in c.policies]


@cache
def trace_of(case: str) -> Trace:
    fmt, _, file = BY_NAME[case].trace.partition(":")
    return read_trace(f"{fmt}:{DATA / file}")


@cache
def cluster_of(case: str) -> ClusterModel:
    # data= the clusters folder itself: a $HYPERION_DATA in the environment must not change what
    # the relative paths of these files resolve to
    return load_cluster(CLUSTERS / BY_NAME[case].cluster, data=CLUSTERS)


@cache
def result_of(case: str, name: str) -> PolicyResult:
    return run(trace_of(case), cluster_of(case), policy(name), seed=SEED)


# ---- the golden file ------------------------------------------------------------------------
def _encode(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _decode(value: float | str | None) -> float:
    if value is None:
        return math.nan
    return float(value)


def _load_expected() -> dict:
    if not EXPECTED.exists():
        return {}
    return json.loads(EXPECTED.read_text(encoding="utf-8"))


def _write_expected(case: str, name: str, metrics: dict[str, float]) -> None:
    """Store one (case, policy) entry; the file keeps the order of CASES and their policies and drops entries of
    cases or policies no longer tested."""
    old = _load_expected().get("results", {})
    old.setdefault(case, {})[name] = {k: _encode(v) for k, v in metrics.items()}
    results = {c.name: {p: old[c.name][p] for p in c.policies if p in old.get(c.name, {})}
               for c in CASES if c.name in old}
    doc = {
        "_comment": "Golden metrics of tests/sim_golden/test_golden.py (seed 0; null = NaN). "
                    "Regenerate: UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/sim_golden",
        "cases": {c.name: {"trace": c.trace, "cluster": c.cluster, "policies": list(c.policies)} for c in CASES},
        "results": results,
    }
    EXPECTED.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def _same(actual: float, expected: float) -> bool:
    if math.isnan(expected) or math.isnan(actual):
        return math.isnan(expected) and math.isnan(actual)
    return math.isclose(actual, expected, rel_tol=REL_TOL, abs_tol=ABS_TOL)


@pytest.mark.parametrize(("case", "name"), PAIRS, ids=[f"{c}-{p}" for c, p in PAIRS])
def test_golden_metrics(case: str, name: str) -> None:
    metrics = result_of(case, name).metrics
    if UPDATE:
        _write_expected(case, name, metrics)
        pytest.skip(f"UPDATE_GOLDEN: wrote {case}/{name} to {EXPECTED.name}")
    entry = _load_expected().get("results", {}).get(case, {}).get(name)
    if entry is None:
        pytest.fail(f"no golden metrics for {case}/{name} in {EXPECTED}; "
                    "run UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/sim_golden")
    expected = {k: _decode(v) for k, v in entry.items()}
    problems = [f"  {k}: missing from the result (expected {expected[k]!r})" for k in expected if k not in metrics]
    problems += [f"  {k}: new metric {metrics[k]!r}, not in the golden file" for k in metrics if k not in expected]
    problems += [f"  {k}: {metrics[k]!r} != expected {expected[k]!r}"
                 for k in expected if k in metrics and not _same(metrics[k], expected[k])]
    assert not problems, (f"{case}/{name}: metrics differ from {EXPECTED.name} (if the change is intended, "
                          "regenerate with UPDATE_GOLDEN=1 and review the diff):\n" + "\n".join(problems))


# ---- invariants -----------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "name"), PAIRS, ids=[f"{c}-{p}" for c, p in PAIRS])
def test_invariants(case: str, name: str) -> None:
    c = BY_NAME[case]
    trace, cluster, r = trace_of(case), cluster_of(case), result_of(case, name)
    m = r.metrics
    assert set(m) >= {metric.key for metric in METRICS} - FEDERATION_ONLY, "a metric of result.METRICS is not reported"
    assert len({job.team for job in trace.jobs}) == c.teams

    # every job either finished or was counted unplaceable; nothing is left over
    assert m["jobs_unfinished"] == 0
    assert m["jobs_finished"] + m["jobs_unplaceable"] == len(trace.jobs)
    assert len(r.jct_s) == m["jobs_finished"]
    assert len(r.queue_delay_s) == len(r.jct_s), "a job that started did not finish (or finished without starting)"

    # per job JCT >= queueing delay >= 0; both lists hold the same jobs, so the sorted lists
    # dominate rank by rank, and so do the mean and the percentiles
    assert min(r.queue_delay_s) >= 0
    assert all(j >= w for j, w in zip(sorted(r.jct_s), sorted(r.queue_delay_s), strict=True))
    for stat in ("mean", "p50", "p99"):
        assert m[f"jct_{stat}_s"] >= m[f"queue_delay_{stat}_s"]
    assert m["jct_p50_s"] <= m["jct_p99_s"] <= max(r.jct_s) <= m["makespan_s"] + 1e-6

    # contention: the clusters are sized so that jobs queue under every policy but LAS,
    # which preempts to start newcomers at once and still makes them wait a grace period or two
    assert m["queue_delay_mean_s"] > 0

    assert 0.0 <= m["utilisation"] <= 1.0
    if c.teams >= 2:
        assert 0.0 < m["jain_index"] <= 1.0
        assert 0.0 <= m["max_share_deviation"] <= 1.0
    else:  # one team: there is no fairness to measure
        assert math.isnan(m["jain_index"]) and math.isnan(m["max_share_deviation"])

    for key in ("preemptions", "interruptions", "gpu_hours_lost", "cost_usd", "energy_kwh", "carbon_kg"):
        assert m[key] >= 0, key
    if c.failures:
        assert m["interruptions"] > 0, "the cluster has a pool with mtbf: its nodes fail"
    else:
        assert m["interruptions"] == 0
    if m["preemptions"] == 0 and m["interruptions"] == 0:
        assert m["gpu_hours_lost"] == 0

    # a constant carbon intensity: carbon is energy times it
    assert math.isclose(m["carbon_kg"], m["energy_kwh"] * CARBON_INTENSITY / 1000.0, rel_tol=1e-9)
    # energy lies between every GPU idle and every GPU busy, over the capacity that was up; with no
    # failures capacity is up all the time, so cost is price x GPUs x the simulated span
    span_h = m["makespan_s"] / 3600.0
    full_kwh = sum(p.count * p.gpus * cluster.power.watts(p.gpu_type) for p in cluster.pools if p.gpus) * span_h / 1000
    assert m["energy_kwh"] <= full_kwh * (1 + 1e-9)
    if not c.failures:
        price = sum(p.count * p.gpus * p.cost_per_gpu_hour for p in cluster.pools)
        assert math.isclose(m["cost_usd"], price * span_h, rel_tol=1e-9)
        assert m["energy_kwh"] >= full_kwh * cluster.power.idle_fraction * (1 - 1e-9)


def test_sjf_beats_fifo_on_philly() -> None:
    """SJF is told true runtimes (an oracle): on a queueing Philly slice it must not lose to FIFO."""
    assert result_of("philly", "sjf").metrics["jct_mean_s"] <= result_of("philly", "fifo").metrics["jct_mean_s"]


def test_las_preempts_on_philly() -> None:
    """The Philly cluster is small enough that least-attained-service preempts long runners."""
    assert result_of("philly", "las").metrics["preemptions"] > 0


def test_las_reclaim_evicts_once(tmp_path: Path) -> None:
    """Queue ``b`` asks for 4 GPUs of its nominal 8 while ``a`` borrows all of ``b``'s quota:
    reclaiming it takes one eviction under every policy. (It once took 12 under ``las``, tens of
    thousands on the philly-vc case: the evicted job, older and at the same service level, was
    offered first once it had stopped and took its GPUs and the quota back. A preemptor now keeps
    its nomination, with what its victims freed, until its turn.)"""
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "kind: Cluster\nname: reclaim\n"
        "nodes: [{name: n, count: 2, gpu_type: V100, gpus: 8, tdp_watts: 300}]\ncarbon: {intensity: 300}\n"
        "---\nkind: Queue\nname: a\ncohort: c\nquota: {gpus: {V100: 8}}\n"
        "---\nkind: Queue\nname: b\ncohort: c\nquota: {gpus: {V100: 8}}\n", encoding="utf-8")
    cluster = load_cluster(path, data=tmp_path)
    trace = Trace("reclaim", (TraceJob("a-1", 0.0, 36000.0, 8, team="a"), TraceJob("a-2", 1.0, 36000.0, 8, team="a"),
                              TraceJob("b-1", 100.0, 600.0, 4, team="b")))
    assert run(trace, cluster, policy("default")).metrics["preemptions"] == 1
    # one service level: no eviction by service level, so only the reclaim counts
    assert run(trace, cluster, policy("las", las_levels=1)).metrics["preemptions"] == 1


def test_same_seed_same_result() -> None:
    """A run is a function of (trace, cluster, policy, seed): a second run matches the first exactly."""
    first = result_of("alibaba", "default")
    again = run(trace_of("alibaba"), cluster_of("alibaba"), policy("default"), seed=SEED)
    assert [(k, _encode(v)) for k, v in again.metrics.items()] == [(k, _encode(v)) for k, v in first.metrics.items()]
    assert again.jct_s == first.jct_s and again.queue_delay_s == first.queue_delay_s


def test_slices_are_the_documented_bytes() -> None:
    """The slices live in the repository: each is under 150 KB and has the sha256 that
    data/README.md (where their origins and licences are) lists for it."""
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    listed = {name: sha for sha, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M)}
    files = sorted(f.name for f in DATA.glob("*.csv"))
    assert files == sorted(listed), "every slice, and only the slices, are listed in data/README.md"
    for name in files:
        data = (DATA / name).read_bytes()
        assert len(data) < 150_000, name
        assert hashlib.sha256(data).hexdigest() == listed[name], f"{name} differs from the sha256 in data/README.md"
