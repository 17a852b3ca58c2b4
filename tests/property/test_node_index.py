"""The incrementally kept NodeIndex is the index of the nodes, whatever their history, and
scheduling with it decides exactly as scheduling without it."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from hyperion.core import PROFILES, schedule
from hyperion.model import NodeView, Resources, Snapshot
from hyperion.model.nodeindex import NodeIndex
from hyperion.testing.builders import a_job

TYPES = ("A100", "H100")


def node(i: int, gpu_type: str, gpus: int, used: int, schedulable: bool) -> NodeView:
    cap = Resources(gpus, 32_000, 256 * 2**30)
    free = cap - Resources(used, used * 1000, used * 2**30)
    return NodeView(f"n{i}", gpu_type, cap, free, tuple(range(used, gpus)), schedulable)


nodes_st = st.lists(st.tuples(st.sampled_from(TYPES), st.integers(0, 8), st.integers(0, 8), st.booleans()),
                    min_size=1, max_size=12).map(
    lambda xs: tuple(node(i, t, g, min(u, g), s) for i, (t, g, u, s) in enumerate(xs)))


def buckets(index: NodeIndex) -> dict:
    """Non-empty buckets (a kept index may keep a type whose nodes all left, with empty buckets)."""
    return {(t, f): list(b) for t, bs in index.buckets.items() for f, b in enumerate(bs) if b}


@settings(max_examples=150, deadline=None)
@given(nodes_st, st.data())
def test_updated_index_equals_a_fresh_build(nodes, data):
    index = NodeIndex.build(nodes)
    for _ in range(data.draw(st.integers(1, 4))):
        changed = data.draw(st.sets(st.integers(0, len(nodes) - 1), max_size=len(nodes)))
        new = list(nodes)
        for i in changed:
            n = nodes[i]
            used = data.draw(st.integers(0, n.capacity.gpus))
            new[i] = replace(node(i, n.gpu_type, n.capacity.gpus, used, data.draw(st.booleans())))
        new = tuple(new)
        index = index.updated(nodes, new, changed)
        fresh = NodeIndex.build(new)
        assert buckets(index) == buckets(fresh)
        assert index.unschedulable == fresh.unschedulable
        for t, b in fresh.bounds.items():
            if not any(fresh.buckets[t]):
                continue  # the kept bound is an upper bound of the exact one
            assert Resources(b.gpus, b.cpus_milli, b.memory).fits_in(index.bounds[t])
        nodes = new


@settings(max_examples=100, deadline=None)
@given(nodes_st, st.lists(st.tuples(st.integers(0, 8), st.integers(1, 3), st.sampled_from((None, *TYPES))),
                          min_size=1, max_size=15))
def test_schedule_with_or_without_a_kept_index_decides_the_same(nodes, shapes):
    jobs = tuple(a_job(f"j{k}").gpus(g).replicas(r).gpu_type(t).submitted(float(k)).view()
                 for k, (g, r, t) in enumerate(shapes))
    profile = PROFILES["first-fit"]()
    # an index kept through a history that ends in these nodes
    start = tuple(replace(n, free=n.capacity, free_gpus=tuple(range(n.capacity.gpus))) for n in nodes)
    kept = NodeIndex.build(start).updated(start, nodes, range(len(nodes)))
    with_index = schedule(Snapshot(0.0, 0, nodes, jobs, node_index=kept), profile)
    without = schedule(Snapshot(0.0, 0, nodes, jobs), profile)
    assert with_index == without
