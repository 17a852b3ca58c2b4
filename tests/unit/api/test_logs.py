"""LogStore: writes at offsets are idempotent; reads concatenate attempts from any offset."""

import pytest

from hyperion.api.logs import LogStore


@pytest.fixture
def logs(tmp_path):
    s = LogStore(tmp_path)
    s.write("j", 1, 0, 0, b"first-")
    s.write("j", 1, 0, 6, b"attempt\n")
    s.write("j", 1, 0, 6, b"attempt\n")  # a resent chunk changes nothing
    s.write("j", 2, 0, 0, b"second\n")
    return s


def test_every_offset_reads_the_rest_of_the_concatenation(logs):
    whole = b"first-attempt\nsecond\n"
    assert logs.read("j", 0) == whole
    for offset in range(len(whole) + 3):
        assert logs.read("j", 0, offset) == whole[offset:]


def test_unknown_rank_or_job_reads_nothing(logs):
    assert logs.read("j", 1) == b"" and logs.read("nope", 0) == b""
    assert logs.size("j", 1, 0) == 14 and logs.size("j", 3, 0) == 0
