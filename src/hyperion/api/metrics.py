"""Prometheus exposition of the control plane (``GET /metrics``).

``Instruments`` holds a private ``CollectorRegistry`` (never the process-wide default, so several
control planes in one process do not clash) with two kinds of metrics:

- *instruments*, updated by the live loops as things happen: the scheduling cycle's duration, how
  long each placed job waited, placements and preemptions by queue and priority class, and how
  long a preemption took from the decision until the victim's last rank exited;
- *state*, read from the service when Prometheus scrapes (``StateCollector``): jobs by phase,
  pending jobs per queue, nodes and GPUs, the latest telemetry of each node and GPU, what each team
  accrued (cost, GPU-seconds, energy, carbon), budgets, events and scheduler cycles.

Conventions: base units (seconds, bytes, joules, ratios 0..1), ``_total`` on counters, and only
bounded labels (queue, priority class, team, node, GPU index, ...; never a job id).

Glossary:
- *path* of a preemption: ``ordinary`` (the victim checkpoints and stops, then the preemptor is
  placed) or ``fast`` (a hand-over: the preemptor starts at once on the frozen victim's GPUs).
- *pending since*: when a job last became pending: its submission for a first attempt, the exit of
  its last rank after a preemption or a failed attempt that is retried.

``render`` writes what ``generate_latest(registry)`` writes (the text format 0.0.4), but formats
each node's and GPU's label set once rather than once per sample (``LabelSets``): 1,000 nodes x 8
GPUs are 40,000 per-GPU samples. With 10,000 jobs on such a cluster, a ``render`` took 40-75 ms
and ``generate_latest`` 230-440 ms (in-memory store, a busy 2-core EPYC VM).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

from hyperion.model import Job, NodeState, Phase, Priority
from hyperion.model.queue import DEFAULT_QUEUE
from hyperion.store.objects import ClusterState, holds

if TYPE_CHECKING:
    from hyperion.api.service import ControlService

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MiB = 2.0**20
TELEMETRY_FRESH_S = 60.0  # a node's latest telemetry older than this is not exposed (the node went quiet)
PATHS = ("ordinary", "fast")
WARNING_LEVELS = ("80", "100")  # budget warning levels, percent (api.accounting.LEVELS)

CYCLE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WAIT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
PREEMPTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Instruments:
    def __init__(self, service: ControlService) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self._cycle = Histogram("hyperion_scheduling_cycle_duration_seconds",
                                "Duration of a scheduling cycle: snapshot, schedule, commit and dispatch.",
                                buckets=CYCLE_BUCKETS, registry=r)
        self._wait = Histogram("hyperion_queue_wait_seconds",
                               "How long a job waited pending before it was placed (since it last became pending).",
                               ["queue", "priority"], buckets=WAIT_BUCKETS, registry=r)
        self._placements = Counter("hyperion_placements_total", "Jobs placed (one per attempt).",
                                   ["queue", "priority"], registry=r)
        self._preemptions = Counter("hyperion_preemptions_total", "Jobs preempted by the scheduler, by the victim's "
                                    "queue and priority class and the path (ordinary, or fast: a hand-over).",
                                    ["queue", "priority", "path"], registry=r)
        self._preemption_s = Histogram("hyperion_preemption_duration_seconds",
                                       "From a preemption decision until the victim's last rank exited.",
                                       ["path"], buckets=PREEMPTION_BUCKETS, registry=r)
        for path in PATHS:
            self._preemption_s.labels(path)
        self._preempted_at: dict[str, tuple[float, str]] = {}  # victim id -> (decision time, path)
        self._pending_since: dict[str, float] = {}  # job id -> when it became pending again (retries, requeues)
        self.state_collector = StateCollector(service, self)
        r.register(self.state_collector)

    # ---- what the live loops report ------------------------------------------------------------
    def cycle(self, seconds: float) -> None:
        self._cycle.observe(seconds)

    def placed(self, job: Job, now: float) -> None:
        """``job`` (as assigned: its new attempt) was placed at ``now``."""
        queue, priority = job.spec.queue, job.spec.priority.label
        self._placements.labels(queue, priority).inc()
        since = self._pending_since.pop(job.id, None)
        if since is None and job.attempt <= 1:
            since = job.submitted_at
        if since is not None:  # a later attempt whose requeue this process did not see is not observed
            self._wait.labels(queue, priority).observe(max(0.0, now - since))

    def preempted(self, job: Job, handover: bool, now: float) -> None:
        """The scheduler evicted ``job`` (as written: PREEMPTED, or PENDING when nothing of it ran)."""
        path = PATHS[1] if handover else PATHS[0]
        if job.phase is Phase.PENDING:  # no live rank: back in its queue at once
            self._preemptions.labels(job.spec.queue, job.spec.priority.label, path).inc()
            self._preemption_s.labels(path).observe(0.0)
            self._pending_since[job.id] = now
        elif job.phase is Phase.PREEMPTED and job.id not in self._preempted_at:  # not a stopping victim handed over
            self._preemptions.labels(job.spec.queue, job.spec.priority.label, path).inc()
            self._preempted_at[job.id] = (now, path)

    def victim_stopped(self, job: Job, now: float) -> None:
        """A preempted job's last live rank exited at ``now``: it is pending again."""
        decided = self._preempted_at.pop(job.id, None)
        if decided is not None:  # preempted by the scheduler (not drained), in this process's lifetime
            at, path = decided
            self._preemption_s.labels(path).observe(max(0.0, now - at))
        self._pending_since[job.id] = now

    def requeued(self, job: Job, now: float) -> None:
        """A failed attempt ended at ``now`` and the job is pending again for a retry."""
        self._pending_since[job.id] = now

    def pending_since(self, job: Job) -> float:
        return self._pending_since.get(job.id, job.submitted_at)

    def forget(self, state: ClusterState) -> None:
        """Drop what is tracked of jobs that are no longer pending, or no longer stopping (a job
        cancelled while it waited, a victim whose node was lost)."""
        for job_id in [j for j in self._pending_since if j not in state.pending]:
            del self._pending_since[job_id]
        for job_id in [j for j in self._preempted_at if getattr(state.jobs.get(j), "phase", None) is not Phase.PREEMPTED]:
            del self._preempted_at[job_id]

    # ---- exposition ------------------------------------------------------------------------------
    def render(self) -> bytes:
        """Every metric in the text format 0.0.4 (what ``generate_latest(self.registry)`` gives)."""
        return exposition(self.registry.collect())


class StateCollector:
    """Reads the service's state when scraped. One pass over jobs, pending jobs and nodes."""

    def __init__(self, service: ControlService, instruments: Instruments) -> None:
        self.service = service
        self.instruments = instruments

    def collect(self) -> Iterator[Metric]:
        service = self.service
        now = service.clock.now()
        yield from self._jobs()
        yield from self._queues()
        yield from self._nodes(now)
        yield from self._costs(now)
        events = CounterMetricFamily("hyperion_events_total", "Events recorded, by kind.", labels=["kind"])
        for kind, n in service.events.counts().items():
            events.add_metric([kind], n)
        yield events
        yield CounterMetricFamily("hyperion_scheduler_cycles_total", "Scheduling cycles run since the control plane started.",
                                  value=service.scheduler_stats().get("cycles", 0))

    def _jobs(self) -> Iterator[Metric]:
        state = self.service.state
        phases = Tally(job.phase for job in state.jobs.values())
        jobs = GaugeMetricFamily("hyperion_jobs", "Jobs by phase.", labels=["phase"])
        finished = CounterMetricFamily("hyperion_jobs_finished_total", "Jobs that ended, by outcome (jobs are never deleted).",
                                       labels=["outcome"])
        for phase in Phase:
            jobs.add_metric([phase.value], phases.get(phase, 0))
            if phase.terminal:
                finished.add_metric([phase.value], phases.get(phase, 0))
        yield jobs
        yield finished
        self.instruments.forget(state)

    def _queues(self) -> Iterator[Metric]:
        state, instruments = self.service.state, self.instruments
        counts: Tally[tuple[str, Priority]] = Tally()
        oldest: dict[str, float] = {}
        for job_id in state.pending:
            job = state.jobs[job_id]
            queue = job.spec.queue
            counts[(queue, job.spec.priority)] += 1
            since = instruments.pending_since(job)
            if since < oldest.get(queue, float("inf")):
                oldest[queue] = since
        pending = GaugeMetricFamily("hyperion_queue_pending_jobs", "Jobs pending, by queue and priority class.",
                                    labels=["queue", "priority"])
        for queue in sorted({DEFAULT_QUEUE, *state.queues, *(q for q, _ in counts)}):
            for priority in Priority:
                pending.add_metric([queue, priority.label], counts.get((queue, priority), 0))
        yield pending
        age = GaugeMetricFamily("hyperion_queue_oldest_pending_seconds",
                                "How long the queue's longest-waiting pending job has waited (0 when none waits).",
                                labels=["queue"])
        now = self.service.clock.now()
        for queue in sorted({DEFAULT_QUEUE, *state.queues, *oldest}):
            age.add_metric([queue], max(0.0, now - oldest[queue]) if queue in oldest else 0.0)
        yield age

    def _nodes(self, now: float) -> Iterator[Metric]:
        state, telemetry = self.service.state, self.service.metrics
        by_state = GaugeMetricFamily("hyperion_nodes", "Nodes by state.", labels=["state"])
        info = GaugeMetricFamily("hyperion_node_info", "One series per node, value 1, with its attributes as labels.",
                                 labels=["node", "hostname", "gpu_type", "state", "cordoned", "condition"])
        gpus = GaugeMetricFamily("hyperion_gpus", "GPUs of the registered nodes by type: allocated to live tasks, or idle.",
                                 labels=["gpu_type", "state"])
        per_node, per_gpu = LabelSets(("node",)), LabelSets(("node", "gpu"))
        cpu = Gauges("hyperion_node_cpu_utilization_ratio", "CPU utilisation of the node (0..1).", per_node)
        mem = Gauges("hyperion_node_memory_used_bytes", "Memory used on the node.", per_node)
        mem_total = Gauges("hyperion_node_memory_total_bytes", "Memory of the node.", per_node)
        util = Gauges("hyperion_gpu_utilization_ratio", "GPU utilisation (0..1).", per_gpu)
        gmem = Gauges("hyperion_gpu_memory_used_bytes", "GPU memory used.", per_gpu)
        temp = Gauges("hyperion_gpu_temperature_celsius", "GPU temperature.", per_gpu)
        power = Gauges("hyperion_gpu_power_watts", "GPU power draw.", per_gpu)
        xid = Gauges("hyperion_gpu_xid_errors", "Critical XID errors of the GPU since its agent started.", per_gpu)
        count = Tally(node.state for node in state.nodes.values())
        for s in NodeState:
            by_state.add_metric([s.value], count.get(s, 0))
        allocated: Tally[str] = Tally()
        total: Tally[str] = Tally()
        for node in state.nodes.values():
            info.add_metric([node.id, node.hostname, node.gpu_type, node.state.value, str(node.cordoned).lower(),
                             node.condition], 1)
            busy: set[int] = set()
            for (job_id, _), p in state.node_tasks.get(node.id, {}).items():
                if holds(state.jobs[job_id]):
                    busy.update(p.gpu_indices)
            total[node.gpu_type] += len(node.gpus)
            allocated[node.gpu_type] += len(busy & {g.index for g in node.gpus})
            history = telemetry.get(node.id)
            if not history or now - history[-1].timestamp > TELEMETRY_FRESH_S:
                continue
            m = history[-1]
            per_node.add(node.id)
            cpu.values.append(m.cpu_utilization_percent / 100.0)
            mem.values.append(m.memory_used_mb * MiB)
            mem_total.values.append(m.memory_total_mb * MiB)
            for g in m.gpus:
                per_gpu.add(node.id, str(g.index))
                util.values.append(g.utilization_percent / 100.0)
                gmem.values.append(g.memory_used_mb * MiB)
                temp.values.append(float(g.temperature_c))
                power.values.append(float(g.power_w))
                xid.values.append(float(g.xid_errors))
        for gpu_type in sorted(total):
            gpus.add_metric([gpu_type, "allocated"], allocated[gpu_type])
            gpus.add_metric([gpu_type, "idle"], total[gpu_type] - allocated[gpu_type])
        yield from (by_state, info, gpus, cpu, mem, mem_total, util, gmem, temp, power, xid)

    def _costs(self, now: float) -> Iterator[Metric]:
        accountant = self.service.accountant
        cost = CounterMetricFamily("hyperion_team_cost_usd_total", "What the team's jobs cost, in USD.", labels=["team"])
        gpu_s = CounterMetricFamily("hyperion_team_gpu_seconds_total", "GPU-seconds held by the team's jobs.", labels=["team"])
        energy = CounterMetricFamily("hyperion_team_energy_joules_total", "Energy of the team's jobs at the facility meter.",
                                     labels=["team"])
        carbon = CounterMetricFamily("hyperion_team_carbon_grams_total", "Carbon of the team's jobs, grams CO2e.",
                                     labels=["team"])
        for team, u in sorted(accountant.team_totals().items()):
            cost.add_metric([team], u.cost_usd)
            gpu_s.add_metric([team], u.gpu_s)
            energy.add_metric([team], u.energy_kwh * 3.6e6)
            carbon.add_metric([team], u.carbon_g)
        yield from (cost, gpu_s, energy, carbon)
        names = ["team", "budget", "resource"]
        limit = GaugeMetricFamily("hyperion_budget_limit", "A budget's limit per period (USD, or GPU-hours).", labels=names)
        spent = GaugeMetricFamily("hyperion_budget_spent", "What the team spent in the budget's current period.", labels=names)
        ratio = GaugeMetricFamily("hyperion_budget_used_ratio", "Spent over limit in the current period.", labels=names)
        budget_teams = set()
        for row in accountant.budget_status(now):
            key = [row["team"], row["name"], row["resource"]]
            limit.add_metric(key, row["limit"])
            spent.add_metric(key, row["spent"])
            ratio.add_metric(key, row["ratio"])
            budget_teams.add(row["team"])
        yield from (limit, spent, ratio)
        warned = CounterMetricFamily("hyperion_budget_warnings_total",
                                     "Times a budget of the team crossed a level (percent) of its limit.", labels=["team", "level"])
        counts = accountant.warnings()
        for team, level in sorted({*counts, *((t, lv) for t in budget_teams for lv in WARNING_LEVELS)}):
            warned.add_metric([team, level], counts.get((team, level), 0))
        yield warned


# ---- the text format ---------------------------------------------------------------------------------
_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _plain(text: str) -> bool:
    return '"' not in text and "\\" not in text and "\n" not in text


def _escape_value(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(v: float) -> str:
    text = repr(float(v))
    return _SPECIAL.get(text, text)


_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


class LabelSets:
    """The label sets shared by several gauge families, one per node or per GPU, with their text
    in the exposition, formatted once: a large cluster's telemetry is written without a dict and a
    ``Sample`` per value (which would also wake the garbage collector dozens of times a scrape)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.rows: list[tuple[str, ...]] = []  # label values
        self.texts: list[str] = []  # the same, as the exposition writes them
        self._template = "{{" + ",".join(f'{k}="{{{i}}}"' for i, k in enumerate(names)) + "}}"

    def add(self, *values: str) -> None:
        self.rows.append(values)
        self.texts.append(self._template.format(*[v if _plain(v) else _escape_value(v) for v in values]))

    def labels(self, row: int) -> dict[str, str]:
        return dict(zip(self.names, self.rows[row], strict=True))


class Gauges(Metric):
    """A gauge family whose values follow a shared ``LabelSets``, row for row. ``samples`` still
    gives them as samples, for any other reader of the registry."""

    def __init__(self, name: str, documentation: str, label_sets: LabelSets) -> None:
        super().__init__(name, documentation, "gauge")
        self.label_sets = label_sets
        self.values: list[float] = []

    @property
    def samples(self) -> list[Sample]:
        return [Sample(self.name, self.label_sets.labels(i), v) for i, v in enumerate(self.values)]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:  # Metric.__init__ sets an empty list
        if value:
            raise ValueError("add values to a Gauges family, not samples")


def exposition(metrics: Iterable[Metric]) -> bytes:
    """The Prometheus text format 0.0.4 of ``metrics``: what ``prometheus_client.generate_latest``
    writes (numbers as Python writes them, which Prometheus reads the same)."""
    out: list[str] = []

    def line(s: Sample) -> str:
        text = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(s.labels.items()))
        stamp = "" if s.timestamp is None else f" {int(float(s.timestamp) * 1000):d}"
        return f"{s.name}{{{text}}} {_number(s.value)}{stamp}\n" if text else f"{s.name} {_number(s.value)}{stamp}\n"

    for metric in metrics:
        name, typ = metric.name, metric.type
        if isinstance(metric, Gauges):
            out.append(f"# HELP {name} {_escape_help(metric.documentation)}\n# TYPE {name} gauge\n")
            # v - v is 0 for a finite number: the common case skips _number
            out.extend([f"{name}{text} {v!r}\n" if v - v == 0 else f"{name}{text} {_number(v)}\n"
                        for text, v in zip(metric.label_sets.texts, metric.values, strict=True)])
            continue
        if typ == "counter":
            name += "_total"
        elif typ == "info":
            name += "_info"
        typ = _TYPES.get(typ, typ)
        doc = _escape_help(metric.documentation)
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {typ}\n")
        extra: dict[str, list[str]] = {}
        for s in metric.samples:
            suffix = s.name[len(metric.name):]
            if suffix in _OM_SUFFIXES:
                extra.setdefault(suffix, []).append(line(s))
            else:
                out.append(line(s))
        for suffix, lines in sorted(extra.items()):
            out.append(f"# HELP {metric.name}{suffix} {doc}\n# TYPE {metric.name}{suffix} gauge\n")
            out.extend(lines)
    return "".join(out).encode()
