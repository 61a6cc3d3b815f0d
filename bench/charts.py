"""PNG charts for docs/benchmarks.md, drawn with matplotlib from result records.

Only what a table shows less well: throughput side by side per workload,
latency percentiles on a log scale, and the growth curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.common import Result

COLORS = {
    "dovecote": "#1f6feb",
    "tansu": "#d29922",
    "nats": "#2da44e",
    "redis": "#cf222e",
    "rabbitmq": "#8250df",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _color(system: str) -> str:
    return COLORS.get(system.split()[0], "#6e7781")


def grouped_bars(
    path: Path,
    title: str,
    groups: Sequence[str],
    systems: Sequence[str],
    values: dict[tuple[str, str], Result],
    ylabel: str,
    log: bool = False,
) -> Path:
    """One cluster of bars per group, one bar per system, min..max as error bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(groups) + 2), 4.2), dpi=110)
    width = 0.8 / max(1, len(systems))
    for i, system in enumerate(systems):
        xs, ys, lo, hi = [], [], [], []
        for j, group in enumerate(groups):
            r = values.get((group, system))
            if r is None:
                continue
            xs.append(j + (i - (len(systems) - 1) / 2) * width)
            ys.append(r.figure)
            lo.append(r.figure - r.spread.get("min", r.figure))
            hi.append(r.spread.get("max", r.figure) - r.figure)
        if xs:
            ax.bar(xs, ys, width, label=system, color=_color(system), yerr=[lo, hi], capsize=2)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def lines(
    path: Path,
    title: str,
    panels: Sequence[tuple[str, dict[str, list[tuple[float, float]]]]],
    ylabel: str,
) -> Path:
    """One panel per (x label, {system: [(x, y), ...]}), log x axis."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), dpi=110)
    if len(panels) == 1:
        axes = [axes]
    for ax, (xlabel, series) in zip(axes, panels, strict=True):
        for system, points in series.items():
            points = sorted(points)
            ax.plot(
                [x for x, _ in points],
                [y for _, y in points],
                marker="o",
                label=system,
                color=_color(system),
            )
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
