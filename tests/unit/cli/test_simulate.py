"""``hyperion simulate`` end to end through click's CliRunner, on tiny hand-written Philly traces and
cluster YAMLs (``tdp_watts`` and a constant carbon intensity, so no data dir is needed): the table,
the report files, JSON output, determinism, time windows, --limit, progress, and every kind of bad
input reported as one message with exit code 2 and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hyperion.cli.main import cli

POLICIES = ("fifo", "sjf", "las", "drf", "default")
PLOTS = {"jct_cdf.png", "queue_delay_cdf.png", "queue_length.png", "utilisation.png"}
HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"
# Philly timestamps are US-Pacific local time. Offsets from the first job: 0, 10 min, 1.5 h, 26 h,
# 52 h; the last row has duration 0 and is skipped, so the trace has 5 jobs. No job falls between
# 17:00 and 24:00 local time, so a date bound means the same whether read in UTC or in Pacific time.
PHILLY = HEADER + """\
2017-10-01 08:00:00,3600,2,7200,vc1
2017-10-01 08:10:00,1800,4,7200,vc2
2017-10-01 09:30:00,600,1,600,vc1
2017-10-02 10:00:00,7200,8,57600,vc2
2017-10-03 12:00:00,900,2,1800,vc1
2017-10-03 12:05:00,0,2,0,vc1
"""
JOBS = 5


def cluster_yaml(pool: str = "    gpus: 8\n    tdp_watts: 300\n", rest: str = "carbon:\n  intensity: 300\n") -> str:
    return ("kind: Cluster\nname: tiny\nnodes:\n  - name: a\n    count: 2\n    gpu_type: V100\n" + pool + rest)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    trace, cluster = tmp_path / "philly.csv", tmp_path / "cluster.yaml"
    trace.write_text(PHILLY)
    cluster.write_text(cluster_yaml())
    return {"trace": trace, "cluster": cluster}


def invoke(*args: str) -> Result:
    return CliRunner(env={"HYPERION_DATA": None, "HYPERION_DEBUG": None}).invoke(cli, ["simulate", *args])


def simulate(files: dict[str, Path], *args: str) -> Result:
    return invoke("--trace", f"philly:{files['trace']}", "--cluster", str(files["cluster"]), *args)


def as_json(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---------------------------------------------------------------- a good run


def test_run_prints_the_table_and_writes_the_report(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = simulate(files, "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"philly:{files['trace']}: {JOBS} jobs on tiny (16 GPUs), seed 0"
    assert lines[1].split()[:3] == ["policy", "jobs", "JCT"]
    assert [line.split()[0] for line in lines[3:3 + len(POLICIES)]] == list(POLICIES)
    assert f"report: {out / 'report.html'}" in result.stdout
    assert {p.name for p in out.iterdir()} == {"report.html", "results.json", *PLOTS}
    assert all(p.stat().st_size > 0 for p in out.iterdir())
    summary = json.loads((out / "results.json").read_text())
    assert list(summary["policies"]) == list(POLICIES) and summary["meta"]["jobs"] == JOBS
    assert "Traceback" not in result.output and result.stderr == ""


def test_no_report_writes_nothing(files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.iterdir())
    for args in ([], ["--out", str(tmp_path / "elsewhere")]):
        result = simulate(files, "--policy", "fifo", "--no-report", *args)
        assert result.exit_code == 0, result.output
        assert "fifo" in result.stdout and "report:" not in result.stdout
    assert sorted(tmp_path.iterdir()) == before  # neither ./sim-report (the default --out) nor --out


def test_json_output_is_json_only_on_stdout(files: dict[str, Path]) -> None:
    data = as_json(simulate(files, "--policy", "fifo,drf", "--no-report", "-o", "json"))
    assert list(data["policies"]) == ["fifo", "drf"]
    assert data["policies"]["fifo"]["metrics"]["jobs_finished"] == JOBS
    assert data["meta"]["jobs"] == JOBS and data["meta"]["gpus"] == 16 and data["meta"]["seed"] == 0


def test_same_seed_gives_the_same_metrics(files: dict[str, Path]) -> None:
    # Failing nodes, so that the seed matters (which nodes fail, and when).
    files["cluster"].write_text(cluster_yaml("    gpus: 8\n    tdp_watts: 300\n    mtbf: 6h\n    repair: 1h\n"))

    def metrics(seed: int) -> dict:
        data = as_json(simulate(files, "--policy", "fifo,las", "--no-report", "-o", "json", "--seed", str(seed)))
        assert data["meta"]["seed"] == seed
        return {name: (p["metrics"], p["per_team"], p["events"]) for name, p in data["policies"].items()}

    assert metrics(1) == metrics(1)
    assert metrics(1) != metrics(2)  # the seed is used at all (seed 1 has a node failure, seed 2 none)


# ---------------------------------------------------------------- windows and --limit


@pytest.mark.parametrize(("window", "jobs"), [
    (["--from", "1h"], 3),
    (["--to", "1h"], 2),
    (["--from", "1h", "--to", "2d"], 2),
    (["--from", "3600", "--to", "1d2h30m"], 2),          # plain seconds and compound durations
    (["--from", "2017-10-02"], 2),
    (["--to", "2017-10-02"], 3),
    (["--from", "2017-10-02", "--to", "2017-10-03"], 1),
    (["--from", "2017-10-01T16:00:00Z"], 3),            # 09:00 Pacific: after the first two jobs
])
def test_window(files: dict[str, Path], window: list[str], jobs: int) -> None:
    data = as_json(simulate(files, "--policy", "fifo", "--no-report", "-o", "json", *window))
    assert data["meta"]["jobs"] == jobs
    assert data["policies"]["fifo"]["metrics"]["jobs_finished"] == jobs


@pytest.mark.parametrize("window", [["--from", "2d", "--to", "1h"], ["--from", "1h", "--to", "1h"],
                                    ["--from", "2017-10-02", "--to", "2017-10-01"]])
def test_to_before_from_is_bad_input(files: dict[str, Path], window: list[str]) -> None:
    result = simulate(files, "--no-report", *window)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: --to ({window[3]}) must come after --from ({window[1]})\n"


@pytest.mark.parametrize("window", [["--from", "10d"], ["--to", "0"], ["--from", "2018-01-01"], ["--to", "2017-09-01"]])
def test_window_without_jobs_is_bad_input(files: dict[str, Path], window: list[str]) -> None:
    result = simulate(files, "--no-report", *window)
    assert result.exit_code == 2, result.output
    assert "no job of the trace falls in the window" in result.stderr and "Traceback" not in result.output


def test_window_bound_that_is_neither_duration_nor_date(files: dict[str, Path]) -> None:
    result = simulate(files, "--no-report", "--from", "yesterday")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --from 'yesterday': expected a duration from the trace start")


@pytest.mark.parametrize("limit", [1, 3, 99])
def test_limit_replays_the_first_n_jobs(files: dict[str, Path], limit: int) -> None:
    data = as_json(simulate(files, "--policy", "fifo", "--no-report", "-o", "json", "--limit", str(limit)))
    assert data["meta"]["jobs"] == min(limit, JOBS)


def test_limit_applies_after_the_window(files: dict[str, Path]) -> None:
    data = as_json(simulate(files, "--policy", "fifo", "--no-report", "-o", "json", "--from", "1h", "--limit", "2"))
    assert data["meta"]["jobs"] == 2


def test_limit_must_be_positive(files: dict[str, Path]) -> None:
    result = simulate(files, "--no-report", "--limit", "0")
    assert result.exit_code == 2 and "--limit" in result.stderr and "Traceback" not in result.output


# ---------------------------------------------------------------- progress


def test_progress_on_a_non_terminal_prints_lines_to_stderr(files: dict[str, Path]) -> None:
    data = as_json(simulate(files, "--policy", "fifo,drf", "--no-report", "-o", "json", "--progress"))
    assert list(data["policies"]) == ["fifo", "drf"]  # stdout is still JSON only
    progress = {line.split()[0]: line for line in simulate(files, "--policy", "fifo,drf", "--no-report",
                                                            "--progress").stderr.splitlines()}
    assert set(progress) == {"fifo", "drf"}
    assert all(f"100%  {JOBS}/{JOBS}" in line for line in progress.values())


@pytest.mark.parametrize("flag", [["--no-progress"], []])  # the default: only on a terminal
def test_no_progress_prints_nothing_on_stderr(files: dict[str, Path], flag: list[str]) -> None:
    result = simulate(files, "--policy", "fifo", "--no-report", *flag)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


# ---------------------------------------------------------------- bad input


BAD_ROW = HEADER + "2017-10-01 08:00:00,3600,2,7200,vc1\n2017-10-01 09:00:00,abc,2,7200,vc1\n"
BAD_GPUS = HEADER + "2017-10-01 08:00:00,3600,2.5,7200,vc1\n"
ZERO_ONLY = HEADER + "2017-10-01 08:00:00,0,2,0,vc1\n"


@pytest.mark.parametrize(("case", "trace", "cluster", "args", "expected"), [
    ("unknown policy", None, None, ["--policy", "fifo,bogus"],
     ["--policy: unknown policy 'bogus'; known:", "fifo", "sjf", "las", "drf", "default"]),
    ("no policy", None, None, ["--policy", ","], ["--policy: no policy given"]),
    ("unknown format", None, None, ["--trace", "nope:{trace}"], ["unknown format 'nope'", "philly", "alibaba"]),
    ("no format", None, None, ["--trace", "{trace}"], ["expected FORMAT:PATH"]),
    ("trace missing", None, None, ["--trace", "philly:{tmp}/missing.csv"], ["trace file not found: {tmp}/missing.csv"]),
    ("bad duration", BAD_ROW, None, [], ["{trace}:3: duration:", "'abc'"]),
    ("bad num_gpus", BAD_GPUS, None, [], ["{trace}:2: num_gpus:", "'2.5'"]),
    ("wrong header", "a,b\n1,2\n", None, [], ["{trace}:1: header: expected columns", "is this a Philly"]),
    ("only skipped rows", ZERO_ONLY, None, [], ["no job to replay (rows skipped: 1 zero duration)"]),
    ("cluster missing", None, None, ["--cluster", "{tmp}/nope.yaml"], ["cannot read cluster file {tmp}/nope.yaml"]),
    ("bad field", None, cluster_yaml("    gpus: lots\n    tdp_watts: 300\n"), [],
     ["{cluster}:7: nodes[0].gpus:", "whole number", "run again"]),
    ("negative field", None, cluster_yaml("    gpus: 8\n    tdp_watts: -5\n"), [], ["{cluster}:8: nodes[0].tdp_watts:"]),
    ("unknown field", None, cluster_yaml("    gpus: 8\n    tdp_watts: 300\n    colour: red\n"), [],
     ["{cluster}:9: nodes[0].colour"]),
    ("invalid yaml", None, "kind: Cluster\nname: [tiny\n", [], ["{cluster}:", "invalid YAML"]),
    ("no nodes", None, "kind: Cluster\nname: tiny\ncarbon:\n  intensity: 300\n", [],
     ["{cluster}: nodes: the cluster has no nodes"]),
    ("no power figure", None, cluster_yaml("    gpus: 8\n"), [],
     ["{cluster}: no power figure for GPU type(s) V100", "tdp_watts"]),
    ("no carbon", None, cluster_yaml(rest=""), [], ["{cluster}: carbon:", "intensity"]),
    ("out is a file", None, None, ["--out", "{trace}"], ["--out {trace}: exists and is not a directory"]),
])
def test_bad_input_is_one_message_and_exit_2(files: dict[str, Path], tmp_path: Path, case: str, trace: str | None,
                                             cluster: str | None, args: list[str], expected: list[str]) -> None:
    if trace is not None:
        files["trace"].write_text(trace)
    if cluster is not None:
        files["cluster"].write_text(cluster)
    names = {"trace": files["trace"], "cluster": files["cluster"], "tmp": tmp_path}
    result = simulate(files, *(a.format(**names) for a in args))
    assert result.exit_code == 2, (case, result.output)
    assert "Traceback" not in result.output and "unexpected" not in result.output
    assert result.stdout == ""
    assert result.stderr.count("error:") <= 1 and "submit" not in result.stderr
    for text in expected:
        assert text.format(**names) in result.stderr, (case, result.stderr)


def test_report_that_cannot_be_written_is_one_message(files: dict[str, Path]) -> None:
    result = simulate(files, "--policy", "fifo", "--out", f"{files['trace']}/sub")  # a directory inside a file
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: cannot write the report to {files['trace']}/sub:")
    assert "Traceback" not in result.output and "unexpected" not in result.output


# ---------------------------------------------------------------- --federation
FEDERATION = """\
kind: Cluster
name: dirty
provider: onprem
region: east
gpus: {V100: 8}
gpu_hour_usd: {V100: 3.0}
carbon_intensity: 500
---
kind: Cluster
name: clean
provider: onprem
region: north
gpus: {V100: 8}
gpu_hour_usd: {V100: 3.3}
carbon_intensity: 50
"""


def federate(files: dict[str, Path], *args: str) -> Result:
    fed = files["trace"].parent / "fed.yaml"
    fed.write_text(FEDERATION)
    return invoke("--trace", f"philly:{files['trace']}", "--federation", str(fed), *args)


def test_federation_compares_the_five_policies_on_the_aligned_trace(files: dict[str, Path], tmp_path: Path) -> None:
    # the trace starts on a Sunday 15:00 UTC: aligned, on 2022-03-13 15:00; its last jobs come 2 days later
    result = federate(files, "--from", "2022-03-07", "--to", "2022-03-21", "--out", str(tmp_path / "rep"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "5 jobs over 2 clusters (16 GPUs), 2022-03-07 00:00 UTC .. 2022-03-21 00:00 UTC" in lines[0]
    for name in ("cheapest", "default", "carbon-spatial", "carbon-temporal", "carbon-oracle"):
        assert any(line.startswith(name) for line in lines[2:8]), name
    assert "carbon-spatial   CO2 -90.0%  cost +10.0%" in result.stdout
    data = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert data["policies"]["carbon-spatial"]["per_cluster"]["clean"]["jobs"] == 5


def test_federation_json_output(files: dict[str, Path]) -> None:
    data = as_json(federate(files, "--from", "2022-03-07", "--policy", "default", "--no-report", "-o", "json"))
    assert data["meta"]["window"] == "2022-03-07 00:00 UTC .. 2022-03-14 00:00 UTC (trace aligned: first job 2022-03-13 15:00 UTC)"
    assert data["policies"]["default"]["metrics"]["jobs_finished"] == 3  # the default window is 7 days


@pytest.mark.parametrize(("args", "words"), [
    (("--from", "2022-03-07", "--cluster", "c.yaml"), "either --cluster FILE"),
    ((), "--federation needs --from DATE"),
    (("--from", "March"), "--from 'March': expected a date"),
    (("--from", "2022-03-07", "--to", "2022-03-01"), "must come after --from"),
    (("--from", "2022-03-07", "--policy", "fifo"), "unknown federation policy 'fifo'"),
    (("--from", "2030-01-01", "--to", "2030-01-02"), "no job of the trace falls in the window"),
])
def test_federation_bad_input_is_one_message(files: dict[str, Path], args: tuple[str, ...], words: str) -> None:
    result = federate(files, "--no-report", *args)
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output


def test_carbon_needs_federation(files: dict[str, Path]) -> None:
    result = simulate(files, "--carbon", "x", "--no-report")
    assert result.exit_code == 2 and "--carbon goes with --federation" in result.output
