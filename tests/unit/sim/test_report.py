"""The simulator report: value formatting, the comparison tables, JSON, the files of write_report
and the progress bar."""

from __future__ import annotations

import html
import io
import json
import math
import random

import pytest

from hyperion.sim.progress import Progress
from hyperion.sim.report import (
    METRICS_BY_KEY,
    PLOT_NAMES,
    comparison_markdown,
    comparison_table,
    format_value,
    to_json,
    write_report,
)
from hyperion.sim.result import FEDERATION_ONLY, METRICS, PolicyResult

NAN = float("nan")


def make_result(policy: str, seed: int = 0, jobs: int = 300, samples: int = 200) -> PolicyResult:
    """A run with plausible values for every metric, per-job arrays and both time series."""
    rng = random.Random(seed)
    metrics = {
        "jobs_finished": float(jobs), "jct_mean_s": 5400.0 + seed, "jct_p50_s": 1800.0, "jct_p99_s": 3.5 * 86400,
        "queue_delay_mean_s": 42.0, "queue_delay_p50_s": 0.0, "queue_delay_p99_s": 7200.0, "makespan_s": 9 * 86400,
        "utilisation": 0.734, "jain_index": 0.91234, "max_share_deviation": 0.052, "preemptions": 17.0, "interruptions": 3.0,
        "pending_mean_s": 40.0, "energy_cost_usd": 321.0,
        "gpu_hours_lost": 123.4, "cost_usd": 12345.6, "energy_kwh": 45678.9, "carbon_kg": NAN,
    }
    step = 9 * 86400 / max(samples, 1)
    return PolicyResult(
        policy=policy,
        metrics=metrics,
        jct_s=tuple(rng.lognormvariate(8, 2) for _ in range(jobs)),
        queue_delay_s=tuple(0.0 if rng.random() < 0.4 else rng.expovariate(1 / 600) for _ in range(jobs)),
        series={
            "utilisation": tuple((i * step, rng.random()) for i in range(samples)),
            "queue_length": tuple((i * step, float(rng.randrange(50))) for i in range(samples)),
        },
        per_team={"vision": {"jct_mean_s": 3600.0, "utilisation": 0.5}, "nlp": {"jct_mean_s": NAN, "gpu_share": 0.25}},
        wall_s=1.5,
        events=12345,
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("jct_mean_s", 42.0, "42 s"),
        ("jct_mean_s", 0.25, "0.25 s"),
        ("jct_mean_s", 792.0, "13.2 min"),
        ("jct_mean_s", 5.1 * 3600, "5.1 h"),
        ("makespan_s", 3.2 * 86400, "3.2 d"),
        ("utilisation", 0.734, "73.4 %"),
        ("max_share_deviation", 0.0, "0.0 %"),
        ("cost_usd", 12345.4, "$12,345"),
        ("cost_usd", 3.5, "$3.50"),
        ("energy_kwh", 45678.9, "45,679 kWh"),
        ("carbon_kg", 12.34, "12.3 kg"),
        ("gpu_hours_lost", 1.234, "1.23 h"),
        ("jobs_finished", 82247.0, "82,247"),
        ("preemptions", 3.0, "3"),
        ("jain_index", 0.91234, "0.912"),
        ("jain_index", 1.0, "1.000"),
        ("jct_p99_s", NAN, "-"),
        ("cost_usd", NAN, "-"),
    ],
)
def test_format_value(key: str, value: float, expected: str) -> None:
    assert format_value(METRICS_BY_KEY[key], value) == expected


def test_comparison_table_has_every_policy_and_label_aligned() -> None:
    results = [make_result("fifo"), make_result("fair-share", seed=1), make_result("gavel", seed=2)]
    table = comparison_table(results)
    lines = table.splitlines()
    assert len(lines) == 2 + len(results)
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header
    for result in results:
        assert any(line.startswith(result.policy) for line in lines[2:])
    for metric in (m for m in METRICS if m.key not in FEDERATION_ONLY):
        assert metric.label in lines[0]
    assert "73.4 %" in table and "$12,346" in table


def test_comparison_table_chosen_metrics_and_unknown_key() -> None:
    table = comparison_table([make_result("fifo")], metrics=("utilisation", "cost_usd"))
    assert table.splitlines()[0].split() == ["policy", "util", "cost"]
    with pytest.raises(KeyError, match="no_such_metric"):
        comparison_table([make_result("fifo")], metrics=("no_such_metric",))


def test_comparison_markdown_matches_table_cells() -> None:
    markdown = comparison_markdown([make_result("fifo"), make_result("a|b", seed=1)])
    lines = markdown.splitlines()
    assert lines[0].startswith("| policy | jobs | JCT avg |")
    assert lines[1].startswith("|:---|---:|")
    assert lines[3].startswith("| a\\|b |")  # a pipe in a name does not split the cell
    assert "73.4 %" in lines[2]


def test_to_json_round_trips_with_nan_as_null() -> None:
    results = [make_result("fifo"), make_result("fifo", seed=1)]
    meta = {"trace": "philly:/data/philly.csv", "seed": 7, "window": (0.0, float("inf"))}
    data = json.loads(json.dumps(to_json(results, meta), allow_nan=False))
    assert data["meta"] == {"trace": "philly:/data/philly.csv", "seed": 7, "window": [0.0, None]}
    assert [m["key"] for m in data["metrics"]] == [m.key for m in METRICS]
    assert set(data["policies"]) == {"fifo", "fifo (2)"}  # a repeated name does not overwrite
    fifo = data["policies"]["fifo"]
    assert fifo["metrics"]["carbon_kg"] is None and fifo["metrics"]["utilisation"] == 0.734
    assert fifo["per_team"]["nlp"]["jct_mean_s"] is None
    assert fifo["wall_s"] == 1.5 and fifo["events"] == 12345
    assert "jct_s" not in fifo and "series" not in fifo


def test_write_report_writes_plots_html_and_json(tmp_path) -> None:
    names = ("fifo", "<b>x", "_$cost$")  # "$" and a leading "_" mean something to matplotlib labels
    results = [*(make_result(name, seed=i) for i, name in enumerate(names)), make_result("no-data", jobs=0, samples=0)]
    meta = {"trace": "philly:<trace>.csv", "cluster": "c.yaml", "seed": 1, "command": "hyperion simulate --x"}
    out_dir = tmp_path / "report"
    paths = write_report(results, out_dir, meta)
    assert sorted(p.name for p in paths) == sorted([*PLOT_NAMES, "report.html", "results.json"])
    for name in PLOT_NAMES:
        assert (out_dir / name).read_bytes().startswith(b"\x89PNG")
    page = (out_dir / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(PLOT_NAMES)
    assert "fifo" in page and "&lt;b&gt;x" in page and "<b>x" not in page
    assert "philly:&lt;trace&gt;.csv" in page
    assert "<details>" in page and "Metric definitions" in page
    assert all(html.escape(m.definition) in page for m in METRICS)
    assert "http://" not in page and "https://" not in page  # nothing fetched: works offline
    data = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    assert set(data["policies"]) == {"fifo", "<b>x", "no-data", "_$cost$"}


def test_progress_enabled_writes_bar_and_eta() -> None:
    stream = io.StringIO()
    with Progress(82247, "sim fifo", stream=stream, enabled=True) as progress:
        progress.update(37012, note="day 3")
    text = stream.getvalue()
    assert "sim fifo [" in text and "37,012/82,247" in text and "day 3" in text
    assert text.endswith("\n")  # close ended the line (a stream that is not a TTY gets whole lines)


def test_progress_prints_a_line_per_ten_percent_off_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(1000, "run", stream=stream, enabled=True) as progress:
        for done in range(0, 1001, 5):
            progress.update(done)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert "100%" in lines[-1] and "1,000/1,000" in lines[-1]


def test_progress_redraws_in_place_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    with Progress(10, "run", stream=stream) as progress:  # enabled because it is a TTY
        progress.update(4, note="a much longer note")
    text = stream.getvalue()
    assert text.startswith("\r") and text.count("\n") == 1 and "in 0 s" in text
    assert math.isclose(progress.fraction(), 0.4)


def test_progress_disabled_is_silent() -> None:
    stream = io.StringIO()  # not a TTY, so disabled by default
    with Progress(100, "run", stream=stream) as progress:
        for done in range(101):
            progress.update(done)
    with Progress(100, "run", stream=stream, enabled=False) as progress:
        progress.update(50)
    assert stream.getvalue() == ""
