"""PNG charts (matplotlib, Agg): latency percentiles against offered load and
throughput per scenario, and the mixed day's p99 and memory over time."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
from matplotlib.figure import Figure


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def _save(figure: Figure, directory: Path, name: str) -> str:
    """Write the chart as directory/name and let go of it; returns the name."""
    figure.tight_layout()
    figure.savefig(directory / name, dpi=100)
    plt.close(figure)
    return name


def _points(runs: Sequence[Mapping[str, Any]], scenario: str) -> dict[str, list[dict[str, float]]]:
    """Per configuration, one point per offered rate: the median over its runs."""
    by_rate: dict[str, dict[float, list[Mapping[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for run in runs:
        if run["scenario"] == scenario and run["phase"] in ("probe", "run"):
            by_rate[str(run["label"])][float(run["offered_rate"])].append(run)
    return {
        label: [
            {
                "offered_rate": rate,
                "p50_ms": float(statistics.median(r["latency"]["p50_ms"] for r in group)),
                "p99_ms": float(statistics.median(r["latency"]["p99_ms"] for r in group)),
                "throughput": float(statistics.median(r["throughput"] for r in group)),
            }
            for rate, group in sorted(rates.items())
        ]
        for label, rates in by_rate.items()
    }


def load_charts(runs: Sequence[Mapping[str, Any]], directory: Path) -> list[str]:
    """Two charts per scenario that has load runs; returns the file names."""
    written: list[str] = []
    scenarios = sorted({str(r["scenario"]) for r in runs})
    for scenario in scenarios:
        series = _points(runs, scenario)
        if not series:
            continue
        figure, axis = plt.subplots(figsize=(8, 5))
        for label, points in series.items():
            offered = [float(p["offered_rate"]) for p in points]
            line = axis.plot(
                offered, [p["p99_ms"] for p in points], marker="o", label=f"{label} p99"
            )[0]
            axis.plot(
                offered,
                [p["p50_ms"] for p in points],
                marker=".",
                linestyle="--",
                color=line.get_color(),
                label=f"{label} p50",
            )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("offered load (requests/s)")
        axis.set_ylabel("latency from intended send time (ms)")
        axis.set_title(f"{scenario}: latency percentiles against offered load")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
        written.append(_save(figure, directory, f"latency_{_slug(scenario)}.png"))

        figure, axis = plt.subplots(figsize=(8, 5))
        highest = 0.0
        for label, points in series.items():
            offered = [float(p["offered_rate"]) for p in points]
            highest = max(highest, *offered)
            axis.plot(offered, [p["throughput"] for p in points], marker="o", label=label)
        axis.plot([0, highest], [0, highest], color="grey", linestyle=":", label="offered")
        axis.set_xlabel("offered load (requests/s)")
        axis.set_ylabel("successful answers/s")
        axis.set_title(f"{scenario}: throughput")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="small")
        written.append(_save(figure, directory, f"throughput_{_slug(scenario)}.png"))
    return written


def mixed_chart(
    windows: Mapping[str, Mapping[str, float]],
    window_s: float,
    memory: Mapping[str, Sequence[Sequence[float]]],
    directory: Path,
) -> str:
    """p99 per window and every service's RSS over the mixed day."""
    figure, (latency_axis, memory_axis) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    indexes = sorted(int(i) for i in windows)
    latency_axis.plot(
        [i * window_s for i in indexes],
        [windows[str(i)]["p99_ms"] for i in indexes],
        marker="o",
        label="p99",
    )
    latency_axis.plot(
        [i * window_s for i in indexes],
        [windows[str(i)]["p50_ms"] for i in indexes],
        marker=".",
        linestyle="--",
        label="p50",
    )
    latency_axis.set_ylabel("latency (ms)")
    latency_axis.set_title("mixed day: latency per window")
    latency_axis.grid(True, alpha=0.3)
    latency_axis.legend(fontsize="small")
    for service, points in sorted(memory.items()):
        memory_axis.plot([p[0] for p in points], [p[1] for p in points], label=service)
    memory_axis.set_xlabel("seconds into the run")
    memory_axis.set_ylabel("RSS (MiB)")
    memory_axis.set_title("memory per service")
    memory_axis.grid(True, alpha=0.3)
    memory_axis.legend(fontsize="x-small", ncol=2)
    return _save(figure, directory, "mixed_day_over_time.png")
