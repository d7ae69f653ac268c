"""The growth chart: size relative to the first backup, bytes added per run, file count."""

from __future__ import annotations

import io
import itertools
import json
from datetime import datetime
from pathlib import Path

from homekeep.backup.store import Run


def points(runs: list[Run]) -> list[dict[str, object]]:
    """One point per finished run that recorded a total size."""
    done = [r for r in runs if r.total_size is not None and r.finished_at]
    if not done:
        return []
    first = done[0].total_size or 1
    return [
        {
            "run": r.id,
            "job": r.job,
            "time": r.finished_at,
            "total_size": r.total_size,
            "relative": (r.total_size or 0) / first if first else 0.0,
            "bytes_added": r.bytes_added or 0,
            "files": r.files_total or 0,
        }
        for r in done
    ]


def render(series: dict[str, list[Run]]) -> bytes:
    """A PNG of one or more jobs; the plotted points ride along in the PNG's metadata."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    files_axis = top.twinx()
    plotted: dict[str, list[dict[str, object]]] = {}
    for job, runs in series.items():
        pts = points(runs)
        plotted[job] = pts
        if not pts:
            continue
        times = [datetime.fromisoformat(str(p["time"])) for p in pts]
        days = [t.timestamp() / 86400 for t in times]  # matplotlib dates count days
        gaps = [b - a for a, b in itertools.pairwise(days) if b > a]
        width = 0.6 * min(gaps) if gaps else 1 / 24
        top.plot(times, [p["relative"] for p in pts], marker="o", label=f"{job}: size")
        files_axis.plot(
            times,
            [p["files"] for p in pts],
            linestyle="--",
            marker=".",
            alpha=0.6,
            label=f"{job}: files",
        )
        bottom.bar(times, [int(str(p["bytes_added"])) / 2**20 for p in pts], width=width, label=job)
    top.set_ylabel("size relative to first backup")
    files_axis.set_ylabel("files")
    files_axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylabel("MiB added per run")
    bottom.axhline(0, color="gray", linewidth=0.5)
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    top.set_title("Backup growth")
    if any(plotted.values()):
        lines, labels = top.get_legend_handles_labels()
        more, more_labels = files_axis.get_legend_handles_labels()
        top.legend(lines + more, labels + more_labels, loc="upper left", fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Description": json.dumps(plotted)})
    plt.close(fig)
    return buf.getvalue()


def write(series: dict[str, list[Run]], output: Path) -> int:
    """Write the chart atomically; return the number of points."""
    data = render(series)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(output)
    return sum(len(points(runs)) for runs in series.values())
