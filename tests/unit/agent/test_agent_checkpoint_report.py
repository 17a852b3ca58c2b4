"""``checkpoint_report``: a job's checkpoint datagram becomes a wire ``Checkpoint`` only when it
names a task this agent runs and a file inside that task's checkpoint directory."""

from __future__ import annotations

import json
import os

import pytest

from hyperion.agent.main import checkpoint_report
from hyperion.api._generated.hyperion.v1 import agent_pb2

KEY = ("job-1", 2, 3)


@pytest.fixture
def ck(tmp_path):
    """The running task's checkpoint directory (the name has a sibling sharing its prefix)."""
    root = tmp_path / "ck"
    root.mkdir()
    (tmp_path / "ck2").mkdir()
    return root


def dirs_of(ck, calls=None):
    def checkpoint_dir(key):
        if calls is not None:
            calls.append(key)
        return str(ck) if key == KEY else None
    return checkpoint_dir


def datagram(**fields) -> bytes:
    d = {"job_id": KEY[0], "attempt": KEY[1], "rank": KEY[2], "at": 1700000000.5, "step": 120}
    d.update(fields)
    return json.dumps({k: v for k, v in d.items() if v is not REMOVED}).encode()


REMOVED = object()


def test_a_checkpoint_inside_the_tasks_directory(ck):
    calls = []
    path = str(ck / "step-120" / "model.pt")
    got = checkpoint_report(datagram(path=path), dirs_of(ck, calls))
    assert calls == [KEY]
    assert isinstance(got, agent_pb2.Checkpoint)
    assert (got.task.job_id, got.task.attempt, got.task.rank) == KEY
    assert got.at == 1700000000.5
    assert got.path == path
    assert got.step == 120


@pytest.mark.parametrize("step", [REMOVED, None, 0])
def test_a_checkpoint_without_a_step_has_step_0(ck, step):
    got = checkpoint_report(datagram(path=str(ck / "f"), step=step), dirs_of(ck))
    assert got is not None
    assert got.step == 0


def test_numbers_given_as_strings_are_read_as_numbers(ck):
    got = checkpoint_report(datagram(path=str(ck / "f"), attempt="2", rank="3", at="12.5", step="7"), dirs_of(ck))
    assert got is not None
    assert (got.task.attempt, got.task.rank, got.at, got.step) == (2, 3, 12.5, 7)


def test_a_path_through_a_symlink_inside_the_directory_to_it(ck, tmp_path):
    (ck / "real").mkdir()
    (ck / "latest").symlink_to(ck / "real")
    assert checkpoint_report(datagram(path=str(ck / "latest" / "f")), dirs_of(ck)) is not None


@pytest.mark.parametrize("where", [
    lambda ck: "/etc/passwd",
    lambda ck: str(ck / ".." / "f"),
    lambda ck: str(ck / "sub" / ".." / ".." / "ck2" / "f"),
    lambda ck: str(ck.parent / "ck2" / "f"),  # same prefix, another directory
    lambda ck: str(ck) + "2",
    lambda ck: str(ck),  # the directory itself is not a checkpoint in it
    lambda ck: str(ck) + os.sep,
    lambda ck: str(ck / "escape" / "f"),  # through a symlink out of it
], ids=["elsewhere", "dotdot", "dotdot-to-sibling", "sibling-with-prefix", "prefix-only", "the-dir", "the-dir-slash",
        "symlink-out"])
def test_a_path_outside_the_tasks_directory(ck, where):
    (ck / "escape").symlink_to(ck.parent / "ck2")
    assert checkpoint_report(datagram(path=where(ck)), dirs_of(ck)) is None


@pytest.mark.parametrize("root", [None, ""])
def test_a_task_this_agent_does_not_run(ck, root):
    calls = []

    def checkpoint_dir(key):
        calls.append(key)
        return root

    assert checkpoint_report(datagram(path=str(ck / "f")), checkpoint_dir) is None
    assert calls == [KEY]


def test_another_attempt_or_rank_of_the_task_is_unknown(ck):
    assert checkpoint_report(datagram(path=str(ck / "f"), attempt=1), dirs_of(ck)) is None
    assert checkpoint_report(datagram(path=str(ck / "f"), rank=0), dirs_of(ck)) is None


@pytest.mark.parametrize("data", [
    b"",
    b"not json",
    b"{\"job_id\": ",
    b"\xff\xfe\x00",
    b"[1, 2, 3]",
    b"\"job-1\"",
    b"null",
    b"42",
    b"{}",
], ids=["empty", "text", "truncated", "not-utf8", "list", "string", "null", "number", "empty-object"])
def test_a_malformed_datagram(ck, data):
    calls = []
    assert checkpoint_report(data, dirs_of(ck, calls)) is None
    assert calls == []


@pytest.mark.parametrize("fields", [
    {"job_id": REMOVED},
    {"attempt": REMOVED},
    {"rank": REMOVED},
    {"at": REMOVED},
    {"path": REMOVED},
    {"attempt": "two"},
    {"attempt": None},
    {"attempt": [2]},
    {"rank": "r3"},
    {"at": "soon"},
    {"at": None},
    {"step": "many"},
    {"attempt": float("nan")},
], ids=lambda f: ",".join(f"{k}={v if v is not REMOVED else 'missing'}" for k, v in f.items()))
def test_missing_or_non_numeric_fields(ck, fields):
    fields.setdefault("path", str(ck / "f"))
    calls = []
    assert checkpoint_report(datagram(**fields), dirs_of(ck, calls)) is None
    assert calls == []


# Datagrams come from any process of the node's user: the function promises None for every one it
# cannot use, and its caller (the agent's socket reader) does not expect it to raise.
@pytest.mark.parametrize("raw", [
    '"attempt": Infinity',
    '"rank": -Infinity',
    '"step": Infinity',
    '"at": 1' + "0" * 400,
    '"path": "CK/a\\u0000b"',
    '"step": 1180591620717411303424',
], ids=["attempt-inf", "rank-inf", "step-inf", "at-huge", "path-nul", "step-out-of-range"])
def test_a_hostile_datagram_gives_none_and_does_not_raise(ck, raw):
    fields = {"job_id": json.dumps(KEY[0]), "attempt": str(KEY[1]), "rank": str(KEY[2]), "at": "1.5",
              "path": json.dumps(str(ck / "f")), "step": "1"}
    name, value = raw.split(": ", 1)
    fields[json.loads(name)] = value.replace("CK", str(ck))
    data = ("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}").encode()
    assert checkpoint_report(data, dirs_of(ck)) is None
