"""The report of ``hyperion simulate``: the policies compared on one trace, as a terminal table,
a Markdown table (docs/benchmarks.md), JSON, PNG plots and one self-contained HTML page.

Every view formats values through ``format_value`` and builds its rows through
``_comparison_cells``, so the terminal, Markdown and HTML tables agree. matplotlib (and numpy)
are imported only inside the plotting functions: importing this module stays cheap and headless.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hyperion.sim.result import METRICS, Metric, PolicyResult

METRICS_BY_KEY: dict[str, Metric] = {metric.key: metric for metric in METRICS}
INDEX_METRIC_KEYS = frozenset({"jain_index"})  # unitless values in [0, 1], not counts
PLOT_CAPTIONS = {  # file written by write_plots -> caption in report.html
    "jct_cdf.png": "Job completion time: CDF per policy",
    "queue_delay_cdf.png": "Queueing delay: CDF per policy",
    "queue_length.png": "Pending jobs over time",
    "utilisation.png": "GPU utilisation over time",
}
PLOT_NAMES = tuple(PLOT_CAPTIONS)
MAX_CDF_POINTS = 2000      # quantiles drawn per policy
MAX_SERIES_POINTS = 800    # bins drawn per policy and time series (about one per pixel column)


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
                "wall_s": _json_ready(result.wall_s),
                "events": _json_ready(result.events),
            }
            for name, result in zip(_unique_names(results), results, strict=True)
        },
    }


# ---------------------------------------------------------------- plots

_DURATION_TICKS = (  # about a factor of 6-10 apart, so that labels do not crowd
    (1, "1 s"), (10, "10 s"), (60, "1 min"), (600, "10 min"), (3600, "1 h"), (6 * 3600, "6 h"), (86400, "1 d"),
    (7 * 86400, "7 d"), (30 * 86400, "30 d"), (365 * 86400, "1 y"),
)


def _cdf_points(values: Sequence[float], floor_s: float) -> tuple[Any, Any] | None:
    """(sorted values, fraction of values <= each), at most MAX_CDF_POINTS evenly spaced quantiles."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    data = np.sort(data[np.isfinite(data)])
    if data.size == 0:
        return None
    index = np.unique(np.linspace(0, data.size - 1, min(data.size, MAX_CDF_POINTS)).round().astype(int))
    return np.maximum(data[index], floor_s), (index + 1) / data.size


def _binned_step_series(points: Sequence[tuple[float, float]]) -> tuple[Any, Any, float]:
    """(times, values, bin width s) of a step series (each value holds until the next sample):
    unchanged when short, else the time-weighted mean over MAX_SERIES_POINTS equal bins (bin width 0: unbinned)."""
    import numpy as np

    samples = np.asarray(points, dtype=float).reshape(-1, 2)
    samples = samples[np.argsort(samples[:, 0], kind="stable")]
    times, values = samples[:, 0], samples[:, 1]
    if times.size <= MAX_SERIES_POINTS or times[-1] <= times[0]:
        return times, values, 0.0
    area_before = np.concatenate(([0.0], np.cumsum(values[:-1] * np.diff(times))))
    edges = np.linspace(times[0], times[-1], MAX_SERIES_POINTS + 1)
    sample = np.clip(np.searchsorted(times, edges, side="right") - 1, 0, times.size - 1)
    area = area_before[sample] + values[sample] * (edges - times[sample])
    return edges[:-1], np.diff(area) / np.diff(edges), float(edges[1] - edges[0])


def _new_axes(title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # no pyplot: nothing global to leak or close

    figure = Figure(figsize=(9, 5), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    return figure, axes


def _legend_label(text: str) -> str:
    """``text`` shown literally: "$" would start mathtext, a leading "_" hides the entry."""
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _save(figure: Any, axes: Any, path: Path) -> Path:
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="best", fontsize="small")
    else:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center", color="grey")
    figure.savefig(path, dpi=100)
    figure.clear()
    return path


def _plot_cdf(results: Sequence[PolicyResult], attribute: str, what: str, path: Path) -> Path:
    from matplotlib.ticker import NullFormatter

    floor_s = 1.0
    figure, axes = _new_axes(f"CDF of {what} per policy", f"{what} (log scale; under 1 s drawn at 1 s)",
                             "fraction of jobs at or below")
    drawn = []
    for result in results:
        values = getattr(result, attribute)
        cdf = _cdf_points(values, floor_s)
        if cdf is not None:
            label = _legend_label(f"{result.policy} (n={len(values):,})")
            axes.step(cdf[0], cdf[1], where="post", linewidth=1.4, label=label)
            drawn.append(cdf[0])
    axes.set_ylim(0, 1.01)
    if drawn:
        axes.set_xscale("log")
        low, high = min(float(x[0]) for x in drawn), max(float(x[-1]) for x in drawn)
        axes.set_xticks([tick for tick, _ in _DURATION_TICKS], [label for _, label in _DURATION_TICKS])
        axes.set_xlim(low / 1.3, max(high * 1.3, low * 2))  # after set_xticks, which widens the limits to every tick
        axes.xaxis.set_minor_formatter(NullFormatter())
    return _save(figure, axes, path)


def _plot_series(results: Sequence[PolicyResult], series: str, title: str, ylabel: str, scale: float, path: Path) -> Path:
    figure, axes = _new_axes(title, "days since trace start", ylabel)
    bin_widths = []
    for result in results:
        points = result.series.get(series)
        if points:
            times, values, bin_width = _binned_step_series(points)
            axes.step(times / 86400, values * scale, where="post", linewidth=1.1, label=_legend_label(result.policy))
            bin_widths.append(bin_width)
    if any(bin_widths):
        axes.set_title(f"{title} (time-weighted mean per {format_seconds(max(bin_widths))} bin)")
    return _save(figure, axes, path)


def write_plots(results: list[PolicyResult], out_dir: Path) -> list[Path]:
    """The four PNGs of PLOT_NAMES in ``out_dir`` (a plot with no data says so), in that order."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    jct, delay, queue, utilisation = (out_dir / name for name in PLOT_NAMES)
    return [
        _plot_cdf(results, "jct_s", "job completion time", jct),
        _plot_cdf(results, "queue_delay_s", "queueing delay", delay),
        _plot_series(results, "queue_length", "Pending jobs over time", "pending jobs", 1.0, queue),
        _plot_series(results, "utilisation", "GPU utilisation over time", "GPU utilisation (%)", 100.0, utilisation),
    ]


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
        "<h2>Per team</h2>",
    ]
    for result in results:
        summary = f"{result.policy}: {len(result.per_team)} team(s)"
        parts.append(f"<details><summary>{escape(summary)}</summary>{_per_team_table(result)}</details>")
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
