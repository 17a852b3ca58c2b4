"""``kind: Queue`` documents: quotas in the units people write become the resource keys of
``QueueSpec``; limits that cannot mean anything (no cohort, no quota to limit, lending more than
the quota) are errors at their field and line. Also: every file in ``examples/`` validates."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hyperion.api.spec import FieldError, QueueDoc, SpecError, load_documents, validate_document
from hyperion.model.queue import QueueSpec

GiB = 2**30
EXAMPLES = Path(__file__).parents[3] / "examples"
QUEUE = "kind: Queue\nname: research\n"  # lines 1-2


def load_queue(extra: str) -> QueueSpec:
    (doc,) = load_documents(QUEUE + textwrap.dedent(extra))
    assert isinstance(doc, QueueDoc)
    return doc.to_spec()


def errors_of(text: str) -> list[FieldError]:
    with pytest.raises(SpecError) as info:
        load_documents(text, source="queues.yaml")
    return info.value.errors


# ---- good documents ---------------------------------------------------------------------------
def test_a_queue_without_quota_governs_nothing() -> None:
    assert load_queue("") == QueueSpec("research")


def test_quota_and_limits_become_sorted_resource_keys() -> None:
    spec = load_queue("""\
        cohort: lab
        weight: 2.5
        quota:
          memory: 256Gi
          gpus: {H100: 4, A100: 8}
          cpus: 64
        borrowing_limit:
          gpus: {A100: 8}
          cpus: 500m
        lending_limit:
          memory: 128Gi
          gpus: {H100: 0}
        """)
    assert spec == QueueSpec(
        name="research", cohort="lab", weight=2.5,
        nominal=(("cpus", 64000), ("gpus/A100", 8), ("gpus/H100", 4), ("memory", 256 * GiB)),
        borrowing_limit=(("cpus", 500), ("gpus/A100", 8)),
        lending_limit=(("gpus/H100", 0), ("memory", 128 * GiB)),
    )


@pytest.mark.parametrize(("quota", "nominal"), [
    ("{cpus: 0.5}", (("cpus", 500),)),
    ("{cpus: '1500m'}", (("cpus", 1500),)),
    ("{cpus: 0, memory: 0}", (("cpus", 0), ("memory", 0))),  # governed, none of its own: it may only borrow
    ("{memory: 16G}", (("memory", 16 * 10**9),)),
    ("{gpus: {}}", ()),
])
def test_quota_quantities(quota: str, nominal: tuple) -> None:
    assert load_queue(f"quota: {quota}\n").nominal == nominal


def test_weight_is_a_number_and_defaults_to_one() -> None:
    assert load_queue("weight: 3\n").weight == 3.0
    assert load_queue("").weight == 1.0


def test_a_dumped_queue_validates_to_the_same_queue() -> None:
    (doc,) = load_documents(QUEUE + "cohort: lab\nquota: {gpus: {A100: 8}, cpus: 250m, memory: 3Gi}\n"
                                    "lending_limit: {cpus: 100m}\n")
    assert QueueDoc.model_validate(doc.model_dump(mode="json", by_alias=True)) == doc


def test_validate_document_reads_a_json_queue() -> None:
    doc = validate_document({"kind": "Queue", "name": "q", "quota": {"gpus": {"A100": 2}}})
    assert isinstance(doc, QueueDoc) and doc.to_spec().nominal == (("gpus/A100", 2),)


# ---- bad documents ----------------------------------------------------------------------------
BAD = [
    # (id, extra lines after QUEUE (lines 1-2), [(path, line, words in the message)])
    ("weight 0", "weight: 0\n", [("weight", 3, "more than 0")]),
    ("weight negative", "weight: -1\n", [("weight", 3, "more than 0")]),
    ("weight infinite", "weight: .inf\n", [("weight", 3, "finite")]),
    ("weight a string", "weight: heavy\n", [("weight", 3, "expected a number")]),
    ("cohort name", "cohort: Lab One\n", [("cohort", 3, '"lab-one"')]),
    ("negative gpus", "quota:\n  gpus: {A100: -1}\n", [("quota.gpus.A100", 4, "at least 0")]),
    ("fractional gpus", "quota:\n  gpus:\n    A100: 1.5\n", [("quota.gpus.A100", 5, "whole number")]),
    ("gpus not by type", "quota:\n  gpus: 8\n", [("quota.gpus", 4, "expected a mapping")]),
    ("negative cpus", "quota:\n  cpus: -1\n", [("quota.cpus", 4, "at least 0")]),
    ("memory words", "quota:\n  memory: lots\n", [("quota.memory", 4, "Ki Mi Gi Ti")]),
    ("unknown resource", "quota:\n  disk: 1Ti\n", [("quota.disk", 4, "unknown field")]),
    ("limit without cohort", "quota: {cpus: 4}\nborrowing_limit:\n  cpus: 2\n",
     [("borrowing_limit", 4, "needs a `cohort`")]),
    ("both limits without cohort", "quota: {cpus: 4}\nborrowing_limit: {cpus: 2}\nlending_limit: {cpus: 2}\n",
     [("borrowing_limit", 4, "needs a `cohort`"), ("lending_limit", 5, "needs a `cohort`")]),
    ("borrowing what has no quota", "cohort: lab\nquota: {cpus: 4}\nborrowing_limit:\n  gpus:\n    A100: 2\n",
     [("borrowing_limit.gpus.A100", 7, "add quota.gpus.A100")]),
    ("lending what has no quota", "cohort: lab\nquota: {cpus: 4}\nlending_limit:\n  memory: 1Gi\n",
     [("lending_limit.memory", 6, "quota.memory is not set")]),
    ("lending more than the quota", "cohort: lab\nquota:\n  cpus: 4\nlending_limit:\n  cpus: 4500m\n",
     [("lending_limit.cpus", 7, "at most quota.cpus (4)")]),
    ("lending more memory than the quota", "cohort: lab\nquota: {memory: 1Gi}\nlending_limit: {memory: 2Gi}\n",
     [("lending_limit.memory", 5, "(1Gi)")]),
    ("a field error and a missing cohort together", "weight: 0\nlending_limit: {cpus: 1}\n",
     [("weight", 3, "more than 0"), ("lending_limit", 4, "needs a `cohort`")]),
]


@pytest.mark.parametrize(("extra", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_queue(extra: str, expected: list[tuple[str, int, str]]) -> None:
    errors = errors_of(QUEUE + extra)
    assert [(e.path, e.line) for e in errors] == [(p, n) for p, n, _ in expected], errors
    for e, (_, _, words) in zip(errors, expected, strict=True):
        assert words in e.message, e.message


def test_the_error_message_names_file_line_and_field() -> None:
    with pytest.raises(SpecError) as info:
        load_documents(QUEUE + "lending_limit:\n  cpus: 1\n", source="queues.yaml")
    assert str(info.value).splitlines()[0].startswith("queues.yaml:3: lending_limit: needs a `cohort`")


# ---- examples ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.yaml")), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_validates(path: Path) -> None:
    from hyperion.sim.cluster import KINDS as SIMULATOR_KINDS  # examples/clusters: the simulator's files

    kinds = SIMULATOR_KINDS if path.parent.name == "clusters" else None
    assert load_documents(path.read_text(), source=str(path), kinds=kinds)


def test_the_queue_example_is_two_queues_in_one_cohort() -> None:
    docs = load_documents((EXAMPLES / "queues.yaml").read_text())
    specs = {d.name: d.to_spec() for d in docs if isinstance(d, QueueDoc)}
    assert set(specs) == {"research", "prod"}
    assert {s.cohort for s in specs.values()} == {"lab"}
    assert any(s.borrowing_limit for s in specs.values())
