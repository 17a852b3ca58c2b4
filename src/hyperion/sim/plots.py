"""The PNG plots of a simulation report: CDFs of job completion time and queueing delay, queue
length and GPU utilisation over time, one line per policy. matplotlib (and numpy) are imported
only inside ``write_plots``: importing this module stays cheap and works headless."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hyperion.sim.result import PolicyResult

PLOT_CAPTIONS = {  # file written by write_plots -> caption in report.html
    "jct_cdf.png": "Job completion time: CDF per policy",
    "queue_delay_cdf.png": "Queueing delay: CDF per policy",
    "queue_length.png": "Pending jobs over time",
    "utilisation.png": "GPU utilisation over time",
}
PLOT_NAMES = tuple(PLOT_CAPTIONS)
MAX_CDF_POINTS = 2000      # quantiles drawn per policy
MAX_SERIES_POINTS = 800    # bins drawn per policy and time series (about one per pixel column)


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
        from hyperion.sim.report import format_seconds  # the report's units (it imports this module)

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


