"""The simulator and the live control plane decide alike: the world of a simulation, stopped at
some instant and written into a live ``ClusterState``, gives the live ``Snapshotter`` a snapshot
on which ``schedule`` makes the very plan it makes on the simulator's own snapshot."""

from __future__ import annotations

import pytest

from hyperion.core import PROFILES, lifecycle, schedule
from hyperion.model import Gpu, Job, JobSpec, Node, Placement, Priority
from hyperion.model.queue import QueueSpec
from hyperion.providers.grid import constant
from hyperion.runtime.snapshotter import Snapshotter
from hyperion.sim.cluster import ClusterModel, Pool, WorkloadModel
from hyperion.sim.energy import PowerModel
from hyperion.sim.traces.base import Trace, TraceJob
from hyperion.sim.world import World
from hyperion.store import MemoryStore
from hyperion.store.objects import ClusterState


def a_cluster(queues=None) -> ClusterModel:
    pools = (Pool("a", 3, "A100", 8, 64_000, 512 * 2**30, 2.0), Pool("h", 2, "H100", 4, 32_000, 256 * 2**30, 3.0))
    return ClusterModel("c", pools, queues or {}, PowerModel({"A100": 400.0, "H100": 700.0}),
                        constant(300.0, "gCO2/kWh"), WorkloadModel(checkpoint_interval_s=600.0))


def a_trace(n: int = 60, urgent_every: int = 0) -> Trace:
    jobs = []
    for k in range(n):  # a burst that overflows the cluster, of mixed widths, teams and users
        gpus = (1, 2, 4, 8, 16)[k % 5]
        urgent = urgent_every and k % urgent_every == urgent_every - 1  # the fast path: placed on victims at once
        jobs.append(TraceJob(f"j{k:03d}", submit_s=float(k * 7), duration_s=300.0 + 97.0 * (k % 11), gpus=gpus,
                             team=("vc1", "vc2", "vc3")[k % 3], user=f"u{k % 4}",
                             gpu_type="H100" if k % 13 == 0 else None,
                             priority=Priority.ULTRA_LOW_LATENCY if urgent else Priority.BATCH))
    return Trace("synthetic", tuple(jobs))


def live_state(world: World) -> ClusterState:
    """The world's nodes and jobs written into a live cluster state, as agents and the API would."""
    state = ClusterState(MemoryStore())
    for v in world.views:
        state.put_node(Node(v.id, gpus=tuple(Gpu(i) for i in range(v.capacity.gpus)), gpu_type=v.gpu_type,
                            capacity=v.capacity, cordoned=not v.schedulable))
    for q in world.cluster.queues.values():
        state.put_queue(q)
    state.runtimes = world.history
    for job in (*world.pending.values(), *world.running.values()):
        tj = job.tj
        spec = JobSpec(name=job.id, team=tj.team, user=tj.user, priority=tj.priority, resources=job.per_replica,
                       gpu_type=tj.gpu_type, replicas=job.replicas, min_available=job.replicas, queue=job.queue,
                       # what the simulator's oracle reveals, a live user states in the job's spec
                       runtime_estimate_s=tj.duration_s if world.oracle else None)
        state.create_job(Job(job.id, spec, submitted_at=tj.submit_s, attempt=job.attempt,
                             attained_gpu_s=job.attained, started_at=job.first_start))
    for job in world.running.values():
        view = world.rviews[job.id]
        placed = tuple(Placement(rank, node, gpus) for rank, (node, gpus) in enumerate(view.placements))
        live = lifecycle.assign(state.jobs[job.id], placed, estimate=job.estimate)
        state.update_jobs([live])
        for p in placed:
            live = lifecycle.task_running(live, live.attempt, p.rank, view.started_at)
        state.update_jobs([live])
        if view.preempting:
            state.update_jobs([lifecycle.preempt(live, "evicted in the simulation")[0]])
    return state


def run_until(world: World, placed_at_least: int) -> None:
    """Step until ``placed_at_least`` cycles placed jobs, with jobs still pending."""
    while world.step():
        if world.cycles_placed >= placed_at_least and world.pending:
            return
    pytest.fail("the world ran out of events before the instant the test wants")


@pytest.mark.parametrize(("profile", "urgent_every"), [
    ("default", 0), ("fifo", 0), ("sjf", 0), ("las", 0), ("drf", 0), ("default", 4), ("fifo", 5)])
@pytest.mark.parametrize("stop_after", [2, 5, 9, 14])
def test_the_live_snapshotter_and_the_world_give_schedule_the_same_decision(profile, urgent_every, stop_after):
    queues = {"vc1": QueueSpec("vc1", cohort="all", weight=2.0, nominal=(("gpus/A100", 8),)),
              "vc2": QueueSpec("vc2", cohort="all", nominal=(("gpus/A100", 8),)),
              "vc3": QueueSpec("vc3", cohort="all", nominal=(("gpus/A100", 8), ("gpus/H100", 8)))}
    world = World(a_trace(urgent_every=urgent_every), a_cluster(queues), PROFILES[profile](),
                  oracle=profile == "sjf", seed=3)
    run_until(world, stop_after)
    now = world.events.now + 1.0
    sim = world.snapshot(now)
    live = Snapshotter(live_state(world)).snapshot(now, sim.seed, history=world.rounds.history, holds=sim.holds)

    assert live.nodes == sim.nodes
    assert sorted(live.pending, key=lambda j: j.id) == sorted(sim.pending, key=lambda j: j.id)
    assert sorted(live.running, key=lambda v: v.id) == sorted(sim.running, key=lambda v: v.id)
    assert {q: {k: v for k, v in u.items() if v} for q, u in live.usage.items() if any(u.values())} == \
           {q: {k: v for k, v in u.items() if v} for q, u in sim.usage.items() if any(u.values())}

    p_sim, p_live = schedule(sim, world.profile), schedule(live, world.profile)
    assert p_live.assignments == p_sim.assignments
    assert p_live.evictions == p_sim.evictions
    assert p_live.verdicts == p_sim.verdicts
    assert p_live.holds == p_sim.holds
    assert p_sim.assignments or p_sim.verdicts  # a decision was made, not two empty plans


def test_urgent_jobs_take_the_fast_path_in_the_simulation():
    """Ultra-low-latency jobs are placed on their victims' resources in the cycle that evicts them."""
    world = World(a_trace(urgent_every=4), a_cluster(), PROFILES["default"](), seed=3)
    handed = []
    real = world.hand_over
    world.hand_over = lambda job_id, now: (handed.append((job_id, now)), real(job_id, now))
    while world.step():
        pass
    assert handed, "no urgent job needed an eviction: the test trace no longer exercises the fast path"
    assert world.remaining == 0 and not world.handed  # every handed-over job came back and finished
