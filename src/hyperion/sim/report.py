"""The report of ``hyperion simulate``: the policies compared on one trace, as a terminal table,
a Markdown table (docs/benchmarks.md), JSON, PNG plots and one self-contained HTML page.

Every view formats values through ``format_value`` and builds its rows through
``_comparison_cells``, so the terminal, Markdown and HTML tables agree. The plots are drawn by
``sim/plots.py``.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hyperion.sim.plots import PLOT_CAPTIONS, PLOT_NAMES, write_plots
from hyperion.sim.result import METRICS, Metric, PolicyResult

__all__ = ["METRICS_BY_KEY", "PLOT_NAMES", "comparison_markdown", "comparison_table", "format_seconds",
           "format_value", "to_json", "write_html", "write_plots", "write_report"]

METRICS_BY_KEY: dict[str, Metric] = {metric.key: metric for metric in METRICS}
INDEX_METRIC_KEYS = frozenset({"jain_index"})  # unitless values in [0, 1], not counts


# ---------------------------------------------------------------- values and tables


def format_seconds(seconds: float) -> str:
    """A duration in the largest unit that keeps it readable: "0.4 s", "42 s", "13.2 min", "5.1 h", "3.2 d"."""
    size = abs(seconds)
    if size < 1 and seconds != 0:
        return f"{seconds:.2g} s"
    if size < 10:
        return f"{seconds:.1f} s" if seconds != round(seconds) else f"{seconds:.0f} s"
    if size < 120:
        return f"{seconds:.0f} s"
    if size < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if size < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.1f} d"


def _format_quantity(value: float) -> str:
    """Thousands separators, fewer decimals the larger the value: "0.42", "12.3", "12,345"."""
    size = abs(value)
    if size >= 100 or value == 0:
        return f"{value:,.0f}"
    return f"{value:.1f}" if size >= 10 else f"{value:.2f}"


def format_value(metric: Metric, value: float | None) -> str:
    """``value`` of ``metric`` in human units; NaN (or a missing value) is "-"."""
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    unit = metric.unit
    if unit == "s":
        return format_seconds(value)
    if unit == "%":
        return f"{value * 100:.1f} %"
    if unit == "USD":
        sign = "-" if value < 0 else ""
        return f"{sign}${abs(value):,.0f}" if abs(value) >= 100 else f"{sign}${abs(value):.2f}"
    if unit in ("h", "kWh", "kg"):
        return f"{_format_quantity(value)} {unit}"
    if unit == "":
        return f"{value:.3f}" if metric.key in INDEX_METRIC_KEYS else f"{round(value):,}"
    return f"{value:,.4g} {unit}"


def _format_any(key: str, value: float | None) -> str:
    """A metric value that may not be in ``METRICS`` (per-team tables can carry their own keys)."""
    metric = METRICS_BY_KEY.get(key)
    if metric is not None:
        return format_value(metric, value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.4g}" if isinstance(value, int | float) else str(value)


def _chosen_metrics(results: Sequence[PolicyResult], metrics: Sequence[str] | None) -> list[Metric]:
    if metrics is None:  # every metric that at least one run reports, in METRICS order
        return [m for m in METRICS if any(m.key in result.metrics for result in results)]
    unknown = [key for key in metrics if key not in METRICS_BY_KEY]
    if unknown:
        raise KeyError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS_BY_KEY)}")
    return [METRICS_BY_KEY[key] for key in metrics]


def _comparison_cells(results: Sequence[PolicyResult], metrics: Sequence[str] | None) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per policy) of formatted cells; the first column is the policy."""
    chosen = _chosen_metrics(results, metrics)
    header = ["policy", *(metric.label for metric in chosen)]
    rows = [[result.policy, *(format_value(m, result.metrics.get(m.key)) for m in chosen)] for result in results]
    return header, rows


def comparison_table(results: list[PolicyResult], metrics: tuple[str, ...] | None = None) -> str:
    """Plain-text table for a terminal: policy left-aligned, values right-aligned."""
    header, rows = _comparison_cells(results, metrics)
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))])

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def comparison_markdown(results: list[PolicyResult], metrics: tuple[str, ...] | None = None) -> str:
    """The same table in Markdown (values right-aligned)."""
    header, rows = _comparison_cells(results, metrics)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    rule = "|" + "|".join([":---", *("---:" for _ in header[1:])]) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


# ---------------------------------------------------------------- JSON


def _json_ready(value: Any) -> Any:
    """``value`` with NaN/inf as None, tuples as lists and anything else unknown as its str."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_ready(item) for item in value]
    if hasattr(value, "item"):  # a numpy scalar
        return _json_ready(value.item())
    return str(value)


def _unique_names(results: Sequence[PolicyResult]) -> list[str]:
    """Policy names, a repeated one suffixed " (2)", " (3)"... so that JSON keys do not collide."""
    seen: dict[str, int] = {}
    names = []
    for result in results:
        seen[result.policy] = seen.get(result.policy, 0) + 1
        names.append(result.policy if seen[result.policy] == 1 else f"{result.policy} ({seen[result.policy]})")
    return names


def to_json(results: list[PolicyResult], meta: dict) -> dict:
    """Summary for results.json: the metrics and per-team metrics of each policy, not per-job data."""
    return {
        "meta": _json_ready(meta),
        "metrics": [{"key": m.key, "label": m.label, "unit": m.unit, "definition": m.definition} for m in METRICS],
        "policies": {
            name: {
                "metrics": _json_ready(result.metrics),
                "per_team": _json_ready(result.per_team),
                **({"per_cluster": _json_ready(result.per_cluster)} if result.per_cluster else {}),
                "wall_s": _json_ready(result.wall_s),
                "events": _json_ready(result.events),
            }
            for name, result in zip(_unique_names(results), results, strict=True)
        },
    }


# ---------------------------------------------------------------- HTML

_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{padding:.25em .7em;border-bottom:1px solid #ddd}
th{background:#f3f3f3;text-align:left}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafafa}img{max-width:100%}details{margin:.4em 0}summary{cursor:pointer}
code{background:#f3f3f3;padding:0 .2em}dt{font-weight:600;margin-top:.5em}"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(f"<{tag}{'' if i == 0 else ' class=num'}>{html.escape(v)}</{tag}>" for i, v in enumerate(values))

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"


def _per_team_table(result: PolicyResult) -> str:
    keys = {key for values in result.per_team.values() for key in values}
    ordered = [m.key for m in METRICS if m.key in keys] + sorted(keys - METRICS_BY_KEY.keys())
    header = ["team", *(METRICS_BY_KEY[key].label if key in METRICS_BY_KEY else key for key in ordered)]
    rows = [[team, *(_format_any(key, values.get(key)) for key in ordered)] for team, values in sorted(result.per_team.items())]
    return _html_table(header, rows)


def write_html(results: list[PolicyResult], out_dir: Path, meta: dict, plots: list[Path]) -> Path:
    """report.html in ``out_dir``: meta, comparison, per-team tables, plots (embedded) and metric definitions."""
    escape = html.escape
    title = "Hyperion simulation report" + (f": {meta['trace']}" if meta.get("trace") else "")
    meta_rows = [[str(key), value if isinstance(value, str) else json.dumps(_json_ready(value))] for key, value in meta.items()]
    runs = [[name, f"{r.events:,}", format_seconds(r.wall_s), f"{r.events / r.wall_s:,.0f}" if r.wall_s > 0 else "-"]
            for name, r in zip(_unique_names(results), results, strict=True)]
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        "<h2>Run</h2>", "<table>" + "".join(f"<tr><th>{escape(k)}</th><td><code>{escape(v)}</code></td></tr>" for k, v in meta_rows)
        + "</table>",
        "<h2>Comparison</h2>", _html_table(*_comparison_cells(results, None)),
        _html_table(["policy", "events", "wall clock", "events/s"], runs),
    ]
    if any(r.per_team for r in results):
        parts.append("<h2>Per team</h2>")
    for result in (r for r in results if r.per_team):
        summary = f"{result.policy}: {len(result.per_team)} team(s)"
        parts.append(f"<details><summary>{escape(summary)}</summary>{_per_team_table(result)}</details>")
    if any(r.per_cluster for r in results):
        parts.append("<h2>Per cluster</h2>")
        for result in results:
            rows = [[name, *(_format_any(k, v) for k, v in values.items())] for name, values in result.per_cluster.items()]
            header = ["cluster", *next(iter(result.per_cluster.values()), {}).keys()]
            parts.append(f"<details><summary>{escape(result.policy)}</summary>{_html_table(header, rows)}</details>")
    parts.append("<h2>Plots</h2>")
    for plot in plots:
        encoded = base64.b64encode(Path(plot).read_bytes()).decode("ascii")
        caption = escape(PLOT_CAPTIONS.get(Path(plot).name, Path(plot).stem))
        parts.append(f"<figure><img src=\"data:image/png;base64,{encoded}\" alt=\"{caption}\"><figcaption>{caption}</figcaption></figure>")
    parts.append("<h2>Metric definitions</h2><dl>")
    for metric in METRICS:
        unit = f", {metric.unit}" if metric.unit else ""
        term = f"{escape(metric.label)} (<code>{escape(metric.key)}</code>{escape(unit)})"
        parts.append(f"<dt>{term}</dt><dd>{escape(metric.definition)}</dd>")
    parts.append("</dl></body></html>\n")
    path = Path(out_dir) / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def write_report(results: list[PolicyResult], out_dir: Path, meta: dict) -> list[Path]:
    """Creates ``out_dir`` and writes the plots, report.html and results.json into it; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(results, out_dir)
    page = write_html(results, out_dir, meta, plots)
    summary = out_dir / "results.json"
    summary.write_text(json.dumps(to_json(results, meta), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return [*plots, page, summary]
