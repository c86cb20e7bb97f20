"""The compare report's charts, drawn with matplotlib and returned as PNG bytes.

``matplotlib.figure.Figure`` is used directly rather than pyplot: no global state, no GUI
backend to pick, safe on a machine with no screen.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

SERVER_COLOUR = "#4c72b0"
EDGE_COLOURS = ("#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def latency_chart(document: dict[str, Any]) -> bytes:
    """p50 per way of answering, with p90 as a whisker and the device prediction's band."""
    from matplotlib.figure import Figure

    latency = document["server"]["latency"]
    rows: list[tuple[str, float, float, float, str]] = [
        ("server, measured (HTTP)", latency["measured"]["p50_ms"], 0.0, latency["measured"]["p90_ms"], SERVER_COLOUR),
    ]
    if latency["link"]["rtt_ms"] or latency["link"]["transfer_ms"]:
        rows.append(
            (f"server + {latency['link']['described']}", latency["with_link"]["p50_ms"], 0.0,
             latency["with_link"]["p90_ms"], SERVER_COLOUR)
        )  # fmt: skip
    for i, edge in enumerate(document["edge"]):
        colour = EDGE_COLOURS[i % len(EDGE_COLOURS)]
        name = Path(edge["artifact"]).name
        here = edge["latency"]["here"]
        rows.append((f"{name}, here", here["p50_ms"], 0.0, here["p90_ms"], colour))
        device = edge["latency"]["device"]
        if device:
            rows.append((f"{name}, on {document['device']} (predicted)", device["latency_ms"], device["low_ms"],
                         device["high_ms"], colour))  # fmt: skip
    figure = Figure(figsize=(8, 0.55 * len(rows) + 1.2))
    axes = figure.subplots()
    positions = np.arange(len(rows))[::-1]
    for y, (label, value, low, high, colour) in zip(positions, rows, strict=True):
        hatch = "//" if "predicted" in label else None
        axes.barh(y, value, color=colour, alpha=0.85, hatch=hatch, edgecolor="white")
        lower = value - low if low else 0.0
        axes.errorbar(value, y, xerr=[[lower], [max(high - value, 0.0)]], color="#333333", capsize=3, lw=1)
        axes.text(value, y + 0.3, f" {value:.2f} ms", va="center", fontsize=8)
    axes.set_yticks(positions, [r[0] for r in rows], fontsize=8)
    axes.set_xlabel("latency per sample, ms (bar: p50; whisker: p90, or the prediction's low–high band)")
    axes.set_title("Latency: server over HTTP versus the edge")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def break_even_title(crossovers: list[float]) -> str:
    """A crossing only where there is one: an edge faster at every RTT has no break-even."""
    if crossovers:
        return "Break-even: above the crossing the edge answers sooner"
    return "No break-even: the edge answers sooner at every round-trip time"


def break_even_chart(document: dict[str, Any]) -> bytes:
    """End-to-end latency against round-trip time: the server's line rises, the edge's is flat."""
    from matplotlib.figure import Figure

    edges = document["edge"]
    crossovers = [e["break_even"]["crossover_rtt_ms"] for e in edges if e["break_even"]["crossover_rtt_ms"]]
    top = max([200.0, document["link"]["rtt_ms"] * 1.5, *(c * 2 for c in crossovers)])
    rtt = np.linspace(0, top, 200)
    figure = Figure(figsize=(8, 4.2))
    axes = figure.subplots()
    first = edges[0]["break_even"]
    axes.plot(rtt, first["server_ms"] + first["transfer_ms"] + rtt, color=SERVER_COLOUR, lw=2,
              label="server: measured answer + transfer + RTT")  # fmt: skip
    for i, edge in enumerate(edges):
        colour = EDGE_COLOURS[i % len(EDGE_COLOURS)]
        even = edge["break_even"]
        where = edge["latency"]["compared_basis"]
        axes.axhline(even["edge_ms"], color=colour, lw=2, ls="--", label=f"{Path(edge['artifact']).name} ({where})")
        crossover = even["crossover_rtt_ms"]
        if crossover is not None:
            axes.plot([crossover], [even["edge_ms"]], "o", color=colour, ms=8)
            axes.annotate(f"break-even {crossover:.1f} ms RTT", (crossover, even["edge_ms"]),
                          textcoords="offset points", xytext=(8, -14), fontsize=8, color=colour)  # fmt: skip
    if document["link"]["rtt_ms"]:
        axes.axvline(document["link"]["rtt_ms"], color="#888888", lw=1, ls=":", label="--rtt given")
    axes.set_xlim(0, top)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("round-trip time to the server, ms")
    axes.set_ylabel("end-to-end latency per sample, ms")
    axes.set_title(break_even_title(crossovers))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    return _png(figure)


def drift_chart(edge: dict[str, Any]) -> bytes:
    """Edge confusion matrix minus the server's: where samples moved between classes."""
    from matplotlib.figure import Figure

    drift = edge["quality"]["drift"]
    difference = np.asarray(drift["difference"])
    labels = drift["labels"]
    size = max(3.5, 0.45 * len(labels) + 1.5)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.subplots()
    limit = max(1, int(np.abs(difference).max()))
    image = axes.imshow(difference, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (row, col), value in np.ndenumerate(difference):
        if value:
            axes.text(col, row, f"{value:+d}", ha="center", va="center", fontsize=8)
    axes.set_xticks(range(len(labels)), labels, fontsize=8, rotation=45 if len(labels) > 12 else 0)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"{Path(edge['artifact']).name}: edge − server confusion", fontsize=10)
    figure.colorbar(image, ax=axes, shrink=0.8, label="samples")
    return _png(figure)
