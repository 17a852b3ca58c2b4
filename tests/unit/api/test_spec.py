"""The user-facing document schema: good documents become the right model, bad ones say what was
wrong, at which path and line, in words a person can act on."""

from __future__ import annotations

import pickle
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperion.api.spec import (
    HINT,
    KINDS,
    BudgetDoc,
    ClusterDoc,
    FieldError,
    JobDoc,
    NodePoolDoc,
    PricingDoc,
    QueueDoc,
    SpecError,
    TeamDoc,
    join_path,
    load_documents,
    parse_bytes,
    parse_duration,
    parse_job,
    parse_millicores,
    parse_time,
    split_path,
    validate_document,
)
from hyperion.model import Framework, JobSpec, Priority, Resources

JOB = "kind: Job\nname: train\ncommand: python train.py\n"


def load_job(extra: str) -> JobSpec:
    (doc,) = load_documents(JOB + textwrap.dedent(extra))
    assert isinstance(doc, JobDoc)
    return doc.to_spec("ml")


def errors_of(text: str) -> list[FieldError]:
    with pytest.raises(SpecError) as info:
        load_documents(textwrap.dedent(text), source="job.yaml")
    return info.value.errors


# ---- good documents ---------------------------------------------------------------------------
@pytest.mark.parametrize(("extra", "field", "expected"), [
    ("", "resources", Resources(gpus=0, cpus_milli=1000, memory=2**30)),
    ("", "command", ("python train.py",)),
    ("", "team", "ml"),
    ("", "min_available", 1),
    ("", "queue", "default"),
    ("", "grace_period_s", 10.0),
    ("", "priority", Priority.BATCH),
    ("", "framework", Framework.COMMAND),
    ("team: vision\n", "team", "vision"),
    ("user: ada\n", "user", "ada"),
    ("resources: {memory: 16Gi}\n", "resources", Resources(0, 1000, 17179869184)),
    ("resources: {memory: 16G}\n", "resources", Resources(0, 1000, 16 * 10**9)),
    ("resources: {memory: 1.5Gi}\n", "resources", Resources(0, 1000, 3 * 2**29)),
    ("resources: {memory: 1048576}\n", "resources", Resources(0, 1000, 2**20)),
    ("resources: {cpus: 500m}\n", "resources", Resources(0, 500, 2**30)),
    ("resources: {cpus: 0.5}\n", "resources", Resources(0, 500, 2**30)),
    ("resources: {cpus: 4}\n", "resources", Resources(0, 4000, 2**30)),
    ("resources: {cpus: '1.5'}\n", "resources", Resources(0, 1500, 2**30)),
    ("resources: {gpus: 8, gpu_type: a100}\n", "resources", Resources(8, 1000, 2**30)),
    ("resources: {gpus: 8, gpu_type: a100}\n", "gpu_type", "a100"),
    ("replicas: 4\n", "min_available", 4),
    ("replicas: 4\nmin_available: 2\n", "min_available", 2),
    ("replicas: 4\n", "total", Resources(0, 4000, 4 * 2**30)),
    ("priority: latency-critical\n", "priority", Priority.LATENCY_CRITICAL),
    ("priority: ultra-low-latency\npriority_value: -3\n", "priority_value", -3),
    ("framework: custom-container\n", "framework", Framework.CUSTOM_CONTAINER),
    ("env: {B: '2', A: x}\n", "env", (("A", "x"), ("B", "2"))),
    ("labels: {app.kubernetes.io/name: web}\n", "labels", (("app.kubernetes.io/name", "web"),)),
    ("deadline: 2025-06-01T12:00:00Z\n", "deadline", 1748779200.0),
    ("deadline: '2025-06-01T14:00:00+02:00'\n", "deadline", 1748779200.0),
    ("deadline: 1748779200\n", "deadline", 1748779200.0),
    ("runtime_estimate: 90s\n", "runtime_estimate_s", 90.0),
    ("runtime_estimate: 30m\n", "runtime_estimate_s", 1800.0),
    ("runtime_estimate: 2h\n", "runtime_estimate_s", 7200.0),
    ("runtime_estimate: 1h30m\n", "runtime_estimate_s", 5400.0),
    ("runtime_estimate: 45.5\n", "runtime_estimate_s", 45.5),
    ("grace_period: 0\n", "grace_period_s", 0.0),
    ("grace_period: 2m\n", "grace_period_s", 120.0),
    ("data: {location: s3://bucket/set, size: 10Gi}\n", "data_location", "s3://bucket/set"),
    ("data: {location: s3://bucket/set, size: 10Gi}\n", "data_size", 10 * 2**30),
    ("max_price_per_hour: 2\n", "max_price_per_hour", 2.0),
    ("max_retries: 100\n", "max_retries", 100),
    ("working_dir: /srv\ncheckpoint_dir: /ckpt\n", "checkpoint_dir", "/ckpt"),
    ("apiVersion: hyperion/v1\n", "name", "train"),
])
def test_good_job_fields(extra: str, field: str, expected: object) -> None:
    assert getattr(load_job(extra), field) == expected


@pytest.mark.parametrize(("text", "command"), [
    ("kind: Job\nname: a\ncommand: [python, train.py, --lr, '0.1']\n", ("python", "train.py", "--lr", "0.1")),
    ("kind: Job\nname: a\ncommand:\n  - sh\n  - -c\n  - echo hi\n", ("sh", "-c", "echo hi")),
    ("kind: Job\nname: a\ncommand: echo hi | wc -c\n", ("echo hi | wc -c",)),
    ("kind: Job\nname: a\nimage: pytorch/pytorch:2.3\n", ()),  # an image brings its own entrypoint
])
def test_command_keeps_the_users_form(text: str, command: tuple[str, ...]) -> None:
    (doc,) = load_documents(text)
    assert doc.to_spec("t").command == command


def test_a_team_document() -> None:
    docs = load_documents("kind: Team\nname: vision\n---\nkind: Team\nname: nlp\ntoken: abcdefghijklmnopqrstuvwxyz\n")
    assert [(type(d), d.name, d.token) for d in docs] == [
        (TeamDoc, "vision", None), (TeamDoc, "nlp", "abcdefghijklmnopqrstuvwxyz")]
    assert "abcdefgh" not in repr(docs[1])  # tokens stay out of logs


def test_multi_document_file_keeps_order_and_skips_empty_documents() -> None:
    docs = load_documents("---\nkind: Team\nname: t\n---\n" + JOB + "---\n")
    assert [d.kind for d in docs] == ["Team", "Job"]


def test_a_dumped_document_validates_to_the_same_document() -> None:
    (doc,) = load_documents(JOB + "resources: {cpus: 250m, memory: 3Gi}\npriority: latency-critical\n"
                                  "deadline: 2030-01-01T00:00:00Z\nenv: {A: b}\n")
    assert JobDoc.model_validate(doc.model_dump(mode="json", by_alias=True)) == doc


def test_kinds_are_a_registry_of_document_classes() -> None:
    assert KINDS == {"Job": JobDoc, "Team": TeamDoc, "Queue": QueueDoc, "Budget": BudgetDoc, "Pricing": PricingDoc,
                     "Cluster": ClusterDoc, "NodePool": NodePoolDoc}
    assert all(cls.model_fields["kind"].default == kind for kind, cls in KINDS.items())
    assert all(cls.model_json_schema()["additionalProperties"] is False for cls in KINDS.values())


# ---- bad documents ----------------------------------------------------------------------------
BAD = [
    # (id, extra lines after JOB (lines 1-3), path, line, words in the message)
    ("unknown field", "colour: red\n", "colour", 4, "unknown field"),
    ("unknown nested field", "resources:\n  gpu: 2\n", "resources.gpu", 5, "did you mean gpus"),
    ("field in the wrong place", "gpus: 2\n", "gpus", 4, "resources.gpus"),
    ("wrong type", "replicas: two\n", "replicas", 4, "expected a whole number"),
    ("replicas 0.5", "replicas: 0.5\n", "replicas", 4, "whole number, got 0.5"),
    ("replicas as bool", "replicas: true\n", "replicas", 4, "whole number, got true"),
    ("replicas 0", "replicas: 0\n", "replicas", 4, "at least 1"),
    ("negative memory", "resources:\n  memory: -1\n", "resources.memory", 5, "more than 0"),
    ("negative memory units", "resources:\n  memory: -2Gi\n", "resources.memory", 5, "more than 0"),
    ("memory bad unit", "resources:\n  memory: 16Gx\n", "resources.memory", 5, "Ki Mi Gi Ti"),
    ("zero cpus", "resources:\n  cpus: 0\n", "resources.cpus", 5, "more than 0"),
    ("cpus finer than milli", "resources:\n  cpus: 0.0005\n", "resources.cpus", 5, "millicore"),
    ("cpus bad string", "resources:\n  cpus: lots\n", "resources.cpus", 5, "500m"),
    ("negative gpus", "resources:\n  gpus: -1\n", "resources.gpus", 5, "at least 0"),
    ("resources not a mapping", "resources: 4\n", "resources", 4, "expected a mapping"),
    ("min_available > replicas", "replicas: 2\nmin_available: 3\n", "min_available", 5, "at most replicas (2)"),
    ("min_available 0", "min_available: 0\n", "min_available", 4, "at least 1"),
    ("env value int", "env:\n  PORT: 8080\n", "env.PORT", 5, 'quotes: "8080"'),
    ("env value bool", "env:\n  DEBUG: true\n", "env.DEBUG", 5, "quotes"),
    ("env bad name", "env:\n  1X: a\n", 'env["1X"]', 5, "environment variable name"),
    ("env not a mapping", "env: [A]\n", "env", 4, "expected a mapping"),
    ("label value number", "labels:\n  tier: 1\n", "labels.tier", 5, "quotes"),
    ("priority unknown", "priority: urgent\n", "priority", 4, "batch, latency-critical, ultra-low-latency"),
    ("framework unknown", "framework: mxnet\n", "framework", 4, "pytorch, jax"),
    ("deadline without timezone", "deadline: 2025-06-01T12:00:00\n", "deadline", 4, "no timezone"),
    ("deadline a date", "deadline: 2025-06-01\n", "deadline", 4, "is a date"),
    ("deadline words", "deadline: tomorrow\n", "deadline", 4, "ISO-8601"),
    ("max_retries too many", "max_retries: 101\n", "max_retries", 4, "at most 100"),
    ("runtime_estimate 0", "runtime_estimate: 0\n", "runtime_estimate", 4, "more than 0"),
    ("runtime_estimate words", "runtime_estimate: 2x\n", "runtime_estimate", 4, '"1h30m"'),
    ("grace_period negative", "grace_period: -1\n", "grace_period", 4, "at least 0"),
    ("price negative", "max_price_per_hour: -0.5\n", "max_price_per_hour", 4, "at least 0"),
    ("price a string", "max_price_per_hour: cheap\n", "max_price_per_hour", 4, "expected a number"),
    ("apiVersion", "apiVersion: hyperion/v2\n", "apiVersion", 4, "'hyperion/v1'"),
    ("data without location", "data:\n  size: 1Gi\n", "data.location", 4, "required"),
    ("team name", "team: Vision Team\n", "team", 4, '"vision-team"'),
    ("queue name", "queue: -q\n", "queue", 4, "starting and ending with a letter or digit"),
    ("image empty", "image: ''\n", "image", 4, "must not be empty"),
    ("duplicate key", "name: other\n", "name", 4, "duplicate key"),
    ("too many replicas to store", "replicas: 100000000000000000000\n", "replicas", 4, "at most"),
    ("too much memory to store", "resources:\n  memory: 10000000Ti\n", "resources.memory", 5, "too large"),
]


@pytest.mark.parametrize(("extra", "path", "line", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_job_field(extra: str, path: str, line: int, words: str) -> None:
    errors = errors_of(JOB + extra)
    assert [(e.path, e.line) for e in errors] == [(path, line)], errors
    assert words in errors[0].message
    assert "Input should" not in errors[0].message and "errors.pydantic.dev" not in errors[0].message


@pytest.mark.parametrize(("text", "expected"), [
    ("kind: Job\ncommand: ls\n", [("name", 1, "required field is missing")]),
    ("kind: Job\nname: a\n", [("command", 1, "required unless `image` is given")]),
    ("kind: Job\nname: a\ncommand: []\n", [("command", 3, "must not be empty")]),
    ("kind: Job\nname: a\ncommand: ''\n", [("command", 3, "must not be empty")]),
    ("kind: Job\nname: a\ncommand: 5\n", [("command", 3, "a string (run by the shell) or a list")]),
    ("kind: Job\nname: a\ncommand:\n  - python\n  - 3\n", [("command[1]", 5, 'quotes: "3"')]),
    # single-field errors and the command check come together, in line order
    ("kind: Job\nname: A\nreplicas: 0.5\n", [("command", 1, "required unless"), ("name", 2, "lowercase"),
                                             ("replicas", 3, "whole number")]),
    ("name: a\n", [("kind", 1, "known kinds: Job, Team")]),
    ("kind: Jobs\nname: a\n", [("kind", 1, 'unknown kind "Jobs"; known kinds: Job, Team')]),
    ("kind: job\nname: a\n", [("kind", 1, "did you mean Job?")]),
    ("- kind: Job\n", [("", 1, "expected a mapping of fields")]),
    ("just words\n", [("", 1, "expected a mapping of fields")]),
    ("kind: Team\nname: t\ntoken: hunter2\n", [("token", 3, "at least 16 characters long; got 7")]),
    ("kind: Team\nname: t\ntoken: 1234\n", [("token", 3, "not shown")]),
    ("kind: Team\nname: t\ncommand: ls\n", [("command", 3, "unknown field")]),
])
def test_bad_document(text: str, expected: list[tuple[str, int, str]]) -> None:
    errors = errors_of(text)
    assert [(e.path, e.line) for e in errors] == [(p, n) for p, n, _ in expected], errors
    for e, (_, _, words) in zip(errors, expected, strict=True):
        assert words in e.message


def test_secrets_are_not_echoed() -> None:
    with pytest.raises(SpecError) as info:
        load_documents("kind: Team\nname: t\ntoken: hunter2\n")
    assert "hunter2" not in str(info.value)


def test_an_error_in_the_second_document_has_its_line_in_the_file() -> None:
    text = JOB + "---\n" + JOB + "resources:\n  memory: lots\n"
    errors = errors_of(text)
    assert errors == [FieldError("resources.memory", 9, errors[0].message, doc=1)]


def test_errors_of_every_document_are_reported_together_in_order() -> None:
    text = "kind: Job\nname: a\nreplicas: 0\ncommand: x\n---\nkind: Nope\n---\nkind: Team\nname: B\n"
    errors = errors_of(text)
    assert [(e.doc, e.path, e.line) for e in errors] == [(0, "replicas", 3), (1, "kind", 6), (2, "name", 9)]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("kind: Job\nname: a\ncommand: [ls\n", 4, "invalid YAML"),
    ("kind: Job\nname: a\n  command: ls\n", 3, "mapping values are not allowed"),
    ("kind: Job\n\tname: a\n", 2, "not tabs"),
    ("kind: Job\nname: a\ncommand: \"ls\n", 4, "invalid YAML"),
    (JOB + "---\nkind: Job\nname: b\ncommand: [x\n", 8, "invalid YAML"),
])
def test_yaml_syntax_error_has_its_line(text: str, line: int, words: str) -> None:
    (error,) = errors_of(text)
    assert (error.path, error.line) == ("", line)
    assert words in error.message


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n---\n"])
def test_a_file_without_documents_is_an_error(text: str) -> None:
    (error,) = errors_of(text)
    assert "no documents" in error.message


# ---- the error object -------------------------------------------------------------------------
def test_message_is_one_line_per_error_then_the_hint() -> None:
    with pytest.raises(SpecError) as info:
        load_documents(JOB + "replicas: 0.5\nenv:\n  PORT: 80\n", source="jobs/train.yaml")
    assert str(info.value).splitlines() == [
        "jobs/train.yaml:4: replicas: expected a whole number, got 0.5",
        'jobs/train.yaml:6: env.PORT: expected a string, got 80; put the value in quotes: "80"',
        HINT,
    ]
    assert HINT == "fix the fields above and submit again"


def test_to_detail_gives_loc_line_and_msg() -> None:
    with pytest.raises(SpecError) as info:
        load_documents("kind: Job\nname: a\ncommand: [ls, 1]\nlabels: {a.b/c: 1}\n")
    assert [(d["loc"], d["line"]) for d in info.value.to_detail()] == [(["command", 1], 3), (["labels", "a.b/c"], 4)]
    assert all(set(d) == {"loc", "line", "msg"} for d in info.value.to_detail())


def test_spec_error_survives_pickling() -> None:
    err = SpecError([FieldError("team", 3, "unknown team", doc=1)], source="a.yaml")
    again = pickle.loads(pickle.dumps(err))
    assert (again.errors, again.source, str(again)) == (err.errors, err.source, str(err))


def test_an_error_without_a_line_names_only_the_source() -> None:
    err = SpecError([FieldError("team", None, "unknown team"), FieldError("", None, "bad", doc=2)], source="request")
    assert str(err).splitlines() == ["request: team: unknown team", "request (document 3): bad", HINT]
    assert err.to_detail() == [{"loc": ["team"], "line": None, "msg": "unknown team"},
                               {"loc": [], "line": None, "msg": "bad"}]
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(("parts", "path"), [
    (("replicas",), "replicas"),
    (("resources", "memory"), "resources.memory"),
    (("command", 1), "command[1]"),
    (("labels", "app.kubernetes.io/name"), 'labels["app.kubernetes.io/name"]'),
    (("env", "1X"), 'env["1X"]'),
    ((), ""),
])
def test_paths(parts: tuple, path: str) -> None:
    assert join_path(parts) == path
    assert split_path(path) == list(parts)


@given(st.lists(st.one_of(st.text(max_size=8), st.integers(0, 99)), max_size=5))
def test_split_path_inverts_join_path(parts: list) -> None:
    assert split_path(join_path(parts)) == parts


# ---- JSON (the REST API) ----------------------------------------------------------------------
def test_parse_job_accepts_a_json_object_without_kind() -> None:
    doc = parse_job({"name": "a", "command": ["ls", "-l"], "resources": {"gpus": 2, "memory": "8Gi"}})
    assert doc.to_spec("ml") == JobSpec(name="a", team="ml", command=("ls", "-l"),
                                        resources=Resources(2, 1000, 8 * 2**30))


@pytest.mark.parametrize(("data", "detail"), [
    ({"name": "a", "command": "ls", "replicas": 0.5}, [(["replicas"], "whole number")]),
    ({"name": "a", "command": "ls", "kind": "Team"}, [(["kind"], "expected Job")]),
    ({"command": "ls", "extra": 1}, [(["name"], "required"), (["extra"], "unknown field")]),
    ({"name": "a", "command": "ls", "resources": {"memory": -5}}, [(["resources", "memory"], "more than 0")]),
])
def test_parse_job_errors_have_no_lines(data: dict, detail: list) -> None:
    with pytest.raises(SpecError) as info:
        parse_job(data)
    got = info.value.to_detail()
    assert [(d["loc"], d["line"]) for d in got] == [(loc, None) for loc, _ in detail]
    assert all(words in d["msg"] for d, (_, words) in zip(got, detail, strict=True))
    assert str(info.value).startswith("request: ")


def test_validate_document_needs_a_kind() -> None:
    assert isinstance(validate_document({"kind": "Team", "name": "t"}), TeamDoc)
    with pytest.raises(SpecError, match="known kinds: Job, Team"):
        validate_document({"name": "t"})


# ---- quantities -------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("16Gi", 17179869184), ("16G", 16_000_000_000), ("512Mi", 512 * 2**20), ("1Ki", 1024), ("1K", 1000),
    ("1k", 1000), ("2Ti", 2 * 2**40), ("3T", 3 * 10**12), ("16GiB", 2**34), ("100", 100), (4096, 4096),
    ("0.5Ki", 512), (" 1 Mi ", 2**20),
])
def test_parse_bytes(text: object, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("500m", 500), (1, 1000), (0.25, 250), ("2", 2000), ("1.5", 1500)])
def test_parse_millicores(text: object, expected: int) -> None:
    assert parse_millicores(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("250ms", 0.25), (12, 12), ("7", 7),
])
def test_parse_duration(text: object, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", [True, None, "16 gigs", "1.2.3", [], float("inf")])
def test_quantities_refuse_what_they_cannot_read(bad: object) -> None:
    for parse in (parse_bytes, parse_millicores, parse_duration, parse_time):
        with pytest.raises(ValueError, match="got"):
            parse(bad)
