"""The JSON codec of model objects: exact round trips through JSON, a stable compact format, and
records from other versions (unknown keys, missing keys) read without fuss."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperion.model import (
    Framework,
    Gpu,
    GpuMetrics,
    Job,
    JobSpec,
    Node,
    NodeMetrics,
    NodeState,
    Phase,
    Placement,
    Priority,
    Resources,
    Team,
)
from hyperion.model.codec import (
    job_from_dict,
    job_to_dict,
    metrics_from_dict,
    metrics_to_dict,
    node_from_dict,
    node_to_dict,
    queue_from_dict,
    queue_to_dict,
    spec_from_dict,
    spec_to_dict,
    team_from_dict,
    team_to_dict,
)
from hyperion.model.queue import QueueSpec

# ---- strategies -------------------------------------------------------------------------------
ints = st.integers(-(2**53), 2**53)
naturals = st.integers(0, 2**53)
floats = st.floats(allow_nan=False, allow_infinity=False)
words = st.text(max_size=12)


def opt(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | s


def pairs(keys: st.SearchStrategy[Any], values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple]:
    """Tuples of (key, value) with unique keys, in any order (as the model holds them)."""
    return st.dictionaries(keys, values, max_size=4).map(lambda d: tuple(d.items()))


resources = st.builds(Resources, naturals, naturals, naturals)
specs = st.builds(
    JobSpec, name=words, team=words, user=words, framework=st.sampled_from(Framework),
    priority=st.sampled_from(Priority), priority_value=ints, resources=resources, gpu_type=opt(words),
    replicas=naturals, min_available=naturals, queue=words, command=st.lists(words, max_size=4).map(tuple),
    image=opt(words), env=pairs(words, words), working_dir=opt(words), checkpoint_dir=opt(words),
    deadline=opt(floats), data_location=opt(words), data_size=opt(naturals), max_price_per_hour=opt(floats),
    labels=pairs(words, words), max_retries=naturals, runtime_estimate_s=opt(floats), grace_period_s=floats,
)
placements = st.builds(Placement, naturals, words, st.lists(naturals, max_size=8).map(tuple))
jobs = st.builds(
    Job, id=words, spec=specs, phase=st.sampled_from(Phase), submitted_at=floats, attempt=naturals,
    placements=st.lists(placements, max_size=4).map(tuple), started_at=opt(floats), finished_at=opt(floats),
    exit_code=opt(ints), reason=words, failures=naturals, rank_exits=pairs(naturals, ints),
)
gpus = st.builds(Gpu, naturals, words, words, naturals)
nodes = st.builds(
    Node, id=words, hostname=words, gpus=st.lists(gpus, max_size=4).map(tuple), gpu_type=words,
    capacity=resources, labels=pairs(words, words), state=st.sampled_from(NodeState), cordoned=st.booleans(),
    gpus_logical=st.booleans(), registered_at=floats, last_seen=floats, version=words,
)
teams = st.builds(Team, words, words, floats)
amounts = st.dictionaries(words, naturals, max_size=4).map(lambda d: tuple(sorted(d.items())))
queues = st.builds(QueueSpec, words, opt(words), floats, amounts, amounts, amounts)
gpu_metrics = st.builds(GpuMetrics, naturals, words, floats, floats, floats, floats, floats, naturals)
metrics = st.builds(
    NodeMetrics, words, floats, floats, floats, floats, floats, floats, floats, floats,
    st.lists(gpu_metrics, max_size=4).map(tuple),
)

CODECS: list[tuple[str, st.SearchStrategy[Any], Callable, Callable]] = [
    ("spec", specs, spec_to_dict, spec_from_dict),
    ("job", jobs, job_to_dict, job_from_dict),
    ("node", nodes, node_to_dict, node_from_dict),
    ("team", teams, team_to_dict, team_from_dict),
    ("queue", queues, queue_to_dict, queue_from_dict),
    ("metrics", metrics, metrics_to_dict, metrics_from_dict),
]
by_name = pytest.mark.parametrize(("strategy", "encode", "decode"), [c[1:] for c in CODECS],
                                  ids=[c[0] for c in CODECS])


# ---- properties -------------------------------------------------------------------------------
@by_name
@given(data=st.data())
def test_round_trip_through_orjson_is_exact(data: st.DataObject, strategy, encode, decode) -> None:
    obj = data.draw(strategy)
    assert decode(orjson.loads(orjson.dumps(encode(obj)))) == obj


@by_name
@given(data=st.data())
def test_dicts_are_plain_json(data: st.DataObject, strategy, encode, decode) -> None:
    d = encode(data.draw(strategy))
    assert json.loads(json.dumps(d)) == d  # only dicts with str keys, lists, str, numbers, bools, null


@by_name
@given(data=st.data())
def test_decoding_ignores_keys_it_does_not_know(data: st.DataObject, strategy, encode, decode) -> None:
    obj = data.draw(strategy)
    assert decode({**encode(obj), "added_in_v9": {"x": [1]}}) == obj


@given(jobs)
def test_nested_records_ignore_unknown_keys_too(job: Job) -> None:
    d = job_to_dict(job)
    d["spec"] = {**d["spec"], "future": 1}
    d["spec"]["resources"] = {**d["spec"]["resources"], "tpus": 4}
    d["placements"] = [{**p, "numa": 0} for p in d.get("placements", [])]
    assert job_from_dict(d) == job


@given(jobs)
def test_encoding_is_deterministic(job: Job) -> None:
    assert orjson.dumps(job_to_dict(job)) == orjson.dumps(job_to_dict(job_from_dict(job_to_dict(job))))


# ---- the format -------------------------------------------------------------------------------
def test_a_small_job_has_this_exact_format() -> None:
    spec = JobSpec(name="train", team="ml", priority=Priority.LATENCY_CRITICAL, resources=Resources(2, 500, 2**30),
                   command=("python", "train.py"), env=(("B", "2"), ("A", "1")))
    job = Job(id="train-abc123", spec=spec, phase=Phase.RUNNING, submitted_at=5.0, attempt=1,
              placements=(Placement(0, "n1", (0, 1)),), started_at=6.0, rank_exits=((3, 0),))
    assert job_to_dict(job) == {
        "id": "train-abc123",
        "spec": {
            "name": "train", "team": "ml", "user": "", "framework": "command", "priority": "latency-critical",
            "priority_value": 0, "resources": {"gpus": 2, "cpus_milli": 500, "memory": 2**30}, "replicas": 1,
            "min_available": 1, "queue": "default", "command": ["python", "train.py"], "env": {"B": "2", "A": "1"},
            "max_retries": 0, "grace_period_s": 10.0,
        },
        "phase": "running", "submitted_at": 5.0, "attempt": 1,
        "placements": [{"rank": 0, "node_id": "n1", "gpu_indices": [0, 1]}],
        "started_at": 6.0, "reason": "", "failures": 0, "rank_exits": {"3": 0}, "attained_gpu_s": 0.0,
        "handed_over": False,
    }


def test_a_record_written_before_attempt_fields_existed_still_reads() -> None:
    spec = JobSpec(name="train", team="ml")
    old = {k: v for k, v in job_to_dict(Job(id="j", spec=spec, started_at=6.0)).items() if k != "attained_gpu_s"}
    job = job_from_dict(old)
    assert (job.attained_gpu_s, job.attempt_started_at, job.placed_estimate_s) == (0.0, None, None)


def test_a_node_has_this_exact_format() -> None:
    node = Node(id="n1", gpus=(Gpu(0, "GPU-1", "H100", 81920),), gpu_type="h100", capacity=Resources(1, 8000, 2**34),
                labels=(("zone", "a"),), state=NodeState.NOT_READY)
    assert node_to_dict(node) == {
        "id": "n1", "hostname": "", "gpus": [{"index": 0, "uuid": "GPU-1", "name": "H100", "memory_mb": 81920}],
        "gpu_type": "h100", "capacity": {"gpus": 1, "cpus_milli": 8000, "memory": 2**34}, "labels": {"zone": "a"},
        "state": "not-ready", "cordoned": False, "gpus_logical": True, "registered_at": 0.0, "last_seen": 0.0,
        "version": "", "condition": "",
    }


def test_a_queue_has_this_exact_format() -> None:
    q = QueueSpec("research", cohort="lab", weight=2.0, nominal=(("cpus", 64000), ("gpus/A100", 8)),
                  lending_limit=(("gpus/A100", 4),))
    assert queue_to_dict(q) == {"name": "research", "cohort": "lab", "weight": 2.0,
                                "nominal": {"cpus": 64000, "gpus/A100": 8}, "lending_limit": {"gpus/A100": 4}}


@pytest.mark.parametrize(("decode", "d", "expected"), [
    (spec_from_dict, {"name": "a", "team": "t"}, JobSpec(name="a", team="t")),
    (spec_from_dict, {"name": "a", "team": "t", "priority": 2}, JobSpec("a", "t", priority=Priority.ULTRA_LOW_LATENCY)),
    (job_from_dict, {"id": "j", "spec": {"name": "a", "team": "t"}}, Job("j", JobSpec("a", "t"))),
    (node_from_dict, {"id": "n"}, Node("n")),
    (team_from_dict, {"name": "t", "token_sha256": "ab"}, Team("t", "ab")),
    (queue_from_dict, {"name": "q"}, QueueSpec("q")),
    (queue_from_dict, {"name": "q", "nominal": {"memory": 2, "cpus": 1}}, QueueSpec("q", nominal=(("cpus", 1), ("memory", 2)))),
    (metrics_from_dict, {"node_id": "n", "timestamp": 1.5}, NodeMetrics("n", 1.5)),
])
def test_missing_keys_take_the_defaults(decode: Callable, d: dict, expected: object) -> None:
    assert decode(d) == expected


@pytest.mark.parametrize(("decode", "d", "words"), [
    (job_from_dict, {"spec": {"name": "a", "team": "t"}}, "incomplete"),
    (job_from_dict, {"id": "j", "spec": {"name": "a"}}, "Job.spec"),
    (job_from_dict, {"id": "j", "spec": {"name": "a", "team": "t"}, "phase": "sleeping"}, "Job.phase"),
    (spec_from_dict, {"name": "a", "team": "t", "priority": "urgent"}, "unknown priority 'urgent'"),
    (node_from_dict, {"id": "n", "state": "gone"}, "Node.state"),
    (node_from_dict, [], "must be an object"),
    (queue_from_dict, {"name": "q", "nominal": [["cpus", 1]]}, "QueueSpec.nominal"),
    (job_from_dict, {"id": "j", "spec": {"name": "a", "team": "t"}, "rank_exits": [1]}, "Job.rank_exits"),
])
def test_bad_records_raise_value_error(decode: Callable, d: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        decode(d)


def test_duplicate_keys_in_pairs_are_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        spec_to_dict(JobSpec("a", "t", env=(("A", "1"), ("A", "2"))))
